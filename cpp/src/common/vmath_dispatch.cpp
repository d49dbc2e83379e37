#include "common/cpu_dispatch.hpp"
#include "common/vmath_kernels.hpp"

namespace losskit::detail {

template <class T>
static void dispatch(VmathFunction fn, const T* in, T* out, int64_t n) {
  using Fn = void (*)(VmathFunction, const T*, T*, int64_t);
  LOSSKIT_DISPATCH(Fn, vmath_apply)(fn, in, out, n);
}

void vmath_apply(VmathFunction fn, const float* in, float* out, int64_t n) {
  dispatch(fn, in, out, n);
}
void vmath_apply(VmathFunction fn, const double* in, double* out, int64_t n) {
  dispatch(fn, in, out, n);
}

}  // namespace losskit::detail
