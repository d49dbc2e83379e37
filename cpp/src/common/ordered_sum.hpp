// Sums whose rounding does not depend on the compiler. `#pragma omp simd reduction(+ : s)` licenses
// the compiler to reassociate the sum, so its order (and last bits) follow whatever the vectoriser
// chose: lane-strided with 2, 4 or 8 lanes on baseline, AVX2 and AVX-512, sequential where it did
// not vectorise (the sanitized build). Last bits are enough to decide a comparison downstream (the
// swap minimum's tie, the hinge at 0), so a triplet gradient changed by the whole grad_output
// between builds. Here the order is written in the source: K interleaved partial sums over full
// groups of K terms, combined in a fixed tree, then the remaining terms in sequence. Rows shorter
// than K are summed in plain sequence, as torch's reductions do for short rows. The compiler may
// still vectorise the K partials (they are independent), but cannot change the order.
#pragma once

#include <cstdint>

#include "common/target.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS {

// out[m] = sum over j in [0, n) of t[m], where terms(j, t) writes the M terms of element j.
// Each sum's eight partials are contiguous (acc[m][k]), so the loop over k vectorises into one
// vector of partials per sum; with acc[k][m] GCC 12 left it scalar wherever M > 1 (cosine's
// three sums: "no vectype", the partials of one sum M apart).
template <int M, class Terms>
LOSSKIT_INLINE void ordered_sums(int64_t n, double (&out)[M], Terms&& terms) {
  constexpr int K = 8;
  double acc[M][K] = {};
  int64_t j = 0;
  for (; j + K <= n; j += K) {
#pragma omp simd
    for (int k = 0; k < K; ++k) {
      double t[M];
      terms(j + k, t);
      for (int m = 0; m < M; ++m) acc[m][k] += t[m];
    }
  }
  for (int m = 0; m < M; ++m)
    out[m] = ((acc[m][0] + acc[m][4]) + (acc[m][2] + acc[m][6])) +
             ((acc[m][1] + acc[m][5]) + (acc[m][3] + acc[m][7]));
  for (; j < n; ++j) {
    double t[M];
    terms(j, t);
    for (int m = 0; m < M; ++m) out[m] += t[m];
  }
}

// out[m] = sum over j in [0, n) of terms[m][j], widened to double: ordered_sums over arrays.
template <int M, class T>
LOSSKIT_INLINE void ordered_sums_of(int64_t n, const T* const (&terms)[M], double (&out)[M]) {
  ordered_sums<M>(n, out, [&](int64_t j, double(&t)[M]) {
    for (int m = 0; m < M; ++m) t[m] = static_cast<double>(terms[m][j]);
  });
}

// The single sum: sum over j in [0, n) of term(j).
template <class Term>
LOSSKIT_INLINE double ordered_sum(int64_t n, Term&& term) {
  double out[1];
  ordered_sums<1>(n, out, [&](int64_t j, double(&t)[1]) { t[0] = term(j); });
  return out[0];
}

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
