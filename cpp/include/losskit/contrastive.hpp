// Contrastive losses: info_nce_loss (InfoNCE: CLIP's symmetric loss, and the one-sided form) on
// two (N, D) embedding batches whose matching rows are the positive pairs.
//
// The formula, its gradient and edge values are documented once, in the docstring of
// losskit.functional.info_nce_loss (python/losskit/_functional/contrastive.py) and in
// docs/contrastive.md. With a = z1 / ||z1||, b = z2 / ||z2|| (rows; or z1, z2 without
// normalisation) and S = a b^T / temperature, the loss of pair n is
//   row_n = lse_m S[n, m] - S[n, n]          (z1 -> z2: cross_entropy(S, arange(N)))
//   col_n = lse_m S[m, n] - S[n, n]          (z2 -> z1: cross_entropy(S^T, arange(N)))
//   l_n   = (row_n + col_n) / 2  (symmetric)  or  row_n  (one-sided)
//
// Memory plan: the N x N similarities are never held. S is computed one block of rows at a time
// (block_rows x N) by the caller's GEMM (the GemmFn of large_vocab.hpp; the Python package passes
// NumPy's BLAS), and the block's softmax statistics and its gradient d loss / d S are computed in
// place by the per-ISA kernels. The column log-sum-exps of the symmetric loss need every row, so
// the symmetric gradient takes two passes over the blocks (the second recomputes S) unless one
// block holds all N rows; the one-sided loss is one pass. Per block, with G = d loss / d S:
//   dA[block] = G @ B,   dB += G^T @ A[block]   (A = a / temperature, B = b)
// and the normalisation's backward maps dA, dB to d z1, d z2 (rows, in place).
//
// Determinism: every row's statistics are summed by one thread in column order, every column's
// by one thread in row order within a block and blocks are merged in block order; the total loss
// is a blocked double sum. The result is bitwise the same on any thread count (given a GEMM that
// is, and the same block_rows).
#pragma once

#include <cstdint>

#include "losskit/half.hpp"
#include "losskit/large_vocab.hpp"
#include "losskit/reduction.hpp"
#include "losskit/view.hpp"

namespace losskit {

struct InfoNceOptions {
  double temperature = 0.07;  // CLIP's initial temperature (logit scale 1 / 0.07)
  bool symmetric = true;      // average of the z1 -> z2 and z2 -> z1 cross-entropies
  bool normalize = true;      // L2-normalise rows first (torch's F.normalize, eps = 1e-12)
  Reduction reduction = Reduction::Mean;
  Normalizer normalizer{};  // see reduction.hpp; 'mean''s own divisor is N
};

// Rows per block so that a block of similarities (rows x num_rows elements of `itemsize` bytes)
// holds about `budget_bytes` (default 64 MiB), but at least `min_rows` (GEMMs of fewer rows lose
// speed) and at most num_rows (at least 1).
int64_t info_nce_block_rows(int64_t num_rows, int64_t itemsize,
                            int64_t budget_bytes = int64_t{64} << 20, int64_t min_rows = 256);

// Elements of T the workspace needs: the scaled, normalised copies A and B (2 N D) and one block
// of similarities (block_rows x N). For 16-bit storage (`half_storage`) the workspace is float and
// also holds the float gradients: z2's (N D, summed over the blocks) and one block of z1's
// (block_rows D).
int64_t info_nce_workspace_size(int64_t num_rows, int64_t dim, int64_t block_rows,
                                bool half_storage = false);

// The divisor of 'mean' (the batch size N); options.reduction must be 'mean'.
double info_nce_mean_normalizer(int64_t num_rows, const InfoNceOptions& options = {});

// info_nce_loss and its gradients. z1, z2: (N, D). grad_output: () for 'mean'/'sum' or (N) for
// 'none', absent meaning ones. output: () or (N), or absent. grad_z1, grad_z2: (N, D) each, or
// absent (both absent: forward only). workspace: info_nce_workspace_size(N, D, block_rows)
// elements. gemm: the caller's BLAS (row-major, see GemmFn). Checks everything before any work;
// allocates O(N) doubles only.
template <class T>
void info_nce_loss_forward_backward(View<T> z1, View<T> z2, View<T> grad_output, MutView<T> output,
                                    MutView<T> grad_z1, MutView<T> grad_z2, MutView<T> workspace,
                                    int64_t block_rows, const InfoNceOptions& options,
                                    LinearCrossEntropyGemm<T> gemm);

// The same for 16-bit storage (losskit/half.hpp), read and written in place: computed in float (a
// float GEMM on float copies of the normalised rows, or of the rows widened without
// normalisation: BLAS has no 16-bit GEMM), every result equal to the float computation on the
// widened inputs rounded once. workspace: info_nce_workspace_size(N, D, block_rows, true) floats.
void info_nce_loss_forward_backward(View<bfloat16> z1, View<bfloat16> z2,
                                    View<bfloat16> grad_output, MutView<bfloat16> output,
                                    MutView<bfloat16> grad_z1, MutView<bfloat16> grad_z2,
                                    MutView<float> workspace, int64_t block_rows,
                                    const InfoNceOptions& options,
                                    LinearCrossEntropyGemm<float> gemm);
void info_nce_loss_forward_backward(View<float16> z1, View<float16> z2, View<float16> grad_output,
                                    MutView<float16> output, MutView<float16> grad_z1,
                                    MutView<float16> grad_z2, MutView<float> workspace,
                                    int64_t block_rows, const InfoNceOptions& options,
                                    LinearCrossEntropyGemm<float> gemm);

}  // namespace losskit
