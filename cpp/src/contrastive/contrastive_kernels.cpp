// Hot loops of info_nce_loss: softmax statistics of one block of the similarity matrix, by rows
// and by columns, and its gradient in place. Compiled once per instruction set (see
// common/target.hpp); no exceptions, allocation or Python here.
//
// Numerics. Each log-sum-exp is shifted by its maximum (a row's or, per block, a column's), with
// torch's convention that a maximum of -inf becomes 0, so a run of -inf gives lse = -inf and a
// NaN anywhere in it gives NaN (the maximum skips NaN, the sum does not), as torch's
// log_softmax does. Exponentials are vmath's (<= 1 ulp, flushed to 0 below the smallest normal,
// far under a denominator >= 1), sums in double.
#include <cstdint>
#include <limits>

#include "common/target.hpp"
#include "common/vmath.hpp"
#include "contrastive/contrastive_kernels.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS {
namespace contrastive {
namespace {

using detail::InfoNceBlock;
using detail::kInfoNceColumnChunk;

template <class T>
constexpr T kInf = std::numeric_limits<T>::infinity();

// The shift of a log-sum-exp: the run's max, or 0 when nothing is above -inf.
template <class T>
LOSSKIT_INLINE T shift_of(T m) {
  return m == -kInf<T> ? T(0) : m;
}

template <class T>
void row_stats(const InfoNceBlock<T>& b, int64_t r0, int64_t r1) {
  const int64_t N = b.N;
  for (int64_t r = r0; r < r1; ++r) {
    const T* LOSSKIT_RESTRICT x = b.sim + r * N;
    T m = -kInf<T>;
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < N; ++c) m = x[c] > m ? x[c] : m;
    const T ref = shift_of(m);
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < N; ++c) s += static_cast<double>(vmath::exp_nonpositive(x[c] - ref));
    b.row_lse[r] = static_cast<double>(ref) + vmath::log(s);
    b.diag[r] = static_cast<double>(x[b.row0 + r]);
  }
}

template <class T>
void column_stats(const InfoNceBlock<T>& b, int64_t c0, int64_t c1) {
  const int64_t N = b.N, w = c1 - c0;
  T m[kInfoNceColumnChunk];
  double s[kInfoNceColumnChunk];
  for (int64_t j = 0; j < w; ++j) {
    m[j] = -kInf<T>;
    s[j] = 0.0;
  }
  for (int64_t r = 0; r < b.n; ++r) {
    const T* LOSSKIT_RESTRICT x = b.sim + r * N + c0;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) m[j] = x[j] > m[j] ? x[j] : m[j];
  }
  T ref[kInfoNceColumnChunk];
  for (int64_t j = 0; j < w; ++j) ref[j] = shift_of(m[j]);
  for (int64_t r = 0; r < b.n; ++r) {
    const T* LOSSKIT_RESTRICT x = b.sim + r * N + c0;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j)
      s[j] += static_cast<double>(vmath::exp_nonpositive(x[j] - ref[j]));
  }
  for (int64_t j = 0; j < w; ++j) {
    b.col_ref[c0 + j] = static_cast<double>(m[j]);
    b.col_sum[c0 + j] = s[j];
  }
}

// S[r, c] - lse is <= 0 up to the rounding of lse to T; exp_nonpositive is exact for that
// small positive side too (its clamp is only below).
template <class T, bool kColumns>
void grad_rows_impl(const InfoNceBlock<T>& b, int64_t r0, int64_t r1) {
  const int64_t N = b.N;
  const T* LOSSKIT_RESTRICT cl = b.col_lse;
  const T* LOSSKIT_RESTRICT cs = b.col_scale;
  for (int64_t r = r0; r < r1; ++r) {
    T* LOSSKIT_RESTRICT x = b.sim + r * N;
    const T lse = b.row_lse_in[r], g = b.row_scale[r];
    if constexpr (kColumns) {
#pragma omp simd
      for (int64_t c = 0; c < N; ++c)
        x[c] =
            g * vmath::exp_nonpositive(x[c] - lse) + cs[c] * vmath::exp_nonpositive(x[c] - cl[c]);
      x[b.row0 + r] -= g + cs[b.row0 + r];
    } else {
#pragma omp simd
      for (int64_t c = 0; c < N; ++c) x[c] = g * vmath::exp_nonpositive(x[c] - lse);
      x[b.row0 + r] -= g;
    }
  }
}

template <class T>
void grad_rows(const InfoNceBlock<T>& b, int64_t r0, int64_t r1) {
  if (b.col_lse) grad_rows_impl<T, true>(b, r0, r1);
  else grad_rows_impl<T, false>(b, r0, r1);
}

template <class T>
constexpr detail::ContrastiveKernels<T> make_table() {
  detail::ContrastiveKernels<T> k{};
  k.row_stats = &row_stats<T>;
  k.column_stats = &column_stats<T>;
  k.grad_rows = &grad_rows<T>;
  return k;
}

}  // namespace
}  // namespace contrastive

constexpr detail::ContrastiveKernels<float> contrastive_kernels_f32 =
    contrastive::make_table<float>();
constexpr detail::ContrastiveKernels<double> contrastive_kernels_f64 =
    contrastive::make_table<double>();

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
