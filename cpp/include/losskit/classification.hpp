// Classification losses (torch.nn: CrossEntropyLoss, NLLLoss, MultiMarginLoss,
// MultiLabelMarginLoss, MultiLabelSoftMarginLoss; beyond torch.nn: softmax_focal_loss,
// poly1_cross_entropy).
//
// Formulas, gradients and edge values are documented once, in the Python docstrings of
// losskit.functional (python/losskit/_functional/classification.py) and in docs/classification.md.
//
// Every loss has three entry points with torch's argument order, as in pointwise.hpp:
//   NAME(inputs..., output, options)
//   NAME_backward(grad_output, inputs..., grads..., options)
//   NAME_forward_backward(inputs..., grad_output, output, grads..., options)
// * `input` is (C), (N, C) or, for cross_entropy and nll_loss, (N, C, d1, ..., dK) with the
//   class dimension second; the margin losses also take a 0-d input, one sample of one class
//   (torch). Class-index targets are int64 views of shape (), (N) or (N, d1, ..., dK).
//   Optional class weights are `{}` when absent, else shape (C).
// * The unreduced output has classification_output_shape(...) (multi_margin_loss: the target's
//   shape) and a reduced one shape {}.
// * grad_output is a 0-d view for reduced losses and an output-shaped view for Reduction::None;
//   an absent grad_output (`{}`) means 1 (ones), in NAME_backward too (API.md: the classes'
//   backward(None)).
// * Gradients have the shape of their input; `{}` for gradients not wanted.
// * cross_entropy_forward_backward reads each logit row once from memory (online max and sum of
//   exponentials over cache-sized chunks) and writes the gradient once; nothing of size N x C is
//   allocated (scratch is O(threads + rows)).
// All checks (shapes, options, every class index) run before any work and throw
// losskit::ValueError / IndexError (out-of-range class index) / TypeError.
// float and double are instantiated, and every loss here also for the 16-bit storage types
// losskit::bfloat16 and losskit::float16 (losskit/half.hpp): an embedding program passes its raw
// 16-bit buffers (all of input, weight, probability target, grad_output, outputs and gradients of
// that type), which are read in place, computed in float (sums in double) and rounded once to 16
// bits. Class-index targets stay int64; the statistics' `correct` stays bool.
#pragma once

#include <cstdint>
#include <optional>

#include "losskit/half.hpp"
#include "losskit/reduction.hpp"
#include "losskit/view.hpp"

namespace losskit {

// z_loss and softcap apply to class-index targets only (ValueError with probabilities):
// z_loss (finite, >= 0) adds z_loss * lse^2 per counted position; softcap (finite, > 0, or
// absent) replaces each logit x by softcap * tanh(x / softcap) before the softmax.
struct CrossEntropyOptions {
  Reduction reduction = Reduction::Mean;
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  double z_loss = 0.0;
  std::optional<double> softcap;
  Normalizer normalizer{};  // see reduction.hpp
};

// Per-position statistics of cross_entropy with class indices, each shaped like the unreduced
// loss and written only where present: lse (logsumexp of the softcapped logits), entropy (of
// their softmax) and correct (argmax of the input logits == target; false at ignored positions).
template <class T>
struct CrossEntropyStats {
  MutView<T> lse;
  MutView<T> entropy;
  MutView<bool> correct;
};
struct NllLossOptions {
  Reduction reduction = Reduction::Mean;
  int64_t ignore_index = -100;
  Normalizer normalizer{};  // see reduction.hpp
};
struct MultiMarginLossOptions {
  Reduction reduction = Reduction::Mean;
  int p = 1;  // 1 or 2
  double margin = 1.0;
  Normalizer normalizer{};  // see reduction.hpp
};
struct MultilabelMarginLossOptions {
  Reduction reduction = Reduction::Mean;
  Normalizer normalizer{};  // see reduction.hpp
};
struct MultilabelSoftMarginLossOptions {
  Reduction reduction = Reduction::Mean;
  Normalizer normalizer{};  // see reduction.hpp
};

// Shape of the unreduced loss of a class-dimension loss: input (C) -> (), (N, C) -> (N),
// (N, C, d1..dK) -> (N, d1..dK). `class_dim_last` (multilabel_soft_margin_loss) drops the last
// dimension instead.
Shape classification_output_shape(const Shape& input, bool class_dim_last = false);

// ---- cross_entropy, class-index targets ----------------------------------------------------
// `stats` (optional) receives the per-position statistics from the same pass.
template <class T>
void cross_entropy(View<T> input, View<int64_t> target, View<T> weight, MutView<T> output,
                   const CrossEntropyOptions& options = {}, const CrossEntropyStats<T>& stats = {});
template <class T>
void cross_entropy_backward(View<T> grad_output, View<T> input, View<int64_t> target,
                            View<T> weight, MutView<T> grad_input,
                            const CrossEntropyOptions& options = {});
template <class T>
void cross_entropy_forward_backward(View<T> input, View<int64_t> target, View<T> weight,
                                    View<T> grad_output, MutView<T> output, MutView<T> grad_input,
                                    const CrossEntropyOptions& options = {},
                                    const CrossEntropyStats<T>& stats = {});

// ---- cross_entropy, class-probability targets (target has the input's shape) ---------------
// options.ignore_index must be negative (torch: not supported for probability targets).
template <class T>
void cross_entropy(View<T> input, View<T> target, View<T> weight, MutView<T> output,
                   const CrossEntropyOptions& options = {});
template <class T>
void cross_entropy_backward(View<T> grad_output, View<T> input, View<T> target, View<T> weight,
                            MutView<T> grad_input, MutView<T> grad_target,
                            const CrossEntropyOptions& options = {});
template <class T>
void cross_entropy_forward_backward(View<T> input, View<T> target, View<T> weight,
                                    View<T> grad_output, MutView<T> output, MutView<T> grad_input,
                                    MutView<T> grad_target,
                                    const CrossEntropyOptions& options = {});

// ---- nll_loss (input: log-probabilities; 4-D input is torch's old NLLLoss2d) ----------------
template <class T>
void nll_loss(View<T> input, View<int64_t> target, View<T> weight, MutView<T> output,
              const NllLossOptions& options = {});
template <class T>
void nll_loss_backward(View<T> grad_output, View<T> input, View<int64_t> target, View<T> weight,
                       MutView<T> grad_input, const NllLossOptions& options = {});
template <class T>
void nll_loss_forward_backward(View<T> input, View<int64_t> target, View<T> weight,
                               View<T> grad_output, MutView<T> output, MutView<T> grad_input,
                               const NllLossOptions& options = {});

// ---- multi_margin_loss: input (), (C) or (N, C); target () or (1) for one sample, else (N) ---
template <class T>
void multi_margin_loss(View<T> input, View<int64_t> target, View<T> weight, MutView<T> output,
                       const MultiMarginLossOptions& options = {});
template <class T>
void multi_margin_loss_backward(View<T> grad_output, View<T> input, View<int64_t> target,
                                View<T> weight, MutView<T> grad_input,
                                const MultiMarginLossOptions& options = {});
template <class T>
void multi_margin_loss_forward_backward(View<T> input, View<int64_t> target, View<T> weight,
                                        View<T> grad_output, MutView<T> output,
                                        MutView<T> grad_input,
                                        const MultiMarginLossOptions& options = {});

// ---- multilabel_margin_loss: input (), (C) or (N, C); target -1 padded, of the input's shape
//      (any shape of at most one dimension with C entries for an unbatched input) -------------
template <class T>
void multilabel_margin_loss(View<T> input, View<int64_t> target, MutView<T> output,
                            const MultilabelMarginLossOptions& options = {});
template <class T>
void multilabel_margin_loss_backward(View<T> grad_output, View<T> input, View<int64_t> target,
                                     MutView<T> grad_input,
                                     const MultilabelMarginLossOptions& options = {});
template <class T>
void multilabel_margin_loss_forward_backward(View<T> input, View<int64_t> target,
                                             View<T> grad_output, MutView<T> output,
                                             MutView<T> grad_input,
                                             const MultilabelMarginLossOptions& options = {});

// ---- multilabel_soft_margin_loss: input (..., C), target alike, weight (C) or input-shaped ---
template <class T>
void multilabel_soft_margin_loss(View<T> input, View<T> target, View<T> weight, MutView<T> output,
                                 const MultilabelSoftMarginLossOptions& options = {});
template <class T>
void multilabel_soft_margin_loss_backward(View<T> grad_output, View<T> input, View<T> target,
                                          View<T> weight, MutView<T> grad_input,
                                          MutView<T> grad_target,
                                          const MultilabelSoftMarginLossOptions& options = {});
template <class T>
void multilabel_soft_margin_loss_forward_backward(
    View<T> input, View<T> target, View<T> weight, View<T> grad_output, MutView<T> output,
    MutView<T> grad_input, MutView<T> grad_target,
    const MultilabelSoftMarginLossOptions& options = {});

// ---- NAME_mean_normalizer -------------------------------------------------------------
// The divisor 'mean' uses for these inputs, without computing the loss: for cross_entropy (class
// indices) and nll_loss the sum of the weights of the counted targets (their number without
// weights), summed in target order as the loss sums it; the number of positions for probability
// targets; the batch size N for the margin losses and multilabel_soft_margin_loss. Every check
// of the loss runs (class indices too). options.reduction must be 'mean' (ValueError otherwise).
// See Normalizer (reduction.hpp).
template <class T>
double cross_entropy_mean_normalizer(View<T> input, View<int64_t> target, View<T> weight,
                                     const CrossEntropyOptions& options = {});
template <class T>
double cross_entropy_mean_normalizer(View<T> input, View<T> target, View<T> weight,
                                     const CrossEntropyOptions& options = {});
template <class T>
double nll_loss_mean_normalizer(View<T> input, View<int64_t> target, View<T> weight,
                                const NllLossOptions& options = {});
template <class T>
double multi_margin_loss_mean_normalizer(View<T> input, View<int64_t> target, View<T> weight,
                                         const MultiMarginLossOptions& options = {});
template <class T>
double multilabel_margin_loss_mean_normalizer(View<T> input, View<int64_t> target,
                                              const MultilabelMarginLossOptions& options = {});
template <class T>
double multilabel_soft_margin_loss_mean_normalizer(
    View<T> input, View<T> target, View<T> weight,
    const MultilabelSoftMarginLossOptions& options = {});

// ---- Beyond torch.nn: softmax_focal_loss, poly1_cross_entropy ---------------------------------
// Both run on cross_entropy's fused row kernels; formulas in their Python docstrings.
// softmax_focal_loss: class-index targets, `alpha` optional per-class weights (shape (C), `{}`
// when absent); 'mean' divides by the number of counted (not ignored) targets, as mmdet and
// kornia divide by the count (the alpha weights do not enter the divisor).
struct SoftmaxFocalLossOptions {
  double gamma = 2.0;  // finite, >= 0
  Reduction reduction = Reduction::Mean;
  int64_t ignore_index = -100;
  Normalizer normalizer{};  // see reduction.hpp
};
template <class T>
void softmax_focal_loss(View<T> input, View<int64_t> target, View<T> alpha, MutView<T> output,
                        const SoftmaxFocalLossOptions& options = {});
template <class T>
void softmax_focal_loss_backward(View<T> grad_output, View<T> input, View<int64_t> target,
                                 View<T> alpha, MutView<T> grad_input,
                                 const SoftmaxFocalLossOptions& options = {});
template <class T>
void softmax_focal_loss_forward_backward(View<T> input, View<int64_t> target, View<T> alpha,
                                         View<T> grad_output, MutView<T> output,
                                         MutView<T> grad_input,
                                         const SoftmaxFocalLossOptions& options = {});
template <class T>
double softmax_focal_loss_mean_normalizer(View<T> input, View<int64_t> target, View<T> alpha,
                                          const SoftmaxFocalLossOptions& options = {});

// poly1_cross_entropy (PolyLoss, optax's poly_loss_cross_entropy): cross_entropy plus
// epsilon * sum_c w_c y'_c (1 - softmax_c); class indices or probabilities (ignore_index must be
// negative with probabilities), with cross_entropy's weight, ignore_index, label_smoothing and its
// 'mean' divisor.
struct Poly1CrossEntropyOptions {
  double epsilon = 1.0;  // finite
  Reduction reduction = Reduction::Mean;
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  Normalizer normalizer{};  // see reduction.hpp
};
template <class T>
void poly1_cross_entropy(View<T> input, View<int64_t> target, View<T> weight, MutView<T> output,
                         const Poly1CrossEntropyOptions& options = {});
template <class T>
void poly1_cross_entropy_backward(View<T> grad_output, View<T> input, View<int64_t> target,
                                  View<T> weight, MutView<T> grad_input,
                                  const Poly1CrossEntropyOptions& options = {});
template <class T>
void poly1_cross_entropy_forward_backward(View<T> input, View<int64_t> target, View<T> weight,
                                          View<T> grad_output, MutView<T> output,
                                          MutView<T> grad_input,
                                          const Poly1CrossEntropyOptions& options = {});
template <class T>
void poly1_cross_entropy(View<T> input, View<T> target, View<T> weight, MutView<T> output,
                         const Poly1CrossEntropyOptions& options = {});
template <class T>
void poly1_cross_entropy_backward(View<T> grad_output, View<T> input, View<T> target,
                                  View<T> weight, MutView<T> grad_input, MutView<T> grad_target,
                                  const Poly1CrossEntropyOptions& options = {});
template <class T>
void poly1_cross_entropy_forward_backward(View<T> input, View<T> target, View<T> weight,
                                          View<T> grad_output, MutView<T> output,
                                          MutView<T> grad_input, MutView<T> grad_target,
                                          const Poly1CrossEntropyOptions& options = {});
template <class T>
double poly1_cross_entropy_mean_normalizer(View<T> input, View<int64_t> target, View<T> weight,
                                           const Poly1CrossEntropyOptions& options = {});
template <class T>
double poly1_cross_entropy_mean_normalizer(View<T> input, View<T> target, View<T> weight,
                                           const Poly1CrossEntropyOptions& options = {});

}  // namespace losskit
