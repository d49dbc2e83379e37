// Element access of storage type S in its compute type inside kernel loops (compiled once per
// instruction set, see common/target.hpp): a 16-bit value is widened when loaded and rounded to
// nearest even when stored, in register, with the branch-free conversions of losskit/half.hpp
// (GCC vectorises them; the F16C instructions it would not use inside a fused `omp simd` loop).
// Kernels templated on S thus read and write 16-bit arrays where they lie, with no staging copy,
// and give the bits a float kernel followed by a rounding of its outputs would give.
#pragma once

#include "common/storage.hpp"
#include "common/target.hpp"
#include "losskit/half.hpp"

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

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
