// Entry points of the detection family: the checks, all before any work, then the box kernel for
// the active instruction set over fixed blocks of kReduceBlock boxes in parallel. A reduced loss
// keeps one double per block (the block's ordered sum) and combines them in the shared fixed tree
// (combine_partials), so the result is bitwise the same for any thread count, and nothing
// input-sized is allocated.
#include "losskit/detection.hpp"

#include <algorithm>
#include <vector>

#include "common/checks.hpp"
#include "common/cpu_dispatch.hpp"
#include "common/parallel.hpp"
#include "common/reduce.hpp"
#include "common/request.hpp"
#include "detection/detection_kernels.hpp"

namespace losskit {
namespace {

using detail::BoxLossKind;
using detail::BoxPairs;

template <class T>
using BoxKernel = void (*)(const BoxPairs<T>&, int64_t, int64_t);

template <class T>
BoxKernel<T> box_kernel() {
  return LOSSKIT_DISPATCH(BoxKernel<T>, box_loss_blocks);
}

template <class T>
using Request = detail::Request<T, 2>;

void check_boxes(const char* fn, const char* name, const Shape& s) {
  if (s.empty() || s.back() != 4)
    detail::fail_value(fn, name, "boxes of shape (..., 4) as (x1, y1, x2, y2)",
                       "shape " + shape_to_string(s));
}

// A box costs about a hundred flops (the complete loss two atans); each thread gets at least
// 2048 boxes, so a few hundred boxes stay on the calling thread.
constexpr int64_t kGrainBoxes = 2048;

// Checks everything, then runs the request. Returns the loss's own divisor of 'mean' (the number
// of boxes; NAME_mean_normalizer's value).
template <class T>
double run(const char* fn, BoxLossKind kind, View<T> boxes1, View<T> boxes2,
           const BoxIouLossOptions& o, const Request<T>& q) {
  detail::check_reduction(fn, o);
  detail::check_required(fn, "boxes1", boxes1);
  detail::check_required(fn, "boxes2", boxes2);
  check_boxes(fn, "boxes1", boxes1.shape);
  check_boxes(fn, "boxes2", boxes2.shape);
  detail::check_shape_equal(fn, "boxes2", boxes2.shape, boxes1.shape, "boxes1's shape");
  const Shape out_shape = box_loss_output_shape(boxes1.shape);
  const bool reduced = o.reduction != Reduction::None;
  if (q.forward) detail::check_output(fn, "output", q.output, reduced ? Shape{} : out_shape);
  if (q.backward) {
    detail::check_optional(fn, "grad_output", q.grad_output);
    if (q.grad_output.present()) {
      if (reduced && !q.grad_output.shape.empty())
        detail::fail_value(fn, "grad_output", "a scalar for a reduced loss",
                           "shape " + shape_to_string(q.grad_output.shape));
      if (!reduced)
        detail::check_shape_equal(fn, "grad_output", q.grad_output.shape, out_shape, "shape");
    }
    if (q.grads[0].present()) detail::check_output(fn, "grad_boxes1", q.grads[0], boxes1.shape);
    if (q.grads[1].present()) detail::check_output(fn, "grad_boxes2", q.grads[1], boxes2.shape);
  }
  detail::DisjointArrays(fn)
      .read("boxes1", boxes1)
      .read("boxes2", boxes2)
      .read("grad_output", q.grad_output)  // a Request holds only the arrays its call uses
      .write("output", q.output)
      .write("grad_boxes1", q.grads[0])
      .write("grad_boxes2", q.grads[1])
      .check();

  const int64_t n = numel(out_shape);
  const double own_divisor = static_cast<double>(n);
  if (!q.forward && !q.backward) return own_divisor;
  // torchvision's 'mean' of no boxes is 0.0 * loss.sum() = 0 (not torch.nn's NaN); with nothing
  // to divide, the divisor is left at 1.
  const double divisor = o.reduction == Reduction::Mean
                             ? detail::mean_divisor(o.normalizer, n > 0 ? own_divisor : 1.0)
                             : 1.0;
  BoxPairs<T> R;
  R.kind = kind;
  R.n = n;
  R.boxes1 = boxes1.data;
  R.boxes2 = boxes2.data;
  R.eps = o.eps;
  const double scale = 1.0 / divisor;
  R.grad_scale = reduced && q.grad_output.present()
                     ? scale * static_cast<double>(q.grad_output.data[0])
                     : scale;
  R.grad_out = q.backward && !reduced && q.grad_output.present() ? q.grad_output.data : nullptr;
  R.grad1 = q.backward ? q.grads[0].data : nullptr;
  R.grad2 = q.backward ? q.grads[1].data : nullptr;
  R.out = q.forward && !reduced ? q.output.data : nullptr;
  const int64_t nblocks = detail::reduce_blocks(n);
  std::vector<double> block_sums(q.forward && reduced ? static_cast<size_t>(nblocks) : 0);
  R.block_sums = block_sums.empty() ? nullptr : block_sums.data();

  const BoxKernel<T> kernel = box_kernel<T>();
  // Parallel over blocks; a grain of kGrainBoxes boxes is a fraction of a block, so the split
  // goes by whole blocks and a call of one block runs on the calling thread.
  const int64_t grain_blocks = std::max<int64_t>(1, kGrainBoxes / detail::kReduceBlock);
  detail::parallel_for(0, nblocks, grain_blocks,
                       [&](int64_t b0, int64_t b1, int) { kernel(R, b0, b1); });
  if (q.forward && reduced)
    q.output.data[0] =
        static_cast<T>(detail::combine_partials(block_sums.data(), nblocks) / divisor);
  return own_divisor;
}

}  // namespace

Shape box_loss_output_shape(const Shape& boxes) {
  return boxes.empty() ? Shape{} : Shape(boxes.begin(), boxes.end() - 1);
}

#define LOSSKIT_DEFINE_BOX_LOSS(NAME, KIND)                                                        \
  template <class T>                                                                               \
  void NAME(View<T> boxes1, View<T> boxes2, MutView<T> output, const BoxIouLossOptions& o) {       \
    run(#NAME, KIND, boxes1, boxes2, o, Request<T>::forward_only(output));                         \
  }                                                                                                \
  template <class T>                                                                               \
  void NAME##_backward(View<T> grad_output, View<T> boxes1, View<T> boxes2,                        \
                       MutView<T> grad_boxes1, MutView<T> grad_boxes2,                             \
                       const BoxIouLossOptions& o) {                                               \
    run(#NAME, KIND, boxes1, boxes2, o,                                                            \
        Request<T>::backward_only(grad_output, {grad_boxes1, grad_boxes2}));                       \
  }                                                                                                \
  template <class T>                                                                               \
  void NAME##_forward_backward(View<T> boxes1, View<T> boxes2, View<T> grad_output,                \
                               MutView<T> output, MutView<T> grad_boxes1, MutView<T> grad_boxes2,  \
                               const BoxIouLossOptions& o) {                                       \
    run(#NAME, KIND, boxes1, boxes2, o,                                                            \
        Request<T>::fused(grad_output, output, {grad_boxes1, grad_boxes2}));                       \
  }                                                                                                \
  template <class T>                                                                               \
  double NAME##_mean_normalizer(View<T> boxes1, View<T> boxes2, const BoxIouLossOptions& o) {      \
    detail::check_dividing_reduction(#NAME, o.reduction);                                          \
    return run(#NAME, KIND, boxes1, boxes2, o, Request<T>{});                                      \
  }                                                                                                \
  LOSSKIT_INSTANTIATE_BOX_LOSS(NAME, float)                                                        \
  LOSSKIT_INSTANTIATE_BOX_LOSS(NAME, double)                                                       \
  LOSSKIT_INSTANTIATE_BOX_LOSS(NAME, bfloat16)                                                     \
  LOSSKIT_INSTANTIATE_BOX_LOSS(NAME, float16)

// float, double and the 16-bit storage types (read in place, computed in float).
#define LOSSKIT_INSTANTIATE_BOX_LOSS(NAME, T)                                                      \
  template void NAME<T>(View<T>, View<T>, MutView<T>, const BoxIouLossOptions&);                   \
  template void NAME##_backward<T>(View<T>, View<T>, View<T>, MutView<T>, MutView<T>,              \
                                   const BoxIouLossOptions&);                                      \
  template void NAME##_forward_backward<T>(View<T>, View<T>, View<T>, MutView<T>, MutView<T>,      \
                                           MutView<T>, const BoxIouLossOptions&);                  \
  template double NAME##_mean_normalizer<T>(View<T>, View<T>, const BoxIouLossOptions&);

LOSSKIT_DEFINE_BOX_LOSS(generalized_box_iou_loss, BoxLossKind::Generalized)
LOSSKIT_DEFINE_BOX_LOSS(distance_box_iou_loss, BoxLossKind::Distance)
LOSSKIT_DEFINE_BOX_LOSS(complete_box_iou_loss, BoxLossKind::Complete)
#undef LOSSKIT_INSTANTIATE_BOX_LOSS
#undef LOSSKIT_DEFINE_BOX_LOSS

}  // namespace losskit
