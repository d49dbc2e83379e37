// Widening and narrowing of 16-bit storage, compiled once per instruction set (see
// common/target.hpp): the strip conversions of common/storage_access.hpp over a whole array
// (F16C / AVX-512 for float16 where the target has them, the portable conversion of
// losskit/half.hpp elsewhere and for the tails; both give the same bits for every input,
// tests/test_low_precision.py checks all 65536 patterns on every target). The raw bits of the
// interface are the public types' storage (one uint16_t each).
#include "common/convert_kernels.hpp"

#include "common/storage_strips.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS {

void widen_bfloat16(const uint16_t* in, float* out, int64_t n) {
  widen_strip(reinterpret_cast<const bfloat16*>(in), out, n);
}

void narrow_bfloat16(const float* in, uint16_t* out, int64_t n) {
  narrow_strip(in, reinterpret_cast<bfloat16*>(out), n);
}

void widen_float16(const uint16_t* in, float* out, int64_t n) {
  widen_strip(reinterpret_cast<const float16*>(in), out, n);
}

void narrow_float16(const float* in, uint16_t* out, int64_t n) {
  narrow_strip(in, reinterpret_cast<float16*>(out), n);
}

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
