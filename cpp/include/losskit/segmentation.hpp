// Soft overlap losses for segmentation: dice_loss (with its Jaccard form) and tversky_loss,
// following MONAI's DiceLoss and TverskyLoss (soft_label included).
//
// The formulas, gradients, shapes and edge values are documented once, in the docstrings of
// losskit.functional.dice_loss / tversky_loss (python/losskit/_functional/segmentation.py) and in
// docs/segmentation.md.
//
// Arguments:
// * input: (N, C, d1, ..., dK), K >= 1, float, double, losskit::bfloat16 or losskit::float16
//   (read in place, computed in float), C-contiguous; C >= 1. Probabilities, or
//   logits with options.sigmoid / options.softmax (applied here, and differentiated through).
// * target, one of
//   - View<T>: one-hot or soft probabilities of input's shape (MONAI's to_onehot_y=False);
//   - View<int64_t>: class indices of shape (N, d1, ..., dK) or (N, 1, d1, ..., dK), values in
//     [0, C) (MONAI's to_onehot_y=True). With C == 1 (MONAI ignores to_onehot_y then and uses the
//     labels as the mask) the values must be 0 or 1.
// * weight (dice only, optional): C' non-negative per-class factors of the loss (MONAI's weight),
//   C' the number of channels counted (C, or C - 1 without the background).
// * output: shape segmentation_output_shape(input.shape, options...).
// * grad_output: a single value for a reduced loss, the output's shape for Reduction::None; absent
//   means 1 (ones).
// * grad_input: input's shape. grad_target (dense targets only; `{}` when not wanted): the
//   target's shape, the gradient with respect to the target (torch.autograd of MONAI's formula
//   with the target requiring grad); class indices have none.
// Every check (shapes, options, class indices in a pre-pass) runs before any work and throws
// losskit::ValueError (losskit::IndexError for a class index out of range). Sums are accumulated
// in double in fixed blocks, so results are bitwise the same on any number of threads.
#pragma once

#include <cstdint>

#include "losskit/reduction.hpp"
#include "losskit/view.hpp"

namespace losskit {

struct DiceLossOptions {
  bool include_background = true;  // false: channel 0 is left out (when C > 1)
  bool sigmoid = false;            // input are logits: p = sigmoid(input)
  bool softmax = false;            // input are logits: p = softmax over the channels (C > 1)
  bool squared_pred = false;       // the denominator sums p^2 and g^2
  bool jaccard = false;            // the soft Jaccard (IoU) loss instead of Dice
  // MONAI's soft-label form: I = (sum |p| + sum |g| - sum |p - g|) / 2, P = sum |p|, G = sum |g|
  // (I is sum min(p, g) for p, g >= 0, right for soft targets); no effect with squared_pred,
  // whose form it already is.
  bool soft_label = false;
  Reduction reduction = Reduction::Mean;
  double smooth_nr = 1e-5;
  double smooth_dr = 1e-5;
  bool batch = false;       // sum over the batch too before the ratio: one loss per channel
  Normalizer normalizer{};  // see reduction.hpp
};

struct TverskyLossOptions {
  bool include_background = true;
  bool sigmoid = false;
  bool softmax = false;
  double alpha = 0.5;       // weight of the false positives
  double beta = 0.5;        // weight of the false negatives
  bool soft_label = false;  // as DiceLossOptions::soft_label
  Reduction reduction = Reduction::Mean;
  double smooth_nr = 1e-5;
  double smooth_dr = 1e-5;
  bool batch = false;
  Normalizer normalizer{};
};

// Shape of the output: {} when reduced; for Reduction::None (N, C') or, with batch, (C',), where
// C' is C without the background channel when include_background is false and C > 1.
Shape segmentation_output_shape(const Shape& input_shape, bool include_background, bool batch,
                                Reduction reduction);

#define LOSSKIT_SEGMENTATION_DECLARE_(NAME, OPTIONS, TARGET, GRAD_TARGET)                          \
  template <class T>                                                                               \
  void NAME(View<T> input, View<TARGET> target, View<T> weight, MutView<T> output,                 \
            const OPTIONS& options = {});                                                          \
  template <class T>                                                                               \
  void NAME##_backward(View<T> grad_output, View<T> input, View<TARGET> target, View<T> weight,    \
                       MutView<T> grad_input GRAD_TARGET, const OPTIONS& options = {});            \
  template <class T>                                                                               \
  void NAME##_forward_backward(View<T> input, View<TARGET> target, View<T> weight,                 \
                               View<T> grad_output, MutView<T> output,                             \
                               MutView<T> grad_input GRAD_TARGET, const OPTIONS& options = {});    \
  /* The divisor of 'mean': N C' (C' with batch); options.reduction must be 'mean'. */             \
  template <class T>                                                                               \
  double NAME##_mean_normalizer(View<T> input, View<TARGET> target, View<T> weight,                \
                                const OPTIONS& options = {});
#define LOSSKIT_SEGMENTATION_GRAD_TARGET_ , MutView<T> grad_target

// Dense (one-hot or soft) targets of T, with the target's gradient, and class-index targets of
// int64 (no target gradient).
LOSSKIT_SEGMENTATION_DECLARE_(dice_loss, DiceLossOptions, T, LOSSKIT_SEGMENTATION_GRAD_TARGET_)
LOSSKIT_SEGMENTATION_DECLARE_(dice_loss, DiceLossOptions, int64_t, )
// tversky_loss has no weight (as MONAI's TverskyLoss): pass an absent View<T>() there.
LOSSKIT_SEGMENTATION_DECLARE_(tversky_loss, TverskyLossOptions, T,
                              LOSSKIT_SEGMENTATION_GRAD_TARGET_)
LOSSKIT_SEGMENTATION_DECLARE_(tversky_loss, TverskyLossOptions, int64_t, )
#undef LOSSKIT_SEGMENTATION_GRAD_TARGET_
#undef LOSSKIT_SEGMENTATION_DECLARE_

}  // namespace losskit
