// Array ("strip") conversions of 16-bit storage for kernel code, one overload set for both types:
// storage_access.hpp's float16 strips (F16C / AVX-512 where the target has them) and the
// bfloat16 ones here (a shift, which the compiler vectorises on any target). They are also the
// array conversions of common/convert_kernels.cpp, so there is one implementation of each.
// Any count n; the bits are those of losskit/half.hpp's conversions.
#pragma once

#include <cstdint>

#include "common/storage_access.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS {

LOSSKIT_INLINE void widen_strip(const bfloat16* LOSSKIT_RESTRICT in, float* LOSSKIT_RESTRICT out,
                                int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = load(in[i]);
}

LOSSKIT_INLINE void narrow_strip(const float* LOSSKIT_RESTRICT in, bfloat16* LOSSKIT_RESTRICT out,
                                 int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) store(out[i], in[i]);
}

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
