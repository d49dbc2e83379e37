// Array ("strip") conversions of 16-bit storage for kernel code, one overload set for both types:
// storage_access.hpp's float16 strips (F16C / AVX-512 where the target has them) and the
// bfloat16 ones here (widening is a shift, which the compiler vectorises on any target; rounding
// is written out in AVX2 integer instructions where the target has them). They are also the
// array conversions of common/convert_kernels.cpp, so there is one implementation of each.
// Any count n; the bits are those of losskit/half.hpp's conversions.
#pragma once

#include <cstdint>

#include "common/storage_access.hpp"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace losskit::kernels::LOSSKIT_TARGET_NS {

LOSSKIT_INLINE void widen_strip(const bfloat16* LOSSKIT_RESTRICT in, float* LOSSKIT_RESTRICT out,
                                int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = load(in[i]);
}

// On AVX2 the rounding is written out: GCC vectorises half.hpp's scalar form with its 16-bit NaN
// constant packed and unpacked again, about twice the operations of these (the same bits: add
// 0x7fff plus the kept lowest bit and shift, a quiet NaN of the sign where |u| > inf).
LOSSKIT_INLINE void narrow_strip(const float* LOSSKIT_RESTRICT in, bfloat16* LOSSKIT_RESTRICT out,
                                 int64_t n) {
  int64_t i = 0;
#if defined(__AVX2__)
  const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
  const __m256i sign = _mm256_set1_epi32(0x8000), quiet = _mm256_set1_epi32(0x7fc0);
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  const auto round = [&](__m256i u) {
    const __m256i hi = _mm256_srli_epi32(u, 16);
    const __m256i r =
        _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, bias), _mm256_and_si256(hi, one)),
                          16);
    const __m256i nan = _mm256_or_si256(_mm256_and_si256(hi, sign), quiet);
    const __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
    return _mm256_blendv_epi8(r, nan, is_nan);
  };
  for (; i + 16 <= n; i += 16) {
    const __m256i a = round(_mm256_castps_si256(_mm256_loadu_ps(in + i)));
    const __m256i b = round(_mm256_castps_si256(_mm256_loadu_ps(in + i + 8)));
    // packus interleaves the 128-bit lanes (a0 b0 a1 b1); the permute restores a b
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8));
  }
#endif
  for (; i < n; ++i) store(out[i], in[i]);
}

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
