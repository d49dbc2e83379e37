#include "common/cpu_dispatch.hpp"
#include "common/vmath_kernels.hpp"

namespace losskit::detail {

template <class T>
static void dispatch(VmathFunction fn, const T* in, T* out, int64_t n) {
  using Fn = void (*)(VmathFunction, const T*, T*, int64_t);
#define LOSSKIT_ENTRY(ns) static_cast<Fn>(&kernels::ns::vmath_apply),
  static const Fn table[] = {LOSSKIT_FOR_EACH_TARGET(LOSSKIT_ENTRY)};
#undef LOSSKIT_ENTRY
  const int available = static_cast<int>(sizeof table / sizeof table[0]);
  const int wanted = static_cast<int>(active_cpu_target());
  table[wanted < available ? wanted : available - 1](fn, in, out, n);
}

void vmath_apply(VmathFunction fn, const float* in, float* out, int64_t n) {
  dispatch(fn, in, out, n);
}
void vmath_apply(VmathFunction fn, const double* in, double* out, int64_t n) {
  dispatch(fn, in, out, n);
}

}  // namespace losskit::detail
