// Entry points of the CTC loss: every check (shapes, then lengths and label values in a pre-pass)
// before any work, the workspace, then the per-sample kernel of the active instruction set over
// the batch, and the reduction. The formula is documented in python/losskit/_functional/ctc.py.
#include "losskit/ctc.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "common/checks.hpp"
#include "common/cpu_dispatch.hpp"
#include "common/parallel.hpp"
#include "common/reduce.hpp"
#include "ctc/ctc_kernels.hpp"
#include "losskit/errors.hpp"
#include "losskit/threads.hpp"

namespace losskit {
namespace {

constexpr const char* kFn = "ctc_loss";

// Below this many (t, s) cells in the whole batch the loss runs on the calling thread: a parallel
// region costs a few microseconds, about what 10^4 cells take.
constexpr int64_t kSerialCells = 16384;

template <class T>
detail::CtcItemKernel<T> ctc_kernel() {
  return LOSSKIT_DISPATCH(detail::CtcItemKernel<T>, ctc_item);
}

// The scratch layout of one thread (see CtcLayout). Throws ValueError if it cannot be addressed.
detail::CtcLayout make_layout(int64_t T, int64_t C, int64_t max_target_length, bool backward) {
  auto round8 = [](int64_t n) { return (n + 7) / 8 * 8; };
  detail::CtcLayout L;
  L.row = round8(2 * max_target_length + 12);  // W + 2 padding + the band loops' overrun (<= 7) + 2
  L.alpha_rows = backward ? std::max<int64_t>(T, 2) : 2;
  int64_t alpha_size = 0;
  if (__builtin_mul_overflow(L.alpha_rows, L.row, &alpha_size) ||
      alpha_size > std::numeric_limits<int64_t>::max() / 64)
    detail::fail_value(kFn, "targets", "a length whose T x (2S + 1) table fits in memory",
                       "S = " + std::to_string(max_target_length) +
                           " with T = " + std::to_string(T));
  int64_t off = 0;
  L.alpha = off, off += alpha_size;
  L.beta = off, off += backward ? 2 * L.row : 0;
  L.lpe = off, off += L.row;
  L.allow = off, off += L.row;
  L.post = off, off += L.row;
  L.ext = off, off += L.row;
  L.occ = off, off += backward ? round8(C) : 0;
  L.scale = off, off += backward ? round8(L.alpha_rows) : 0;
  L.y = off, off += backward ? alpha_size : 0;
  L.total = off;
  return L;
}

// The scratch of calls that bring no workspace: kept per calling thread and grown when needed, so
// repeated calls (a training loop) neither allocate nor page-fault. Scratch larger than
// kKeptScratch is allocated for the call alone (`temporary`), so one huge call does not pin its
// memory for the thread's lifetime. Contents are never read before being written (see the margins
// in ctc_kernels.cpp); LOSSKIT_CTC_POISON_SCRATCH fills them with NaN to prove it in tests.
constexpr size_t kKeptScratch = size_t{64} << 20;  // bytes

double* calling_thread_scratch(size_t n, std::unique_ptr<double[]>& temporary) {
  thread_local std::unique_ptr<double[]> buffer;
  thread_local size_t capacity = 0;
  double* p;
  if (n * sizeof(double) > kKeptScratch) {
    temporary.reset(new double[n]);
    p = temporary.get();
  } else {
    if (capacity < n) {
      buffer.reset();
      buffer.reset(new double[n]);
      capacity = n;
    }
    p = buffer.get();
  }
#ifdef LOSSKIT_CTC_POISON_SCRATCH
  for (size_t i = 0; i < n; ++i) p[i] = std::numeric_limits<double>::quiet_NaN();
#endif
  return p;
}

// Everything the checks learn about a call.
struct Problem {
  int64_t T = 0, N = 0, C = 0;
  bool batched = true;
  int64_t max_target_length = 0;
  std::vector<int64_t> target_offset;  // first label of sample b in targets
  int64_t cells = 0;                   // sum of input_length * (2 target_length + 1)
};

std::string at_sample(int64_t value, int64_t b) {
  return std::to_string(value) + " for sample " + std::to_string(b);
}

template <class T>
Problem check_ctc(View<T> log_probs, View<int64_t> targets, View<int64_t> input_lengths,
                  View<int64_t> target_lengths, const CtcLossOptions& o) {
  using detail::fail_index;
  using detail::fail_value;
  Problem p;
  detail::check_reduction(kFn, o);
  if (log_probs.dim() != 2 && log_probs.dim() != 3)
    fail_value(kFn, "log_probs", "a (T, N, C) or unbatched (T, C) array",
               "shape " + shape_to_string(log_probs.shape));
  if (log_probs.numel() == 0)
    fail_value(kFn, "log_probs", "a non-empty array", "shape " + shape_to_string(log_probs.shape));
  detail::check_required(kFn, "log_probs", log_probs);
  p.batched = log_probs.dim() == 3;
  p.T = log_probs.shape[0];
  p.N = p.batched ? log_probs.shape[1] : 1;
  p.C = log_probs.shape.back();
  if (o.blank < 0 || o.blank >= p.C)
    fail_value(kFn, "blank", "a class in [0, " + std::to_string(p.C) + ")",
               std::to_string(o.blank));
  if (input_lengths.numel() != p.N)
    fail_value(kFn, "input_lengths", std::to_string(p.N) + " values (one per sample)",
               "shape " + shape_to_string(input_lengths.shape));
  if (target_lengths.numel() != p.N)
    fail_value(kFn, "target_lengths", std::to_string(p.N) + " values (one per sample)",
               "shape " + shape_to_string(target_lengths.shape));
  detail::check_required(kFn, "input_lengths", input_lengths);
  detail::check_required(kFn, "target_lengths", target_lengths);
  detail::check_required(kFn, "targets", targets);
  if (targets.dim() != 1 && targets.dim() != 2)
    fail_value(kFn, "targets", "a padded (N, S) or concatenated 1-D array",
               "shape " + shape_to_string(targets.shape));
  const bool concatenated = targets.dim() == 1;
  if (!concatenated && targets.shape[0] != p.N)
    fail_value(kFn, "targets", "a padded (" + std::to_string(p.N) + ", S) array",
               "shape " + shape_to_string(targets.shape));
  const int64_t S = concatenated ? targets.shape[0] : targets.shape[1];

  // Lengths (pre-pass over N values).
  p.target_offset.resize(static_cast<size_t>(p.N));
  int64_t pos = 0;
  for (int64_t b = 0; b < p.N; ++b) {
    const int64_t il = input_lengths.data[b], tl = target_lengths.data[b];
    if (il < 0 || il > p.T)
      fail_value(kFn, "input_lengths",
                 "values in [0, " + std::to_string(p.T) + "] (T, the length of log_probs)",
                 at_sample(il, b));
    if (tl < 0) fail_value(kFn, "target_lengths", "non-negative values", at_sample(tl, b));
    if (concatenated) {
      if (tl > S - pos)
        fail_value(kFn, "target_lengths",
                   "lengths summing to the " + std::to_string(S) +
                       " labels of the concatenated targets",
                   at_sample(tl, b) + " after " + std::to_string(pos) + " labels");
      p.target_offset[static_cast<size_t>(b)] = pos;
      pos += tl;
    } else {
      if (tl > S)
        fail_value(kFn, "target_lengths",
                   "values at most " + std::to_string(S) + " (the padded targets' width)",
                   at_sample(tl, b));
      p.target_offset[static_cast<size_t>(b)] = b * S;
    }
    p.max_target_length = std::max(p.max_target_length, tl);
    p.cells += il * (2 * tl + 1);
  }
  if (concatenated && pos != S)
    fail_value(kFn, "targets",
               "the sum of target_lengths (" + std::to_string(pos) + ") labels when concatenated",
               "shape " + shape_to_string(targets.shape));

  // Label values (pre-pass over the labels in use; padding is never read).
  for (int64_t b = 0; b < p.N; ++b) {
    const int64_t* lab = targets.data + p.target_offset[static_cast<size_t>(b)];
    for (int64_t i = 0, n = target_lengths.data[b]; i < n; ++i) {
      if (lab[i] < 0 || lab[i] >= p.C)
        fail_index(kFn, "targets", "labels in [0, " + std::to_string(p.C) + ")",
                   std::to_string(lab[i]) + " at position " + std::to_string(i) + " of sample " +
                       std::to_string(b));
      if (lab[i] == o.blank)
        fail_value(kFn, "targets", "labels other than blank (" + std::to_string(o.blank) + ")",
                   std::to_string(lab[i]) + " at position " + std::to_string(i) + " of sample " +
                       std::to_string(b));
    }
  }
  return p;
}

template <class T>
void check_grad_output(View<T> grad_output, const Shape& out_shape, Reduction r) {
  detail::check_optional(kFn, "grad_output", grad_output);
  if (!grad_output.present()) return;
  if (r != Reduction::None && !grad_output.shape.empty())
    detail::fail_value(kFn, "grad_output", "a scalar for a reduced loss",
                       "shape " + shape_to_string(grad_output.shape));
  if (r == Reduction::None)
    detail::check_shape_equal(kFn, "grad_output", grad_output.shape, out_shape, "shape");
}

// The driver of the three entry points: output and/or gradient (absent views are not computed).
// Returns the batch size, the divisor 'mean' uses after dividing each loss by its target length
// (ctc_loss_mean_normalizer's value); with neither forward nor backward it stops after the checks.
template <class T>
double run(View<T> log_probs, View<int64_t> targets, View<int64_t> input_lengths,
           View<int64_t> target_lengths, View<T> grad_output, MutView<T> output, MutView<T> grad,
           const CtcLossOptions& o, CtcWorkspace ws, bool forward, bool backward) {
  const Problem p = check_ctc(log_probs, targets, input_lengths, target_lengths, o);
  const Shape out_shape = ctc_loss_output_shape(log_probs.shape, o.reduction);
  if (forward) detail::check_output(kFn, "output", output, out_shape);
  if (backward) {
    check_grad_output(grad_output, out_shape, o.reduction);
    detail::check_output(kFn, "grad_log_probs", grad, log_probs.shape);
  }
  const double own_divisor = static_cast<double>(p.N);
  if (!forward && !backward) return own_divisor;
  const double divisor = detail::mean_divisor(o.normalizer, own_divisor);

  // Workspace: one slice per thread.
  const detail::CtcLayout layout = make_layout(p.T, p.C, p.max_target_length, backward);
  const size_t per_thread = static_cast<size_t>(layout.total) * sizeof(double);
  // The gradient rows cost about one cell per 8 classes.
  const int64_t work = p.cells + (backward ? p.T * p.N * p.C / 8 : 0);
  int threads = work < kSerialCells ? 1 : get_num_threads();
  threads = static_cast<int>(std::min<int64_t>(threads, p.N));
  double* scratch = nullptr;
  std::unique_ptr<double[]> temporary;
  if (ws.data != nullptr) {
    const size_t fits = ws.bytes / per_thread;
    if (fits < 1)
      detail::fail_value(kFn, "workspace",
                         "at least " + std::to_string(per_thread) +
                             " bytes (ctc_loss_workspace_size for one thread)",
                         std::to_string(ws.bytes) + " bytes");
    detail::check_aligned(kFn, "workspace", ws.data, alignof(double));
    threads = static_cast<int>(std::min<size_t>(static_cast<size_t>(threads), fits));
    scratch = static_cast<double*>(ws.data);
  } else {
    scratch =
        calling_thread_scratch(static_cast<size_t>(layout.total) * static_cast<size_t>(threads),
                               temporary);
  }

  detail::DisjointArrays(kFn)
      .read("log_probs", log_probs)
      .read("targets", targets)
      .read("input_lengths", input_lengths)
      .read("target_lengths", target_lengths)
      .read("grad_output", backward ? grad_output : View<T>{})
      .write("output", forward ? output : MutView<T>{})
      .write("grad_log_probs", backward ? grad : MutView<T>{})
      .write_bytes("workspace", ws.data, ws.bytes)
      .check();

  // Per-sample d(reduced loss)/d(loss_b), grad_output folded in.
  const int64_t N = p.N;
  const double go0 = grad_output.present() ? static_cast<double>(grad_output.data[0]) : 1.0;
  auto grad_scale = [&](int64_t b) {
    switch (o.reduction) {
      case Reduction::None:
        return grad_output.present() ? static_cast<double>(grad_output.data[b]) : 1.0;
      case Reduction::Mean:
        return go0 / divisor / static_cast<double>(std::max<int64_t>(target_lengths.data[b], 1));
      default: return go0;
    }
  };

  // Longest samples first, handed out one at a time: threads stay busy when lengths vary.
  std::vector<int64_t> order(static_cast<size_t>(N));
  std::iota(order.begin(), order.end(), int64_t{0});
  auto cost = [&](int64_t b) { return input_lengths.data[b] * (2 * target_lengths.data[b] + 1); };
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return cost(a) > cost(b); });

  std::vector<double> nll(static_cast<size_t>(N));
  const detail::CtcItemKernel<T> kernel = ctc_kernel<T>();
  const int64_t C = p.C;
  const int64_t grain = (N + threads - 1) / threads;  // makes parallel_for use `threads` at most
  detail::parallel_for_dynamic(0, N, grain, [&](int64_t i, int thread) {
    const int64_t b = order[static_cast<size_t>(i)];
    detail::CtcItem<T> it;
    it.log_probs = log_probs.data + b * C;
    it.grad = backward ? grad.data + b * C : nullptr;
    it.target = targets.data + p.target_offset[static_cast<size_t>(b)];
    it.stride = N * C;
    it.num_labels = C;
    it.max_time = p.T;
    it.input_length = input_lengths.data[b];
    it.target_length = target_lengths.data[b];
    it.blank = o.blank;
    it.grad_scale = backward ? grad_scale(b) : 0.0;
    it.zero_infinity = o.zero_infinity;
    it.scratch = scratch + static_cast<size_t>(thread) * static_cast<size_t>(layout.total);
    it.layout = layout;
    const double l = kernel(it);
    nll[static_cast<size_t>(b)] =
        o.zero_infinity && l == std::numeric_limits<double>::infinity() ? 0.0 : l;
  });
  if (!forward) return own_divisor;

  // Reduction in double, in a fixed order (the same for any thread count).
  switch (o.reduction) {
    case Reduction::None:
      for (int64_t b = 0; b < N; ++b) output.data[b] = static_cast<T>(nll[static_cast<size_t>(b)]);
      break;
    case Reduction::Sum:
      output.data[0] = static_cast<T>(detail::combine_partials(nll.data(), N));
      break;
    default: {  // Mean: each loss divided by its target length (at least 1), then averaged
      for (int64_t b = 0; b < N; ++b)
        nll[static_cast<size_t>(b)] /=
            static_cast<double>(std::max<int64_t>(target_lengths.data[b], 1));
      output.data[0] = static_cast<T>(detail::combine_partials(nll.data(), N) / divisor);
      break;
    }
  }
  return own_divisor;
}

}  // namespace

Shape ctc_loss_output_shape(const Shape& log_probs_shape, Reduction reduction) {
  if (reduction != Reduction::None || log_probs_shape.size() != 3) return {};
  return {log_probs_shape[1]};
}

size_t ctc_loss_workspace_size(const Shape& log_probs_shape, int64_t max_target_length,
                               bool backward, int num_threads) {
  if (log_probs_shape.size() != 2 && log_probs_shape.size() != 3)
    detail::fail_value("ctc_loss_workspace_size", "log_probs_shape", "a (T, N, C) or (T, C) shape",
                       shape_to_string(log_probs_shape));
  if (max_target_length < 0)
    detail::fail_value("ctc_loss_workspace_size", "max_target_length", "a non-negative length",
                       std::to_string(max_target_length));
  const int threads = num_threads > 0 ? num_threads : get_num_threads();
  const detail::CtcLayout layout =
      make_layout(log_probs_shape[0], log_probs_shape.back(), max_target_length, backward);
  return static_cast<size_t>(layout.total) * sizeof(double) * static_cast<size_t>(threads);
}

template <class T>
void ctc_loss(View<T> log_probs, View<int64_t> targets, View<int64_t> input_lengths,
              View<int64_t> target_lengths, MutView<T> output, const CtcLossOptions& o,
              CtcWorkspace ws) {
  run<T>(log_probs, targets, input_lengths, target_lengths, {}, output, {}, o, ws, true, false);
}

template <class T>
void ctc_loss_backward(View<T> grad_output, View<T> log_probs, View<int64_t> targets,
                       View<int64_t> input_lengths, View<int64_t> target_lengths,
                       MutView<T> grad_log_probs, const CtcLossOptions& o, CtcWorkspace ws) {
  run<T>(log_probs, targets, input_lengths, target_lengths, grad_output, {}, grad_log_probs, o, ws,
         false, true);
}

template <class T>
void ctc_loss_forward_backward(View<T> log_probs, View<int64_t> targets,
                               View<int64_t> input_lengths, View<int64_t> target_lengths,
                               View<T> grad_output, MutView<T> output, MutView<T> grad_log_probs,
                               const CtcLossOptions& o, CtcWorkspace ws) {
  run<T>(log_probs, targets, input_lengths, target_lengths, grad_output, output, grad_log_probs, o,
         ws, true, true);
}

template <class T>
double ctc_loss_mean_normalizer(View<T> log_probs, View<int64_t> targets,
                                View<int64_t> input_lengths, View<int64_t> target_lengths,
                                const CtcLossOptions& o) {
  detail::check_dividing_reduction(kFn, o.reduction);
  return run<T>(log_probs, targets, input_lengths, target_lengths, {}, {}, {}, o, {}, false, false);
}

#define LOSSKIT_INSTANTIATE_CTC(T)                                                                 \
  template void ctc_loss<T>(View<T>, View<int64_t>, View<int64_t>, View<int64_t>, MutView<T>,      \
                            const CtcLossOptions&, CtcWorkspace);                                  \
  template void ctc_loss_backward<T>(View<T>, View<T>, View<int64_t>, View<int64_t>,               \
                                     View<int64_t>, MutView<T>, const CtcLossOptions&,             \
                                     CtcWorkspace);                                                \
  template void ctc_loss_forward_backward<T>(View<T>, View<int64_t>, View<int64_t>, View<int64_t>, \
                                             View<T>, MutView<T>, MutView<T>,                      \
                                             const CtcLossOptions&, CtcWorkspace);                 \
  template double ctc_loss_mean_normalizer<T>(View<T>, View<int64_t>, View<int64_t>,               \
                                              View<int64_t>, const CtcLossOptions&);
LOSSKIT_INSTANTIATE_CTC(float)
LOSSKIT_INSTANTIATE_CTC(double)
LOSSKIT_INSTANTIATE_CTC(bfloat16)
LOSSKIT_INSTANTIATE_CTC(float16)
#undef LOSSKIT_INSTANTIATE_CTC

}  // namespace losskit
