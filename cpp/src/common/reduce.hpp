// The one deterministic accumulator. Every reduction splits its index space into blocks of
// kReduceBlock items whose boundaries do not depend on the thread count, sums each block in double
// in the order that common/ordered_sum.hpp writes down (not one a vectoriser picks, which changed
// with the build's flags), and combines the block partials in a fixed pairwise tree. The result is
// therefore bitwise the same on 1, 2 or 64 threads and in every build of the core.
#pragma once

#include <cstdint>
#include <vector>

namespace losskit::detail {

constexpr int64_t kReduceBlock = 8192;

inline int64_t reduce_blocks(int64_t n) { return (n + kReduceBlock - 1) / kReduceBlock; }

// Pairwise sum of block partials in a fixed tree.
double combine_partials(const double* partials, int64_t n);

// Deterministic blocked sum of an array (used for weight totals).
template <class T>
double blocked_sum(const T* data, int64_t n);

}  // namespace losskit::detail
