// Interface between the classification entry points (classification.cpp, compiled once) and the
// kernels (classification_kernels.cpp, compiled once per instruction set).
//
// Layout: every loss sees its input as (N, C, S): N samples, C classes with class stride S, and
// S spatial positions (S = 1 for (C) and (N, C) inputs). A "position" p = n * S + s owns one
// loss value. Kernels process a range of positions on the calling thread, return the sum of their
// losses in double (in position order), and never throw or allocate; the entry points validate
// every index before calling them.
#pragma once

#include <cstdint>
#include <optional>

#include "common/checks.hpp"
#include "common/target.hpp"
#include "losskit/classification.hpp"

namespace losskit::detail {

// Softmax cross-entropy (class indices or probabilities) over positions of an (N, C, S) input.
//
// Per position, with w the class weights (ones when absent), eps = label_smoothing and
// lse = log sum_c exp(x_c):
//   class index t (t != ignore_index):
//     loss = (1 - eps) w_t (lse - x_t) + eps / C sum_c w_c (lse - x_c)
//     d loss / d x_j = softmax_j ((1 - eps) w_t + eps / C sum_c w_c) - (1 - eps) w_t [j = t]
//                      - eps / C w_j
//   probabilities y (y'_c = (1 - eps) y_c + eps / C):
//     loss = sum_c w_c y'_c (lse - x_c)
//     d loss / d x_j = softmax_j sum_c w_c y'_c - w_j y'_j;  d loss / d y_j = (1 - eps) w_j (lse - x_j)
// The gradient written is grad_scale * (grad_out ? grad_out[p] : 1) times that; ignored positions
// have scale 0 (their loss is 0 and their gradient 0, NaN where the logits hold NaN, as torch's).
// Extras (class indices only): with a softcap c every x above is x' = c tanh(x / c) (computed
// with vmath::tanh, including the target's) and the gradient is multiplied by
// dx'/dx = 1 - tanh(x / c)^2; a counted position adds z_loss lse^2 to its loss and
// 2 z_loss lse softmax_j to the gradient (into the coefficient of softmax_j). The statistics
// outputs take lse, the entropy lse - sum_c softmax_c x'_c and argmax_c x_c == t.
// Losses that are a function F of the unweighted cross-entropy l = lse - x_t of a counted
// position (class indices, no smoothing): loss = w_t F(l), and since dl/dx_j = softmax_j - [j = t]
// the gradient keeps cross-entropy's form with w_t replaced by w_t F'(l), so they run on its row
// and tile kernels unchanged but for the per-position constants. With p = e^-l, q = 1 - p:
//   Focal (softmax_focal_loss, gamma g): F = q^g l,      F' = q^g + g p l q^(g-1)
//   Poly1 (poly1_cross_entropy, eps):   F = l + eps q,  F' = 1 + eps p
enum class CeTransform { None, Focal, Poly1 };

// The arguments of a call that do not depend on the storage type (sizes, options, class indices),
// apart from its arrays of T: a 16-bit call hands them to its float kernels in one assignment.
struct CeScalars {
  const int64_t* target = nullptr;  // (N, S) class indices, or nullptr with `prob`
  int64_t N = 0, C = 0, S = 1;
  int64_t ignore_index = -100;
  double smoothing = 0.0;
  double weight_sum = 0.0;  // sum_c w_c (C without weights)
  double grad_scale = 1.0;  // reduction scale times a scalar grad_output
  double z_loss = 0.0;      // class indices only
  double softcap = 0.0;     // class indices only; 0: none
  bool* correct_out = nullptr;
  // A loss built on the unsmoothed class-index cross-entropy (see CeTransform): no smoothing,
  // softcap, z_loss or statistics with it. `transform_param` is its gamma or epsilon.
  CeTransform transform = CeTransform::None;
  double transform_param = 0.0;
};
template <class T>
struct CeArgs : CeScalars {
  const T* input = nullptr;     // (N, C, S) logits
  const T* prob = nullptr;      // (N, C, S) probability targets, or nullptr
  const T* weight = nullptr;    // (C) class weights, or nullptr
  const T* grad_out = nullptr;  // per-position grad_output (Reduction::None), or nullptr
  T* out = nullptr;             // per-position loss (Reduction::None), or nullptr
  T* grad = nullptr;            // d input, may be the input buffer itself; nullptr: forward only
  T* grad_target = nullptr;     // d prob (probability targets), or nullptr
  T* lse_out = nullptr;         // per-position statistics (class indices), or nullptr
  T* entropy_out = nullptr;
  bool stats() const { return lse_out || entropy_out || correct_out; }
};

// Online softmax statistics of a run of classes, relative to `ref` (the run's max, or 0 when the
// run holds only -inf, `valid` false): s = sum exp(x - ref), wx = sum v (x - ref), ws = sum v,
// with v = w (class indices) or w y' (probabilities). The statistics outputs and softcap also
// track ex = sum exp(x - ref) (x - ref) (for the entropy) and the run's first argmax `arg` of the
// input logits with its value `amax` (-1 where the run holds only NaN).
struct CeStats {
  double ref = 0.0, s = 0.0, wx = 0.0, ws = 0.0;
  bool valid = false;
  double ex = 0.0, amax = 0.0;
  int64_t arg = -1;
};

// Per-row constants of the gradient pass.
struct CeRowConsts {
  double lse = 0.0;     // ref + logs
  double ref = 0.0;     // the row's largest logit (0 for a row of -inf)
  double logs = 0.0;    // log sum_c exp(x_c - ref)
  double a = 0.0;       // coefficient of softmax_j
  double b = 0.0;       // coefficient of -w_j (class indices) or -w_j y'_j (probabilities)
  double fix = 0.0;     // subtracted at the target class
  int64_t target = -1;  // -1: none
  double scale = 0.0;   // grad_scale * grad_out (0 for ignored positions)
};
// (fix already carries the softcap derivative at the target.)

// Rows are cut in chunks of kCeChunk classes (fixed, so sums never depend on the thread count):
// a chunk is read twice from L1 (max, then exp-sum) and the row once from memory. With a gradient
// wanted (class indices), the exponentials go straight into the gradient buffer and the second
// sweep only rescales them (one exp per logit in all).
constexpr int64_t kCeChunk = 2048;

template <class T>
struct CeKernels {
  // Positions [p0, p1) of rows (S == 1), each row whole, on the calling thread.
  double (*rows)(const CeArgs<T>&, int64_t p0, int64_t p1);
  // Positions n * S + [s0, s1) of a strided (S > 1) input; s1 - s0 <= kCeTile (the entry
  // point cuts tiles of ce_tile_width).
  double (*tile)(const CeArgs<T>&, int64_t n, int64_t s0, int64_t s1);
  // In-row pieces (S == 1), for rows split across threads: chunk statistics of chunks [k0, k1),
  // the fixed left-to-right fold, the per-row finish (loss, and out[row]), and the gradient.
  void (*row_stats)(const CeArgs<T>&, int64_t row, int64_t k0, int64_t k1, CeStats* stats);
  void (*combine)(CeStats& acc, const CeStats& next);
  // The target logit, read before the statistics pass (which may overwrite an in-place row).
  T (*target_logit)(const CeArgs<T>&, int64_t row);
  double (*row_finish)(const CeArgs<T>&, int64_t row, const CeStats& stats, T xt, CeRowConsts* rc);
  // stats: the statistics of chunks [k0, k1).
  void (*row_grad)(const CeArgs<T>&, int64_t row, const CeRowConsts& rc, int64_t k0, int64_t k1,
                   const CeStats* stats);
  // Rows [p0, p1) (S == 1) on 16-bit storage, float tables only: `f` holds the scalars and the
  // class weights widened to float, `h` the 16-bit arrays. Each chunk of logits is widened into
  // an L1 strip as it is read and the float chunk functions run on it, so values and gradients are
  // the float path's on the upcast input, rounded once as they are stored. `rowbuf`: C floats of
  // the thread's (the row's exponentials between the passes, as the float path keeps them in its
  // gradient), only touched with a gradient wanted.
  double (*rows_bfloat16)(const CeArgs<T>& f, const CeArgs<bfloat16>& h, int64_t p0, int64_t p1,
                          T* rowbuf);
  double (*rows_float16)(const CeArgs<T>& f, const CeArgs<float16>& h, int64_t p0, int64_t p1,
                         T* rowbuf);
};
constexpr int64_t kCeTile = 256;

// Positions per tile of the strided path for C classes of `elem` bytes: the tile's logits and
// gradient (2 C width values) stay within about 32 KiB, in L1 between the passes; a multiple of 16
// positions (a cache line of floats, so each class's run is whole lines), from 16 to kCeTile.
// Wider tiles give the hardware prefetcher longer runs in each of the C strided streams. It
// depends on C and the type only, so the tiles (and the sums) are the same on any thread count.
constexpr int64_t ce_tile_width(int64_t C, int64_t elem) {
  const int64_t fit = 16384 / (C * elem > 0 ? C * elem : 1) / 16 * 16;
  return fit < 16 ? 16 : (fit > kCeTile ? kCeTile : fit);
}

// nll_loss over positions [p0, p1) (any S): loss = -w_t x_t; gradient row zeroed then
// -scale w_t at t. `target` values are validated.
struct NllScalars {
  const int64_t* target = nullptr;
  int64_t N = 0, C = 0, S = 1;
  int64_t ignore_index = -100;
  double grad_scale = 1.0;
};
template <class T>
struct NllArgs : NllScalars {
  const T* input = nullptr;
  const T* weight = nullptr;
  const T* grad_out = nullptr;
  T* out = nullptr;
  T* grad = nullptr;
};

// Row losses over (N, C) rows [r0, r1): multi_margin_loss, multilabel_margin_loss,
// multilabel_soft_margin_loss. `scratch` holds C values of T per thread (multilabel margin's
// target mask).
struct RowLossScalars {
  const int64_t* target = nullptr;  // multi_margin (N), multilabel_margin (N, C)
  int64_t weight_row_stride = 0;    // 0 or C
  int64_t N = 0, C = 0;
  int p = 1;
  double margin = 1.0;
  double grad_scale = 1.0;
};
template <class T>
struct RowLossArgs : RowLossScalars {
  const T* input = nullptr;
  const T* prob = nullptr;    // multilabel_soft_margin target (N, C)
  const T* weight = nullptr;  // (C) or, multilabel_soft_margin only, (N, C)
  const T* grad_out = nullptr;
  T* out = nullptr;
  T* grad = nullptr;
  T* grad_target = nullptr;
};

template <class T>
struct ClassificationKernels {
  CeKernels<T> ce;
  double (*nll)(const NllArgs<T>&, int64_t p0, int64_t p1);
  double (*multi_margin)(const RowLossArgs<T>&, int64_t r0, int64_t r1);
  double (*multilabel_margin)(const RowLossArgs<T>&, int64_t r0, int64_t r1, T* scratch);
  double (*multilabel_soft_margin)(const RowLossArgs<T>&, int64_t r0, int64_t r1);
  // poly1_cross_entropy where its extra term reads every class (label smoothing, probability
  // targets), positions [p0, p1) of any S; args.transform_param is epsilon. Per position, with
  // v_c = w_c y'_c (y' the smoothed one-hot or probability target), p = softmax(x),
  // V = sum_c v_c and P = sum_c v_c p_c:
  //   loss = sum_c v_c (lse - x_c) + eps (V - P)
  //   d loss / d x_j = p_j (V + eps P) - v_j (1 + eps p_j)
  //   d loss / d y_j = (1 - smoothing) w_j ((lse - x_j) + eps (1 - p_j))
  double (*poly1_soft)(const CeArgs<T>&, int64_t p0, int64_t p1);
};

// The kernel table of the active instruction set.
template <class T>
const ClassificationKernels<T>& classification_kernels();

// The fused cross-entropy row kernel with its threading, for other families (the large
// vocabulary linear_cross_entropy computes logits chunk by chunk and calls this on each chunk):
// rows = args.N, S must be 1, args.target already validated (every value in [0, C) or
// ignore_index), args.grad may equal args.input (gradient written in place). Rows run in parallel,
// or a row's chunks do when there are fewer rows than threads. Returns the sum of the row losses,
// bitwise the same for any thread count; args.out (if set) receives each row's loss.
template <class T>
double cross_entropy_rows(const CeArgs<T>& args);

// The extras' option checks (z_loss finite >= 0; softcap finite > 0 or absent), and their setting
// into CeArgs with each present statistics output checked against the loss's shape; shared by
// cross_entropy and linear_cross_entropy.
void check_ce_extras(const char* fn, double z_loss, const std::optional<double>& softcap);
template <class T>
void set_ce_extras(const char* fn, CeArgs<T>& a, double z_loss,
                   const std::optional<double>& softcap, const CrossEntropyStats<T>& stats,
                   const Shape& loss_shape);
// The statistics outputs join a call's overlap check (common/checks.hpp).
template <class T>
DisjointArrays& write_stats(DisjointArrays& arrays, const CrossEntropyStats<T>& stats) {
  return arrays.write("lse", stats.lse)
      .write("entropy", stats.entropy)
      .write("correct", stats.correct);
}

}  // namespace losskit::detail

namespace losskit::kernels {
#define LOSSKIT_DECLARE_CLASSIFICATION(ns)                                                         \
  namespace ns {                                                                                   \
  extern const detail::ClassificationKernels<float> classification_kernels_f32;                    \
  extern const detail::ClassificationKernels<double> classification_kernels_f64;                   \
  }
LOSSKIT_FOR_EACH_TARGET(LOSSKIT_DECLARE_CLASSIFICATION)
#undef LOSSKIT_DECLARE_CLASSIFICATION
}  // namespace losskit::kernels
