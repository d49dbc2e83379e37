// Entry points of the detection family: the checks, all before any work, then the box kernel for
// the active instruction set over fixed blocks of kReduceBlock boxes in parallel. A reduced loss
// keeps one double per block (the block's ordered sum) and combines them in the shared fixed tree
// (combine_partials), so the result is bitwise the same for any thread count, and nothing
// input-sized is allocated.
#include "losskit/detection.hpp"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "common/checks.hpp"
#include "common/cpu_dispatch.hpp"
#include "common/parallel.hpp"
#include "common/reduce.hpp"
#include "common/request.hpp"
#include "common/storage.hpp"
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

// The leading dimensions of boxes shaped (..., 4), and the pairs' shape: torch's broadcast of the
// two (false where they do not broadcast).
Shape leading(const Shape& boxes) {
  return boxes.empty() ? Shape{} : Shape(boxes.begin(), boxes.end() - 1);
}

bool broadcast_leading(const Shape& boxes1, const Shape& boxes2, Shape& pairs) {
  const Shape a = leading(boxes1), b = leading(boxes2);
  const size_t nd = std::max(a.size(), b.size());
  pairs.assign(nd, 1);
  for (size_t i = 0; i < nd; ++i) {
    const int64_t da = i < nd - a.size() ? 1 : a[i - (nd - a.size())];
    const int64_t db = i < nd - b.size() ? 1 : b[i - (nd - b.size())];
    if (da != db && da != 1 && db != 1) return false;
    pairs[i] = da == 1 ? db : da;
  }
  return true;
}

// How the pairs of shape `pairs` read boxes with leading dimensions lead1 and lead2 (torch's
// broadcasting: missing leading dimensions and dimensions of 1 repeat). False where more than
// kMaxBoxDims groups of dimensions remain (only a C++ caller can pass that many).
bool describe_broadcast(const Shape& lead1, const Shape& lead2, const Shape& pairs,
                        detail::BoxBroadcast& b) {
  const Shape* leads[] = {&lead1, &lead2};
  const int64_t n = numel(pairs);
  const size_t nd = pairs.size();
  int64_t stride[2] = {1, 1};  // each operand's row-major stride of the dimension at hand
  int group_reads[2] = {-1, -1};
  b.nd = 0;
  for (int k = 0; k < 2; ++k) b.active[k] = numel(*leads[k]) != n;
  for (size_t i = nd; i-- > 0;) {  // innermost first; merged into the group before when alike
    if (pairs[i] == 1) continue;
    int64_t size[2];
    bool repeats[2];
    for (int k = 0; k < 2; ++k) {
      const Shape& l = *leads[k];
      const size_t skip = nd - l.size();
      size[k] = i < skip ? 1 : l[i - skip];
      repeats[k] = size[k] == 1;
    }
    const bool alike = b.nd > 0 && group_reads[0] == static_cast<int>(repeats[0]) &&
                       group_reads[1] == static_cast<int>(repeats[1]);
    if (alike) {
      b.dims[b.nd - 1] *= pairs[i];
    } else {
      if (b.nd == detail::kMaxBoxDims) return false;
      b.dims[b.nd] = pairs[i];
      for (int k = 0; k < 2; ++k) b.stride[k][b.nd] = repeats[k] ? 0 : stride[k];
      group_reads[0] = repeats[0];
      group_reads[1] = repeats[1];
      ++b.nd;
    }
    for (int k = 0; k < 2; ++k) stride[k] *= size[k];
  }
  // Built innermost first: reverse into the odometer's outermost-first order.
  for (int lo = 0, hi = b.nd - 1; lo < hi; ++lo, --hi) {
    std::swap(b.dims[lo], b.dims[hi]);
    for (int k = 0; k < 2; ++k) std::swap(b.stride[k][lo], b.stride[k][hi]);
  }
  return true;
}

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
  Shape out_shape;
  if (!broadcast_leading(boxes1.shape, boxes2.shape, out_shape))
    detail::fail_value(fn, "boxes2",
                       "boxes whose leading dimensions broadcast with boxes1's shape " +
                           shape_to_string(boxes1.shape),
                       "shape " + shape_to_string(boxes2.shape));
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
  // An operand with fewer boxes than pairs is read through the broadcast's odometer; its
  // gradient is gathered per block and box (or per pair) by the kernel and summed below in a
  // fixed order, whatever the thread count.
  detail::BoxBroadcast broadcast;
  if (!describe_broadcast(leading(boxes1.shape), leading(boxes2.shape), out_shape, broadcast))
    detail::fail_value(fn, "boxes1", "at most 64 groups of broadcast leading dimensions",
                       "shape " + shape_to_string(boxes1.shape));
  // A gradient per block and box where that is no more than one per pair (one box against many,
  // all pairs of two sets: a few rows per block), else per pair.
  const int64_t nblocks = detail::reduce_blocks(n);
  const View<T>* operands[] = {&boxes1, &boxes2};
  std::unique_ptr<double[]> broadcast_grads[2];
  T* const grads[] = {R.grad1, R.grad2};
  if (broadcast.active[0] || broadcast.active[1]) {
    R.broadcast = &broadcast;
    for (int k = 0; k < 2; ++k) {
      if (!broadcast.active[k] || !grads[k]) continue;
      const int64_t count = operands[k]->numel() / 4;
      const bool per_block = nblocks * count <= n;
      // The kernel writes every value (per block: zeroes its rows first).
      broadcast_grads[k].reset(
          new double[static_cast<size_t>(4 * (per_block ? nblocks * count : n))]);
      (per_block ? R.block_grad : R.pair_grad)[k] = broadcast_grads[k].get();
      R.box_count[k] = count;
    }
  }
  std::vector<double> block_sums(q.forward && reduced ? static_cast<size_t>(nblocks) : 0);
  R.block_sums = block_sums.empty() ? nullptr : block_sums.data();

  const BoxKernel<T> kernel = box_kernel<T>();
  // Parallel over blocks; a grain of kGrainBoxes boxes is a fraction of a block, so the split
  // goes by whole blocks and a call of one block runs on the calling thread.
  const int64_t grain_blocks = std::max<int64_t>(1, kGrainBoxes / detail::kReduceBlock);
  detail::parallel_for(0, nblocks, grain_blocks,
                       [&](int64_t b0, int64_t b1, int) { kernel(R, b0, b1); });
  for (int k = 0; k < 2; ++k) {
    if (!broadcast.active[k] || !grads[k]) continue;
    // The sum in double of the pairs' gradients (each in the compute type) in pair order, or of
    // the blocks' sums in block order, rounded to the compute type and then stored: a 16-bit
    // operand's gradient is the float one's rounded once.
    std::vector<double> acc(static_cast<size_t>(operands[k]->numel()), 0.0);
    if (const double* pg = R.pair_grad[k]) {
      detail::for_each_source_box(broadcast, k, 0, n, [&](int64_t p, int64_t box) {
        for (int c = 0; c < 4; ++c) acc[static_cast<size_t>(4 * box + c)] += pg[4 * p + c];
      });
    } else {
      for (int64_t b = 0; b < nblocks; ++b)
        for (size_t i = 0; i < acc.size(); ++i)
          acc[i] += R.block_grad[k][static_cast<size_t>(4 * R.box_count[k] * b) + i];
    }
    for (size_t i = 0; i < acc.size(); ++i)
      grads[k][i] = static_cast<T>(static_cast<detail::compute_t<T>>(acc[i]));
  }
  if (q.forward && reduced)
    q.output.data[0] =
        static_cast<T>(detail::combine_partials(block_sums.data(), nblocks) / divisor);
  return own_divisor;
}

}  // namespace

Shape box_loss_output_shape(const Shape& boxes) { return leading(boxes); }

Shape box_loss_output_shape(const Shape& boxes1, const Shape& boxes2) {
  Shape pairs;
  return broadcast_leading(boxes1, boxes2, pairs) ? pairs : leading(boxes1);
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
