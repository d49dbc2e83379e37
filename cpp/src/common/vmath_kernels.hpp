// Test hook: applies the active target's vectorised exp/log/log1p/tanh/atan (and log1p_unit) to an
// array, so the tests can measure their accuracy against NumPy on every instruction set.
#pragma once

#include <cstdint>

#include "common/target.hpp"

namespace losskit::detail {

enum class VmathFunction {
  Exp = 0,
  Log = 1,
  Log1p = 2,
  ExpNonpositive = 3,
  Tanh = 4,
  Atan = 5,
  Log1pUnit = 6
};

void vmath_apply(VmathFunction fn, const float* in, float* out, int64_t n);
void vmath_apply(VmathFunction fn, const double* in, double* out, int64_t n);

}  // namespace losskit::detail

namespace losskit::kernels {
#define LOSSKIT_DECLARE_VMATH(ns)                                                                  \
  namespace ns {                                                                                   \
  void vmath_apply(detail::VmathFunction, const float*, float*, int64_t);                          \
  void vmath_apply(detail::VmathFunction, const double*, double*, int64_t);                        \
  }
LOSSKIT_FOR_EACH_TARGET(LOSSKIT_DECLARE_VMATH)
#undef LOSSKIT_DECLARE_VMATH
}  // namespace losskit::kernels
