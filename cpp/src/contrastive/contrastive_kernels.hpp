// Interface between the contrastive entry points (contrastive.cpp, compiled once) and the kernels
// (contrastive_kernels.cpp, compiled once per instruction set): the softmax statistics of one
// block of the similarity matrix S (rows row0 .. row0 + n of the N x N matrix, row-major, row
// stride N) and its gradient, written in place. Kernels never throw or allocate.
#pragma once

#include <cstdint>

#include "common/target.hpp"

namespace losskit::detail {

template <class T>
struct InfoNceBlock {
  T* sim = nullptr;  // (n, N): S on entry; the gradient pass overwrites it with d loss / d S
  int64_t n = 0, N = 0, row0 = 0;
  // Statistics pass outputs, per block row (n): lse_m S[r, m] and S[r, row0 + r], in double.
  double* row_lse = nullptr;
  double* diag = nullptr;
  // Column statistics of this block (N): the column's largest value m (-inf when none is above
  // -inf, NaN skipped) and sum_r exp(S[r, c] - m), in double (with m taken as 0 when -inf: the sum
  // is then 0, or NaN).
  double* col_ref = nullptr;
  double* col_sum = nullptr;
  // Gradient pass inputs: per block row (n) the row's lse and scale, per column (N) the column's
  // lse and scale (absent for the one-sided loss):
  //   G[r, c] = row_scale[r] (exp(S[r, c] - row_lse[r]) - [c = row0 + r])
  //           + col_scale[c] (exp(S[r, c] - col_lse[c]) - [c = row0 + r])
  const T* row_lse_in = nullptr;
  const T* row_scale = nullptr;
  const T* col_lse = nullptr;
  const T* col_scale = nullptr;
};

// Columns per chunk of the column statistics: a chunk's running values stay in registers / L1
// while the block's rows stream past; fixed, so sums never depend on the thread count.
constexpr int64_t kInfoNceColumnChunk = 256;

template <class T>
struct ContrastiveKernels {
  // Rows [r0, r1) of the block: row_lse and diag.
  void (*row_stats)(const InfoNceBlock<T>&, int64_t r0, int64_t r1);
  // Columns [c0, c1) (c1 - c0 <= kInfoNceColumnChunk): col_ref and col_sum over the block's rows,
  // summed in row order.
  void (*column_stats)(const InfoNceBlock<T>&, int64_t c0, int64_t c1);
  // Rows [r0, r1) of the block: G in place of S.
  void (*grad_rows)(const InfoNceBlock<T>&, int64_t r0, int64_t r1);
};

}  // namespace losskit::detail

namespace losskit::kernels {
#define LOSSKIT_DECLARE_CONTRASTIVE(ns)                                                            \
  namespace ns {                                                                                   \
  extern const detail::ContrastiveKernels<float> contrastive_kernels_f32;                          \
  extern const detail::ContrastiveKernels<double> contrastive_kernels_f64;                         \
  }
LOSSKIT_FOR_EACH_TARGET(LOSSKIT_DECLARE_CONTRASTIVE)
#undef LOSSKIT_DECLARE_CONTRASTIVE
}  // namespace losskit::kernels
