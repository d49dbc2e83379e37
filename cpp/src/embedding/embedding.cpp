// Entry points of the embedding family: per-loss checks, all before any work, then the row
// kernel for the active instruction set, run over rows in parallel. Reduced losses collect one
// double per row and sum them with the shared deterministic accumulator (blocked_sum), so the
// result is bitwise the same for any thread count.
#include "losskit/embedding.hpp"

#include "losskit/threads.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "common/checks.hpp"
#include "common/cpu_dispatch.hpp"
#include "common/parallel.hpp"
#include "common/reduce.hpp"
#include "embedding/embedding_kernels.hpp"

namespace losskit {
namespace {

using detail::EmbeddingKernelId;
using detail::EmbeddingRows;

template <class T>
using RowKernel = void (*)(const EmbeddingRows<T>&, int64_t, int64_t, T*);

template <class T>
RowKernel<T> embedding_kernel() {
#define LOSSKIT_KERNEL_ENTRY(ns) static_cast<RowKernel<T>>(&kernels::ns::embedding_rows),
  static const RowKernel<T> table[] = {LOSSKIT_FOR_EACH_TARGET(LOSSKIT_KERNEL_ENTRY)};
#undef LOSSKIT_KERNEL_ENTRY
  const int available = static_cast<int>(sizeof table / sizeof table[0]);
  const int wanted = static_cast<int>(detail::active_cpu_target());
  return table[wanted < available ? wanted : available - 1];
}

std::string number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

void check_reduction(const char* fn, Reduction r) {
  if (r == Reduction::BatchMean)
    detail::fail_value(fn, "reduction", "one of 'none', 'mean', 'sum'", "'batchmean'");
}

// torch raises "margin must be greater than 0" (a NaN margin passes its `margin <= 0` test).
void check_margin_positive(const char* fn, double margin) {
  if (margin <= 0) detail::fail_value(fn, "margin", "a number greater than 0", number(margin));
}

// Each row's values per input, and the row count: the last dimension is the vector (a 0-d input
// is one vector of one value), every other dimension indexes rows.
struct RowShape {
  int64_t rows;
  int64_t dim;
};
RowShape row_shape(const Shape& s) {
  if (s.empty()) return {1, 1};
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < s.size(); ++i) rows *= s[i];
  return {rows, s.back()};
}

// What to compute, shared by the three entry points of every loss.
template <class T>
struct Request {
  bool forward = false;
  bool backward = false;
  View<T> grad_output;  // absent: 1 (ones)
  MutView<T> output;
  MutView<T> grads[3];
};

// Checks the output, grad_output and gradients against the shapes, then runs the kernel.
// `inputs` are the differentiable inputs (their shapes are the gradients' shapes).
template <class T>
void run(const char* fn, EmbeddingRows<T> R, Reduction reduction, const Shape& out_shape,
         const RowShape& rs, std::initializer_list<std::pair<View<T>, const char*>> inputs,
         const Request<T>& q) {
  const bool reduced = reduction != Reduction::None;
  if (q.forward) detail::check_output(fn, "output", q.output, reduced ? Shape{} : out_shape);
  if (q.backward) {
    if (q.grad_output.present()) {
      if (reduced && q.grad_output.numel() != 1)
        detail::fail_value(fn, "grad_output", "a scalar for a reduced loss",
                           "shape " + shape_to_string(q.grad_output.shape));
      if (!reduced)
        detail::check_shape_equal(fn, "grad_output", q.grad_output.shape, out_shape, "shape");
    }
    int k = 0;
    for (const auto& [view, name] : inputs) {
      if (q.grads[k].present()) detail::check_output(fn, name, q.grads[k], view.shape);
      ++k;
    }
  }

  const int64_t n = rs.rows;
  const double divisor = reduction == Reduction::Mean ? static_cast<double>(n) : 1.0;
  const double scale = 1.0 / divisor;
  R.backward = q.backward;
  R.grad_scale = reduced && q.grad_output.present()
                     ? scale * static_cast<double>(q.grad_output.data[0])
                     : scale;
  R.grad_out = q.backward && !reduced && q.grad_output.present() ? q.grad_output.data : nullptr;
  if (q.backward)
    for (int k = 0; k < 3; ++k) R.grad[k] = q.grads[k].present() ? q.grads[k].data : nullptr;
  R.out = q.forward && !reduced ? q.output.data : nullptr;
  std::vector<double> row_loss(q.forward && reduced ? static_cast<size_t>(n) : 0);
  R.row_loss = q.forward && reduced ? row_loss.data() : nullptr;

  // A row costs about `dim` element operations; each thread gets at least ~32K of them, so
  // small inputs stay on the calling thread.
  const int64_t dim = rs.dim > 0 ? rs.dim : 1;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / dim);
  const bool need_scratch =
      q.backward && !(R.grad[0] && R.grad[1] && (R.grad[2] || R.kernel == EmbeddingKernelId::CosineEmbedding));
  const int64_t scratch_per_thread = need_scratch ? 3 * rs.dim : 0;
  // Scratch rows for unwanted gradients, one set per thread (the modulo only matters if another
  // thread raised the thread count during this call).
  const int scratch_threads = std::max(1, get_num_threads());
  std::vector<T> scratch(static_cast<size_t>(scratch_per_thread * scratch_threads));
  const RowKernel<T> kernel = embedding_kernel<T>();
  detail::parallel_for(0, n, grain, [&](int64_t r0, int64_t r1, int thread) {
    kernel(R, r0, r1, scratch.data() + (thread % scratch_threads) * scratch_per_thread);
  });

  if (q.forward && reduced)
    q.output.data[0] = static_cast<T>(detail::blocked_sum(row_loss.data(), n) / divisor);
}

// ---- cosine_embedding_loss ----------------------------------------------------------------
template <class T>
struct CosineProblem {
  EmbeddingRows<T> rows;
  RowShape rs;
  Shape out_shape;
};

template <class T>
CosineProblem<T> cosine_problem(View<T> input1, View<T> input2, View<T> target,
                                const CosineEmbeddingLossOptions& o) {
  const char* fn = "cosine_embedding_loss";
  check_reduction(fn, o.reduction);
  detail::check_required(fn, "input1", input1);
  detail::check_required(fn, "input2", input2);
  detail::check_required(fn, "target", target);
  if (target.dim() > 1)
    detail::fail_value(fn, "target", "a 0-d or 1-d array (multi-target not supported)",
                       "shape " + shape_to_string(target.shape));
  const int64_t want_dim = target.dim() == 1 ? 2 : 1;
  const std::string what = target.dim() == 1 ? "a 2-d array (N, D) for a 1-d target"
                                             : "a 1-d array (D,) for a 0-d target";
  if (input1.dim() != want_dim) detail::fail_value(fn, "input1", what, "shape " + shape_to_string(input1.shape));
  if (input2.dim() != want_dim) detail::fail_value(fn, "input2", what, "shape " + shape_to_string(input2.shape));
  detail::check_shape_equal(fn, "input2", input2.shape, input1.shape, "input1's shape");
  if (target.dim() == 1)
    detail::check_shape_equal(fn, "target", target.shape, Shape{input1.shape[0]}, "shape");
  CosineProblem<T> p;
  p.rs = row_shape(input1.shape);
  p.out_shape = target.shape;
  p.rows.kernel = EmbeddingKernelId::CosineEmbedding;
  p.rows.dim = p.rs.dim;
  p.rows.x[0] = input1.data;
  p.rows.x[1] = input2.data;
  p.rows.target = target.data;
  p.rows.margin = o.margin;
  return p;
}

template <class T>
void cosine_run(View<T> input1, View<T> input2, View<T> target, const CosineEmbeddingLossOptions& o,
                const Request<T>& q) {
  const auto p = cosine_problem(input1, input2, target, o);
  run<T>("cosine_embedding_loss", p.rows, o.reduction, p.out_shape, p.rs,
         {{input1, "grad_input1"}, {input2, "grad_input2"}}, q);
}

// ---- triplet losses -------------------------------------------------------------------------
template <class T>
void check_triplet_shapes(const char* fn, View<T> anchor, View<T> positive, View<T> negative) {
  detail::check_required(fn, "anchor", anchor);
  detail::check_required(fn, "positive", positive);
  detail::check_required(fn, "negative", negative);
  if (anchor.dim() != positive.dim() || positive.dim() != negative.dim())
    detail::fail_value(fn, "positive",
                       "anchor, positive and negative of the same number of dimensions",
                       "anchor " + std::to_string(anchor.dim()) + "-d, positive " +
                           std::to_string(positive.dim()) + "-d, negative " +
                           std::to_string(negative.dim()) + "-d");
  detail::check_shape_equal(fn, "positive", positive.shape, anchor.shape, "anchor's shape");
  detail::check_shape_equal(fn, "negative", negative.shape, anchor.shape, "anchor's shape");
}

template <class T>
EmbeddingRows<T> triplet_rows(View<T> anchor, View<T> positive, View<T> negative,
                              EmbeddingKernelId kernel, double margin, bool swap) {
  EmbeddingRows<T> r;
  r.kernel = kernel;
  r.dim = row_shape(anchor.shape).dim;
  r.x[0] = anchor.data;
  r.x[1] = positive.data;
  r.x[2] = negative.data;
  r.margin = margin;
  r.swap = swap;
  return r;
}

EmbeddingKernelId pnorm_kernel(double p) {
  if (p == 2.0) return EmbeddingKernelId::TripletL2;
  if (p == 1.0) return EmbeddingKernelId::TripletL1;
  if (std::isinf(p)) return EmbeddingKernelId::TripletLinf;
  return EmbeddingKernelId::TripletLp;
}

template <class T>
void triplet_run(View<T> anchor, View<T> positive, View<T> negative,
                 const TripletMarginLossOptions& o, const Request<T>& q) {
  const char* fn = "triplet_margin_loss";
  check_reduction(fn, o.reduction);
  check_margin_positive(fn, o.margin);
  if (!(o.p > 0)) detail::fail_value(fn, "p", "a number greater than 0", number(o.p));
  check_triplet_shapes(fn, anchor, positive, negative);
  // torch: the inf norm (a max) of no values has no identity and raises.
  if (std::isinf(o.p) && row_shape(anchor.shape).dim == 0)
    detail::fail_value(fn, "anchor", "a non-empty last dimension for p=inf",
                       "shape " + shape_to_string(anchor.shape));
  auto rows = triplet_rows(anchor, positive, negative, pnorm_kernel(o.p), o.margin, o.swap);
  rows.p = o.p;
  rows.eps = o.eps;
  run<T>(fn, rows, o.reduction, embedding_output_shape(anchor.shape), row_shape(anchor.shape),
         {{anchor, "grad_anchor"}, {positive, "grad_positive"}, {negative, "grad_negative"}}, q);
}

EmbeddingKernelId distance_kernel(TripletDistance d) {
  switch (d) {
    case TripletDistance::Cosine: return EmbeddingKernelId::TripletCosine;
    case TripletDistance::SquaredEuclidean: return EmbeddingKernelId::TripletSquared;
    default: return EmbeddingKernelId::TripletL2;
  }
}

template <class T>
void triplet_distance_run(View<T> anchor, View<T> positive, View<T> negative,
                          const TripletMarginWithDistanceLossOptions& o, const Request<T>& q) {
  const char* fn = "triplet_margin_with_distance_loss";
  check_reduction(fn, o.reduction);
  check_margin_positive(fn, o.margin);
  check_triplet_shapes(fn, anchor, positive, negative);
  auto rows = triplet_rows(anchor, positive, negative, distance_kernel(o.distance), o.margin,
                           o.swap);
  rows.p = 2.0;
  rows.eps = 1e-6;  // torch.pairwise_distance's default
  run<T>(fn, rows, o.reduction, embedding_output_shape(anchor.shape), row_shape(anchor.shape),
         {{anchor, "grad_anchor"}, {positive, "grad_positive"}, {negative, "grad_negative"}}, q);
}

template <class T>
Request<T> forward_request(MutView<T> output) {
  Request<T> q;
  q.forward = true;
  q.output = output;
  return q;
}
template <class T>
Request<T> backward_request(View<T> grad_output, MutView<T> g0, MutView<T> g1,
                            MutView<T> g2 = {}) {
  Request<T> q;
  q.backward = true;
  q.grad_output = grad_output;
  q.grads[0] = g0;
  q.grads[1] = g1;
  q.grads[2] = g2;
  return q;
}
template <class T>
Request<T> forward_backward_request(View<T> grad_output, MutView<T> output, MutView<T> g0,
                                    MutView<T> g1, MutView<T> g2 = {}) {
  Request<T> q;
  q.forward = true;
  q.backward = true;
  q.grad_output = grad_output;
  q.output = output;
  q.grads[0] = g0;
  q.grads[1] = g1;
  q.grads[2] = g2;
  return q;
}

}  // namespace

Shape embedding_output_shape(const Shape& input) {
  return input.size() <= 1 ? Shape{} : Shape(input.begin(), input.end() - 1);
}

TripletDistance parse_triplet_distance(const char* name, const char* function) {
  const std::string s = name ? name : "";
  if (s == "euclidean") return TripletDistance::Euclidean;
  if (s == "cosine") return TripletDistance::Cosine;
  if (s == "squared_euclidean") return TripletDistance::SquaredEuclidean;
  detail::fail_value(function, "distance_function",
                     "None, a callable, or one of 'euclidean', 'cosine', 'squared_euclidean'",
                     "'" + s + "'");
}

void triplet_margin_with_distance_loss_check(const Shape& anchor, const Shape& positive,
                                             const Shape& negative,
                                             const TripletMarginWithDistanceLossOptions& o) {
  const char* fn = "triplet_margin_with_distance_loss";
  check_reduction(fn, o.reduction);
  check_margin_positive(fn, o.margin);
  if (anchor.size() != positive.size() || positive.size() != negative.size())
    detail::fail_value(fn, "positive",
                       "anchor, positive and negative of the same number of dimensions",
                       "anchor " + std::to_string(anchor.size()) + "-d, positive " +
                           std::to_string(positive.size()) + "-d, negative " +
                           std::to_string(negative.size()) + "-d");
}

// ---- entry points ----------------------------------------------------------------------------
template <class T>
void cosine_embedding_loss(View<T> input1, View<T> input2, View<T> target, MutView<T> output,
                           const CosineEmbeddingLossOptions& o) {
  cosine_run(input1, input2, target, o, forward_request(output));
}
template <class T>
void cosine_embedding_loss_backward(View<T> grad_output, View<T> input1, View<T> input2,
                                    View<T> target, MutView<T> grad_input1,
                                    MutView<T> grad_input2, const CosineEmbeddingLossOptions& o) {
  cosine_run(input1, input2, target, o,
             backward_request(grad_output, grad_input1, grad_input2));
}
template <class T>
void cosine_embedding_loss_forward_backward(View<T> input1, View<T> input2, View<T> target,
                                            View<T> grad_output, MutView<T> output,
                                            MutView<T> grad_input1, MutView<T> grad_input2,
                                            const CosineEmbeddingLossOptions& o) {
  cosine_run(input1, input2, target, o,
             forward_backward_request(grad_output, output, grad_input1, grad_input2));
}

template <class T>
void triplet_margin_loss(View<T> anchor, View<T> positive, View<T> negative, MutView<T> output,
                         const TripletMarginLossOptions& o) {
  triplet_run(anchor, positive, negative, o, forward_request(output));
}
template <class T>
void triplet_margin_loss_backward(View<T> grad_output, View<T> anchor, View<T> positive,
                                  View<T> negative, MutView<T> grad_anchor,
                                  MutView<T> grad_positive, MutView<T> grad_negative,
                                  const TripletMarginLossOptions& o) {
  triplet_run(anchor, positive, negative, o,
              backward_request(grad_output, grad_anchor, grad_positive,
                               grad_negative));
}
template <class T>
void triplet_margin_loss_forward_backward(View<T> anchor, View<T> positive, View<T> negative,
                                          View<T> grad_output, MutView<T> output,
                                          MutView<T> grad_anchor, MutView<T> grad_positive,
                                          MutView<T> grad_negative,
                                          const TripletMarginLossOptions& o) {
  triplet_run(anchor, positive, negative, o,
              forward_backward_request(grad_output, output, grad_anchor, grad_positive,
                                       grad_negative));
}

template <class T>
void triplet_margin_with_distance_loss(View<T> anchor, View<T> positive, View<T> negative,
                                       MutView<T> output,
                                       const TripletMarginWithDistanceLossOptions& o) {
  triplet_distance_run(anchor, positive, negative, o, forward_request(output));
}
template <class T>
void triplet_margin_with_distance_loss_backward(View<T> grad_output, View<T> anchor,
                                                View<T> positive, View<T> negative,
                                                MutView<T> grad_anchor, MutView<T> grad_positive,
                                                MutView<T> grad_negative,
                                                const TripletMarginWithDistanceLossOptions& o) {
  triplet_distance_run(anchor, positive, negative, o,
                       backward_request(grad_output, grad_anchor, grad_positive, grad_negative));
}
template <class T>
void triplet_margin_with_distance_loss_forward_backward(
    View<T> anchor, View<T> positive, View<T> negative, View<T> grad_output, MutView<T> output,
    MutView<T> grad_anchor, MutView<T> grad_positive, MutView<T> grad_negative,
    const TripletMarginWithDistanceLossOptions& o) {
  triplet_distance_run(anchor, positive, negative, o,
                       forward_backward_request(grad_output, output, grad_anchor, grad_positive,
                                                grad_negative));
}

template <class T>
void triplet_margin_loss_from_distances(View<T> dist_pos, View<T> dist_neg, View<T> dist_swap,
                                        View<T> grad_output, MutView<T> output,
                                        MutView<T> grad_dist_pos, MutView<T> grad_dist_neg,
                                        MutView<T> grad_dist_swap,
                                        const TripletMarginWithDistanceLossOptions& o) {
  const char* fn = "triplet_margin_with_distance_loss";
  check_reduction(fn, o.reduction);
  check_margin_positive(fn, o.margin);
  detail::check_required(fn, "dist_pos", dist_pos);
  detail::check_required(fn, "dist_neg", dist_neg);
  detail::check_shape_equal(fn, "distance_function(anchor, negative)", dist_neg.shape,
                            dist_pos.shape, "the shape of distance_function(anchor, positive)");
  if (o.swap) {
    if (!dist_swap.present() && dist_pos.numel() != 0)
      detail::fail_value(fn, "dist_swap", "an array when swap=True", "none");
    detail::check_shape_equal(fn, "distance_function(positive, negative)", dist_swap.shape,
                              dist_pos.shape, "the shape of distance_function(anchor, positive)");
  }
  EmbeddingRows<T> rows;
  rows.kernel = EmbeddingKernelId::TripletDistances;
  rows.dim = 1;
  rows.x[0] = dist_pos.data;
  rows.x[1] = dist_neg.data;
  rows.x[2] = o.swap ? dist_swap.data : nullptr;
  rows.margin = o.margin;
  rows.swap = o.swap;
  Request<T> q;
  q.forward = output.present();
  q.backward = grad_dist_pos.present() || grad_dist_neg.present() || grad_dist_swap.present();
  q.grad_output = grad_output;
  q.output = output;
  q.grads[0] = grad_dist_pos;
  q.grads[1] = grad_dist_neg;
  q.grads[2] = o.swap ? grad_dist_swap : MutView<T>{};
  const RowShape rs{dist_pos.numel(), 1};
  run<T>(fn, rows, o.reduction, dist_pos.shape, rs,
         {{dist_pos, "grad_dist_pos"}, {dist_neg, "grad_dist_neg"}, {dist_swap, "grad_dist_swap"}},
         q);
}

#define LOSSKIT_INSTANTIATE(T)                                                                  \
  template void cosine_embedding_loss<T>(View<T>, View<T>, View<T>, MutView<T>,                 \
                                         const CosineEmbeddingLossOptions&);                    \
  template void cosine_embedding_loss_backward<T>(View<T>, View<T>, View<T>, View<T>,           \
                                                  MutView<T>, MutView<T>,                       \
                                                  const CosineEmbeddingLossOptions&);           \
  template void cosine_embedding_loss_forward_backward<T>(View<T>, View<T>, View<T>, View<T>,   \
                                                          MutView<T>, MutView<T>, MutView<T>,   \
                                                          const CosineEmbeddingLossOptions&);   \
  template void triplet_margin_loss<T>(View<T>, View<T>, View<T>, MutView<T>,                   \
                                       const TripletMarginLossOptions&);                        \
  template void triplet_margin_loss_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>, \
                                                MutView<T>, MutView<T>,                         \
                                                const TripletMarginLossOptions&);               \
  template void triplet_margin_loss_forward_backward<T>(View<T>, View<T>, View<T>, View<T>,     \
                                                        MutView<T>, MutView<T>, MutView<T>,     \
                                                        MutView<T>,                             \
                                                        const TripletMarginLossOptions&);       \
  template void triplet_margin_with_distance_loss<T>(                                           \
      View<T>, View<T>, View<T>, MutView<T>, const TripletMarginWithDistanceLossOptions&);      \
  template void triplet_margin_with_distance_loss_backward<T>(                                  \
      View<T>, View<T>, View<T>, View<T>, MutView<T>, MutView<T>, MutView<T>,                   \
      const TripletMarginWithDistanceLossOptions&);                                             \
  template void triplet_margin_with_distance_loss_forward_backward<T>(                          \
      View<T>, View<T>, View<T>, View<T>, MutView<T>, MutView<T>, MutView<T>, MutView<T>,       \
      const TripletMarginWithDistanceLossOptions&);                                             \
  template void triplet_margin_loss_from_distances<T>(                                          \
      View<T>, View<T>, View<T>, View<T>, MutView<T>, MutView<T>, MutView<T>, MutView<T>,       \
      const TripletMarginWithDistanceLossOptions&);
LOSSKIT_INSTANTIATE(float)
LOSSKIT_INSTANTIATE(double)
#undef LOSSKIT_INSTANTIATE

}  // namespace losskit
