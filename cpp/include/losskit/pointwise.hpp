// Element-wise losses (torch.nn: L1Loss, MSELoss, HuberLoss, SmoothL1Loss, SoftMarginLoss, BCELoss,
// BCEWithLogitsLoss, PoissonNLLLoss, GaussianNLLLoss, KLDivLoss, MarginRankingLoss,
// HingeEmbeddingLoss), and the registered element-wise losses beyond torch.nn (log_cosh_loss,
// pseudo_huber_loss, msle_loss, sigmoid_focal_loss: LOSSKIT_REGISTERED_POINTWISE at the end).
//
// Formulas, gradients and edge values are documented once, in the Python docstrings of
// losskit.functional (python/losskit/_functional/pointwise.py) and in docs/pointwise.md.
//
// Every loss has three entry points with torch's argument order:
//   NAME(inputs..., output, options)
//   NAME_backward(grad_output, inputs..., grads..., options)
//   NAME_forward_backward(inputs..., grad_output, output, grads..., options)
// * Inputs are C-contiguous views; optional ones (weight, pos_weight) are `{}` when absent.
//   Shapes broadcast as in torch; the unreduced output has elementwise_output_shape(...) and a
//   reduced one has shape {}.
// * grad_output is a 0-d view for reduced losses and an output-shaped view for Reduction::None;
//   an absent grad_output (`{}`) means 1 (ones).
// * Each gradient has the shape of its input; pass `{}` for gradients not wanted (the gradient
//   with respect to a float target is optional, torch's `target.requires_grad`).
// * NAME_forward_backward reads every input once and writes the loss and the gradients in the
//   same pass.
// All checks run before any work and throw losskit::ValueError / IndexError / TypeError.
// float, double, bfloat16 and float16 are instantiated; the 16-bit types (losskit/half.hpp) are
// read in place, computed in float (sums in double), and the outputs rounded once to 16 bits.
#pragma once

#include <initializer_list>

#include "losskit/half.hpp"
#include "losskit/reduction.hpp"
#include "losskit/view.hpp"

namespace losskit {

// Shape of an unreduced element-wise loss: the broadcast of its arguments' shapes.
Shape elementwise_output_shape(std::initializer_list<Shape> shapes, const char* function);
// Shape of the output for `reduction` ({} when reduced).
Shape elementwise_output_shape(std::initializer_list<Shape> shapes, Reduction reduction,
                               const char* function);

struct L1LossOptions {
  Reduction reduction = Reduction::Mean;
  Normalizer normalizer{};  // see reduction.hpp
};
struct MseLossOptions {
  Reduction reduction = Reduction::Mean;
  Normalizer normalizer{};  // see reduction.hpp
};
struct HuberLossOptions {
  Reduction reduction = Reduction::Mean;
  double delta = 1.0;
  Normalizer normalizer{};  // see reduction.hpp
};
struct SmoothL1LossOptions {
  Reduction reduction = Reduction::Mean;
  double beta = 1.0;
  Normalizer normalizer{};  // see reduction.hpp
};
struct SoftMarginLossOptions {
  Reduction reduction = Reduction::Mean;
  Normalizer normalizer{};  // see reduction.hpp
};
struct BinaryCrossEntropyOptions {
  Reduction reduction = Reduction::Mean;
  Normalizer normalizer{};  // see reduction.hpp
};
struct BinaryCrossEntropyWithLogitsOptions {
  Reduction reduction = Reduction::Mean;
  Normalizer normalizer{};  // see reduction.hpp
};
struct PoissonNllLossOptions {
  Reduction reduction = Reduction::Mean;
  bool log_input = true;
  bool full = false;
  double eps = 1e-8;
  Normalizer normalizer{};  // see reduction.hpp
};
struct GaussianNllLossOptions {
  Reduction reduction = Reduction::Mean;
  bool full = false;
  double eps = 1e-6;
  // `var` is a scalar, torch's Python-float var: a 0-d view holding one variance for every
  // element, whatever the input's shape. When false, `var` is an array held to torch's shape
  // rule (gaussian_nll_var_shape), which takes a 0-d var only beside a 0-d or 1-d input.
  bool scalar_var = false;
  Normalizer normalizer{};  // see reduction.hpp
};
struct KlDivOptions {
  Reduction reduction = Reduction::Mean;
  bool log_target = false;
  Normalizer normalizer{};  // see reduction.hpp
};
struct MarginRankingLossOptions {
  Reduction reduction = Reduction::Mean;
  double margin = 0.0;
  Normalizer normalizer{};  // see reduction.hpp
};
struct HingeEmbeddingLossOptions {
  Reduction reduction = Reduction::Mean;
  double margin = 1.0;
  Normalizer normalizer{};  // see reduction.hpp
};

// torch's rule for gaussian_nll_loss's `var`: the shape var takes once aligned with `input`, or
// ValueError. An array var has the input's shape; or that shape without its last dimension (a
// trailing 1 is added); or as many dimensions, where the sizes of var that differ from the
// input's add up to 1 (torch's test: one broadcast dimension of size 1, plus any 0 facing an
// input's 1). A scalar var (`scalar_var`) is 0-d and goes with any input.
Shape gaussian_nll_var_shape(const Shape& input, const Shape& var, bool scalar_var = false);
// Shape of the unreduced gaussian_nll_loss: the broadcast of input, target and the aligned var.
Shape gaussian_nll_output_shape(const Shape& input, const Shape& target, const Shape& var,
                                bool scalar_var = false);

// ---- l1_loss: l = w * |x - y| ------------------------------------------------------------
template <class T>
void l1_loss(View<T> input, View<T> target, View<T> weight, MutView<T> output,
             const L1LossOptions& options = {});
template <class T>
void l1_loss_backward(View<T> grad_output, View<T> input, View<T> target, View<T> weight,
                      MutView<T> grad_input, MutView<T> grad_target,
                      const L1LossOptions& options = {});
template <class T>
void l1_loss_forward_backward(View<T> input, View<T> target, View<T> weight, View<T> grad_output,
                              MutView<T> output, MutView<T> grad_input, MutView<T> grad_target,
                              const L1LossOptions& options = {});

// ---- mse_loss: l = w * (x - y)^2 ---------------------------------------------------------
template <class T>
void mse_loss(View<T> input, View<T> target, View<T> weight, MutView<T> output,
              const MseLossOptions& options = {});
template <class T>
void mse_loss_backward(View<T> grad_output, View<T> input, View<T> target, View<T> weight,
                       MutView<T> grad_input, MutView<T> grad_target,
                       const MseLossOptions& options = {});
template <class T>
void mse_loss_forward_backward(View<T> input, View<T> target, View<T> weight, View<T> grad_output,
                               MutView<T> output, MutView<T> grad_input, MutView<T> grad_target,
                               const MseLossOptions& options = {});

// ---- huber_loss --------------------------------------------------------------------------
template <class T>
void huber_loss(View<T> input, View<T> target, View<T> weight, MutView<T> output,
                const HuberLossOptions& options = {});
template <class T>
void huber_loss_backward(View<T> grad_output, View<T> input, View<T> target, View<T> weight,
                         MutView<T> grad_input, MutView<T> grad_target,
                         const HuberLossOptions& options = {});
template <class T>
void huber_loss_forward_backward(View<T> input, View<T> target, View<T> weight, View<T> grad_output,
                                 MutView<T> output, MutView<T> grad_input, MutView<T> grad_target,
                                 const HuberLossOptions& options = {});

// ---- smooth_l1_loss ----------------------------------------------------------------------
template <class T>
void smooth_l1_loss(View<T> input, View<T> target, MutView<T> output,
                    const SmoothL1LossOptions& options = {});
template <class T>
void smooth_l1_loss_backward(View<T> grad_output, View<T> input, View<T> target,
                             MutView<T> grad_input, MutView<T> grad_target,
                             const SmoothL1LossOptions& options = {});
template <class T>
void smooth_l1_loss_forward_backward(View<T> input, View<T> target, View<T> grad_output,
                                     MutView<T> output, MutView<T> grad_input,
                                     MutView<T> grad_target,
                                     const SmoothL1LossOptions& options = {});

// ---- soft_margin_loss --------------------------------------------------------------------
template <class T>
void soft_margin_loss(View<T> input, View<T> target, MutView<T> output,
                      const SoftMarginLossOptions& options = {});
template <class T>
void soft_margin_loss_backward(View<T> grad_output, View<T> input, View<T> target,
                               MutView<T> grad_input, const SoftMarginLossOptions& options = {});
template <class T>
void soft_margin_loss_forward_backward(View<T> input, View<T> target, View<T> grad_output,
                                       MutView<T> output, MutView<T> grad_input,
                                       const SoftMarginLossOptions& options = {});

// ---- binary_cross_entropy ----------------------------------------------------------------
template <class T>
void binary_cross_entropy(View<T> input, View<T> target, View<T> weight, MutView<T> output,
                          const BinaryCrossEntropyOptions& options = {});
template <class T>
void binary_cross_entropy_backward(View<T> grad_output, View<T> input, View<T> target,
                                   View<T> weight, MutView<T> grad_input, MutView<T> grad_target,
                                   const BinaryCrossEntropyOptions& options = {});
template <class T>
void binary_cross_entropy_forward_backward(View<T> input, View<T> target, View<T> weight,
                                           View<T> grad_output, MutView<T> output,
                                           MutView<T> grad_input, MutView<T> grad_target,
                                           const BinaryCrossEntropyOptions& options = {});

// ---- binary_cross_entropy_with_logits ----------------------------------------------------
template <class T>
void binary_cross_entropy_with_logits(View<T> input, View<T> target, View<T> weight,
                                      View<T> pos_weight, MutView<T> output,
                                      const BinaryCrossEntropyWithLogitsOptions& options = {});
template <class T>
void binary_cross_entropy_with_logits_backward(
    View<T> grad_output, View<T> input, View<T> target, View<T> weight, View<T> pos_weight,
    MutView<T> grad_input, MutView<T> grad_target,
    const BinaryCrossEntropyWithLogitsOptions& options = {});
template <class T>
void binary_cross_entropy_with_logits_forward_backward(
    View<T> input, View<T> target, View<T> weight, View<T> pos_weight, View<T> grad_output,
    MutView<T> output, MutView<T> grad_input, MutView<T> grad_target,
    const BinaryCrossEntropyWithLogitsOptions& options = {});

// ---- poisson_nll_loss --------------------------------------------------------------------
template <class T>
void poisson_nll_loss(View<T> input, View<T> target, MutView<T> output,
                      const PoissonNllLossOptions& options = {});
template <class T>
void poisson_nll_loss_backward(View<T> grad_output, View<T> input, View<T> target,
                               MutView<T> grad_input, MutView<T> grad_target,
                               const PoissonNllLossOptions& options = {});
template <class T>
void poisson_nll_loss_forward_backward(View<T> input, View<T> target, View<T> grad_output,
                                       MutView<T> output, MutView<T> grad_input,
                                       MutView<T> grad_target,
                                       const PoissonNllLossOptions& options = {});

// ---- gaussian_nll_loss (var: any shape gaussian_nll_var_shape accepts) -------------------
template <class T>
void gaussian_nll_loss(View<T> input, View<T> target, View<T> var, MutView<T> output,
                       const GaussianNllLossOptions& options = {});
template <class T>
void gaussian_nll_loss_backward(View<T> grad_output, View<T> input, View<T> target, View<T> var,
                                MutView<T> grad_input, MutView<T> grad_var, MutView<T> grad_target,
                                const GaussianNllLossOptions& options = {});
template <class T>
void gaussian_nll_loss_forward_backward(View<T> input, View<T> target, View<T> var,
                                        View<T> grad_output, MutView<T> output,
                                        MutView<T> grad_input, MutView<T> grad_var,
                                        MutView<T> grad_target,
                                        const GaussianNllLossOptions& options = {});

// ---- kl_div (Reduction::BatchMean allowed) -----------------------------------------------
template <class T>
void kl_div(View<T> input, View<T> target, MutView<T> output, const KlDivOptions& options = {});
template <class T>
void kl_div_backward(View<T> grad_output, View<T> input, View<T> target, MutView<T> grad_input,
                     MutView<T> grad_target, const KlDivOptions& options = {});
template <class T>
void kl_div_forward_backward(View<T> input, View<T> target, View<T> grad_output, MutView<T> output,
                             MutView<T> grad_input, MutView<T> grad_target,
                             const KlDivOptions& options = {});

// ---- margin_ranking_loss -----------------------------------------------------------------
template <class T>
void margin_ranking_loss(View<T> input1, View<T> input2, View<T> target, MutView<T> output,
                         const MarginRankingLossOptions& options = {});
template <class T>
void margin_ranking_loss_backward(View<T> grad_output, View<T> input1, View<T> input2,
                                  View<T> target, MutView<T> grad_input1, MutView<T> grad_input2,
                                  const MarginRankingLossOptions& options = {});
template <class T>
void margin_ranking_loss_forward_backward(View<T> input1, View<T> input2, View<T> target,
                                          View<T> grad_output, MutView<T> output,
                                          MutView<T> grad_input1, MutView<T> grad_input2,
                                          const MarginRankingLossOptions& options = {});

// ---- hinge_embedding_loss ----------------------------------------------------------------
template <class T>
void hinge_embedding_loss(View<T> input, View<T> target, MutView<T> output,
                          const HingeEmbeddingLossOptions& options = {});
template <class T>
void hinge_embedding_loss_backward(View<T> grad_output, View<T> input, View<T> target,
                                   MutView<T> grad_input,
                                   const HingeEmbeddingLossOptions& options = {});
template <class T>
void hinge_embedding_loss_forward_backward(View<T> input, View<T> target, View<T> grad_output,
                                           MutView<T> output, MutView<T> grad_input,
                                           const HingeEmbeddingLossOptions& options = {});

// ---- NAME_mean_normalizer -------------------------------------------------------------
// The divisor 'mean' uses for these inputs ('batchmean' too, for kl_div: options.reduction picks),
// without computing the loss: the broadcast element count, or the weight sum for l1_loss and
// mse_loss with a weight; the batch size for kl_div's 'batchmean'. The loss's shape checks run;
// a reduction other than 'mean'/'batchmean' is a ValueError. See Normalizer (reduction.hpp).
template <class T>
double l1_loss_mean_normalizer(View<T> input, View<T> target, View<T> weight,
                               const L1LossOptions& options = {});
template <class T>
double mse_loss_mean_normalizer(View<T> input, View<T> target, View<T> weight,
                                const MseLossOptions& options = {});
template <class T>
double huber_loss_mean_normalizer(View<T> input, View<T> target, View<T> weight,
                                  const HuberLossOptions& options = {});
template <class T>
double smooth_l1_loss_mean_normalizer(View<T> input, View<T> target,
                                      const SmoothL1LossOptions& options = {});
template <class T>
double soft_margin_loss_mean_normalizer(View<T> input, View<T> target,
                                        const SoftMarginLossOptions& options = {});
template <class T>
double binary_cross_entropy_mean_normalizer(View<T> input, View<T> target, View<T> weight,
                                            const BinaryCrossEntropyOptions& options = {});
template <class T>
double binary_cross_entropy_with_logits_mean_normalizer(
    View<T> input, View<T> target, View<T> weight, View<T> pos_weight,
    const BinaryCrossEntropyWithLogitsOptions& options = {});
template <class T>
double poisson_nll_loss_mean_normalizer(View<T> input, View<T> target,
                                        const PoissonNllLossOptions& options = {});
template <class T>
double gaussian_nll_loss_mean_normalizer(View<T> input, View<T> target, View<T> var,
                                         const GaussianNllLossOptions& options = {});
template <class T>
double kl_div_mean_normalizer(View<T> input, View<T> target, const KlDivOptions& options = {});
template <class T>
double margin_ranking_loss_mean_normalizer(View<T> input1, View<T> input2, View<T> target,
                                           const MarginRankingLossOptions& options = {});
template <class T>
double hinge_embedding_loss_mean_normalizer(View<T> input, View<T> target,
                                            const HingeEmbeddingLossOptions& options = {});

// ---- registered element-wise losses ------------------------------------------------------
// A loss of one input and one float target, both differentiable, no weight, broadcast as in
// torch, is added by its ops struct (cpp/src/pointwise/pointwise_ops.hpp) and ONE line here:
//   X(name, OptionsStruct, OpsStruct, default reduction, input's name, target's name, params)
// where params is zero or more LOSSKIT_PARAM(field, default, valid, expected): a `double field`
// of the options struct (in this order: PointwiseParams a, b, as the ops struct reads them),
// `valid` an expression of its value `v` checked before any work (ValueError naming the field,
// with `expected` as the wanted value). From that line follow the options struct, the kernel id,
// NAME, NAME_backward, NAME_forward_backward and NAME_mean_normalizer with the signatures
//   NAME(input, target, output, options)
//   NAME_backward(grad_output, input, target, grad_input, grad_target, options)
//   NAME_forward_backward(input, target, grad_output, output, grad_input, grad_target, options)
//   NAME_mean_normalizer(input, target, options)
// their float/double/bfloat16/float16 instantiations, and the Python binding (module.cpp).
#define LOSSKIT_REGISTERED_POINTWISE(X)                                                            \
  X(log_cosh_loss, LogCoshLossOptions, LogCosh, Mean, "input", "target", )                         \
  X(pseudo_huber_loss, PseudoHuberLossOptions, PseudoHuber, Mean, "input", "target",               \
    LOSSKIT_PARAM(delta, 1.0, v > 0, "a positive number"))                                         \
  X(msle_loss, MsleLossOptions, Msle, Mean, "input", "target", )                                   \
  X(sigmoid_focal_loss, SigmoidFocalLossOptions, SigmoidFocal, None, "input", "target",            \
    LOSSKIT_PARAM(alpha, 0.25, std::isfinite(v), "a finite number (< 0: no weighting)")            \
        LOSSKIT_PARAM(gamma, 2.0, v >= 0 && std::isfinite(v), "a finite number >= 0"))

#define LOSSKIT_PARAM(field, value, valid, expected) double field = value;
#define LOSSKIT_DECLARE(NAME, OPTIONS, OPS, REDUCTION, INPUT, TARGET, PARAMS)                      \
  struct OPTIONS {                                                                                 \
    Reduction reduction = Reduction::REDUCTION;                                                    \
    PARAMS                                                                                         \
    Normalizer normalizer{}; /* see reduction.hpp */                                               \
  };                                                                                               \
  template <class T>                                                                               \
  void NAME(View<T> input, View<T> target, MutView<T> output, const OPTIONS& options = {});        \
  template <class T>                                                                               \
  void NAME##_backward(View<T> grad_output, View<T> input, View<T> target, MutView<T> grad_input,  \
                       MutView<T> grad_target, const OPTIONS& options = {});                       \
  template <class T>                                                                               \
  void NAME##_forward_backward(View<T> input, View<T> target, View<T> grad_output,                 \
                               MutView<T> output, MutView<T> grad_input, MutView<T> grad_target,   \
                               const OPTIONS& options = {});                                       \
  template <class T>                                                                               \
  double NAME##_mean_normalizer(View<T> input, View<T> target, const OPTIONS& options = {});
LOSSKIT_REGISTERED_POINTWISE(LOSSKIT_DECLARE)
#undef LOSSKIT_DECLARE
#undef LOSSKIT_PARAM

}  // namespace losskit
