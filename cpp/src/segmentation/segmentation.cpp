// Entry points of dice_loss and tversky_loss: every check before any work (shapes and options,
// then class indices and weights in a pre-pass), then one driver for both losses:
//   pass 1: per tile (kSegmentationTile positions of one sample) the sums of p g, p (p^2) and
//           g (g^2) of every counted channel, in double, into a partial per tile;
//   between: the partials combined per (n, c) (per c with batch) in a fixed tree, the ratio, the
//           loss, and the two per-channel coefficients of the gradient;
//   pass 2: (backward only) per tile the gradient, which at each element depends only on its
//           (n, c)'s coefficients, the element and its position's softmax.
// So forward_backward reads the input twice and allocates nothing input-sized but the gradient.
// Without batch, a sample's coefficients need only its own tiles, so a backward runs the three
// steps over a few samples at a time (kCachedBytesPerThread) and the second pass reads them from
// cache.
// Both losses are the ratio f = 1 - (a I + smooth_nr) / (b I + c P + d G + smooth_dr) of the
// sums I = sum p g, P = sum p^k, G = sum g^k (soft_label: I = (P + G - sum |p - g|) / 2 with
// P = sum |p|, G = sum |g|); the formulas are documented in
// python/losskit/_functional/segmentation.py.
#include "losskit/segmentation.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "common/checks.hpp"
#include "common/cpu_dispatch.hpp"
#include "common/parallel.hpp"
#include "common/reduce.hpp"
#include "common/staging.hpp"
#include "common/storage.hpp"
#include "losskit/errors.hpp"
#include "segmentation/segmentation_kernels.hpp"

namespace losskit {
namespace {

using detail::fail_value;
using detail::kSegmentationTile;
using detail::SegmentationActivation;

// The ratio's coefficients (see the file comment); k = 2 when `squared`.
struct Ratio {
  double a = 2, b = 0, c = 1, d = 1;
  bool squared = false;
  bool soft = false;  // I, P, G from the soft-label sums (never with squared)
};

// What both losses' options say, in one form.
struct Settings {
  const char* fn = "";
  bool include_background = true, sigmoid = false, softmax = false, batch = false;
  Reduction reduction = Reduction::Mean;
  double smooth_nr = 1e-5, smooth_dr = 1e-5;
  Normalizer normalizer{};
  Ratio ratio;
  bool takes_weight = false;
};

Settings settings_of(const DiceLossOptions& o) {
  // Dice: (2I + snr) / (P + G + sdr); Jaccard (MONAI): (2I + snr) / (2 (P + G - I) + sdr).
  const bool soft = o.soft_label && !o.squared_pred;
  const Ratio ratio = o.jaccard ? Ratio{2, -2, 2, 2, o.squared_pred, soft}
                                : Ratio{2, 0, 1, 1, o.squared_pred, soft};
  return Settings{"dice_loss",          o.include_background, o.sigmoid,   o.softmax,    o.batch,
                  o.reduction,          o.smooth_nr,          o.smooth_dr, o.normalizer, ratio,
                  /*takes_weight=*/true};
}

Settings settings_of(const TverskyLossOptions& o) {
  // tp + alpha fp + beta fn with fp = P - I, fn = G - I.
  const Ratio ratio{1, 1 - o.alpha - o.beta, o.alpha, o.beta, false, o.soft_label};
  return Settings{"tversky_loss",        o.include_background, o.sigmoid,   o.softmax,    o.batch,
                  o.reduction,           o.smooth_nr,          o.smooth_dr, o.normalizer, ratio,
                  /*takes_weight=*/false};
}

// Below this many input elements per thread a parallel region costs more than it saves.
constexpr int64_t kElementsPerThread = 32768;

// A backward runs both passes over samples holding about this many bytes of input and target
// per thread before the next ones, so that the second pass reads them from cache (1 to 4 MB in
// all measured best at 1 and 2 threads on the benchmark's 16 x 4 x 256 x 256: 10-25% faster than
// two passes over everything; 16 MB lost most of it). Per thread, so that many threads (more
// cache between them) do not split a few samples' tiles into slivers.
constexpr int64_t kCachedBytesPerThread = int64_t{1} << 20;

struct Problem {
  int64_t N = 0, C = 0, S = 0;
  int64_t first = 0;       // first counted channel
  int64_t counted = 0;     // C'
  int64_t label_base = 0;  // see SegmentationTile
  SegmentationActivation activation = SegmentationActivation::None;
  int64_t groups = 0;  // losses before the reduction: N C', or C' with batch
};

Shape spatial_of(const Shape& input_shape) {
  return Shape(input_shape.begin() + 2, input_shape.end());
}

std::string bool_name(bool b) { return b ? "True" : "False"; }

template <class T>
Problem check_common(const Settings& st, View<T> input, View<T> weight) {
  detail::check_reduction(st.fn, st.reduction);
  detail::check_normalizer(st.fn, st.reduction, st.normalizer);
  if (st.sigmoid && st.softmax)
    fail_value(st.fn, "softmax", "False when sigmoid is True (one activation at most)", "True");
  if (input.dim() < 3)
    fail_value(st.fn, "input", "an (N, C, d1, ..., dK) array with K >= 1 spatial dimensions",
               "shape " + shape_to_string(input.shape));
  if (input.shape[1] < 1)
    fail_value(st.fn, "input", "at least one channel (C >= 1)",
               "shape " + shape_to_string(input.shape));
  detail::check_required(st.fn, "input", input);
  Problem p;
  p.N = input.shape[0];
  p.C = input.shape[1];
  p.S = numel(spatial_of(input.shape));
  // MONAI ignores softmax, to_onehot_y and include_background=False for a single channel.
  p.first = (!st.include_background && p.C > 1) ? 1 : 0;
  p.counted = p.C - p.first;
  p.label_base = p.C == 1 ? 1 : 0;
  p.activation = st.sigmoid                ? SegmentationActivation::Sigmoid
                 : (st.softmax && p.C > 1) ? SegmentationActivation::Softmax
                                           : SegmentationActivation::None;
  p.groups = st.batch ? p.counted : p.N * p.counted;
  detail::check_optional(st.fn, "weight", weight);
  if (weight.present()) {
    if (!st.takes_weight)
      fail_value(st.fn, "weight", "none (this loss takes no class weights)",
                 "shape " + shape_to_string(weight.shape));
    if (weight.shape != Shape{p.counted})
      fail_value(st.fn, "weight",
                 "one value per counted class, shape (" + std::to_string(p.counted) + ",)",
                 "shape " + shape_to_string(weight.shape));
    for (int64_t c = 0; c < p.counted; ++c)
      if (weight.data[c] < T(0))
        fail_value(st.fn, "weight", "non-negative values",
                   std::to_string(static_cast<double>(weight.data[c])) + " for class " +
                       std::to_string(c + p.first));
  }
  return p;
}

template <class T>
void check_target(const Settings& st, const Problem&, View<T> input, View<T> target) {
  detail::check_required(st.fn, "target", target);
  if (target.shape != input.shape)
    fail_value(st.fn, "target",
               "the input's shape " + shape_to_string(input.shape) +
                   " (one-hot or soft targets; class indices with to_onehot_y=True)",
               "shape " + shape_to_string(target.shape));
}

template <class T>
void check_target(const Settings& st, const Problem& p, View<T> input, View<int64_t> target) {
  detail::check_required(st.fn, "target", target);
  Shape squeezed{input.shape[0]};
  const Shape spatial = spatial_of(input.shape);
  squeezed.insert(squeezed.end(), spatial.begin(), spatial.end());
  Shape with_channel{input.shape[0], 1};
  with_channel.insert(with_channel.end(), spatial.begin(), spatial.end());
  if (target.shape != squeezed && target.shape != with_channel)
    fail_value(st.fn, "target",
               "class indices of shape " + shape_to_string(squeezed) + " or " +
                   shape_to_string(with_channel),
               "shape " + shape_to_string(target.shape));
  // With one channel the labels are the mask itself (MONAI ignores to_onehot_y): 0 or 1.
  const int64_t limit = p.C == 1 ? 2 : p.C;
  const int64_t n = target.numel();
  const int64_t* labels = target.data;
  const auto out_of_range = [labels, limit](int64_t i) {
    return static_cast<uint64_t>(labels[i]) >= static_cast<uint64_t>(limit);
  };
  if (!detail::parallel_any(n, int64_t{1} << 17, out_of_range)) return;
  int64_t bad = 0;  // the first, for the message
  while (!out_of_range(bad)) ++bad;
  detail::fail_index(st.fn, "target",
                     p.C == 1 ? std::string("labels 0 or 1 (a single channel's mask)")
                              : "class indices in [0, " + std::to_string(p.C) + ")",
                     std::to_string(labels[bad]) + " at flat position " + std::to_string(bad));
}

template <class T>
void check_grad_output(const Settings& st, View<T> grad_output, const Shape& out_shape) {
  detail::check_optional(st.fn, "grad_output", grad_output);
  if (!grad_output.present()) return;
  if (st.reduction != Reduction::None && !grad_output.shape.empty())
    fail_value(st.fn, "grad_output", "a scalar for a reduced loss",
               "shape " + shape_to_string(grad_output.shape));
  if (st.reduction == Reduction::None)
    detail::check_shape_equal(st.fn, "grad_output", grad_output.shape, out_shape, "shape");
}

template <class T>
detail::SegmentationSumsKernel<T> sums_kernel() {
  return LOSSKIT_DISPATCH(detail::SegmentationSumsKernel<T>, segmentation_sums);
}
template <class T>
detail::SegmentationGradKernel<T> grad_kernel() {
  return LOSSKIT_DISPATCH(detail::SegmentationGradKernel<T>, segmentation_grad);
}

// The one driver; returns the divisor of 'mean' without the normalizer (N C', or C' with batch).
// grad_target: a dense target's gradient, or absent (not wanted).
template <class T, class Target>
double run(const Settings& st, View<T> input, View<Target> target, View<T> weight,
           View<T> grad_output, MutView<T> output, MutView<T> grad, MutView<T> grad_target,
           bool forward, bool backward) {
  const Problem p = check_common(st, input, weight);
  check_target(st, p, input, target);
  const Shape out_shape =
      segmentation_output_shape(input.shape, st.include_background, st.batch, st.reduction);
  if (forward) detail::check_output(st.fn, "output", output, out_shape);
  if (backward) {
    check_grad_output(st, grad_output, out_shape);
    detail::check_output(st.fn, "grad_input", grad, input.shape);
    if (grad_target.present()) detail::check_output(st.fn, "grad_target", grad_target, input.shape);
    else detail::check_aligned(st.fn, "grad_target", grad_target.data);
  }
  detail::DisjointArrays(st.fn)
      .read("input", input)
      .read("target", target)
      .read("weight", weight)
      .read("grad_output", backward ? grad_output : View<T>{})
      .write("output", forward ? output : MutView<T>{})
      .write("grad_input", backward ? grad : MutView<T>{})
      .write("grad_target", backward ? grad_target : MutView<T>{})
      .check();
  const double own_divisor = static_cast<double>(p.groups);
  if (!forward && !backward) return own_divisor;
  const double divisor = detail::mean_divisor(st.normalizer, own_divisor);

  const int64_t N = p.N, C = p.C, S = p.S, Cc = p.counted;
  const int64_t tiles_per_row = (S + kSegmentationTile - 1) / kSegmentationTile;
  const int64_t items = N * tiles_per_row;
  const int64_t grain = std::max<int64_t>(1, kElementsPerThread / (C * kSegmentationTile));
  // 16-bit storage: each tile's channels are widened into the thread's float scratch (as a
  // (C, length) block) and the float kernels run on it, so the sums and gradients are the float
  // path's on the upcast input, tile for tile (the same boundaries, hence the same bits); the
  // gradient tile is rounded once into the caller's array.
  using Compute = detail::compute_t<T>;
  constexpr bool kStaged = detail::is_half_v<T>;
  // input, target, gradient and the target's gradient
  detail::StageScratch scratch(kStaged ? 4 * C * kSegmentationTile : 0);
  // Where tile `item` starts: element (n, 0, s0) of the input (and of every array laid out as
  // it).
  auto tile_at = [&](int64_t item) {
    return (item / tiles_per_row * C) * S + item % tiles_per_row * kSegmentationTile;
  };
  auto tile_of = [&](int64_t item, detail::BlockStage<T>& stage) {
    const int64_t n = item / tiles_per_row, s0 = item % tiles_per_row * kSegmentationTile;
    detail::SegmentationTile<Compute> t;
    t.length = std::min(kSegmentationTile, S - s0);
    const int64_t at = tile_at(item);
    if constexpr (kStaged) {
      const detail::Strided block{C, t.length, S};
      t.input = stage.in(input.data, at, block);
      if constexpr (!std::is_same_v<Target, int64_t>) t.target = stage.in(target.data, at, block);
      t.plane = t.length;
    } else {
      t.input = input.data + at;
      if constexpr (!std::is_same_v<Target, int64_t>) t.target = target.data + at;
      t.plane = S;
    }
    if constexpr (std::is_same_v<Target, int64_t>) t.labels = target.data + n * S + s0;
    t.channels = C;
    t.first_channel = p.first;
    t.label_base = p.label_base;
    t.activation = p.activation;
    t.squared = st.ratio.squared;
    t.soft = st.ratio.soft;
    return t;
  };

  // Pass 1 over the tiles [i0, i1): their partials, partials[(item * C' + c') * 3 + m].
  std::vector<double> partials(static_cast<size_t>(items * Cc * 3));
  const auto sums = sums_kernel<Compute>();
  // With a sigmoid or softmax (not soft, no target gradient) pass 1 leaves p in the gradient,
  // which pass 2 overwrites: it then neither reads the input nor activates it again.
  const bool keep_p = backward && !kStaged && p.activation != SegmentationActivation::None &&
                      !st.ratio.soft && !grad_target.present();
  auto pass1 = [&](int64_t i0, int64_t i1) {
    detail::parallel_for(i0, i1, grain, [&](int64_t b, int64_t e, int thread) {
      for (int64_t i = b; i < e; ++i) {
        detail::BlockStage<T> stage(scratch.thread(thread));
        detail::SegmentationTile<Compute> t = tile_of(i, stage);
        if constexpr (!kStaged)
          if (keep_p) t.keep_p = grad.data + tile_at(i);
        sums(t, partials.data() + i * Cc * 3);
      }
    });
  };

  // The groups [g0, g1) from their tiles' partials: the sums in a fixed tree over the group's
  // tiles (in (n, tile) order with batch), the loss, and the per-(n, c) coefficients of dL/dp
  // (grad_output and the reduction folded in; C entries per sample, 0 for a channel left out;
  // with batch one row serves every sample).
  const int64_t tiles_per_group = st.batch ? items : tiles_per_row;
  std::vector<double> column(static_cast<size_t>(tiles_per_group));
  const Ratio& r = st.ratio;
  const double k = r.squared ? 2.0 : 1.0;
  std::vector<double> loss(static_cast<size_t>(p.groups));
  const int64_t rows = st.batch ? 1 : N;
  std::vector<Compute> coef_g(backward ? static_cast<size_t>(rows * C) : 0, Compute(0)),
      coef_q(coef_g), coef_t(coef_g);
  const double go0 =
      backward && grad_output.present() ? static_cast<double>(grad_output.data[0]) : 1.0;
  auto finish_groups = [&](int64_t g0, int64_t g1) {
    for (int64_t grp = g0; grp < g1; ++grp) {
      const int64_t n = st.batch ? 0 : grp / Cc, c = grp % Cc;
      double sum[3];
      for (int m = 0; m < 3; ++m) {
        for (int64_t t = 0; t < tiles_per_group; ++t)
          column[static_cast<size_t>(t)] = partials[((n * tiles_per_row + t) * Cc + c) * 3 + m];
        sum[m] = detail::combine_partials(column.data(), tiles_per_group);
      }
      if (r.soft) {  // the tiles summed |p - g|, |p|, |g|: I = (|p| + |g| - |p - g|) / 2
        const double diff = sum[0];
        sum[0] = (sum[1] + sum[2] - diff) / 2.0;
      }
      const double num = r.a * sum[0] + st.smooth_nr;
      const double den = r.b * sum[0] + r.c * sum[1] + r.d * sum[2] + st.smooth_dr;
      // MONAI multiplies by the weight only when more than one class is counted.
      const double w = weight.present() && Cc > 1 ? static_cast<double>(weight.data[c]) : 1.0;
      loss[static_cast<size_t>(grp)] = w * (1.0 - num / den);
      if (!backward) continue;
      // d f / d I, d f / d P and d f / d G (the last two times k, from d p^k / d p), weight
      // included, times the upstream scale.
      double scale = go0;
      if (st.reduction == Reduction::None)
        scale = grad_output.present() ? static_cast<double>(grad_output.data[grp]) : 1.0;
      else if (st.reduction == Reduction::Mean) scale = go0 / divisor;
      const size_t at = static_cast<size_t>(n * C + c + p.first);
      coef_g[at] = static_cast<Compute>(scale * w * (-r.a / den + r.b * num / (den * den)));
      coef_q[at] = static_cast<Compute>(scale * w * k * r.c * num / (den * den));
      coef_t[at] = static_cast<Compute>(scale * w * k * r.d * num / (den * den));
    }
  };

  // Pass 2 over the tiles [i0, i1): the gradient.
  const auto grad_tile = grad_kernel<Compute>();
  auto pass2 = [&](int64_t i0, int64_t i1) {
    detail::parallel_for(i0, i1, grain, [&](int64_t b, int64_t e, int thread) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t row = st.batch ? 0 : i / tiles_per_row;
        detail::BlockStage<T> stage(scratch.thread(thread));
        detail::SegmentationTile<Compute> t = tile_of(i, stage);
        t.p_kept = keep_p;
        const int64_t at = tile_at(i);
        Compute *out, *out_target;
        if constexpr (kStaged) {
          out = stage.out(grad.data, at, {C, t.length, S});
          out_target = stage.out(grad_target.data, at, {C, t.length, S});
        } else {
          out = grad.data + at;
          out_target = grad_target.data ? grad_target.data + at : nullptr;
        }
        grad_tile(t, coef_g.data() + row * C, coef_q.data() + row * C, coef_t.data() + row * C, out,
                  out_target);
        if constexpr (kStaged) stage.finish();
      }
    });
  };

  if (backward && !st.batch) {
    // Each sample's groups need only its own tiles: both passes run over a few samples at a
    // time, so the second reads them from cache rather than from memory (the same tiles, sums
    // and order as one pass over everything, so the same bits).
    const int64_t per_sample = C * S * static_cast<int64_t>(sizeof(T) + sizeof(Target));
    const int64_t budget = kCachedBytesPerThread * get_num_threads();
    const int64_t chunk = std::max<int64_t>(1, budget / std::max<int64_t>(1, per_sample));
    for (int64_t n0 = 0; n0 < N; n0 += chunk) {
      const int64_t n1 = std::min(N, n0 + chunk);
      pass1(n0 * tiles_per_row, n1 * tiles_per_row);
      finish_groups(n0 * Cc, n1 * Cc);
      pass2(n0 * tiles_per_row, n1 * tiles_per_row);
    }
  } else {
    pass1(0, items);
    finish_groups(0, p.groups);
    if (backward) pass2(0, items);
  }

  if (forward) {
    switch (st.reduction) {
      case Reduction::None:
        for (int64_t g = 0; g < p.groups; ++g)
          output.data[g] = static_cast<T>(loss[static_cast<size_t>(g)]);
        break;
      case Reduction::Sum:
        output.data[0] = static_cast<T>(detail::combine_partials(loss.data(), p.groups));
        break;
      default:
        output.data[0] = static_cast<T>(detail::combine_partials(loss.data(), p.groups) / divisor);
        break;
    }
  }
  return own_divisor;
}

template <class Options, class T, class Target>
double run_with(const Options& o, View<T> input, View<Target> target, View<T> weight,
                View<T> grad_output, MutView<T> output, MutView<T> grad, MutView<T> grad_target,
                bool forward, bool backward) {
  return run<T, Target>(settings_of(o), input, target, weight, grad_output, output, grad,
                        grad_target, forward, backward);
}

}  // namespace

Shape segmentation_output_shape(const Shape& input_shape, bool include_background, bool batch,
                                Reduction reduction) {
  if (reduction != Reduction::None) return {};
  if (input_shape.size() < 2)
    fail_value("segmentation_output_shape", "input_shape", "an (N, C, ...) shape",
               shape_to_string(input_shape));
  const int64_t C = input_shape[1];
  const int64_t counted = (!include_background && C > 1) ? C - 1 : C;
  if (batch) return {counted};
  return {input_shape[0], counted};
}

// The class-index form has no target gradient; the dense one takes grad_target (absent: none).
#define LOSSKIT_SEGMENTATION_DEFINE_(NAME, OPTIONS, TARGET, GRAD_TARGET_PARAM, GRAD_TARGET)        \
  template <class T>                                                                               \
  void NAME(View<T> input, View<TARGET> target, View<T> weight, MutView<T> output,                 \
            const OPTIONS& o) {                                                                    \
    run_with<OPTIONS, T, TARGET>(o, input, target, weight, {}, output, {}, {}, true, false);       \
  }                                                                                                \
  template <class T>                                                                               \
  void NAME##_backward(View<T> grad_output, View<T> input, View<TARGET> target, View<T> weight,    \
                       MutView<T> grad_input GRAD_TARGET_PARAM, const OPTIONS& o) {                \
    run_with<OPTIONS, T, TARGET>(o, input, target, weight, grad_output, {}, grad_input,            \
                                 GRAD_TARGET, false, true);                                        \
  }                                                                                                \
  template <class T>                                                                               \
  void NAME##_forward_backward(View<T> input, View<TARGET> target, View<T> weight,                 \
                               View<T> grad_output, MutView<T> output,                             \
                               MutView<T> grad_input GRAD_TARGET_PARAM, const OPTIONS& o) {        \
    run_with<OPTIONS, T, TARGET>(o, input, target, weight, grad_output, output, grad_input,        \
                                 GRAD_TARGET, true, true);                                         \
  }                                                                                                \
  template <class T>                                                                               \
  double NAME##_mean_normalizer(View<T> input, View<TARGET> target, View<T> weight,                \
                                const OPTIONS& o) {                                                \
    detail::check_dividing_reduction(settings_of(o).fn, o.reduction);                              \
    return run_with<OPTIONS, T, TARGET>(o, input, target, weight, {}, {}, {}, {}, false, false);   \
  }

// `...`: what the dense form's backward and forward_backward take after grad_input (`, MutView<T>`
// for grad_target, written as an empty argument and MutView<T>); the class-index form passes one
// empty argument (C++17 wants at least one for `...`).
#define LOSSKIT_SEGMENTATION_INSTANTIATE_(NAME, OPTIONS, T, TARGET, ...)                           \
  template void NAME<T>(View<T>, View<TARGET>, View<T>, MutView<T>, const OPTIONS&);               \
  template void NAME##_backward<T>(View<T>, View<T>, View<TARGET>, View<T>,                        \
                                   MutView<T> __VA_ARGS__, const OPTIONS&);                        \
  template void NAME##_forward_backward<T>(View<T>, View<TARGET>, View<T>, View<T>, MutView<T>,    \
                                           MutView<T> __VA_ARGS__, const OPTIONS&);                \
  template double NAME##_mean_normalizer<T>(View<T>, View<TARGET>, View<T>, const OPTIONS&);
#define LOSSKIT_SEGMENTATION_INSTANTIATE_BOTH_(NAME, OPTIONS, T)                                   \
  LOSSKIT_SEGMENTATION_INSTANTIATE_(NAME, OPTIONS, T, T, , MutView<T>)                             \
  LOSSKIT_SEGMENTATION_INSTANTIATE_(NAME, OPTIONS, T, int64_t, )

// What the dense form adds to the parameter lists: the target's gradient.
#define LOSSKIT_SEGMENTATION_GRAD_TARGET_PARAM_ , MutView<T> grad_target
#define LOSSKIT_SEGMENTATION_LOSS_(NAME, OPTIONS)                                                  \
  LOSSKIT_SEGMENTATION_DEFINE_(NAME, OPTIONS, T, LOSSKIT_SEGMENTATION_GRAD_TARGET_PARAM_,          \
                               grad_target)                                                        \
  LOSSKIT_SEGMENTATION_DEFINE_(NAME, OPTIONS, int64_t, , {})                                       \
  LOSSKIT_SEGMENTATION_INSTANTIATE_BOTH_(NAME, OPTIONS, float)                                     \
  LOSSKIT_SEGMENTATION_INSTANTIATE_BOTH_(NAME, OPTIONS, double)                                    \
  LOSSKIT_SEGMENTATION_INSTANTIATE_BOTH_(NAME, OPTIONS, bfloat16)                                  \
  LOSSKIT_SEGMENTATION_INSTANTIATE_BOTH_(NAME, OPTIONS, float16)

LOSSKIT_SEGMENTATION_LOSS_(dice_loss, DiceLossOptions)
LOSSKIT_SEGMENTATION_LOSS_(tversky_loss, TverskyLossOptions)
#undef LOSSKIT_SEGMENTATION_GRAD_TARGET_PARAM_
#undef LOSSKIT_SEGMENTATION_INSTANTIATE_BOTH_
#undef LOSSKIT_SEGMENTATION_LOSS_
#undef LOSSKIT_SEGMENTATION_INSTANTIATE_
#undef LOSSKIT_SEGMENTATION_DEFINE_

}  // namespace losskit
