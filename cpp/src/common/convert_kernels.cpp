// Widening and narrowing of 16-bit storage, compiled once per instruction set (see
// common/target.hpp). bfloat16 is plain integer work, which the compiler vectorises for any
// target. float16 uses the F16C / AVX-512 conversion instructions where the target has them
// (avx2, avx512: -mf16c) and the portable conversion of losskit/half.hpp elsewhere and for the
// tails; both give the same bits for every input (tests/test_low_precision.py checks all 65536
// patterns on every target).
#include "common/convert_kernels.hpp"

#include "losskit/half.hpp"

#if defined(__F16C__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace losskit::kernels::LOSSKIT_TARGET_NS {
namespace {
struct Tag {};  // this target's own copy of the half_bits functions
}  // namespace

void widen_bfloat16(const uint16_t* LOSSKIT_RESTRICT in, float* LOSSKIT_RESTRICT out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = half_bits::bfloat16_to_float<Tag>(in[i]);
}

void narrow_bfloat16(const float* LOSSKIT_RESTRICT in, uint16_t* LOSSKIT_RESTRICT out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = half_bits::float_to_bfloat16<Tag>(in[i]);
}

void widen_float16(const uint16_t* LOSSKIT_RESTRICT in, float* LOSSKIT_RESTRICT out, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i,
                     _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i))));
#endif
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
#endif
#pragma omp simd
  for (int64_t j = i; j < n; ++j) out[j] = half_bits::float16_to_float<Tag>(in[j]);
}

void narrow_float16(const float* LOSSKIT_RESTRICT in, uint16_t* LOSSKIT_RESTRICT out, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(in + i),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT));
#endif
#pragma omp simd
  for (int64_t j = i; j < n; ++j) out[j] = half_bits::float_to_float16<Tag>(in[j]);
}

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
