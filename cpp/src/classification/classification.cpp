// Entry points of the classification family: checks (shapes, options, and a pre-pass over every
// class index) before any work, then the kernels of the active instruction set, threaded over
// fixed blocks of positions so every reduction is bitwise the same for any thread count.
#include "losskit/classification.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "classification/classification_kernels.hpp"
#include "common/checks.hpp"
#include "common/cpu_dispatch.hpp"
#include "common/parallel.hpp"
#include "common/reduce.hpp"
#include "common/request.hpp"
#include "common/staging.hpp"
#include "common/storage.hpp"
#include "losskit/threads.hpp"

namespace losskit {

namespace detail {

template <class T>
const ClassificationKernels<T>& classification_kernels() {
  if constexpr (std::is_same_v<T, float>)
    return *LOSSKIT_DISPATCH(const ClassificationKernels<float>*, classification_kernels_f32);
  else return *LOSSKIT_DISPATCH(const ClassificationKernels<double>*, classification_kernels_f64);
}

namespace units {

// A block of positions ("unit") holds about kUnitElems elements; a thread gets at least
// kThreadElems elements, so small inputs stay on the calling thread. Unit boundaries depend only
// on the shape, never on the thread count.
constexpr int64_t kUnitElems = 16384;
constexpr int64_t kThreadElems = 32768;
// Rows of at least this many classes are split across threads when there are too few rows.
constexpr int64_t kInRowMinClasses = 16384;
constexpr int64_t kNllTile = 256;

int64_t rows_per_unit(int64_t C) {
  return std::clamp<int64_t>(kUnitElems / std::max<int64_t>(C, 1), 1, 1024);
}

// Runs fn(unit, thread) -> double over units in parallel and combines the unit sums in the
// fixed tree of combine_partials.
template <class Fn>
double run_units(int64_t nunits, int64_t elems_per_unit, Fn&& fn) {
  if (nunits <= 0) return 0.0;
  std::vector<double> partials(static_cast<size_t>(nunits), 0.0);
  const int64_t grain = std::max<int64_t>(1, kThreadElems / std::max<int64_t>(1, elems_per_unit));
  parallel_for(0, nunits, grain, [&](int64_t u0, int64_t u1, int thread) {
    for (int64_t u = u0; u < u1; ++u) partials[static_cast<size_t>(u)] = fn(u, thread);
  });
  return combine_partials(partials.data(), nunits);
}

}  // namespace units

template <class T>
double cross_entropy_rows(const CeArgs<T>& a) {
  using namespace units;
  const CeKernels<T>& k = classification_kernels<T>().ce;
  const int64_t N = a.N, C = a.C;
  const int64_t R = rows_per_unit(C);
  const int64_t nunits = (N + R - 1) / R;
  const int nthreads = get_num_threads();
  if (nthreads > 1 && N < 2 * nthreads && C >= kInRowMinClasses) {
    // Few long rows: the chunks of all rows run in parallel (one region for the statistics, one
    // for the gradient); statistics are folded in chunk order by the same functions the row path
    // uses, so the bits do not change.
    const int64_t nchunks = (C + kCeChunk - 1) / kCeChunk;
    std::vector<CeStats> stats(static_cast<size_t>(N * nchunks));
    std::vector<CeRowConsts> consts(static_cast<size_t>(N));
    std::vector<T> xt(static_cast<size_t>(N));
    std::vector<double> partials(static_cast<size_t>(nunits), 0.0);
    constexpr int64_t kGrainChunks = 4;
    for (int64_t r = 0; r < N; ++r) xt[static_cast<size_t>(r)] = k.target_logit(a, r);
    parallel_for(0, N * nchunks, kGrainChunks, [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1;) {  // runs of chunks within one row
        const int64_t r = i / nchunks, k0 = i % nchunks;
        const int64_t k1 = std::min(nchunks, k0 + (i1 - i));
        k.row_stats(a, r, k0, k1, stats.data() + i);
        i += k1 - k0;
      }
    });
    for (int64_t r = 0; r < N; ++r) {
      CeStats acc;
      for (int64_t c = 0; c < nchunks; ++c)
        k.combine(acc, stats[static_cast<size_t>(r * nchunks + c)]);
      partials[static_cast<size_t>(r / R)] +=
          k.row_finish(a, r, acc, xt[static_cast<size_t>(r)], &consts[static_cast<size_t>(r)]);
    }
    if (a.grad || a.grad_target) {
      parallel_for(0, N * nchunks, kGrainChunks, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1;) {
          const int64_t r = i / nchunks, k0 = i % nchunks;
          const int64_t k1 = std::min(nchunks, k0 + (i1 - i));
          k.row_grad(a, r, consts[static_cast<size_t>(r)], k0, k1, stats.data() + i);
          i += k1 - k0;
        }
      });
      for (int64_t r = 0; r < N; ++r) {
        const CeRowConsts& rc = consts[static_cast<size_t>(r)];
        if (a.grad && rc.target >= 0) {
          T& gt = a.grad[r * C + rc.target];
          gt = static_cast<T>(gt - static_cast<T>(rc.fix));
        }
      }
    }
    return combine_partials(partials.data(), nunits);
  }
  return run_units(nunits, R * C,
                   [&](int64_t u, int) { return k.rows(a, u * R, std::min(N, (u + 1) * R)); });
}

template double cross_entropy_rows<float>(const CeArgs<float>&);
template double cross_entropy_rows<double>(const CeArgs<double>&);

void check_ce_extras(const char* fn, double z_loss, const std::optional<double>& softcap) {
  if (!(z_loss >= 0.0 && std::isfinite(z_loss)))
    fail_value(fn, "z_loss", "a finite value >= 0", std::to_string(z_loss));
  if (softcap && !(*softcap > 0.0 && std::isfinite(*softcap)))
    fail_value(fn, "softcap", "a finite value > 0 or None", std::to_string(*softcap));
}

template <class T>
void set_ce_extras(const char* fn, CeArgs<T>& a, double z_loss,
                   const std::optional<double>& softcap, const CrossEntropyStats<T>& stats,
                   const Shape& loss_shape) {
  check_ce_extras(fn, z_loss, softcap);
  const auto out = [&](const char* arg, const auto& v) {
    if (v.present() || !v.shape.empty()) check_output(fn, arg, v, loss_shape);
    return v.data;
  };
  a.z_loss = z_loss;
  a.softcap = softcap ? *softcap : 0.0;
  a.lse_out = out("lse", stats.lse);
  a.entropy_out = out("entropy", stats.entropy);
  a.correct_out = out("correct", stats.correct);
}
template void set_ce_extras<float>(const char*, CeArgs<float>&, double,
                                   const std::optional<double>&, const CrossEntropyStats<float>&,
                                   const Shape&);
template void set_ce_extras<double>(const char*, CeArgs<double>&, double,
                                    const std::optional<double>&, const CrossEntropyStats<double>&,
                                    const Shape&);

}  // namespace detail

Shape classification_output_shape(const Shape& input, bool class_dim_last) {
  if (input.empty()) return {};
  Shape out;
  if (class_dim_last) return Shape(input.begin(), input.end() - 1);
  if (input.size() == 1) return {};
  out.push_back(input[0]);
  out.insert(out.end(), input.begin() + 2, input.end());
  return out;
}

namespace {

using detail::CeArgs;
using detail::fail_index;
using detail::fail_value;
using detail::units::kNllTile;
using detail::units::kUnitElems;
using detail::units::rows_per_unit;
using detail::units::run_units;

// What a call computes: the loss (output present), the gradients (any present), or both.
template <class T>
using Mode = detail::Request<T, 2>;  // grads: {grad_input, grad_target}

using detail::check_reduction;

// (N, C, S) of a class-dimension-second input; C and S as torch reads them.
struct Layout {
  int64_t N = 1, C = 0, S = 1;
  Shape out;  // unreduced output shape (= class-index target shape)
};

template <class T>
Layout class_layout(const char* fn, const View<T>& input, bool allow_kdim) {
  detail::check_required(fn, "input", input);
  const int64_t d = input.dim();
  if (d < 1 || (!allow_kdim && d > 2))
    fail_value(fn, "input",
               allow_kdim ? "a (C), (N, C) or (N, C, d1, ..., dK) array" : "a (C) or (N, C) array",
               "shape " + shape_to_string(input.shape));
  Layout l;
  if (d == 1) {
    l.C = input.shape[0];
  } else {
    l.N = input.shape[0];
    l.C = input.shape[1];
    for (int64_t i = 2; i < d; ++i) l.S *= input.shape[static_cast<size_t>(i)];
  }
  l.out = classification_output_shape(input.shape);
  return l;
}

template <class T>
void check_class_weight(const char* fn, const View<T>& weight, int64_t C,
                        const char* arg = "weight") {
  if (!weight.present() && weight.shape.empty()) return;
  detail::check_required(fn, arg, weight);
  if (weight.shape != Shape{C})
    fail_value(fn, arg,
               "a weight for each of the " + std::to_string(C) + " classes, shape (" +
                   std::to_string(C) + ",)",
               "shape " + shape_to_string(weight.shape));
}

// Output and grad_output shapes; returns the scalar grad_output of a reduced loss (1 if absent).
// `arrays` holds the call's inputs; the outputs join them for the overlap check.
template <class T>
double check_mode(const char* fn, const Mode<T>& m, Reduction r, const Shape& out_shape,
                  const Shape& input_shape, const Shape* target_shape,
                  detail::DisjointArrays& arrays) {
  const Shape loss_shape = r == Reduction::None ? out_shape : Shape{};
  if (m.output.present() || m.output.shape != Shape{})
    detail::check_output(fn, "output", m.output, loss_shape);
  if (m.backward) {
    if (m.grad_output.present() || !m.grad_output.shape.empty()) {
      detail::check_required(fn, "grad_output", m.grad_output);
      detail::check_shape_equal(fn, "grad_output", m.grad_output.shape, loss_shape,
                                r == Reduction::None ? "the loss's shape" : "a scalar, shape");
    }
    if (m.grads[0].present() || !m.grads[0].shape.empty())
      detail::check_output(fn, "grad_input", m.grads[0], input_shape);
    if (target_shape && (m.grads[1].present() || !m.grads[1].shape.empty()))
      detail::check_output(fn, "grad_target", m.grads[1], *target_shape);
  }
  arrays.write("output", m.output).read("grad_output", m.grad_output);
  if (m.backward) arrays.write("grad_input", m.grads[0]);
  if (m.backward && target_shape) arrays.write("grad_target", m.grads[1]);
  arrays.check();
  if (r != Reduction::None && m.grad_output.present())
    return static_cast<double>(m.grad_output.data[0]);
  return 1.0;
}

// Writes a reduced result; `denom` is the divisor of 'mean' (mean_divisor's).
template <class T>
void write_reduced(const Mode<T>& m, Reduction r, double total, double denom) {
  if (r == Reduction::None || !m.output.present()) return;
  m.output.data[0] = static_cast<T>(r == Reduction::Mean ? total / denom : total);
}

// The pre-pass over class indices: each is ignore_index or in [0, C); returns the sum of the
// weights of the counted targets (their number without weights), in position order.
template <class T>
double check_targets(const char* fn, const View<int64_t>& target, int64_t C, int64_t ignore_index,
                     const T* weight) {
  double total = 0.0;
  const int64_t n = target.numel();
  for (int64_t p = 0; p < n; ++p) {
    const int64_t t = target.data[p];
    if (t == ignore_index) continue;
    if (t < 0 || t >= C)
      fail_index(fn, "target",
                 "class indices in [0, " + std::to_string(C) + ") or ignore_index " +
                     std::to_string(ignore_index),
                 std::to_string(t));
    total += weight ? static_cast<double>(weight[t]) : 1.0;
  }
  return total;
}

// ---- cross_entropy ---------------------------------------------------------------------------

template <class T>
double ce_run(const CeArgs<T>& a) {
  if (a.S == 1) return detail::cross_entropy_rows(a);
  const auto& k = detail::classification_kernels<T>().ce;
  const int64_t width = detail::ce_tile_width(a.C, static_cast<int64_t>(sizeof(T)));
  const int64_t tiles = (a.S + width - 1) / width;
  return run_units(a.N * tiles, a.C * width, [&](int64_t u, int) {
    const int64_t n = u / tiles, s0 = (u % tiles) * width;
    return k.tile(a, n, s0, std::min(a.S, s0 + width));
  });
}

void check_smoothing(const char* fn, double eps) {
  if (!(eps >= 0.0 && eps <= 1.0))
    fail_value(fn, "label_smoothing", "a value between 0.0 and 1.0", std::to_string(eps));
}

template <class T>
CeArgs<T> ce_common(const Layout& l, View<T> input, View<T> weight, const CrossEntropyOptions& o) {
  CeArgs<T> a;
  a.input = input.data;
  a.weight = weight.data;
  a.N = l.N;
  a.C = l.C;
  a.S = l.S;
  a.ignore_index = o.ignore_index;
  a.smoothing = o.label_smoothing;
  a.weight_sum =
      weight.present() ? detail::blocked_sum(weight.data, l.C) : static_cast<double>(l.C);
  return a;
}

// Each loss's driver returns its own divisor of 'mean' (NAME_mean_normalizer's value); a request
// for nothing stops after the checks.

// 16-bit storage, (C) or (N, C) input: the 16-bit rows kernel (CeKernels::rows_bfloat16 /
// rows_float16: each chunk of logits widened into L1 as it is read, the gradient rounded as it is
// stored) on the float path's units of rows; a thread's scratch is one row of floats.
template <class S>
double ce_run_half_rows(const CeArgs<S>& h) {
  const auto& k = detail::classification_kernels<float>().ce;
  const auto rows = [&] {
    if constexpr (std::is_same_v<S, bfloat16>) return k.rows_bfloat16;
    else return k.rows_float16;
  }();
  const int64_t N = h.N, C = h.C, R = rows_per_unit(C);
  const std::vector<float> weight = detail::widened(h.weight, C);
  CeArgs<float> f;
  static_cast<detail::CeScalars&>(f) = h;
  f.weight = h.weight ? weight.data() : nullptr;
  detail::StageScratch rowbuf(h.grad ? C : 0);
  return run_units((N + R - 1) / R, R * C, [&](int64_t u, int thread) {
    return rows(f, h, u * R, std::min(N, (u + 1) * R), rowbuf.thread(thread));
  });
}

// ---- 16-bit storage through the float kernels (common/staging.hpp) --------------------------
// The blocks of positions of an (N, C, S) layout that the staged 16-bit paths run: `per_block`
// whole rows when S == 1 (staged as a (rows, C, 1) float block), else a tile of `per_block`
// positions of one sample (staged as (1, C, tile): C runs of the tile, S apart).
struct PositionBlock {
  int64_t p0 = 0, count = 0;  // positions p0 .. p0 + count (p = n * S + s)
  int64_t offset = 0;         // the block's first element of an (N, C, S) array
  detail::Strided elems;      // and its elements
  int64_t N = 0, S = 1;       // the float block's layout
};

struct PositionBlocks {
  int64_t N = 0, C = 0, S = 1, per_block = 1, tiles = 1;
  PositionBlocks(int64_t n, int64_t c, int64_t s, int64_t per)
      : N(n), C(c), S(s), per_block(per), tiles(s == 1 ? 1 : (s + per - 1) / per) {}
  int64_t count() const { return S == 1 ? (N + per_block - 1) / per_block : N * tiles; }
  int64_t max_elems() const { return C * per_block; }
  PositionBlock operator[](int64_t u) const {
    PositionBlock b;
    if (S == 1) {
      b.p0 = u * per_block;
      b.count = std::min(N, b.p0 + per_block) - b.p0;
      b.offset = b.p0 * C;
      b.elems = detail::contiguous(b.count * C);
      b.N = b.count;
    } else {
      const int64_t n = u / tiles, s0 = (u % tiles) * per_block;
      b.count = std::min(S, s0 + per_block) - s0;
      b.p0 = n * S + s0;
      b.offset = n * C * S + s0;
      b.elems = detail::Strided{C, b.count, S};
      b.N = 1;
      b.S = b.count;
    }
    return b;
  }
};

// Runs fn(block, stage) -> double (the block's loss sum, from a float kernel on the staged block)
// over every block in parallel, narrows each block's outputs, and sums in the fixed tree.
template <class S, class Fn>
double run_staged(const PositionBlocks& blocks, int64_t floats_per_thread, Fn&& fn) {
  detail::StageScratch scratch(floats_per_thread);
  return run_units(blocks.count(), std::max<int64_t>(blocks.max_elems(), 1), [&](int64_t u, int t) {
    detail::BlockStage<S> stage(scratch.thread(t));
    const double sum = fn(blocks[u], stage);
    stage.finish();
    return sum;
  });
}

// A staged block's cross-entropy arguments: the scalars of the 16-bit call, its class indices and
// boolean outputs rebased to the block, its 16-bit arrays widened into (or to be narrowed from)
// the thread's float scratch, and the class weights widened once per call (`weight`).
template <class S>
CeArgs<float> staged_ce_args(const CeArgs<S>& h, const std::vector<float>& weight,
                             const PositionBlock& b, detail::BlockStage<S>& st) {
  const detail::Strided per_position = detail::contiguous(b.count);
  CeArgs<float> a;
  static_cast<detail::CeScalars&>(a) = h;
  a.target = h.target ? h.target + b.p0 : nullptr;
  a.correct_out = h.correct_out ? h.correct_out + b.p0 : nullptr;
  a.N = b.N;
  a.S = b.S;
  a.input = st.in(h.input, b.offset, b.elems);
  a.prob = st.in(h.prob, b.offset, b.elems);
  a.weight = h.weight ? weight.data() : nullptr;
  a.grad_out = st.in(h.grad_out, b.p0, per_position);
  a.out = st.out(h.out, b.p0, per_position);
  a.grad = st.out(h.grad, b.offset, b.elems);
  a.grad_target = st.out(h.grad_target, b.offset, b.elems);
  a.lse_out = st.out(h.lse_out, b.p0, per_position);
  a.entropy_out = st.out(h.entropy_out, b.p0, per_position);
  return a;
}

// Runs kernel(a, count), a float kernel over positions [0, count) of a staged block's arguments,
// on every block of `per_block` positions.
template <class S, class Kernel>
double run_staged_ce(const CeArgs<S>& h, int64_t per_block, Kernel&& kernel) {
  const PositionBlocks blocks(h.N, h.C, h.S, per_block);
  const std::vector<float> weight = detail::widened(h.weight, h.C);
  const int64_t E = blocks.max_elems(), P = blocks.per_block;
  // input, prob, grad, grad_target; grad_out, out, lse, entropy
  return run_staged<S>(blocks, 4 * E + 4 * P,
                       [&](const PositionBlock& b, detail::BlockStage<S>& st) {
                         return kernel(staged_ce_args(h, weight, b, st), b.count);
                       });
}

// cross_entropy on 16-bit K-dimensional input (S > 1): the float tile kernel on staged tiles as
// wide as the float path's (ce_tile_width), so a staged tile of logits stays cache-sized whatever
// C is.
template <class S>
double ce_run_staged_tiles(const CeArgs<S>& h) {
  const auto& k = detail::classification_kernels<float>().ce;
  return run_staged_ce(h, detail::ce_tile_width(h.C, static_cast<int64_t>(sizeof(float))),
                       [&](const CeArgs<float>& a, int64_t count) {
                         return k.tile(a, 0, 0, count);
                       });
}

// cross_entropy's kernels for any storage: float and double directly, 16-bit rows through the
// 16-bit rows kernel and K-dimensional input through staged tiles.
template <class T>
double ce_run_storage(const CeArgs<T>& a) {
  if constexpr (detail::is_half_v<T>)
    return a.S == 1 ? ce_run_half_rows(a) : ce_run_staged_tiles(a);
  else return ce_run(a);
}

template <class T>
double ce_index(View<T> input, View<int64_t> target, View<T> weight, const Mode<T>& m,
                const CrossEntropyOptions& o, const CrossEntropyStats<T>& stats = {}) {
  const char* fn = "cross_entropy";
  check_reduction(fn, o);
  check_smoothing(fn, o.label_smoothing);
  detail::check_ce_extras(fn, o.z_loss, o.softcap);
  const Layout l = class_layout(fn, input, true);
  detail::check_required(fn, "target", target);
  detail::check_shape_equal(fn, "target", target.shape, l.out, "class indices of shape");
  check_class_weight(fn, weight, l.C);
  const double go = check_mode(fn, m, o.reduction, l.out, input.shape, nullptr,
                               detail::write_stats(detail::DisjointArrays(fn)
                                                       .read("input", input)
                                                       .read("target", target)
                                                       .read("weight", weight),
                                                   stats));
  const double W = check_targets(fn, target, l.C, o.ignore_index, weight.data);
  const double D = detail::mean_divisor(o.normalizer, W);

  CeArgs<T> a = ce_common(l, input, weight, o);
  detail::set_ce_extras(fn, a, o.z_loss, o.softcap, stats, l.out);
  a.target = target.data;
  if (o.reduction == Reduction::None) {
    a.out = m.output.data;
    a.grad_out = m.grad_output.data;
  } else {
    a.grad_scale = o.reduction == Reduction::Mean ? go / D : go;
  }
  a.grad = m.backward ? m.grads[0].data : nullptr;
  if (!m.output.present() && !a.grad && !a.stats()) return W;
  const double total = ce_run_storage(a);
  // torch's 'mean' with smoothing adds nll_sum / W to smooth_sum / W: with W = 0 the first is
  // 0 / 0 = NaN, whatever the smoothing sum (which alone would give +-inf). A given normalizer
  // is the divisor instead, and a part with no counted target then contributes 0.
  const bool empty_mean = o.reduction == Reduction::Mean && !o.normalizer && W == 0.0;
  write_reduced(m, o.reduction, empty_mean ? std::numeric_limits<double>::quiet_NaN() : total, D);
  return W;
}

template <class T>
double ce_prob(View<T> input, View<T> target, View<T> weight, const Mode<T>& m,
               const CrossEntropyOptions& o) {
  const char* fn = "cross_entropy";
  check_reduction(fn, o);
  check_smoothing(fn, o.label_smoothing);
  const Layout l = class_layout(fn, input, true);
  detail::check_required(fn, "target", target);
  detail::check_shape_equal(fn, "target", target.shape, input.shape,
                            "class probabilities of the input's shape");
  if (o.ignore_index >= 0)
    fail_value(fn, "ignore_index",
               "a negative value with class-probability targets (torch: not "
               "supported for floating point target)",
               std::to_string(o.ignore_index));
  if (o.z_loss != 0.0)
    fail_value(fn, "z_loss", "0.0 with class-probability targets (class indices only)",
               std::to_string(o.z_loss));
  if (o.softcap)
    fail_value(fn, "softcap", "None with class-probability targets (class indices only)",
               std::to_string(*o.softcap));
  check_class_weight(fn, weight, l.C);
  const double go = check_mode(fn, m, o.reduction, l.out, input.shape, &input.shape,
                               detail::DisjointArrays(fn)
                                   .read("input", input)
                                   .read("target", target)
                                   .read("weight", weight));
  // torch's 'mean' of an empty input is NaN, also when C = 0 leaves N * S positions of no classes.
  const double positions = input.numel() == 0 ? 0.0 : static_cast<double>(l.N * l.S);
  const double D = detail::mean_divisor(o.normalizer, positions);

  CeArgs<T> a = ce_common(l, input, weight, o);
  a.prob = target.data;
  if (o.reduction == Reduction::None) {
    a.out = m.output.data;
    a.grad_out = m.grad_output.data;
  } else {
    a.grad_scale = o.reduction == Reduction::Mean ? go / D : go;
  }
  a.grad = m.backward ? m.grads[0].data : nullptr;
  a.grad_target = m.backward ? m.grads[1].data : nullptr;
  if (!m.output.present() && !a.grad && !a.grad_target) return positions;
  const double total = ce_run_storage(a);
  write_reduced(m, o.reduction, total, D);
  return positions;
}

// ---- softmax_focal_loss, poly1_cross_entropy (cross_entropy's kernels, CeTransform) -----------

// The outputs, the reduction's gradient scale and the gradients a request wants, as ce_index and
// ce_prob set them; `divisor` is what 'mean' divides by.
template <class T>
void set_ce_request(CeArgs<T>& a, const Mode<T>& m, Reduction r, double go, double divisor) {
  if (r == Reduction::None) {
    a.out = m.output.data;
    a.grad_out = m.grad_output.data;
  } else {
    a.grad_scale = r == Reduction::Mean ? go / divisor : go;
  }
  a.grad = m.backward ? m.grads[0].data : nullptr;
  a.grad_target = m.backward ? m.grads[1].data : nullptr;
}

// A 'mean' over no counted position is NaN (torch's 0 / 0) unless a normalizer is given.
template <class T>
void write_counted(const Mode<T>& m, Reduction r, const Normalizer& normalizer, double total,
                   double own, double divisor) {
  const bool empty_mean = r == Reduction::Mean && !normalizer && own == 0.0;
  write_reduced(m, r, empty_mean ? std::numeric_limits<double>::quiet_NaN() : total, divisor);
}

// poly1 over positions [p0, p1) of any layout, where its extra term reads every class; 16-bit
// storage through the float kernel on staged blocks (units of rows, or tiles of a K-dimensional
// input's positions as cross_entropy's).
template <class T>
double poly1_soft_run(const CeArgs<T>& a) {
  if constexpr (detail::is_half_v<T>) {
    const auto kernel = detail::classification_kernels<float>().poly1_soft;
    const int64_t per_block = a.S == 1
                                  ? rows_per_unit(a.C)
                                  : detail::ce_tile_width(a.C, static_cast<int64_t>(sizeof(float)));
    return run_staged_ce(a, per_block, [&](const CeArgs<float>& f, int64_t count) {
      return kernel(f, 0, count);
    });
  } else {
    const auto kernel = detail::classification_kernels<T>().poly1_soft;
    const int64_t P = a.N * a.S, R = rows_per_unit(a.C);
    return run_units((P + R - 1) / R, R * std::max<int64_t>(a.C, 1),
                     [&](int64_t u, int) { return kernel(a, u * R, std::min(P, (u + 1) * R)); });
  }
}

template <class T>
double focal_impl(View<T> input, View<int64_t> target, View<T> alpha, const Mode<T>& m,
                  const SoftmaxFocalLossOptions& o) {
  const char* fn = "softmax_focal_loss";
  check_reduction(fn, o);
  if (!(o.gamma >= 0.0 && std::isfinite(o.gamma)))
    fail_value(fn, "gamma", "a finite value >= 0", std::to_string(o.gamma));
  const Layout l = class_layout(fn, input, true);
  detail::check_required(fn, "target", target);
  detail::check_shape_equal(fn, "target", target.shape, l.out, "class indices of shape");
  check_class_weight(fn, alpha, l.C, "alpha");
  const double go = check_mode(
      fn, m, o.reduction, l.out, input.shape, nullptr,
      detail::DisjointArrays(fn).read("input", input).read("target", target).read("alpha", alpha));
  // 'mean' divides by the count of counted targets (mmdet, kornia), not their alpha sum.
  const double count =
      check_targets(fn, target, l.C, o.ignore_index, static_cast<const T*>(nullptr));
  const double D = detail::mean_divisor(o.normalizer, count);

  CrossEntropyOptions ce;
  ce.ignore_index = o.ignore_index;
  CeArgs<T> a = ce_common(l, input, alpha, ce);
  a.target = target.data;
  a.transform = detail::CeTransform::Focal;
  a.transform_param = o.gamma;
  set_ce_request(a, m, o.reduction, go, D);
  if (!m.output.present() && !a.grad) return count;
  write_counted(m, o.reduction, o.normalizer, ce_run_storage(a), count, D);
  return count;
}

void check_epsilon(const char* fn, double epsilon) {
  if (!std::isfinite(epsilon)) fail_value(fn, "epsilon", "a finite value", std::to_string(epsilon));
}

CrossEntropyOptions poly1_ce_options(const Poly1CrossEntropyOptions& o) {
  CrossEntropyOptions ce;
  ce.ignore_index = o.ignore_index;
  ce.label_smoothing = o.label_smoothing;
  return ce;
}

template <class T>
double poly1_index(View<T> input, View<int64_t> target, View<T> weight, const Mode<T>& m,
                   const Poly1CrossEntropyOptions& o) {
  const char* fn = "poly1_cross_entropy";
  check_reduction(fn, o);
  check_smoothing(fn, o.label_smoothing);
  check_epsilon(fn, o.epsilon);
  const Layout l = class_layout(fn, input, true);
  detail::check_required(fn, "target", target);
  detail::check_shape_equal(fn, "target", target.shape, l.out, "class indices of shape");
  check_class_weight(fn, weight, l.C);
  const double go = check_mode(fn, m, o.reduction, l.out, input.shape, nullptr,
                               detail::DisjointArrays(fn)
                                   .read("input", input)
                                   .read("target", target)
                                   .read("weight", weight));
  const double W = check_targets(fn, target, l.C, o.ignore_index, weight.data);
  const double D = detail::mean_divisor(o.normalizer, W);

  CeArgs<T> a = ce_common(l, input, weight, poly1_ce_options(o));
  a.target = target.data;
  a.transform_param = o.epsilon;
  set_ce_request(a, m, o.reduction, go, D);
  if (!m.output.present() && !a.grad) return W;
  // Without smoothing the extra term reads the target's softmax alone: cross_entropy's kernels.
  double total;
  if (o.label_smoothing == 0.0) {
    a.transform = detail::CeTransform::Poly1;
    total = ce_run_storage(a);
  } else {
    total = poly1_soft_run(a);
  }
  write_counted(m, o.reduction, o.normalizer, total, W, D);
  return W;
}

template <class T>
double poly1_prob(View<T> input, View<T> target, View<T> weight, const Mode<T>& m,
                  const Poly1CrossEntropyOptions& o) {
  const char* fn = "poly1_cross_entropy";
  check_reduction(fn, o);
  check_smoothing(fn, o.label_smoothing);
  check_epsilon(fn, o.epsilon);
  const Layout l = class_layout(fn, input, true);
  detail::check_required(fn, "target", target);
  detail::check_shape_equal(fn, "target", target.shape, input.shape,
                            "class probabilities of the input's shape");
  if (o.ignore_index >= 0)
    fail_value(fn, "ignore_index", "a negative value with class-probability targets",
               std::to_string(o.ignore_index));
  check_class_weight(fn, weight, l.C);
  const double go = check_mode(fn, m, o.reduction, l.out, input.shape, &input.shape,
                               detail::DisjointArrays(fn)
                                   .read("input", input)
                                   .read("target", target)
                                   .read("weight", weight));
  const double positions = input.numel() == 0 ? 0.0 : static_cast<double>(l.N * l.S);
  const double D = detail::mean_divisor(o.normalizer, positions);

  CeArgs<T> a = ce_common(l, input, weight, poly1_ce_options(o));
  a.prob = target.data;
  a.transform_param = o.epsilon;
  set_ce_request(a, m, o.reduction, go, D);
  if (!m.output.present() && !a.grad && !a.grad_target) return positions;
  write_reduced(m, o.reduction, poly1_soft_run(a), D);
  return positions;
}

// ---- nll_loss --------------------------------------------------------------------------------

// nll_loss on 16-bit storage: the float kernel on staged blocks (rows, or tiles of a
// K-dimensional input). The whole block is widened although the loss reads one logit per
// position: the gradient block is written whole anyway, and the forward alone is cheap.
template <class S>
double nll_run_staged(const detail::NllArgs<S>& h) {
  const auto kernel = detail::classification_kernels<float>().nll;
  const PositionBlocks blocks(h.N, h.C, h.S, h.S == 1 ? rows_per_unit(h.C) : kNllTile);
  const std::vector<float> weight = detail::widened(h.weight, h.C);
  const int64_t E = blocks.max_elems(), P = blocks.per_block;
  return run_staged<S>(blocks, 2 * E + 2 * P,
                       [&](const PositionBlock& b, detail::BlockStage<S>& st) {
                         const detail::Strided per_position = detail::contiguous(b.count);
                         detail::NllArgs<float> a;
                         static_cast<detail::NllScalars&>(a) = h;
                         a.target = h.target + b.p0;
                         a.N = b.N;
                         a.S = b.S;
                         a.input = st.in(h.input, b.offset, b.elems);
                         a.weight = h.weight ? weight.data() : nullptr;
                         a.grad_out = st.in(h.grad_out, b.p0, per_position);
                         a.out = st.out(h.out, b.p0, per_position);
                         a.grad = st.out(h.grad, b.offset, b.elems);
                         return kernel(a, 0, b.count);
                       });
}

template <class T>
double nll_impl(View<T> input, View<int64_t> target, View<T> weight, const Mode<T>& m,
                const NllLossOptions& o) {
  const char* fn = "nll_loss";
  check_reduction(fn, o);
  const Layout l = class_layout(fn, input, true);
  detail::check_required(fn, "target", target);
  detail::check_shape_equal(fn, "target", target.shape, l.out, "class indices of shape");
  check_class_weight(fn, weight, l.C);
  const double go = check_mode(fn, m, o.reduction, l.out, input.shape, nullptr,
                               detail::DisjointArrays(fn)
                                   .read("input", input)
                                   .read("target", target)
                                   .read("weight", weight));
  const double W = check_targets(fn, target, l.C, o.ignore_index, weight.data);
  const double D = detail::mean_divisor(o.normalizer, W);

  detail::NllArgs<T> a;
  a.input = input.data;
  a.target = target.data;
  a.weight = weight.data;
  a.N = l.N;
  a.C = l.C;
  a.S = l.S;
  a.ignore_index = o.ignore_index;
  if (o.reduction == Reduction::None) {
    a.out = m.output.data;
    a.grad_out = m.grad_output.data;
  } else {
    a.grad_scale = o.reduction == Reduction::Mean ? go / D : go;
  }
  a.grad = m.backward ? m.grads[0].data : nullptr;
  if (!m.output.present() && !a.grad) return W;
  double total;
  if constexpr (detail::is_half_v<T>) {
    total = nll_run_staged(a);
  } else if (l.S == 1) {
    const auto kernel = detail::classification_kernels<T>().nll;
    const int64_t R = std::clamp<int64_t>(kUnitElems / std::max<int64_t>(l.C, 1), 16, 4096);
    total = run_units((l.N + R - 1) / R, R * std::max<int64_t>(l.C, 1),
                      [&](int64_t u, int) { return kernel(a, u * R, std::min(l.N, (u + 1) * R)); });
  } else {
    const auto kernel = detail::classification_kernels<T>().nll;
    const int64_t tiles = (l.S + kNllTile - 1) / kNllTile;
    total = run_units(l.N * tiles, kNllTile * std::max<int64_t>(l.C, 1), [&](int64_t u, int) {
      const int64_t n = u / tiles, s0 = (u % tiles) * kNllTile;
      return kernel(a, n * l.S + s0, n * l.S + std::min(l.S, s0 + kNllTile));
    });
  }
  write_reduced(m, o.reduction, total, D);
  return W;
}

// ---- multi_margin_loss, multilabel_margin_loss ----------------------------------------------

// torch reads a 0-d input as one sample of one class, (C) with C = 1 (loss and gradient 0).
template <class T>
Layout margin_layout(const char* fn, const View<T>& input) {
  if (input.present() && input.dim() == 0) {
    Layout l;
    l.C = 1;
    return l;  // l.out = (): one sample, unbatched
  }
  Layout l = class_layout(fn, input, false);
  if (l.C == 0)
    fail_value(fn, "input", "a non-empty class dimension", "shape " + shape_to_string(input.shape));
  return l;
}

template <class T, class Fn>
double run_rows(int64_t N, int64_t C, Fn&& fn) {
  const int64_t R = rows_per_unit(C);
  return run_units((N + R - 1) / R, R * C, [&](int64_t u, int thread) {
    return fn(u * R, std::min(N, (u + 1) * R), thread);
  });
}

// The fields every row loss fills alike: the input, the sizes, the reduction's scaling of the
// gradient or the per-row outputs, and the gradients the request wants.
// `divisor`: what 'mean' divides by (mean_divisor of N).
template <class T>
detail::RowLossArgs<T> row_loss_args(const T* input, int64_t N, int64_t C, const Mode<T>& m,
                                     Reduction reduction, double divisor, double grad_output) {
  detail::RowLossArgs<T> a;
  a.input = input;
  a.N = N;
  a.C = C;
  if (reduction == Reduction::None) {
    a.out = m.output.data;
    a.grad_out = m.grad_output.data;
  } else {
    a.grad_scale = reduction == Reduction::Mean ? grad_output / divisor : grad_output;
  }
  a.grad = m.backward ? m.grads[0].data : nullptr;
  a.grad_target = m.backward ? m.grads[1].data : nullptr;
  return a;
}

// A row loss on 16-bit storage: `kernel(float_args, r0, r1, scratch)` on staged blocks of rows.
// `target_stride`: class-index target entries per row (1 for multi_margin, C for
// multilabel_margin). Per-class weights are widened once; (N, C) weights are staged with the rows.
template <class S, class Kernel>
double row_loss_staged(const detail::RowLossArgs<S>& h, int64_t target_stride, Kernel&& kernel) {
  const int64_t C = h.C;
  const PositionBlocks blocks(h.N, C, 1, rows_per_unit(std::max<int64_t>(C, 1)));
  const std::vector<float> class_weight =
      detail::widened(h.weight_row_stride == 0 ? h.weight : nullptr, C);
  const int64_t E = blocks.max_elems(), R = blocks.per_block;
  // input, prob, weight rows, grad, grad_target; grad_out, out; the kernel's own C floats
  return run_staged<S>(blocks, 5 * E + 2 * R + C,
                       [&](const PositionBlock& b, detail::BlockStage<S>& st) {
                         const detail::Strided per_row = detail::contiguous(b.count);
                         detail::RowLossArgs<float> a;
                         static_cast<detail::RowLossScalars&>(a) = h;
                         a.target = h.target ? h.target + b.p0 * target_stride : nullptr;
                         a.N = b.count;
                         a.input = st.in(h.input, b.offset, b.elems);
                         a.prob = st.in(h.prob, b.offset, b.elems);
                         a.weight = h.weight_row_stride != 0
                                        ? st.in(h.weight, b.offset, b.elems)
                                        : (h.weight ? class_weight.data() : nullptr);
                         a.grad_out = st.in(h.grad_out, b.p0, per_row);
                         a.out = st.out(h.out, b.p0, per_row);
                         a.grad = st.out(h.grad, b.offset, b.elems);
                         a.grad_target = st.out(h.grad_target, b.offset, b.elems);
                         return kernel(a, b.count, st.scratch(C));
                       });
}

template <class T>
double multi_margin_impl(View<T> input, View<int64_t> target, View<T> weight, const Mode<T>& m,
                         const MultiMarginLossOptions& o) {
  const char* fn = "multi_margin_loss";
  check_reduction(fn, o);
  if (o.p != 1 && o.p != 2) fail_value(fn, "p", "1 or 2", std::to_string(o.p));
  const Layout l = margin_layout(fn, input);
  detail::check_required(fn, "target", target);
  if (target.dim() > 1 || target.numel() != l.N)  // torch: at most 1-d, one index per sample
    fail_value(fn, "target",
               l.N == 1 ? std::string("one class index, shape () or (1,)")
                        : "class indices of shape (" + std::to_string(l.N) + ",)",
               "shape " + shape_to_string(target.shape));
  check_class_weight(fn, weight, l.C);
  const Shape& out_shape = target.shape;  // torch: the loss has the target's shape
  const double go = check_mode(fn, m, o.reduction, out_shape, input.shape, nullptr,
                               detail::DisjointArrays(fn)
                                   .read("input", input)
                                   .read("target", target)
                                   .read("weight", weight));
  for (int64_t r = 0; r < l.N; ++r)
    if (target.data[r] < 0 || target.data[r] >= l.C)
      fail_index(fn, "target", "class indices in [0, " + std::to_string(l.C) + ")",
                 std::to_string(target.data[r]));

  const double own = static_cast<double>(l.N);
  const double D = detail::mean_divisor(o.normalizer, own);
  detail::RowLossArgs<T> a = row_loss_args(input.data, l.N, l.C, m, o.reduction, D, go);
  a.target = target.data;
  a.weight = weight.data;
  a.p = o.p;
  a.margin = o.margin;
  if (!m.output.present() && !a.grad) return own;
  double total;
  if constexpr (detail::is_half_v<T>) {
    const auto kernel = detail::classification_kernels<float>().multi_margin;
    total = row_loss_staged(a, 1, [&](const auto& f, int64_t rows, float*) {
      return kernel(f, 0, rows);
    });
  } else {
    const auto kernel = detail::classification_kernels<T>().multi_margin;
    total = run_rows<T>(l.N, l.C, [&](int64_t r0, int64_t r1, int) { return kernel(a, r0, r1); });
  }
  write_reduced(m, o.reduction, total, D);
  return own;
}

template <class T>
double multilabel_margin_impl(View<T> input, View<int64_t> target, const Mode<T>& m,
                              const MultilabelMarginLossOptions& o) {
  const char* fn = "multilabel_margin_loss";
  check_reduction(fn, o);
  const Layout l = margin_layout(fn, input);
  detail::check_required(fn, "target", target);
  if (input.dim() <= 1) {
    // Unbatched (torch): any target of at most one dimension with one entry per class, so a
    // 0-d input (C = 1) takes a () or (1) target and a (1) input a () target too.
    if (target.dim() > 1 || target.numel() != l.C)
      fail_value(fn, "target",
                 l.C == 1 ? std::string("one entry (a class index or -1), shape () or (1,)")
                          : "the input's shape " + shape_to_string(input.shape),
                 "shape " + shape_to_string(target.shape));
  } else {
    detail::check_shape_equal(fn, "target", target.shape, input.shape, "the input's shape");
  }
  const double go =
      check_mode(fn, m, o.reduction, l.out, input.shape, nullptr,
                 detail::DisjointArrays(fn).read("input", input).read("target", target));
  // torch checks every entry (also those after the first -1, which are never read).
  for (int64_t i = 0; i < target.numel(); ++i)
    if (target.data[i] < -1 || target.data[i] >= l.C)
      fail_index(fn, "target", "class indices in [0, " + std::to_string(l.C) + ") or -1 padding",
                 std::to_string(target.data[i]));

  const double own = static_cast<double>(l.N);
  const double D = detail::mean_divisor(o.normalizer, own);
  detail::RowLossArgs<T> a = row_loss_args(input.data, l.N, l.C, m, o.reduction, D, go);
  a.target = target.data;
  if (!m.output.present() && !a.grad) return own;
  double total;
  if constexpr (detail::is_half_v<T>) {
    const auto kernel = detail::classification_kernels<float>().multilabel_margin;
    total = row_loss_staged(a, l.C, [&](const auto& f, int64_t rows, float* mask) {
      return kernel(f, 0, rows, mask);
    });
  } else {
    const auto kernel = detail::classification_kernels<T>().multilabel_margin;
    std::vector<T> scratch(static_cast<size_t>(get_num_threads()) * static_cast<size_t>(l.C));
    total = run_rows<T>(l.N, l.C, [&](int64_t r0, int64_t r1, int thread) {
      return kernel(a, r0, r1, scratch.data() + static_cast<size_t>(thread) * l.C);
    });
  }
  write_reduced(m, o.reduction, total, D);
  return own;
}

// ---- multilabel_soft_margin_loss -------------------------------------------------------------

template <class T>
double soft_margin_impl(View<T> input, View<T> target, View<T> weight, const Mode<T>& m,
                        const MultilabelSoftMarginLossOptions& o) {
  const char* fn = "multilabel_soft_margin_loss";
  check_reduction(fn, o);
  detail::check_required(fn, "input", input);
  if (input.dim() < 1)
    fail_value(fn, "input", "an array with a class dimension (last), e.g. (N, C)",
               "shape " + shape_to_string(input.shape));
  detail::check_required(fn, "target", target);
  detail::check_shape_equal(fn, "target", target.shape, input.shape, "the input's shape");
  const int64_t C = input.shape.back();
  const Shape out_shape = classification_output_shape(input.shape, true);
  const int64_t N = numel(out_shape);
  int64_t wstride = 0;
  if (weight.present() || !weight.shape.empty()) {
    detail::check_required(fn, "weight", weight);
    const bool per_class = weight.numel() == C && !weight.shape.empty() &&
                           weight.shape.back() == C && weight.shape.size() <= input.shape.size();
    if (weight.shape == input.shape) {
      wstride = C;
    } else if (!per_class) {
      fail_value(fn, "weight",
                 "shape (" + std::to_string(C) + ",) or the input's shape " +
                     shape_to_string(input.shape),
                 "shape " + shape_to_string(weight.shape));
    }
  }
  const double go = check_mode(fn, m, o.reduction, out_shape, input.shape, &input.shape,
                               detail::DisjointArrays(fn)
                                   .read("input", input)
                                   .read("target", target)
                                   .read("weight", weight));

  const double own = static_cast<double>(N);
  const double D = detail::mean_divisor(o.normalizer, own);
  detail::RowLossArgs<T> a = row_loss_args(input.data, N, C, m, o.reduction, D, go);
  a.prob = target.data;
  a.weight = weight.data;
  a.weight_row_stride = wstride;
  if (!m.output.present() && !a.grad && !a.grad_target) return own;
  double total;
  if constexpr (detail::is_half_v<T>) {
    const auto kernel = detail::classification_kernels<float>().multilabel_soft_margin;
    total = row_loss_staged(a, 0, [&](const auto& f, int64_t rows, float*) {
      return kernel(f, 0, rows);
    });
  } else {
    const auto kernel = detail::classification_kernels<T>().multilabel_soft_margin;
    total = run_rows<T>(N, std::max<int64_t>(C, 1),
                        [&](int64_t r0, int64_t r1, int) { return kernel(a, r0, r1); });
  }
  write_reduced(m, o.reduction, total, D);
  return own;
}

}  // namespace

// ---- public entry points ---------------------------------------------------------------------

template <class T>
void cross_entropy(View<T> input, View<int64_t> target, View<T> weight, MutView<T> output,
                   const CrossEntropyOptions& options, const CrossEntropyStats<T>& stats) {
  ce_index(input, target, weight, Mode<T>::forward_only(output), options, stats);
}
template <class T>
void cross_entropy_backward(View<T> grad_output, View<T> input, View<int64_t> target,
                            View<T> weight, MutView<T> grad_input,
                            const CrossEntropyOptions& options) {
  ce_index(input, target, weight, Mode<T>::backward_only(grad_output, {grad_input}), options);
}
template <class T>
void cross_entropy_forward_backward(View<T> input, View<int64_t> target, View<T> weight,
                                    View<T> grad_output, MutView<T> output, MutView<T> grad_input,
                                    const CrossEntropyOptions& options,
                                    const CrossEntropyStats<T>& stats) {
  ce_index(input, target, weight, Mode<T>::fused(grad_output, output, {grad_input}), options,
           stats);
}

template <class T>
void cross_entropy(View<T> input, View<T> target, View<T> weight, MutView<T> output,
                   const CrossEntropyOptions& options) {
  ce_prob(input, target, weight, Mode<T>::forward_only(output), options);
}
template <class T>
void cross_entropy_backward(View<T> grad_output, View<T> input, View<T> target, View<T> weight,
                            MutView<T> grad_input, MutView<T> grad_target,
                            const CrossEntropyOptions& options) {
  ce_prob(input, target, weight, Mode<T>::backward_only(grad_output, {grad_input, grad_target}),
          options);
}
template <class T>
void cross_entropy_forward_backward(View<T> input, View<T> target, View<T> weight,
                                    View<T> grad_output, MutView<T> output, MutView<T> grad_input,
                                    MutView<T> grad_target, const CrossEntropyOptions& options) {
  ce_prob(input, target, weight, Mode<T>::fused(grad_output, output, {grad_input, grad_target}),
          options);
}

template <class T>
void nll_loss(View<T> input, View<int64_t> target, View<T> weight, MutView<T> output,
              const NllLossOptions& options) {
  nll_impl(input, target, weight, Mode<T>::forward_only(output), options);
}
template <class T>
void nll_loss_backward(View<T> grad_output, View<T> input, View<int64_t> target, View<T> weight,
                       MutView<T> grad_input, const NllLossOptions& options) {
  nll_impl(input, target, weight, Mode<T>::backward_only(grad_output, {grad_input}), options);
}
template <class T>
void nll_loss_forward_backward(View<T> input, View<int64_t> target, View<T> weight,
                               View<T> grad_output, MutView<T> output, MutView<T> grad_input,
                               const NllLossOptions& options) {
  nll_impl(input, target, weight, Mode<T>::fused(grad_output, output, {grad_input}), options);
}

template <class T>
void multi_margin_loss(View<T> input, View<int64_t> target, View<T> weight, MutView<T> output,
                       const MultiMarginLossOptions& options) {
  multi_margin_impl(input, target, weight, Mode<T>::forward_only(output), options);
}
template <class T>
void multi_margin_loss_backward(View<T> grad_output, View<T> input, View<int64_t> target,
                                View<T> weight, MutView<T> grad_input,
                                const MultiMarginLossOptions& options) {
  multi_margin_impl(input, target, weight, Mode<T>::backward_only(grad_output, {grad_input}),
                    options);
}
template <class T>
void multi_margin_loss_forward_backward(View<T> input, View<int64_t> target, View<T> weight,
                                        View<T> grad_output, MutView<T> output,
                                        MutView<T> grad_input,
                                        const MultiMarginLossOptions& options) {
  multi_margin_impl(input, target, weight, Mode<T>::fused(grad_output, output, {grad_input}),
                    options);
}

template <class T>
void multilabel_margin_loss(View<T> input, View<int64_t> target, MutView<T> output,
                            const MultilabelMarginLossOptions& options) {
  multilabel_margin_impl(input, target, Mode<T>::forward_only(output), options);
}
template <class T>
void multilabel_margin_loss_backward(View<T> grad_output, View<T> input, View<int64_t> target,
                                     MutView<T> grad_input,
                                     const MultilabelMarginLossOptions& options) {
  multilabel_margin_impl(input, target, Mode<T>::backward_only(grad_output, {grad_input}), options);
}
template <class T>
void multilabel_margin_loss_forward_backward(View<T> input, View<int64_t> target,
                                             View<T> grad_output, MutView<T> output,
                                             MutView<T> grad_input,
                                             const MultilabelMarginLossOptions& options) {
  multilabel_margin_impl(input, target, Mode<T>::fused(grad_output, output, {grad_input}), options);
}

template <class T>
void multilabel_soft_margin_loss(View<T> input, View<T> target, View<T> weight, MutView<T> output,
                                 const MultilabelSoftMarginLossOptions& options) {
  soft_margin_impl(input, target, weight, Mode<T>::forward_only(output), options);
}
template <class T>
void multilabel_soft_margin_loss_backward(View<T> grad_output, View<T> input, View<T> target,
                                          View<T> weight, MutView<T> grad_input,
                                          MutView<T> grad_target,
                                          const MultilabelSoftMarginLossOptions& options) {
  soft_margin_impl(input, target, weight,
                   Mode<T>::backward_only(grad_output, {grad_input, grad_target}), options);
}
template <class T>
void multilabel_soft_margin_loss_forward_backward(View<T> input, View<T> target, View<T> weight,
                                                  View<T> grad_output, MutView<T> output,
                                                  MutView<T> grad_input, MutView<T> grad_target,
                                                  const MultilabelSoftMarginLossOptions& options) {
  soft_margin_impl(input, target, weight,
                   Mode<T>::fused(grad_output, output, {grad_input, grad_target}), options);
}

template <class T>
void softmax_focal_loss(View<T> input, View<int64_t> target, View<T> alpha, MutView<T> output,
                        const SoftmaxFocalLossOptions& options) {
  focal_impl(input, target, alpha, Mode<T>::forward_only(output), options);
}
template <class T>
void softmax_focal_loss_backward(View<T> grad_output, View<T> input, View<int64_t> target,
                                 View<T> alpha, MutView<T> grad_input,
                                 const SoftmaxFocalLossOptions& options) {
  focal_impl(input, target, alpha, Mode<T>::backward_only(grad_output, {grad_input}), options);
}
template <class T>
void softmax_focal_loss_forward_backward(View<T> input, View<int64_t> target, View<T> alpha,
                                         View<T> grad_output, MutView<T> output,
                                         MutView<T> grad_input,
                                         const SoftmaxFocalLossOptions& options) {
  focal_impl(input, target, alpha, Mode<T>::fused(grad_output, output, {grad_input}), options);
}
template <class T>
double softmax_focal_loss_mean_normalizer(View<T> input, View<int64_t> target, View<T> alpha,
                                          const SoftmaxFocalLossOptions& o) {
  detail::check_dividing_reduction("softmax_focal_loss", o.reduction);
  return focal_impl(input, target, alpha, Mode<T>{}, o);
}

template <class T>
void poly1_cross_entropy(View<T> input, View<int64_t> target, View<T> weight, MutView<T> output,
                         const Poly1CrossEntropyOptions& options) {
  poly1_index(input, target, weight, Mode<T>::forward_only(output), options);
}
template <class T>
void poly1_cross_entropy_backward(View<T> grad_output, View<T> input, View<int64_t> target,
                                  View<T> weight, MutView<T> grad_input,
                                  const Poly1CrossEntropyOptions& options) {
  poly1_index(input, target, weight, Mode<T>::backward_only(grad_output, {grad_input}), options);
}
template <class T>
void poly1_cross_entropy_forward_backward(View<T> input, View<int64_t> target, View<T> weight,
                                          View<T> grad_output, MutView<T> output,
                                          MutView<T> grad_input,
                                          const Poly1CrossEntropyOptions& options) {
  poly1_index(input, target, weight, Mode<T>::fused(grad_output, output, {grad_input}), options);
}
template <class T>
void poly1_cross_entropy(View<T> input, View<T> target, View<T> weight, MutView<T> output,
                         const Poly1CrossEntropyOptions& options) {
  poly1_prob(input, target, weight, Mode<T>::forward_only(output), options);
}
template <class T>
void poly1_cross_entropy_backward(View<T> grad_output, View<T> input, View<T> target,
                                  View<T> weight, MutView<T> grad_input, MutView<T> grad_target,
                                  const Poly1CrossEntropyOptions& options) {
  poly1_prob(input, target, weight, Mode<T>::backward_only(grad_output, {grad_input, grad_target}),
             options);
}
template <class T>
void poly1_cross_entropy_forward_backward(View<T> input, View<T> target, View<T> weight,
                                          View<T> grad_output, MutView<T> output,
                                          MutView<T> grad_input, MutView<T> grad_target,
                                          const Poly1CrossEntropyOptions& options) {
  poly1_prob(input, target, weight, Mode<T>::fused(grad_output, output, {grad_input, grad_target}),
             options);
}
template <class T>
double poly1_cross_entropy_mean_normalizer(View<T> input, View<int64_t> target, View<T> weight,
                                           const Poly1CrossEntropyOptions& o) {
  detail::check_dividing_reduction("poly1_cross_entropy", o.reduction);
  return poly1_index(input, target, weight, Mode<T>{}, o);
}
template <class T>
double poly1_cross_entropy_mean_normalizer(View<T> input, View<T> target, View<T> weight,
                                           const Poly1CrossEntropyOptions& o) {
  detail::check_dividing_reduction("poly1_cross_entropy", o.reduction);
  return poly1_prob(input, target, weight, Mode<T>{}, o);
}

// ---- NAME_mean_normalizer: the driver with a request for nothing -----------------------------
template <class T>
double cross_entropy_mean_normalizer(View<T> input, View<int64_t> target, View<T> weight,
                                     const CrossEntropyOptions& o) {
  detail::check_dividing_reduction("cross_entropy", o.reduction);
  return ce_index(input, target, weight, Mode<T>{}, o);
}
template <class T>
double cross_entropy_mean_normalizer(View<T> input, View<T> target, View<T> weight,
                                     const CrossEntropyOptions& o) {
  detail::check_dividing_reduction("cross_entropy", o.reduction);
  return ce_prob(input, target, weight, Mode<T>{}, o);
}
template <class T>
double nll_loss_mean_normalizer(View<T> input, View<int64_t> target, View<T> weight,
                                const NllLossOptions& o) {
  detail::check_dividing_reduction("nll_loss", o.reduction);
  return nll_impl(input, target, weight, Mode<T>{}, o);
}
template <class T>
double multi_margin_loss_mean_normalizer(View<T> input, View<int64_t> target, View<T> weight,
                                         const MultiMarginLossOptions& o) {
  detail::check_dividing_reduction("multi_margin_loss", o.reduction);
  return multi_margin_impl(input, target, weight, Mode<T>{}, o);
}
template <class T>
double multilabel_margin_loss_mean_normalizer(View<T> input, View<int64_t> target,
                                              const MultilabelMarginLossOptions& o) {
  detail::check_dividing_reduction("multilabel_margin_loss", o.reduction);
  return multilabel_margin_impl(input, target, Mode<T>{}, o);
}
template <class T>
double multilabel_soft_margin_loss_mean_normalizer(View<T> input, View<T> target, View<T> weight,
                                                   const MultilabelSoftMarginLossOptions& o) {
  detail::check_dividing_reduction("multilabel_soft_margin_loss", o.reduction);
  return soft_margin_impl(input, target, weight, Mode<T>{}, o);
}

#define LOSSKIT_INSTANTIATE(T)                                                                     \
  template void cross_entropy<T>(View<T>, View<int64_t>, View<T>, MutView<T>,                      \
                                 const CrossEntropyOptions&, const CrossEntropyStats<T>&);         \
  template void cross_entropy_backward<T>(View<T>, View<T>, View<int64_t>, View<T>, MutView<T>,    \
                                          const CrossEntropyOptions&);                             \
  template void cross_entropy_forward_backward<T>(View<T>, View<int64_t>, View<T>, View<T>,        \
                                                  MutView<T>, MutView<T>,                          \
                                                  const CrossEntropyOptions&,                      \
                                                  const CrossEntropyStats<T>&);                    \
  template void cross_entropy<T>(View<T>, View<T>, View<T>, MutView<T>,                            \
                                 const CrossEntropyOptions&);                                      \
  template void cross_entropy_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>,          \
                                          MutView<T>, const CrossEntropyOptions&);                 \
  template void cross_entropy_forward_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>,  \
                                                  MutView<T>, MutView<T>,                          \
                                                  const CrossEntropyOptions&);                     \
  template void nll_loss<T>(View<T>, View<int64_t>, View<T>, MutView<T>, const NllLossOptions&);   \
  template void nll_loss_backward<T>(View<T>, View<T>, View<int64_t>, View<T>, MutView<T>,         \
                                     const NllLossOptions&);                                       \
  template void nll_loss_forward_backward<T>(View<T>, View<int64_t>, View<T>, View<T>, MutView<T>, \
                                             MutView<T>, const NllLossOptions&);                   \
  template void multi_margin_loss<T>(View<T>, View<int64_t>, View<T>, MutView<T>,                  \
                                     const MultiMarginLossOptions&);                               \
  template void multi_margin_loss_backward<T>(View<T>, View<T>, View<int64_t>, View<T>,            \
                                              MutView<T>, const MultiMarginLossOptions&);          \
  template void multi_margin_loss_forward_backward<T>(View<T>, View<int64_t>, View<T>, View<T>,    \
                                                      MutView<T>, MutView<T>,                      \
                                                      const MultiMarginLossOptions&);              \
  template void multilabel_margin_loss<T>(View<T>, View<int64_t>, MutView<T>,                      \
                                          const MultilabelMarginLossOptions&);                     \
  template void multilabel_margin_loss_backward<T>(View<T>, View<T>, View<int64_t>, MutView<T>,    \
                                                   const MultilabelMarginLossOptions&);            \
  template void multilabel_margin_loss_forward_backward<T>(View<T>, View<int64_t>, View<T>,        \
                                                           MutView<T>, MutView<T>,                 \
                                                           const MultilabelMarginLossOptions&);    \
  template void multilabel_soft_margin_loss<T>(View<T>, View<T>, View<T>, MutView<T>,              \
                                               const MultilabelSoftMarginLossOptions&);            \
  template void multilabel_soft_margin_loss_backward<T>(View<T>, View<T>, View<T>, View<T>,        \
                                                        MutView<T>, MutView<T>,                    \
                                                        const MultilabelSoftMarginLossOptions&);   \
  template void multilabel_soft_margin_loss_forward_backward<T>(                                   \
      View<T>, View<T>, View<T>, View<T>, MutView<T>, MutView<T>, MutView<T>,                      \
      const MultilabelSoftMarginLossOptions&);
LOSSKIT_INSTANTIATE(float)
LOSSKIT_INSTANTIATE(double)
// 16-bit storage (common/staging.hpp): read in place, computed by the float kernels.
LOSSKIT_INSTANTIATE(bfloat16)
LOSSKIT_INSTANTIATE(float16)

#define LOSSKIT_INSTANTIATE_NORMALIZER(T)                                                          \
  template double cross_entropy_mean_normalizer<T>(View<T>, View<int64_t>, View<T>,                \
                                                   const CrossEntropyOptions&);                    \
  template double cross_entropy_mean_normalizer<T>(View<T>, View<T>, View<T>,                      \
                                                   const CrossEntropyOptions&);                    \
  template double nll_loss_mean_normalizer<T>(View<T>, View<int64_t>, View<T>,                     \
                                              const NllLossOptions&);                              \
  template double multi_margin_loss_mean_normalizer<T>(View<T>, View<int64_t>, View<T>,            \
                                                       const MultiMarginLossOptions&);             \
  template double multilabel_margin_loss_mean_normalizer<T>(View<T>, View<int64_t>,                \
                                                            const MultilabelMarginLossOptions&);   \
  template double multilabel_soft_margin_loss_mean_normalizer<T>(                                  \
      View<T>, View<T>, View<T>, const MultilabelSoftMarginLossOptions&);
LOSSKIT_INSTANTIATE_NORMALIZER(float)
LOSSKIT_INSTANTIATE_NORMALIZER(double)
LOSSKIT_INSTANTIATE_NORMALIZER(bfloat16)
LOSSKIT_INSTANTIATE_NORMALIZER(float16)
#undef LOSSKIT_INSTANTIATE_NORMALIZER
#undef LOSSKIT_INSTANTIATE

// Beyond torch.nn, 16-bit storage as cross_entropy's.
#define LOSSKIT_INSTANTIATE_BEYOND(T)                                                              \
  template void softmax_focal_loss<T>(View<T>, View<int64_t>, View<T>, MutView<T>,                 \
                                      const SoftmaxFocalLossOptions&);                             \
  template void softmax_focal_loss_backward<T>(View<T>, View<T>, View<int64_t>, View<T>,           \
                                               MutView<T>, const SoftmaxFocalLossOptions&);        \
  template void softmax_focal_loss_forward_backward<T>(View<T>, View<int64_t>, View<T>, View<T>,   \
                                                       MutView<T>, MutView<T>,                     \
                                                       const SoftmaxFocalLossOptions&);            \
  template double softmax_focal_loss_mean_normalizer<T>(View<T>, View<int64_t>, View<T>,           \
                                                        const SoftmaxFocalLossOptions&);           \
  template void poly1_cross_entropy<T>(View<T>, View<int64_t>, View<T>, MutView<T>,                \
                                       const Poly1CrossEntropyOptions&);                           \
  template void poly1_cross_entropy_backward<T>(View<T>, View<T>, View<int64_t>, View<T>,          \
                                                MutView<T>, const Poly1CrossEntropyOptions&);      \
  template void poly1_cross_entropy_forward_backward<T>(View<T>, View<int64_t>, View<T>, View<T>,  \
                                                        MutView<T>, MutView<T>,                    \
                                                        const Poly1CrossEntropyOptions&);          \
  template double poly1_cross_entropy_mean_normalizer<T>(View<T>, View<int64_t>, View<T>,          \
                                                         const Poly1CrossEntropyOptions&);         \
  template void poly1_cross_entropy<T>(View<T>, View<T>, View<T>, MutView<T>,                      \
                                       const Poly1CrossEntropyOptions&);                           \
  template void poly1_cross_entropy_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>,    \
                                                MutView<T>, const Poly1CrossEntropyOptions&);      \
  template void poly1_cross_entropy_forward_backward<T>(View<T>, View<T>, View<T>, View<T>,        \
                                                        MutView<T>, MutView<T>, MutView<T>,        \
                                                        const Poly1CrossEntropyOptions&);          \
  template double poly1_cross_entropy_mean_normalizer<T>(View<T>, View<T>, View<T>,                \
                                                         const Poly1CrossEntropyOptions&);
LOSSKIT_INSTANTIATE_BEYOND(float)
LOSSKIT_INSTANTIATE_BEYOND(double)
LOSSKIT_INSTANTIATE_BEYOND(bfloat16)
LOSSKIT_INSTANTIATE_BEYOND(float16)
#undef LOSSKIT_INSTANTIATE_BEYOND

}  // namespace losskit
