// Element access of storage type S in its compute type inside kernel loops (compiled once per
// instruction set, see common/target.hpp): a 16-bit value is widened when loaded and rounded to
// nearest even when stored, in register, with the branch-free conversions of losskit/half.hpp
// (GCC vectorises them; the F16C instructions it would not use inside a fused `omp simd` loop).
// Kernels templated on S thus read and write 16-bit arrays where they lie, with no staging copy,
// and give the bits a float kernel followed by a rounding of its outputs would give.
// On targets with F16C (avx2, avx512) float16 instead goes through strips: see kFloat16Strips.
#pragma once

#include <cstdint>

#include "common/storage.hpp"
#include "common/target.hpp"
#include "losskit/half.hpp"

#if defined(__F16C__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace losskit::kernels::LOSSKIT_TARGET_NS {

struct StorageTag {};  // this target's own copy of the half_bits functions

template <class S>
LOSSKIT_INLINE detail::compute_t<S> load(const S& v) {
  return v;
}
LOSSKIT_INLINE float load(const bfloat16& v) {
  return half_bits::bfloat16_to_float<StorageTag>(v.bits);
}
LOSSKIT_INLINE float load(const float16& v) {
  return half_bits::float16_to_float<StorageTag>(v.bits);
}

template <class S>
LOSSKIT_INLINE void store(S& dst, detail::compute_t<S> v) {
  dst = v;
}
LOSSKIT_INLINE void store(bfloat16& dst, float v) {
  dst.bits = half_bits::float_to_bfloat16<StorageTag>(v);
}
LOSSKIT_INLINE void store(float16& dst, float v) {
  dst.bits = half_bits::float_to_float16<StorageTag>(v);
}

// float16 strips. GCC 12 vectorises the portable float16 conversion inside a fused loop at some
// 25 vector operations per value, which costs more than the bytes float16 saves; the F16C
// instructions convert 8 (AVX-512: 16) values in one, but GCC does not use them there. So where
// the target has them, a kernel on float16 storage widens a strip of each operand into float
// arrays on the stack, runs its float loop on them (in L1) and rounds the strip's outputs back
// with vcvtps2ph (nearest even): the same bits as the in-register path (losskit/half.hpp).
#if defined(__F16C__)
constexpr bool kFloat16Strips = true;
#else
constexpr bool kFloat16Strips = false;
#endif
constexpr int64_t kStripLen = 256;  // a multiple of every vector width; a few strips fit L1

// Converts n values (any count: the kernels pass kStripLen, the array conversions of
// convert_kernels.cpp whole arrays); the tail uses the portable conversion (the same bits).
LOSSKIT_INLINE void widen_strip(const float16* LOSSKIT_RESTRICT in, float* LOSSKIT_RESTRICT out,
                                int64_t n) {
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
  for (; i < n; ++i) out[i] = load(in[i]);
}

LOSSKIT_INLINE void narrow_strip(const float* LOSSKIT_RESTRICT in, float16* LOSSKIT_RESTRICT out,
                                 int64_t n) {
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
  for (; i < n; ++i) store(out[i], in[i]);
}

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
