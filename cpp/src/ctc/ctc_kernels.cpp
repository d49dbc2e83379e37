// Hot loops of the CTC loss: the alpha-beta recursions of one sample in log space, and its
// gradient. Compiled once per instruction set (see common/target.hpp); no exceptions, allocation
// or Python here. References: A. Graves et al., "Connectionist Temporal Classification", ICML
// 2006 (equation numbers below), as in ATen's LossCTC.cpp, whose results these loops reproduce.
//
// Numerics. Everything is computed in double, whatever the input type: the log alphas grow like
// T * |log p|, and float32 rounding of such sums (and of the posterior exp(alpha + beta + nll -
// log p), a difference of large numbers) would cost about sqrt(T) * 1e-7 relative, too much for a
// long sequence's gradient. Each log-sum-exp is shifted by its maximum, with torch's convention
// that a maximum of -inf becomes 0 (so three -inf terms give -inf, never NaN). 16-bit
// log-probabilities (bfloat16, float16) are read in place and widened on load; their gradient is
// computed in float and rounded once on store.
//
// Work trimming (the trick warp-ctc uses without saying why). Extended label s (0 <= s < W = 2S+1)
// can be occupied at time t by a path that starts at s in {0, 1} and ends at s in {W-2, W-1} at
// t = input_length - 1 only if  lo_t <= s <= hi_t  with
//   hi_t = min(W - 1, 2t + 1)                  (a path advances at most 2 labels per step), and
//   lo_t = max(0, W - 2 (input_length - t))    (it must still be able to reach W - 2).
// Cells outside [lo_t, hi_t] contribute nothing to the loss or to the gradient (their alpha or
// their beta is exactly zero), so each row computes only that band and stores -inf elsewhere.
// A band cell only reads band cells of the previous row (lo_{t-1} >= lo_t - 2), so the values in
// the band are the same as a full computation's.
//
// Unless a log-probability is NaN or +inf. torch computes every cell of every row: a cell above
// the band is then -inf + NaN or -inf + inf = NaN, which later cells carry into the loss, and a
// NaN or +inf alpha below the band meets torch's beta of -inf there (NaN) in the gradient. Such a
// sample (item() says which cells it checks) computes whole rows, as torch does: alpha's rows
// 0 .. il - 2 and beta's rows il - 2 .. 0 in full; row il - 1 keeps its band {W - 2, W - 1} in
// both, since torch starts beta there from those two cells and sums its posteriors only there.
#include "ctc/ctc_kernels.hpp"

#include <cstdint>
#include <limits>

#include "common/storage_access.hpp"
#include "common/target.hpp"
#include "common/vmath.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS {
namespace ctc {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// log(e^a + e^b + e^c) = m + log(1 + e^(u - m) + e^(v - m)), m the maximum and u, v the other
// two: two exps, since the maximum's own term is exactly 1. Edge values as torch's shifted form:
// all -inf gives -inf, a NaN gives NaN (through m, u or v: the selects keep it), and a +inf gives
// NaN (torch computes inf - inf). Selects only: the loops calling this vectorise.
LOSSKIT_INLINE double log_sum_exp3(double a, double b, double c) {
  const double hi_ab = b > a ? b : a;
  const double lo_ab = b > a ? a : b;
  const double m = c > hi_ab ? c : hi_ab;
  const double mid = c > hi_ab ? hi_ab : c;
  double r =
      m + vmath::log(1.0 + vmath::exp_nonpositive(lo_ab - m) + vmath::exp_nonpositive(mid - m));
  r = m == kNegInf ? lo_ab + mid : r;  // -inf, or NaN if u or v is
  r = m == -kNegInf ? m - m : r;       // NaN
  return r;
}

LOSSKIT_INLINE double log_sum_exp2(double a, double b) {
  double m = a < b ? b : a;  // std::max(a, b)
  m = m == kNegInf ? 0.0 : m;
  return vmath::log(vmath::exp(a - m) + vmath::exp(b - m)) + m;
}

// Band loops run to the next multiple of kVector cells past lo, so they have no scalar remainder
// (a remainder cell costs a scalar exp, exp and log: as much as a whole vector). The extra cells
// (at most kVector - 1 past hi) compute on padding: ext is the blank and allow 0 up to the row
// length, every row is at least W + kVector + 3 long, and set_margins runs after the loop, so the
// two cells the next row reads past hi are -inf and the rest is never read.
constexpr int64_t kVector = 8;
inline int64_t vector_end(int64_t lo, int64_t hi) {
  return hi < lo ? lo : lo + (hi - lo + kVector) / kVector * kVector;
}

// lpe[s] = log_probs[t, b, l'_s] for s in [lo, end): a vector gather.
template <class T>
LOSSKIT_INLINE void gather_row(double* LOSSKIT_RESTRICT lpe, const T* LOSSKIT_RESTRICT lpt,
                               const int64_t* LOSSKIT_RESTRICT ext, int64_t lo, int64_t end) {
#pragma omp simd
  for (int64_t s = lo; s < end; ++s) lpe[s] = static_cast<double>(load(lpt[ext[s]]));
}

// A row computes only its band [lo, hi]; the next row reads at most two cells beyond it on each
// side (lo and hi move by at most 2 per step), so those are set to -inf, clipped to the row's
// addressable [first, last]. When a band is empty every later band is empty too (lo grows by 2,
// hi by at most 2), so nothing reads a cell left unset.
inline void set_margins(double* r, int64_t lo, int64_t hi, int64_t first, int64_t last) {
  for (int64_t s = lo - 2; s < lo; ++s)
    if (s >= first && s <= last) r[s] = kNegInf;
  for (int64_t s = hi + 1; s <= hi + 2; ++s)
    if (s >= first && s <= last) r[s] = kNegInf;
}

template <class T>
double item(const detail::CtcItem<T>& it) {
  using F = detail::compute_t<T>;  // T, or float for 16-bit storage
  const detail::CtcLayout& lay = it.layout;
  const int64_t L = it.target_length, W = 2 * L + 1, il = it.input_length;
  const int64_t row = lay.row, stride = it.stride, blank = it.blank;
  const bool want_grad = it.grad != nullptr;

  double* LOSSKIT_RESTRICT alpha = it.scratch + lay.alpha;
  double* LOSSKIT_RESTRICT beta = it.scratch + lay.beta;
  double* LOSSKIT_RESTRICT lpe = it.scratch + lay.lpe;
  double* LOSSKIT_RESTRICT allow = it.scratch + lay.allow;
  double* LOSSKIT_RESTRICT post = it.scratch + lay.post;
  int64_t* LOSSKIT_RESTRICT ext = reinterpret_cast<int64_t*>(it.scratch + lay.ext);
  double* LOSSKIT_RESTRICT occ = it.scratch + lay.occ;

  // The extended label sequence l' (Graves sec. 4.1): blanks around and between the labels. The
  // transition s - 2 -> s (skipping a blank) is allowed only into a label that differs from the
  // label two before it, so repeated labels need a blank between them (eq. 6 / 7).
  for (int64_t s = 0; s < row; ++s) ext[s] = (s & 1) && s < W ? it.target[(s - 1) / 2] : blank;
  for (int64_t s = 0; s < row; ++s)
    allow[s] =
        (s & 1) && s >= 3 && s < W && it.target[(s - 1) / 2] != it.target[(s - 3) / 2] ? 1.0 : 0.0;

  // NaN or +inf where torch's full rows differ from the band's: whole rows (see the top). For the
  // loss, that is a cell above the band (s > 2t + 1, t >= 1: alpha carries it to the end), about
  // W^2 / 4 cells to read. For the gradient it is any cell of t < il: a NaN or +inf inside the
  // band also reaches alpha's cells below it, where torch's beta is -inf and alpha + beta is NaN;
  // those reads cost little beside the gradient's own pass over every log-probability. The scan
  // then reads each time step's C contiguous values, or gathers the W extended labels' values
  // when C is much larger (T = 500, C = 5000, S = 100: 2x faster).
  bool full = false;
  constexpr F kInf = std::numeric_limits<F>::infinity();
  if (!want_grad) {
    for (int64_t t = 1; t < il && !full; ++t) {
      const T* LOSSKIT_RESTRICT lpt = it.log_probs + t * stride;
      for (int64_t s = 2 * t + 2; s < W; ++s) full = full || !(load(lpt[ext[s]]) < kInf);
    }
  } else {
    const int64_t C = it.num_labels;
    for (int64_t t = 0; t < il && !full; ++t) {
      const T* LOSSKIT_RESTRICT lpt = it.log_probs + t * stride;
      int64_t bad = 0;
      if (8 * W < C) {
        for (int64_t s = 0; s < W; ++s) bad += load(lpt[ext[s]]) < kInf ? 0 : 1;
      } else {
#pragma omp simd reduction(+ : bad)
        for (int64_t c = 0; c < C; ++c) bad += load(lpt[c]) < kInf ? 0 : 1;
      }
      full = bad != 0;
    }
  }
  auto band_lo = [&](int64_t t) {
    return full && t < il - 1 ? int64_t{0} : W - 2 * (il - t) > 0 ? W - 2 * (il - t) : int64_t{0};
  };
  auto band_hi = [&](int64_t t) { return full ? W - 1 : 2 * t + 1 < W - 1 ? 2 * t + 1 : W - 1; };
  auto gather = [&](int64_t t, int64_t lo, int64_t hi) {
    gather_row(lpe, it.log_probs + t * stride, ext, lo, vector_end(lo, hi));
  };
  // With the gradient, every row of alpha is kept; without, two rows alternate.
  auto alpha_row = [&](int64_t t) { return alpha + (want_grad ? t : (t & 1)) * row; };

  // ---- forward: alpha (eq. 5 - 8) ------------------------------------------------------------
  // alpha_row(t)[s] for s in [-2, W - 1]: the two leading cells are the row's padding.
  double nll;
  const auto in_band = [&](int64_t s, int64_t t) { return band_lo(t) <= s && s <= band_hi(t); };
  if (il == 0) {
    nll = L == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  } else {
    {  // alpha_1: blank or the first label (the equations above eq. 6); the band is within {0, 1}
      double* a0 = alpha_row(0) + 2;
      const int64_t lo = band_lo(0), hi = band_hi(0);
      for (int64_t s = lo; s <= hi; ++s) a0[s] = kNegInf;
      if (in_band(0, 0)) a0[0] = static_cast<double>(load(it.log_probs[blank]));
      if (L > 0 && in_band(1, 0)) a0[1] = static_cast<double>(load(it.log_probs[ext[1]]));
      set_margins(a0, lo, hi, -2, W - 1);
    }
    for (int64_t t = 1; t < il; ++t) {
      const double* LOSSKIT_RESTRICT prev = alpha_row(t - 1) + 2;
      double* LOSSKIT_RESTRICT cur = alpha_row(t) + 2;
      const int64_t lo = band_lo(t), hi = band_hi(t);
      gather(t, lo, hi);
      // eq. (6) / (7): alpha_t(s) = (alpha_{t-1}(s) + alpha_{t-1}(s-1) [+ alpha_{t-1}(s-2)]) y_t
#pragma omp simd
      for (int64_t s = lo; s < vector_end(lo, hi); ++s) {
        const double a3 = allow[s] != 0.0 ? prev[s - 2] : kNegInf;
        cur[s] = log_sum_exp3(prev[s], prev[s - 1], a3) + lpe[s];
      }
      set_margins(cur, lo, hi, -2, W - 1);
    }
    // eq. (8): p(l|x) = alpha_T(|l'|) + alpha_T(|l'| - 1); an empty target has only the blank path.
    const double* last = alpha_row(il - 1) + 2;
    const double end_blank = in_band(W - 1, il - 1) ? last[W - 1] : kNegInf;
    const double end_label = L > 0 && in_band(W - 2, il - 1) ? last[W - 2] : kNegInf;
    nll = L == 0 ? -end_blank : -log_sum_exp2(end_blank, end_label);
  }
  if (!want_grad) return nll;

  // ---- backward: beta (eq. 9 - 11) and the gradient (eq. 16) ----------------------------------
  const int64_t C = it.num_labels, Tmax = it.max_time;
  T* grad = it.grad;
  const bool zeroed = it.zero_infinity && nll == std::numeric_limits<double>::infinity();
  for (int64_t t = zeroed ? 0 : il; t < Tmax; ++t) {
    T* LOSSKIT_RESTRICT gt = grad + t * stride;
    for (int64_t c = 0; c < C; ++c) store(gt[c], F(0));
  }
  if (zeroed || il == 0) return nll;

  for (int64_t c = 0; c < C; ++c) occ[c] = 0.0;
  const F gr_t = static_cast<F>(it.grad_scale);
  // torch's gradient is (exp(lp) - exp(lcab + nll - lp)) * grad, lcab = log sum alpha beta over the
  // s with l'_s = c; for a class no cell reaches lcab = -inf, and the term is exp(-inf + nll - lp):
  // 0, or NaN when nll is +inf (no alignment) or lp is -inf. `nan_base` - lp reproduces that.
  const F nan_base = static_cast<F>(kNegInf + nll);
  const F nan = std::numeric_limits<F>::quiet_NaN();
  for (int64_t t = il - 1; t >= 0; --t) {
    // beta rows: cell s in [0, W + 1]; W and W + 1 are padding (-inf once the band reaches W - 1).
    double* LOSSKIT_RESTRICT cur = beta + (t & 1) * row;
    const double* LOSSKIT_RESTRICT next = beta + ((t + 1) & 1) * row;
    const double* LOSSKIT_RESTRICT a = alpha_row(t) + 2;
    const int64_t lo = band_lo(t), hi = band_hi(t);
    gather(t, lo, hi);
    if (t == il - 1) {
      // beta_T: the blank at the end or the last label (the equations above eq. 10); the band is
      // within {W - 2, W - 1}.
      for (int64_t s = full ? 0 : lo; s <= hi; ++s) cur[s] = kNegInf;  // full rows read all of it
      if (in_band(W - 1, t)) cur[W - 1] = lpe[W - 1];
      if (L > 0 && in_band(W - 2, t)) cur[W - 2] = lpe[W - 2];
#pragma omp simd
      for (int64_t s = lo; s < vector_end(lo, hi); ++s)
        post[s] = vmath::exp(a[s] + cur[s] + nll - lpe[s]);
    } else {
      // eq. (10) / (11), with beta including y_t as in torch: beta_t(s) =
      // (beta_{t+1}(s) + beta_{t+1}(s+1) [+ beta_{t+1}(s+2)]) y_t. Fused: the posterior term of
      // eq. (16), alpha_t(s) beta_t(s) / (y_t p(l|x)), as exp(log alpha + log beta - lp + nll).
#pragma omp simd
      for (int64_t s = lo; s < vector_end(lo, hi); ++s) {
        const double b3 = allow[s + 2] != 0.0 ? next[s + 2] : kNegInf;
        const double b = log_sum_exp3(next[s], next[s + 1], b3) + lpe[s];
        cur[s] = b;
        post[s] = vmath::exp(a[s] + b + nll - lpe[s]);
      }
    }
    set_margins(cur, lo, hi, 0, W + 1);

    // eq. (16): the occupation of class c sums the posteriors of every s with l'_s = c. The blank
    // (every even s) is a vector sum; the labels (odd s, rarely repeated) are added one by one.
    // occ is all zeros between rows.
    double blank_sum = 0.0;
#pragma omp simd reduction(+ : blank_sum)
    for (int64_t s = lo; s <= hi; ++s) blank_sum += (s & 1) ? 0.0 : post[s];
    occ[blank] = blank_sum;
    for (int64_t s = lo | 1; s <= hi; s += 2) occ[ext[s]] += post[s];

    // torch's gradient (exp(lp) - occupation) * grad for every class; a class no band cell maps to
    // has occupation exp(-inf + nll - lp): 0, or NaN when nll is +inf (no alignment) or lp is
    // -inf, which `nan_base - x` reproduces.
    const T* LOSSKIT_RESTRICT lpt = it.log_probs + t * stride;
    T* LOSSKIT_RESTRICT gt = grad + t * stride;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const F x = load(lpt[c]);
      const F z = nan_base - x;
      store(gt[c], (vmath::exp(x) - (static_cast<F>(occ[c]) + (z == z ? F(0) : nan))) * gr_t);
    }
    occ[blank] = 0.0;
    for (int64_t s = lo | 1; s <= hi; s += 2) occ[ext[s]] = 0.0;
  }
  return nll;
}

}  // namespace
}  // namespace ctc

double ctc_item(const detail::CtcItem<float>& item) { return ctc::item(item); }
double ctc_item(const detail::CtcItem<double>& item) { return ctc::item(item); }
double ctc_item(const detail::CtcItem<bfloat16>& item) { return ctc::item(item); }
double ctc_item(const detail::CtcItem<float16>& item) { return ctc::item(item); }

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
