// Entry points of the embedding family: per-loss checks, all before any work, then the row
// kernel for the active instruction set, run over rows in parallel. Reduced losses collect one
// double per row and sum them with the shared deterministic accumulator (blocked_sum), so the
// result is bitwise the same for any thread count.
#include "losskit/embedding.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "common/checks.hpp"
#include "common/cpu_dispatch.hpp"
#include "common/parallel.hpp"
#include "common/reduce.hpp"
#include "common/request.hpp"
#include "common/staging.hpp"
#include "embedding/embedding_kernels.hpp"
#include "losskit/threads.hpp"

namespace losskit {
namespace {

using detail::EmbeddingKernelId;
using detail::EmbeddingRows;

template <class T>
using RowKernel = void (*)(const EmbeddingRows<T>&, int64_t, int64_t, T*);

template <class T>
RowKernel<T> embedding_kernel() {
  return LOSSKIT_DISPATCH(RowKernel<T>, embedding_rows);
}

std::string number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

using detail::check_reduction;

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
using Request = detail::Request<T, 3>;

// 16-bit storage (common/staging.hpp): rows [r0, r1) run through the float kernel in staged
// blocks of about kStageBlock values per operand; a repeated input's one row is staged once per
// block, the per-row double losses and the repeated inputs' gradient sums are written in place.
template <class S>
int64_t staged_rows_per_block(const EmbeddingRows<S>& h) {
  return std::max<int64_t>(1, detail::kStageBlock / std::max<int64_t>(h.dim, 1));
}
template <class S>
int64_t staged_scratch_per_thread(const EmbeddingRows<S>& h) {
  const int64_t D = std::max<int64_t>(h.dim, 1), block_rows = staged_rows_per_block(h);
  // three inputs and three gradients of block_rows x D; target, grad_out, out; the kernel's 3 D
  return 6 * block_rows * D + 3 * block_rows + 3 * D;
}
template <class S>
void staged_rows(const EmbeddingRows<S>& h, int64_t r0, int64_t r1, float* thread_scratch,
                 RowKernel<float> kernel) {
  const int64_t block_rows = staged_rows_per_block(h);
  for (int64_t b0 = r0; b0 < r1; b0 += block_rows) {
    const int64_t rows = std::min(r1, b0 + block_rows) - b0;
    const detail::Strided values = detail::contiguous(rows * h.dim),
                          per_row = detail::contiguous(rows);
    detail::BlockStage<S> st(thread_scratch);
    EmbeddingRows<float> f;
    f.kernel = h.kernel;
    f.dim = h.dim;
    for (int k = 0; k < 3; ++k) {
      f.repeat[k] = h.repeat[k];
      f.x[k] = h.repeat[k] ? st.in(h.x[k], 0, detail::contiguous(h.dim))
                           : st.in(h.x[k], b0 * h.dim, values);
    }
    f.target =
        h.repeat[2] ? st.in(h.target, 0, detail::contiguous(1)) : st.in(h.target, b0, per_row);
    f.grad_out = st.in(h.grad_out, b0, per_row);
    f.grad_scale = h.grad_scale;
    f.margin = h.margin;
    f.p = h.p;
    f.eps = h.eps;
    f.swap = h.swap;
    f.backward = h.backward;
    f.out = st.out(h.out, b0, per_row);
    f.row_loss = h.row_loss ? h.row_loss + b0 : nullptr;
    for (int k = 0; k < 3; ++k) {
      f.grad[k] = st.out(h.grad[k], b0 * h.dim, values);
      f.grad_sum[k] = h.grad_sum[k];
    }
    kernel(f, 0, rows, st.scratch(3 * std::max<int64_t>(h.dim, 1)));
    st.finish();
  }
}

// Operands whose rows broadcast by repeating their single row (a (1, D) positive beside an
// (N, D) anchor): the kernels read that row for every row, in place, and sum its gradient.
struct RowRepeat {
  bool row[4] = {false, false, false, false};
  Shape shape[4];  // a repeated operand's own shape (its gradient's, and the bytes it occupies)
};

// An input of the kernel: its name, and its gradient's (q.grads in the same order; none for a
// target, which comes last).
template <class T>
struct Operand {
  View<T> view;
  const char* name;
  const char* grad_name = nullptr;
};

// Checks the output, grad_output and gradients against the shapes (a gradient has its input's
// shape) and that no written array overlaps another, then runs the kernel. Returns the loss's own
// divisor of 'mean' (the row count; NAME_mean_normalizer's value); a request for nothing stops
// there.
template <class T>
double run(const char* fn, EmbeddingRows<T> R, Reduction reduction, const Normalizer& normalizer,
           const Shape& out_shape, const RowShape& rs, std::initializer_list<Operand<T>> inputs,
           const Request<T>& q, const RowRepeat& rep = {}) {
  // The operand as it lies in memory: a repeated one's view claims the full shape.
  const auto own = [&rep](const Operand<T>& in, int i) {
    return rep.row[i] ? View<T>(in.view.data, rep.shape[i]) : in.view;
  };
  const bool reduced = reduction != Reduction::None;
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
    int k = 0, i = 0;
    for (const Operand<T>& in : inputs) {
      if (in.grad_name && q.grads[k].present())
        detail::check_output(fn, in.grad_name, q.grads[k], own(in, i).shape);
      k += in.grad_name ? 1 : 0;
      ++i;
    }
  }
  detail::DisjointArrays arrays(fn);
  int k = 0, i = 0;
  for (const Operand<T>& in : inputs) {
    arrays.read(in.name, own(in, i++));
    if (in.grad_name && q.backward) arrays.write(in.grad_name, q.grads[k++]);
  }
  arrays.write("output", q.output).read("grad_output", q.grad_output).check();

  const int64_t n = rs.rows;
  const double own_divisor = static_cast<double>(n);
  if (!q.forward && !q.backward) return own_divisor;
  const double divisor =
      reduction == Reduction::Mean ? detail::mean_divisor(normalizer, own_divisor) : 1.0;
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

  // A repeated input's gradient: the rows of each block of kSumRows add their gradients into
  // the block's own partial sums (double), and the partials are added in block order, so the
  // result is the same for any thread count, and a 16-bit gradient is rounded once.
  constexpr int64_t kSumRows = 256;
  const int64_t blocks = (n + kSumRows - 1) / kSumRows;
  std::vector<double> partial[3];
  T* summed[3] = {nullptr, nullptr, nullptr};
  for (int k = 0; k < 3; ++k) {
    R.repeat[k] = rep.row[k];
    if (!(q.backward && rep.row[k] && R.grad[k])) continue;
    summed[k] = R.grad[k];
    R.grad[k] = nullptr;  // each row's gradient goes to scratch, then into the sum
    partial[k].assign(static_cast<size_t>(blocks * rs.dim), 0.0);
  }
  const bool summing = summed[0] || summed[1] || summed[2];

  const bool two_inputs = R.kernel == EmbeddingKernelId::CosineEmbedding;
  const bool need_scratch = q.backward && !(R.grad[0] && R.grad[1] && (R.grad[2] || two_inputs));
  // Scratch per thread: the float kernel's rows for unwanted or summed gradients, or the staged
  // blocks of 16-bit storage (the modulo only matters if another thread raised the thread count
  // during this call).
  const int64_t scratch_per_thread =
      detail::is_half_v<T> ? staged_scratch_per_thread(R) : (need_scratch ? 3 * rs.dim : 0);
  const int scratch_threads = std::max(1, get_num_threads());
  std::vector<detail::compute_t<T>> scratch(
      static_cast<size_t>(scratch_per_thread * scratch_threads));
  const RowKernel<detail::compute_t<T>> kernel = embedding_kernel<detail::compute_t<T>>();
  const auto rows = [&](const EmbeddingRows<T>& Rb, int64_t r0, int64_t r1, int thread) {
    auto* mine = scratch.data() + (thread % scratch_threads) * scratch_per_thread;
    if constexpr (detail::is_half_v<T>) staged_rows(Rb, r0, r1, mine, kernel);
    else kernel(Rb, r0, r1, mine);
  };
  if (!summing) {
    detail::parallel_for(0, n, grain,
                         [&](int64_t r0, int64_t r1, int thread) { rows(R, r0, r1, thread); });
  } else {
    detail::parallel_for(0, blocks, std::max<int64_t>(1, grain / kSumRows),
                         [&](int64_t b0, int64_t b1, int thread) {
                           for (int64_t b = b0; b < b1; ++b) {
                             EmbeddingRows<T> Rb = R;
                             for (int k = 0; k < 3; ++k)
                               if (summed[k]) Rb.grad_sum[k] = partial[k].data() + b * rs.dim;
                             rows(Rb, b * kSumRows, std::min(n, (b + 1) * kSumRows), thread);
                           }
                         });
    std::vector<double> total(static_cast<size_t>(rs.dim));
    for (int k = 0; k < 3; ++k) {
      if (!summed[k]) continue;
      std::fill(total.begin(), total.end(), 0.0);
      for (int64_t b = 0; b < blocks; ++b)
        for (int64_t j = 0; j < rs.dim; ++j) total[j] += partial[k][b * rs.dim + j];
      for (int64_t j = 0; j < rs.dim; ++j) summed[k][j] = static_cast<T>(total[j]);
    }
  }

  if (q.forward && reduced)
    q.output.data[0] = static_cast<T>(detail::blocked_sum(row_loss.data(), n) / divisor);
  return own_divisor;
}

// ---- broadcasting of rows -------------------------------------------------------------------
// torch broadcasts the paired inputs (x1 - x2, x1 * x2) and the label. Broadcasting the row
// dimensions is the same as computing on the expanded inputs. An input of a single row (a (1, D)
// positive beside an (N, D) anchor) is read in place for every row, and its gradient summed over
// the rows (RowRepeat, run()). A broadcast over some of several row dimensions ((1, B, D) beside
// (A, B, D)) expands the smaller inputs into temporaries, runs the kernel at the full shape, and
// sums each smaller input's full-size gradient back over its broadcast rows (in a fixed order, in
// double). Broadcasting the vector dimension itself ((N, 1) against (N, D)) would change which
// values a norm sums over per pair; losskit rejects it.

// Row of `from` that row `r` of `to` reads (same number of dimensions; size-1 dims broadcast).
int64_t source_row(int64_t r, const Shape& from, const Shape& to) {
  int64_t src = 0, stride = 1;
  for (size_t d = to.size(); d-- > 0;) {
    const int64_t i = r % to[d];
    r /= to[d];
    src += (from[d] == 1 ? 0 : i) * stride;
    stride *= from[d];
  }
  return src;
}

struct Operands {
  int count = 0;              // inputs in use (<= 4)
  const char* names[4] = {};  // argument names for messages
  bool vector[4] = {};        // the last dimension is the vector (false: cosine's target)
};

// Calls body(views, request, repeat) with every input at its full shape: the inputs as they are
// when no row broadcasting is needed or every broadcast input is a single row (`repeat` names
// those; their views claim the full shape over their own data), expanded copies otherwise.
// Gradients exist for the first `ngrad` inputs; body sees them at the full shape, except a
// repeated input's, which keeps the input's own shape.
template <class T, class Body>
void with_row_broadcast(const char* fn, std::array<View<T>, 4> in, const Operands& ops, int ngrad,
                        const char* const* grad_names, const Request<T>& q, Body&& body) {
  Shape lead[4];
  int64_t dim = -1;
  const char* dim_name = "";
  for (int k = 0; k < ops.count; ++k) {
    detail::check_required(fn, ops.names[k], in[k]);
    const Shape& s = in[k].shape;
    if (!ops.vector[k]) {
      lead[k] = s;
      continue;
    }
    lead[k] = s.empty() ? Shape{} : Shape(s.begin(), s.end() - 1);
    const int64_t d = s.empty() ? 1 : s.back();
    if (dim < 0) {
      dim = d;
      dim_name = ops.names[k];
    } else if (d != dim) {
      detail::fail_value(fn, ops.names[k],
                         std::string("the last dimension of ") + dim_name + " (" +
                             std::to_string(dim) + "; the vector dimension does not broadcast)",
                         "shape " + shape_to_string(s));
    }
  }
  Shape full = lead[0];
  bool same = true;
  for (int k = 1; k < ops.count; ++k) {
    if (lead[k].size() != full.size()) continue;  // the caller's dimension checks report it
    for (size_t d = 0; d < full.size(); ++d) {
      const int64_t a = full[d], b = lead[k][d];
      if (a != b && a != 1 && b != 1)
        detail::fail_value(fn, ops.names[k],
                           std::string("rows broadcastable with ") + ops.names[0] + "'s shape " +
                               shape_to_string(in[0].shape),
                           "shape " + shape_to_string(in[k].shape));
      full[d] = a == 1 ? b : a;
    }
  }
  RowRepeat repeat;
  bool single_rows = true;
  for (int k = 0; k < ops.count; ++k) {
    if (lead[k] == full || lead[k].size() != full.size()) continue;
    same = false;
    repeat.row[k] = true;
    repeat.shape[k] = in[k].shape;
    single_rows = single_rows && numel(lead[k]) == 1;
  }
  if (same) return body(in, q, repeat);  // repeats nothing
  // A request for nothing (NAME_mean_normalizer) needs only the full shapes, and reads nothing.
  if (single_rows || (!q.forward && !q.backward)) {
    std::array<View<T>, 4> views = in;
    for (int k = 0; k < ops.count; ++k) {
      if (!repeat.row[k]) continue;
      Shape fs = full;
      if (ops.vector[k] && !in[k].shape.empty()) fs.push_back(dim);
      views[k] = View<T>(in[k].data, fs);
    }
    return body(views, q, repeat);
  }

  // The caller's gradients have the original shapes; every array is checked before the copies
  // below (run() checks the output's and grad_output's shapes).
  detail::check_aligned(fn, "output", q.output.data);
  detail::check_optional(fn, "grad_output", q.grad_output);
  if (q.backward)
    for (int k = 0; k < ngrad; ++k)
      if (q.grads[k].present()) detail::check_output(fn, grad_names[k], q.grads[k], in[k].shape);
  detail::DisjointArrays arrays(fn);  // the caller's arrays: run() sees the copies below
  for (int k = 0; k < ops.count; ++k) arrays.read(ops.names[k], in[k]);
  for (int k = 0; k < ngrad && q.backward; ++k) arrays.write(grad_names[k], q.grads[k]);
  arrays.write("output", q.output).read("grad_output", q.grad_output).check();
  const int64_t rows = numel(full);
  std::vector<T> copies[4];
  std::vector<T> full_grads[3];
  bool sum_back[3] = {false, false, false};
  std::array<View<T>, 4> views = in;
  Request<T> q2 = q;
  for (int k = 0; k < ops.count; ++k) {
    if (lead[k] == full) continue;
    const int64_t d = ops.vector[k] ? dim : 1;
    Shape fs = full;
    if (ops.vector[k] && !in[k].shape.empty()) fs.push_back(d);
    copies[k].resize(static_cast<size_t>(rows * d));
    for (int64_t r = 0; r < rows; ++r) {
      const T* src = in[k].data + source_row(r, lead[k], full) * d;
      std::copy(src, src + d, copies[k].data() + r * d);
    }
    views[k] = View<T>(copies[k].data(), fs);
    if (k < ngrad && q.backward && q.grads[k].present()) {
      full_grads[k].resize(copies[k].size());
      q2.grads[k] = MutView<T>(full_grads[k].data(), fs);
      sum_back[k] = true;
    }
  }
  const RowRepeat expanded;  // nothing repeats in the expanded copies
  body(views, q2, expanded);
  for (int k = 0; k < ngrad; ++k) {
    if (!sum_back[k]) continue;  // at the full shape already, or not wanted
    std::vector<double> acc(static_cast<size_t>(in[k].numel()), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t src = source_row(r, lead[k], full);
      for (int64_t j = 0; j < dim; ++j)
        acc[static_cast<size_t>(src * dim + j)] +=
            static_cast<double>(full_grads[k][static_cast<size_t>(r * dim + j)]);
    }
    for (size_t i = 0; i < acc.size(); ++i) q.grads[k].data[i] = static_cast<T>(acc[i]);
  }
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

// torch: a 1-d target goes with 2-d inputs, a 0-d target with 1-d inputs; rows broadcast.
template <class T>
double cosine_run(View<T> input1, View<T> input2, View<T> target,
                  const CosineEmbeddingLossOptions& o, const Request<T>& q) {
  const char* fn = "cosine_embedding_loss";
  check_reduction(fn, o);
  if (target.dim() > 1)
    detail::fail_value(fn, "target", "a 0-d or 1-d array (multi-target not supported)",
                       "shape " + shape_to_string(target.shape));
  const int64_t want_dim = target.dim() == 1 ? 2 : 1;
  const std::string what = target.dim() == 1 ? "a 2-d array (N, D) for a 1-d target"
                                             : "a 1-d array (D,) for a 0-d target";
  if (input1.dim() != want_dim)
    detail::fail_value(fn, "input1", what, "shape " + shape_to_string(input1.shape));
  if (input2.dim() != want_dim)
    detail::fail_value(fn, "input2", what, "shape " + shape_to_string(input2.shape));
  Operands ops;
  ops.count = 3;
  ops.names[0] = "input1";
  ops.names[1] = "input2";
  ops.names[2] = "target";
  ops.vector[0] = ops.vector[1] = true;
  static const char* const grad_names[] = {"grad_input1", "grad_input2"};
  double divisor = 0.0;
  with_row_broadcast<T>(
      fn, {input1, input2, target, View<T>{}}, ops, 2, grad_names, q,
      [&](const std::array<View<T>, 4>& v, const Request<T>& rq, const RowRepeat& rep) {
        detail::check_shape_equal(fn, "input2", v[1].shape, v[0].shape, "input1's shape");
        if (v[2].dim() == 1)
          detail::check_shape_equal(fn, "target", v[2].shape, Shape{v[0].shape[0]}, "shape");
        const auto p = cosine_problem(v[0], v[1], v[2], o);
        divisor = run<T>(fn, p.rows, o.reduction, o.normalizer, p.out_shape, p.rs,
                         {{v[0], "input1", "grad_input1"},
                          {v[1], "input2", "grad_input2"},
                          {v[2], "target"}},
                         rq, rep);
      });
  return divisor;
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
}

// The shape checks, then body(views, request, repeat) on the inputs broadcast to one shape.
template <class T, class Body>
void triplet_broadcast(const char* fn, View<T> anchor, View<T> positive, View<T> negative,
                       const Request<T>& q, Body&& body) {
  check_triplet_shapes(fn, anchor, positive, negative);
  Operands ops;
  ops.count = 3;
  ops.names[0] = "anchor";
  ops.names[1] = "positive";
  ops.names[2] = "negative";
  ops.vector[0] = ops.vector[1] = ops.vector[2] = true;
  static const char* const grad_names[] = {"grad_anchor", "grad_positive", "grad_negative"};
  with_row_broadcast<T>(
      fn, {anchor, positive, negative, View<T>{}}, ops, 3, grad_names, q,
      [&](const std::array<View<T>, 4>& v, const Request<T>& rq, const RowRepeat& rep) {
        detail::check_shape_equal(fn, "positive", v[1].shape, v[0].shape, "anchor's shape");
        detail::check_shape_equal(fn, "negative", v[2].shape, v[0].shape, "anchor's shape");
        body(v, rq, rep);
      });
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

// run() on the (broadcast) anchor, positive and negative of a triplet loss.
template <class T, class Options>
double run_triplet(const char* fn, const EmbeddingRows<T>& rows, const Options& o,
                   const std::array<View<T>, 4>& v, const Request<T>& rq, const RowRepeat& rep) {
  return run<T>(fn, rows, o.reduction, o.normalizer, embedding_output_shape(v[0].shape),
                row_shape(v[0].shape),
                {{v[0], "anchor", "grad_anchor"},
                 {v[1], "positive", "grad_positive"},
                 {v[2], "negative", "grad_negative"}},
                rq, rep);
}

EmbeddingKernelId pnorm_kernel(double p) {
  if (p == 2.0) return EmbeddingKernelId::TripletL2;
  if (p == 1.0) return EmbeddingKernelId::TripletL1;
  if (std::isinf(p)) return EmbeddingKernelId::TripletLinf;
  return EmbeddingKernelId::TripletLp;
}

template <class T>
double triplet_run(View<T> anchor, View<T> positive, View<T> negative,
                   const TripletMarginLossOptions& o, const Request<T>& q) {
  const char* fn = "triplet_margin_loss";
  check_reduction(fn, o);
  check_margin_positive(fn, o.margin);
  if (!(o.p > 0)) detail::fail_value(fn, "p", "a number greater than 0", number(o.p));
  double divisor = 0.0;
  triplet_broadcast(fn, anchor, positive, negative, q,
                    [&](const auto& v, const Request<T>& rq, const RowRepeat& rep) {
                      // torch: the inf norm (a max) of no values has no identity and raises.
                      if (std::isinf(o.p) && row_shape(v[0].shape).dim == 0)
                        detail::fail_value(fn, "anchor", "a non-empty last dimension for p=inf",
                                           "shape " + shape_to_string(v[0].shape));
                      auto rows =
                          triplet_rows(v[0], v[1], v[2], pnorm_kernel(o.p), o.margin, o.swap);
                      rows.p = o.p;
                      rows.eps = o.eps;
                      divisor = run_triplet(fn, rows, o, v, rq, rep);
                    });
  return divisor;
}

EmbeddingKernelId distance_kernel(TripletDistance d) {
  switch (d) {
    case TripletDistance::Cosine: return EmbeddingKernelId::TripletCosine;
    case TripletDistance::SquaredEuclidean: return EmbeddingKernelId::TripletSquared;
    default: return EmbeddingKernelId::TripletL2;
  }
}

template <class T>
double triplet_distance_run(View<T> anchor, View<T> positive, View<T> negative,
                            const TripletMarginWithDistanceLossOptions& o, const Request<T>& q) {
  const char* fn = "triplet_margin_with_distance_loss";
  check_reduction(fn, o);
  check_margin_positive(fn, o.margin);
  double divisor = 0.0;
  triplet_broadcast(fn, anchor, positive, negative, q,
                    [&](const auto& v, const Request<T>& rq, const RowRepeat& rep) {
                      auto rows = triplet_rows(v[0], v[1], v[2], distance_kernel(o.distance),
                                               o.margin, o.swap);
                      rows.p = 2.0;
                      rows.eps = 1e-6;  // torch.pairwise_distance's default
                      divisor = run_triplet(fn, rows, o, v, rq, rep);
                    });
  return divisor;
}

}  // namespace

Shape embedding_output_shape(const Shape& input) {
  return input.size() <= 1 ? Shape{} : Shape(input.begin(), input.end() - 1);
}

namespace {
// Broadcast of row shapes of one rank; never throws (the loss's checks report bad shapes).
Shape broadcast_rows_or_first(std::initializer_list<Shape> leads) {
  Shape out = *leads.begin();
  for (const Shape& s : leads) {
    if (s.size() != out.size()) continue;
    for (size_t d = 0; d < s.size(); ++d)
      if (out[d] == 1) out[d] = s[d];
  }
  return out;
}
}  // namespace

Shape cosine_embedding_output_shape(const Shape& input1, const Shape& input2, const Shape& target) {
  return broadcast_rows_or_first(
      {target, embedding_output_shape(input1), embedding_output_shape(input2)});
}

Shape triplet_output_shape(const Shape& anchor, const Shape& positive, const Shape& negative) {
  return broadcast_rows_or_first({embedding_output_shape(anchor), embedding_output_shape(positive),
                                  embedding_output_shape(negative)});
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
  check_reduction(fn, o);
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
  cosine_run(input1, input2, target, o, Request<T>::forward_only(output));
}
template <class T>
void cosine_embedding_loss_backward(View<T> grad_output, View<T> input1, View<T> input2,
                                    View<T> target, MutView<T> grad_input1, MutView<T> grad_input2,
                                    const CosineEmbeddingLossOptions& o) {
  cosine_run(input1, input2, target, o,
             Request<T>::backward_only(grad_output, {grad_input1, grad_input2}));
}
template <class T>
void cosine_embedding_loss_forward_backward(View<T> input1, View<T> input2, View<T> target,
                                            View<T> grad_output, MutView<T> output,
                                            MutView<T> grad_input1, MutView<T> grad_input2,
                                            const CosineEmbeddingLossOptions& o) {
  cosine_run(input1, input2, target, o,
             Request<T>::fused(grad_output, output, {grad_input1, grad_input2}));
}

template <class T>
void triplet_margin_loss(View<T> anchor, View<T> positive, View<T> negative, MutView<T> output,
                         const TripletMarginLossOptions& o) {
  triplet_run(anchor, positive, negative, o, Request<T>::forward_only(output));
}
template <class T>
void triplet_margin_loss_backward(View<T> grad_output, View<T> anchor, View<T> positive,
                                  View<T> negative, MutView<T> grad_anchor,
                                  MutView<T> grad_positive, MutView<T> grad_negative,
                                  const TripletMarginLossOptions& o) {
  triplet_run(anchor, positive, negative, o,
              Request<T>::backward_only(grad_output, {grad_anchor, grad_positive, grad_negative}));
}
template <class T>
void triplet_margin_loss_forward_backward(View<T> anchor, View<T> positive, View<T> negative,
                                          View<T> grad_output, MutView<T> output,
                                          MutView<T> grad_anchor, MutView<T> grad_positive,
                                          MutView<T> grad_negative,
                                          const TripletMarginLossOptions& o) {
  triplet_run(anchor, positive, negative, o,
              Request<T>::fused(grad_output, output, {grad_anchor, grad_positive, grad_negative}));
}

template <class T>
void triplet_margin_with_distance_loss(View<T> anchor, View<T> positive, View<T> negative,
                                       MutView<T> output,
                                       const TripletMarginWithDistanceLossOptions& o) {
  triplet_distance_run(anchor, positive, negative, o, Request<T>::forward_only(output));
}
template <class T>
void triplet_margin_with_distance_loss_backward(View<T> grad_output, View<T> anchor,
                                                View<T> positive, View<T> negative,
                                                MutView<T> grad_anchor, MutView<T> grad_positive,
                                                MutView<T> grad_negative,
                                                const TripletMarginWithDistanceLossOptions& o) {
  triplet_distance_run(anchor, positive, negative, o,
                       Request<T>::backward_only(grad_output,
                                                 {grad_anchor, grad_positive, grad_negative}));
}
template <class T>
void triplet_margin_with_distance_loss_forward_backward(
    View<T> anchor, View<T> positive, View<T> negative, View<T> grad_output, MutView<T> output,
    MutView<T> grad_anchor, MutView<T> grad_positive, MutView<T> grad_negative,
    const TripletMarginWithDistanceLossOptions& o) {
  triplet_distance_run(anchor, positive, negative, o,
                       Request<T>::fused(grad_output, output,
                                         {grad_anchor, grad_positive, grad_negative}));
}

template <class T>
void triplet_margin_loss_from_distances(View<T> dist_pos, View<T> dist_neg, View<T> dist_swap,
                                        View<T> grad_output, MutView<T> output,
                                        MutView<T> grad_dist_pos, MutView<T> grad_dist_neg,
                                        MutView<T> grad_dist_swap,
                                        const TripletMarginWithDistanceLossOptions& o) {
  const char* fn = "triplet_margin_with_distance_loss";
  check_reduction(fn, o);
  check_margin_positive(fn, o.margin);
  detail::check_required(fn, "dist_pos", dist_pos);
  detail::check_required(fn, "dist_neg", dist_neg);
  // Checked even when swap=False leaves them unread: every pointer the API takes is aligned.
  detail::check_optional(fn, "dist_swap", dist_swap);
  detail::check_aligned(fn, "grad_dist_swap", grad_dist_swap.data);
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
  run<T>(fn, rows, o.reduction, o.normalizer, dist_pos.shape, rs,
         {{dist_pos, "dist_pos", "grad_dist_pos"},
          {dist_neg, "dist_neg", "grad_dist_neg"},
          {o.swap ? dist_swap : View<T>{}, "dist_swap", "grad_dist_swap"}},
         q);
}

// ---- NAME_mean_normalizer: the driver with a request for nothing -----------------------------
template <class T>
double cosine_embedding_loss_mean_normalizer(View<T> input1, View<T> input2, View<T> target,
                                             const CosineEmbeddingLossOptions& o) {
  detail::check_dividing_reduction("cosine_embedding_loss", o.reduction);
  return cosine_run(input1, input2, target, o, Request<T>{});
}
template <class T>
double triplet_margin_loss_mean_normalizer(View<T> anchor, View<T> positive, View<T> negative,
                                           const TripletMarginLossOptions& o) {
  detail::check_dividing_reduction("triplet_margin_loss", o.reduction);
  return triplet_run(anchor, positive, negative, o, Request<T>{});
}
template <class T>
double triplet_margin_with_distance_loss_mean_normalizer(
    View<T> anchor, View<T> positive, View<T> negative,
    const TripletMarginWithDistanceLossOptions& o) {
  detail::check_dividing_reduction("triplet_margin_with_distance_loss", o.reduction);
  return triplet_distance_run(anchor, positive, negative, o, Request<T>{});
}

#define LOSSKIT_INSTANTIATE(T)                                                                     \
  template void cosine_embedding_loss<T>(View<T>, View<T>, View<T>, MutView<T>,                    \
                                         const CosineEmbeddingLossOptions&);                       \
  template void cosine_embedding_loss_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>,  \
                                                  MutView<T>, const CosineEmbeddingLossOptions&);  \
  template void cosine_embedding_loss_forward_backward<T>(View<T>, View<T>, View<T>, View<T>,      \
                                                          MutView<T>, MutView<T>, MutView<T>,      \
                                                          const CosineEmbeddingLossOptions&);      \
  template void triplet_margin_loss<T>(View<T>, View<T>, View<T>, MutView<T>,                      \
                                       const TripletMarginLossOptions&);                           \
  template void triplet_margin_loss_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>,    \
                                                MutView<T>, MutView<T>,                            \
                                                const TripletMarginLossOptions&);                  \
  template void triplet_margin_loss_forward_backward<T>(View<T>, View<T>, View<T>, View<T>,        \
                                                        MutView<T>, MutView<T>, MutView<T>,        \
                                                        MutView<T>,                                \
                                                        const TripletMarginLossOptions&);          \
  template void triplet_margin_with_distance_loss<T>(View<T>, View<T>, View<T>, MutView<T>,        \
                                                     const TripletMarginWithDistanceLossOptions&); \
  template void triplet_margin_with_distance_loss_backward<T>(                                     \
      View<T>, View<T>, View<T>, View<T>, MutView<T>, MutView<T>, MutView<T>,                      \
      const TripletMarginWithDistanceLossOptions&);                                                \
  template void triplet_margin_with_distance_loss_forward_backward<T>(                             \
      View<T>, View<T>, View<T>, View<T>, MutView<T>, MutView<T>, MutView<T>, MutView<T>,          \
      const TripletMarginWithDistanceLossOptions&);                                                \
  template void triplet_margin_loss_from_distances<T>(                                             \
      View<T>, View<T>, View<T>, View<T>, MutView<T>, MutView<T>, MutView<T>, MutView<T>,          \
      const TripletMarginWithDistanceLossOptions&);
LOSSKIT_INSTANTIATE(float)
LOSSKIT_INSTANTIATE(double)
// 16-bit storage (common/staging.hpp): read in place, computed by the float kernels.
LOSSKIT_INSTANTIATE(bfloat16)
LOSSKIT_INSTANTIATE(float16)

#define LOSSKIT_INSTANTIATE_NORMALIZER(T)                                                          \
  template double cosine_embedding_loss_mean_normalizer<T>(View<T>, View<T>, View<T>,              \
                                                           const CosineEmbeddingLossOptions&);     \
  template double triplet_margin_loss_mean_normalizer<T>(View<T>, View<T>, View<T>,                \
                                                         const TripletMarginLossOptions&);         \
  template double triplet_margin_with_distance_loss_mean_normalizer<T>(                            \
      View<T>, View<T>, View<T>, const TripletMarginWithDistanceLossOptions&);
LOSSKIT_INSTANTIATE_NORMALIZER(float)
LOSSKIT_INSTANTIATE_NORMALIZER(double)
LOSSKIT_INSTANTIATE_NORMALIZER(bfloat16)
LOSSKIT_INSTANTIATE_NORMALIZER(float16)
#undef LOSSKIT_INSTANTIATE_NORMALIZER
#undef LOSSKIT_INSTANTIATE

}  // namespace losskit
