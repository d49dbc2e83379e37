#include "common/reduce.hpp"

#include "common/ordered_sum.hpp"
#include "common/parallel.hpp"
#include "losskit/half.hpp"

namespace losskit::detail {

double combine_partials(const double* partials, int64_t n) {
  if (n <= 0) return 0.0;
  if (n <= 8) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += partials[i];
    return s;
  }
  const int64_t half = n / 2;
  return combine_partials(partials, half) + combine_partials(partials + half, n - half);
}

template <class T>
double blocked_sum(const T* data, int64_t n) {
  const int64_t nblocks = reduce_blocks(n);
  std::vector<double> partials(static_cast<size_t>(nblocks), 0.0);
  parallel_for(0, nblocks, 16, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t lo = b * kReduceBlock;
      const int64_t hi = lo + kReduceBlock < n ? lo + kReduceBlock : n;
      const T* block = data + lo;
      partials[static_cast<size_t>(b)] =
          kernels::LOSSKIT_TARGET_NS::ordered_sum(hi - lo, [&](int64_t i) {
            return static_cast<double>(block[i]);
          });
    }
  });
  return combine_partials(partials.data(), nblocks);
}

template double blocked_sum<float>(const float*, int64_t);
template double blocked_sum<double>(const double*, int64_t);
template double blocked_sum<bfloat16>(const bfloat16*, int64_t);
template double blocked_sum<float16>(const float16*, int64_t);

}  // namespace losskit::detail
