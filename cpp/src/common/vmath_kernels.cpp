// The vector math loops behind the vmath_apply test hook; compiled once per instruction set.
#include "common/vmath_kernels.hpp"

#include "common/vmath.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS {
namespace {

template <class T>
void apply(detail::VmathFunction fn, const T* LOSSKIT_RESTRICT in, T* LOSSKIT_RESTRICT out,
           int64_t n) {
  switch (fn) {
    case detail::VmathFunction::Exp:
      for (int64_t i = 0; i < n; ++i) out[i] = vmath::exp(in[i]);
      break;
    case detail::VmathFunction::Log:
      for (int64_t i = 0; i < n; ++i) out[i] = vmath::log(in[i]);
      break;
    case detail::VmathFunction::Log1p:
      for (int64_t i = 0; i < n; ++i) out[i] = vmath::log1p(in[i]);
      break;
    case detail::VmathFunction::Log1pUnit:  // defined on [0, 1]
      for (int64_t i = 0; i < n; ++i) out[i] = vmath::log1p_unit(in[i]);
      break;
    case detail::VmathFunction::ExpNonpositive:
      for (int64_t i = 0; i < n; ++i) out[i] = vmath::exp_nonpositive(in[i]);
      break;
    case detail::VmathFunction::Tanh:
      for (int64_t i = 0; i < n; ++i) out[i] = vmath::tanh(in[i]);
      break;
    case detail::VmathFunction::Atan:  // double only: float rounds the double result
      for (int64_t i = 0; i < n; ++i)
        out[i] = static_cast<T>(vmath::atan(static_cast<double>(in[i])));
      break;
  }
}

}  // namespace

void vmath_apply(detail::VmathFunction fn, const float* in, float* out, int64_t n) {
  apply(fn, in, out, n);
}
void vmath_apply(detail::VmathFunction fn, const double* in, double* out, int64_t n) {
  apply(fn, in, out, n);
}

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
