// Large-vocabulary output losses: linear_cross_entropy (torch.nn.functional.linear_cross_entropy,
// torch.nn.LinearCrossEntropyLoss) computed chunk by chunk, never materialising the N x V logits.
//
// Formulas, gradients and edge values are documented once, in the docstring of
// losskit.functional.linear_cross_entropy (python/losskit/_functional/large_vocab.py) and in
// docs/large_vocab.md. The loss is cross_entropy(input @ linear_weight^T + linear_bias, target).
//
// The core does the softmax / cross-entropy arithmetic; the matrix products belong to a real BLAS
// that the caller brings (the Python package uses NumPy's, and SciPy's for the accumulating one).
// A C++ program runs the same chunk loop with its own BLAS (cblas_sgemm shown, row-major):
//
//   using namespace losskit;
//   const double W = o.normalizer ? *o.normalizer   // a global divisor (reduction.hpp)
//                    : linear_cross_entropy_target_weight<float>(target, weight, V, o);
//   const double scale = o.reduction == Reduction::Mean ? grad_output / W : grad_output;
//   std::vector<float> buf(rows * V);               // the only O(chunk x V) memory
//   std::vector<double> gb(V, 0.0);                 // grad_linear_bias, in double
//   double total = 0.0;                             // sum of the chunk losses, in chunk order
//   for (int64_t r0 = 0; r0 < N; r0 += rows) {
//     const int64_t n = std::min(rows, N - r0);
//     // logits = x[r0:r0+n] @ Wl^T                 (n x V)
//     cblas_sgemm(RowMajor, NoTrans, Trans, n, V, H, 1, x + r0*H, H, Wl, H, 0, buf.data(), V);
//     // + bias, loss, and d loss / d logits in place (grad_output and the global scale folded in)
//     total += linear_cross_entropy_chunk<float>(MutView<float>(buf.data(), {n, V}),
//                  View<int64_t>(t + r0, {n}), bias, weight, {}, {}, MutView<double>(gb.data(), {V}),
//                  true, scale, o);
//     // grad_input[r0:r0+n] = dlogits @ Wl        (n x H)
//     cblas_sgemm(RowMajor, NoTrans, NoTrans, n, H, V, 1, buf.data(), V, Wl, H, 0, gx + r0*H, H);
//     // grad_linear_weight += dlogits^T @ x[r0:r0+n]   (V x H, beta = 1 after the first chunk)
//     cblas_sgemm(RowMajor, Trans, NoTrans, V, H, n, 1, buf.data(), V, x + r0*H, H, r0 ? 1 : 0, gW, H);
//   }
//   loss = o.reduction == Reduction::Mean ? total / W : total;
//
// linear_cross_entropy_forward_backward (below) runs exactly this loop with a GEMM callback.
// Peak extra memory is rows x V elements (plus V doubles for the bias gradient); choose rows with
// linear_cross_entropy_chunk_rows(). Chunk losses are summed in double in chunk order and each
// chunk's sum is bitwise independent of the thread count, so the loss is too.
#pragma once

#include <cstdint>
#include <optional>

#include "losskit/classification.hpp"
#include "losskit/reduction.hpp"
#include "losskit/view.hpp"

namespace losskit {

// z_loss and softcap as in CrossEntropyOptions (classification.hpp), on the logits
// input @ linear_weight^T + linear_bias.
struct LinearCrossEntropyOptions {
  Reduction reduction = Reduction::Mean;
  int64_t ignore_index = -100;  // torch's None
  double label_smoothing = 0.0;
  double z_loss = 0.0;
  std::optional<double> softcap;
  Normalizer normalizer{};  // see reduction.hpp
};

// Rows per chunk so that a chunk of logits (rows x num_classes elements of `itemsize` bytes) holds
// about `budget_bytes` (default 64 MiB), but at least `min_rows` (default 512: GEMMs of fewer rows
// lose speed, measured with OpenBLAS at V = 128000, where 64 MiB is 131 rows: 23.3 s, 256 rows
// 19.5 s, 512 rows 17.7 s) and at most num_rows (and at least 1).
int64_t linear_cross_entropy_chunk_rows(int64_t num_rows, int64_t num_classes, int64_t itemsize,
                                        int64_t budget_bytes = int64_t{64} << 20,
                                        int64_t min_rows = 512);

// The cheap pass before the chunk loop: checks every class index of `target` (shape (N), any
// values in [0, num_classes) or options.ignore_index; IndexError otherwise), the options and the
// class `weight` (shape (num_classes) or absent), and returns the own divisor of 'mean':
// the sum of the weights of the counted targets (their number without weights), summed in
// double in target order. 'mean' divides the total loss by it and scales every chunk's gradient
// by grad_output / it, so chunks need no knowledge of each other.
template <class T>
double linear_cross_entropy_target_weight(View<int64_t> target, View<T> weight, int64_t num_classes,
                                          const LinearCrossEntropyOptions& options);
// The same value as the loss's Normalizer query (reduction.hpp): the divisor 'mean' uses when no
// normalizer is given; options.reduction must be 'mean' (ValueError otherwise).
template <class T>
double linear_cross_entropy_mean_normalizer(View<int64_t> target, View<T> weight,
                                            int64_t num_classes,
                                            const LinearCrossEntropyOptions& options = {});

// One chunk of rows, in place on the caller's logits (n, V) = input_chunk @ linear_weight^T:
// adds `linear_bias` (V) when present, then runs the fused cross-entropy row kernel:
// * returns the sum of the chunk's row losses (double; bitwise the same for any thread count);
// * `output` (n), when present, receives each row's loss (reduction 'none');
// * with `want_grad`, overwrites `logits` with d loss / d logits, scaled per row by
//   grad_scale * grad_output[r] (`grad_output` (n) for 'none', absent otherwise: then pass the
//   global scale, grad_output / target_weight for 'mean' or grad_output for 'sum');
// * `grad_bias_acc` (V doubles), when present with `want_grad`, accumulates the column sums of
//   that gradient (rows summed in order, so deterministic): grad_linear_bias over all chunks.
// * `stats` (each (n) or absent) receives the chunk rows' lse, entropy and correct.
// `target` (n) is checked again (cheap), so a wrong index can never be read out of bounds.
template <class T>
double linear_cross_entropy_chunk(MutView<T> logits, View<int64_t> target, View<T> linear_bias,
                                  View<T> weight, View<T> grad_output, MutView<T> output,
                                  MutView<double> grad_bias_acc, bool want_grad, double grad_scale,
                                  const LinearCrossEntropyOptions& options,
                                  const CrossEntropyStats<T>& stats = {});

// ---- the whole loop, with the caller's BLAS -------------------------------------------------
// Row-major GEMM: C = alpha op(A) op(B) + beta C, op(A) m x k, op(B) k x n (cblas_?gemm with
// CblasRowMajor; trans_a / trans_b as CblasTrans). `context` is passed back untouched. With
// beta == 0, C must not be read (it may hold garbage), as BLAS specifies.
template <class T>
using GemmFn = void (*)(void* context, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                        T alpha, const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c,
                        int64_t ldc);
template <class T>
struct LinearCrossEntropyGemm {
  GemmFn<T> fn = nullptr;
  void* context = nullptr;
};

// Elements of T the workspace of linear_cross_entropy_forward_backward needs for chunks of
// `chunk_rows` rows: chunk_rows x num_classes (the logits buffer).
int64_t linear_cross_entropy_workspace_size(int64_t chunk_rows, int64_t num_classes);

// linear_cross_entropy and its gradients in one chunked pass, the loop above with `gemm` for the
// three products. input (N, H) or (H); linear_weight (V, H); target (N) or (); linear_bias and
// weight (V) or absent; grad_output () for 'mean'/'sum' or the loss's shape for 'none', absent
// meaning ones; output () or the loss's shape; the gradients shaped like their inputs, each
// absent when not wanted (all absent: forward only). `workspace` is (rows, V): its first
// dimension sets the chunk (linear_cross_entropy_chunk_rows suggests one). Allocates only V
// doubles (the bias gradient accumulator). `stats` (each of the loss's shape, or absent)
// receives the per-row statistics. Checks everything before any work.
template <class T>
void linear_cross_entropy_forward_backward(
    View<T> input, View<T> linear_weight, View<int64_t> target, View<T> linear_bias, View<T> weight,
    View<T> grad_output, MutView<T> output, MutView<T> grad_input, MutView<T> grad_linear_weight,
    MutView<T> grad_linear_bias, MutView<T> workspace, const LinearCrossEntropyOptions& options,
    LinearCrossEntropyGemm<T> gemm, const CrossEntropyStats<T>& stats = {});

}  // namespace losskit
