// Detection losses: the box IoU losses of torchvision.ops (generalized_box_iou_loss,
// distance_box_iou_loss, complete_box_iou_loss).
//
// Formulas, gradients and edge values are documented once, in the Python docstrings of
// losskit.functional (python/losskit/_functional/detection.py) and in docs/detection.md.
//
// Every loss has three entry points with torchvision's argument order:
//   NAME(boxes1, boxes2, output, options)
//   NAME_backward(grad_output, boxes1, boxes2, grad_boxes1, grad_boxes2, options)
//   NAME_forward_backward(boxes1, boxes2, grad_output, output, grad_boxes1, grad_boxes2, options)
// * boxes1 and boxes2 are C-contiguous views of shape (..., 4), each last-dimension row a box
//   (x1, y1, x2, y2). Boxes with x2 < x1 or y2 < y1 are computed as given (torchvision neither
//   rejects nor clamps them). The leading dimensions broadcast as torch's (and so torchvision's)
//   operations broadcast them: one box (4,) against (N, 4), or (N, 1, 4) against (M, 4) for all
//   N x M pairs. A broadcast operand is read in place; its gradient is summed over the pairs that
//   read each box, in double, in pair order (a pair-sized scratch of 4 doubles per pair).
// * The unreduced output has the pairs' shape: the broadcast leading dimensions
//   (box_loss_output_shape); a reduced one has shape {}. The default reduction is
//   Reduction::None, as in torchvision.
// * grad_output is a 0-d view for reduced losses and an output-shaped view for Reduction::None;
//   an absent grad_output means 1 (ones).
// * Each gradient has the shape of its boxes; pass `{}` for a gradient not wanted.
// * 'mean' of no boxes is 0, as torchvision returns (0.0 * loss.sum()), not NaN.
// All checks run before any work and throw losskit::ValueError. float, double and the 16-bit
// storage types losskit::bfloat16 and losskit::float16 (losskit/half.hpp, read in place and
// widened exactly; results rounded once) are instantiated; every box is computed in double.
#pragma once

#include "losskit/reduction.hpp"
#include "losskit/view.hpp"

namespace losskit {

// The unreduced loss's shape for boxes shaped `boxes1` and `boxes2` (..., 4): the broadcast of
// their leading dimensions ({} for two single boxes of shape (4,)). The one-argument form is that
// of two operands of one shape. Never throws (the loss's checks report bad shapes).
Shape box_loss_output_shape(const Shape& boxes1, const Shape& boxes2);
Shape box_loss_output_shape(const Shape& boxes);

struct BoxIouLossOptions {
  Reduction reduction = Reduction::None;
  double eps = 1e-7;        // added to the union and the enclosing box's area (or squared diagonal)
  Normalizer normalizer{};  // see reduction.hpp
};
using GeneralizedBoxIouLossOptions = BoxIouLossOptions;
using DistanceBoxIouLossOptions = BoxIouLossOptions;
using CompleteBoxIouLossOptions = BoxIouLossOptions;

#define LOSSKIT_DECLARE_BOX_LOSS(NAME)                                                             \
  template <class T>                                                                               \
  void NAME(View<T> boxes1, View<T> boxes2, MutView<T> output,                                     \
            const BoxIouLossOptions& options = {});                                                \
  template <class T>                                                                               \
  void NAME##_backward(View<T> grad_output, View<T> boxes1, View<T> boxes2,                        \
                       MutView<T> grad_boxes1, MutView<T> grad_boxes2,                             \
                       const BoxIouLossOptions& options = {});                                     \
  template <class T>                                                                               \
  void NAME##_forward_backward(View<T> boxes1, View<T> boxes2, View<T> grad_output,                \
                               MutView<T> output, MutView<T> grad_boxes1, MutView<T> grad_boxes2,  \
                               const BoxIouLossOptions& options = {});                             \
  /* The divisor 'mean' uses (the number of boxes), without computing the loss. */                 \
  template <class T>                                                                               \
  double NAME##_mean_normalizer(View<T> boxes1, View<T> boxes2,                                    \
                                const BoxIouLossOptions& options = {});

// 1 - IoU + (area(C) - area(union)) / (area(C) + eps), C the smallest enclosing box
LOSSKIT_DECLARE_BOX_LOSS(generalized_box_iou_loss)
// 1 - IoU + (squared distance of the centres) / (squared diagonal of C + eps)
LOSSKIT_DECLARE_BOX_LOSS(distance_box_iou_loss)
// the distance loss + alpha v, v the aspect-ratio term, alpha = v / (1 - IoU + v + eps) constant
LOSSKIT_DECLARE_BOX_LOSS(complete_box_iou_loss)

#undef LOSSKIT_DECLARE_BOX_LOSS

}  // namespace losskit
