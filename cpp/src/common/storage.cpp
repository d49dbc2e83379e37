#include "common/storage.hpp"

#include "common/convert_kernels.hpp"
#include "common/cpu_dispatch.hpp"

namespace losskit::detail {
namespace {
using Widen = void (*)(const uint16_t*, float*, int64_t);
using Narrow = void (*)(const float*, uint16_t*, int64_t);

const uint16_t* bits(const bfloat16* p) { return reinterpret_cast<const uint16_t*>(p); }
const uint16_t* bits(const float16* p) { return reinterpret_cast<const uint16_t*>(p); }
uint16_t* bits(bfloat16* p) { return reinterpret_cast<uint16_t*>(p); }
uint16_t* bits(float16* p) { return reinterpret_cast<uint16_t*>(p); }
}  // namespace

void widen(const bfloat16* in, float* out, int64_t n) {
  LOSSKIT_DISPATCH(Widen, widen_bfloat16)(bits(in), out, n);
}
void widen(const float16* in, float* out, int64_t n) {
  LOSSKIT_DISPATCH(Widen, widen_float16)(bits(in), out, n);
}
void narrow(const float* in, bfloat16* out, int64_t n) {
  LOSSKIT_DISPATCH(Narrow, narrow_bfloat16)(in, bits(out), n);
}
void narrow(const float* in, float16* out, int64_t n) {
  LOSSKIT_DISPATCH(Narrow, narrow_float16)(in, bits(out), n);
}

}  // namespace losskit::detail
