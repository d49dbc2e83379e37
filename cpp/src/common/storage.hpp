// Storage type S and compute type: float and double compute as they are stored; bfloat16 and
// float16 are storage only and compute in float. The element-wise kernels convert 16-bit values
// in register as they load and store them (common/storage_access.hpp); cross_entropy's row kernel
// widens each chunk of a row into an L1 strip as it reads it (common/storage_strips.hpp); the other
// staged paths widen a cache-sized block into float scratch with the active target's array
// conversion below (F16C / AVX-512 where available), run the float kernel on it, and narrow its
// outputs back (common/staging.hpp). Either way the input is read once, where it lies, and nothing
// input-sized is allocated.
#pragma once

#include <cstdint>
#include <type_traits>

#include "losskit/half.hpp"

namespace losskit::detail {

template <class S>
struct StorageTraits {
  using Compute = S;
};
template <>
struct StorageTraits<bfloat16> {
  using Compute = float;
};
template <>
struct StorageTraits<float16> {
  using Compute = float;
};
template <class S>
using compute_t = typename StorageTraits<S>::Compute;
// Whether S is a 16-bit storage type (widened to float for every kernel).
template <class S>
constexpr bool is_half_v = !std::is_same_v<S, compute_t<S>>;

// The active target's conversions (exact widening; round to nearest even when narrowing).
void widen(const bfloat16* in, float* out, int64_t n);
void widen(const float16* in, float* out, int64_t n);
void narrow(const float* in, bfloat16* out, int64_t n);
void narrow(const float* in, float16* out, int64_t n);

}  // namespace losskit::detail
