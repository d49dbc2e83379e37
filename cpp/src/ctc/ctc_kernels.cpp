// Hot loops of the CTC loss: the alpha-beta recursions of one sample, scaled in linear space where
// that is exact (scaled_item) and in log space otherwise (log_space_item), and its gradient.
// Compiled once per instruction set (see common/target.hpp); no exceptions, allocation or Python
// here. References: A. Graves et al., "Connectionist Temporal Classification", ICML
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
// (`empty` is what a cell outside every path holds: -inf in log space, 0 for the scaled rows.)
inline void set_margins(double* r, int64_t lo, int64_t hi, int64_t first, int64_t last,
                        double empty = kNegInf) {
  for (int64_t s = lo - 2; s < lo; ++s)
    if (s >= first && s <= last) r[s] = empty;
  for (int64_t s = hi + 1; s <= hi + 2; ++s)
    if (s >= first && s <= last) r[s] = empty;
}

// torch's gradient row t, (exp(lp) - occupation) * grad for every class. A class no band cell
// maps to has occupation exp(-inf + nll - lp): 0, or NaN when nll is +inf (no alignment) or lp is
// -inf, which `nan_base - x` reproduces.
template <class T>
LOSSKIT_INLINE void store_gradient_row(const detail::CtcItem<T>& it, int64_t t,
                                       const double* LOSSKIT_RESTRICT occ, double nll) {
  using F = detail::compute_t<T>;
  const F gr_t = static_cast<F>(it.grad_scale);
  const F nan_base = static_cast<F>(kNegInf + nll);
  const F nan = std::numeric_limits<F>::quiet_NaN();
  const T* LOSSKIT_RESTRICT lpt = it.log_probs + t * it.stride;
  T* LOSSKIT_RESTRICT gt = it.grad + t * it.stride;
#pragma omp simd
  for (int64_t c = 0; c < it.num_labels; ++c) {
    const F x = load(lpt[c]);
    const F z = nan_base - x;
    store(gt[c], (vmath::exp(x) - (static_cast<F>(occ[c]) + (z == z ? F(0) : nan))) * gr_t);
  }
}

// ---- the scaled recursions: the fast path -------------------------------------------------
// Graves' rescaled variables (sec. 4.1, eq. 9 and 13): alpha and beta in linear space, each row
// multiplied by a power of two that brings its sum into [2^400, 2^401), the exponents summed in
// integers. A cell then costs one exp (its y = e^lp) and a few multiply-adds, where the log-space
// recursion costs two exps and a log, and its posterior a multiply instead of an exp. The scalings
// are exact, so a cell's only roundings are its own sum and product; the loss is log(f) +
// e log 2 for p(l|x) = f 2^e, rounded at the magnitude of the loss, as log space rounds it.
//
// Exact as long as every cell keeps its full relative precision, which is checked, not assumed:
// a cell is either exactly 0 because everything it sums is exactly 0 (a cell no path reaches, as
// with repeated labels), or at least kTiny (a normal double) both before and after its row is
// scaled. A cell below that would lose precision, or flush to 0 and lose the paths through it,
// which later rows could make dominant; the sample is then computed in log space instead, as is
// one with a log-probability in the band outside [kMinLogProb, kMaxLogProb] (y subnormal, or
// products that could overflow: y <= 2^433, three cells of a row below 2^401 times y stay below
// 2^836). A row's cells so span 2^-1400 of its sum, about e^-970: a long sequence whose
// alignments differ by more than that (a confident model's -30 log-probabilities over 30 steps)
// takes log space. With every cell exact, the posteriors of every row sum to 1 to rounding (every
// path passes one cell per time step); a sum further than kPosteriorSlack from 1 (a posterior
// product out of the double range) also sends the sample to log space.
constexpr double kMinLogProb = -700.0;
constexpr double kMaxLogProb = 300.0;
constexpr int kRowExponent = 400;
constexpr double kTiny = 0x1p-1000;
constexpr double kPosteriorSlack = 1e-9;
constexpr double kLn2 = 0.693147180559945309417232121458176568;

// 2^k, exactly, for -1022 <= k <= 1023 (the exponent field; no libm or std:: template in a kernel
// compiled per instruction set).
LOSSKIT_INLINE double pow2(int64_t k) {
  return vmath::from_bits(static_cast<uint64_t>(k + 1023) << 52);
}
// e with x in [2^e, 2^(e + 1)), for a normal x > 0.
LOSSKIT_INLINE int64_t exponent_of(double x) {
  return static_cast<int64_t>((vmath::to_bits(x) >> 52) & 0x7ff) - 1023;
}

// y = e^lp of the band's cells [lo, hi] (and of the cells past hi up to the vector end,
// unchecked: they are padding); false if a log-probability of [lo, hi] is out of range. Three
// loops: gathering, checking and exponentiating in one made the whole loss 2-3x slower (measured
// with GCC, AVX-512 kernels).
template <class T>
LOSSKIT_INLINE bool gather_y(double* LOSSKIT_RESTRICT y, const T* LOSSKIT_RESTRICT lpt,
                             const int64_t* LOSSKIT_RESTRICT ext, int64_t lo, int64_t hi) {
  const int64_t end = vector_end(lo, hi);
  gather_row(y, lpt, ext, lo, end);
  double outside = 0.0;
#pragma omp simd reduction(+ : outside)
  for (int64_t s = lo; s <= hi; ++s)
    outside += y[s] >= kMinLogProb && y[s] <= kMaxLogProb ? 0.0 : 1.0;
#pragma omp simd
  for (int64_t s = lo; s < end; ++s) y[s] = vmath::exp(y[s]);
  return outside == 0.0;
}

// A row's sum over its band, and the count of its cells that lost precision (above), accumulated
// by the recursion loop that computes the row (r = pre * y) as it goes.
struct RowSum {
  double sum = 0.0, lost = 0.0;
};

// Scales the band [lo, hi] of r by the power of two 2^shift that brings its sum (`row`, with
// whether a cell lost precision) into [2^kRowExponent, 2^(kRowExponent + 1)); false when a cell
// lost precision (above) or the row is all zeros.
LOSSKIT_INLINE bool scale_band(double* LOSSKIT_RESTRICT r, RowSum row, int64_t lo, int64_t hi,
                               int64_t& shift) {
  const double sum = row.sum;
  if (row.lost != 0.0 || !(sum > 0.0 && sum < std::numeric_limits<double>::infinity()))
    return false;
  // sum >= kTiny (normal) and below 2^1024: -624 < sh <= 1400, two exact factors
  const int64_t sh = kRowExponent - exponent_of(sum);
  const double f1 = pow2(sh / 2), f2 = pow2(sh - sh / 2);
  double lost = 0.0;
#pragma omp simd reduction(+ : lost)
  for (int64_t s = lo; s <= hi; ++s) {
    r[s] = r[s] * f1 * f2;
    lost += r[s] > 0.0 && r[s] < kTiny ? 1.0 : 0.0;
  }
  shift = sh;
  return lost == 0.0;
}

// One row of either recursion: pre[s] = from0[s] + from1[s] + skip[s] from2[s] (the previous
// row's cells the transitions come from; skip the 0/1 mask of the transition past a blank) and
// r[s] = pre[s] y[s], over the band and its vector overrun; the band's sums as it goes. (The
// three `from` rows overlap, but only r and pre are written.)
LOSSKIT_INLINE RowSum recurse_row(double* LOSSKIT_RESTRICT r, double* LOSSKIT_RESTRICT pre,
                                  const double* LOSSKIT_RESTRICT y,
                                  const double* LOSSKIT_RESTRICT from0,
                                  const double* LOSSKIT_RESTRICT from1,
                                  const double* LOSSKIT_RESTRICT from2,
                                  const double* LOSSKIT_RESTRICT skip, int64_t lo, int64_t hi) {
  double sum = 0.0, lost = 0.0;
#pragma omp simd reduction(+ : sum, lost)
  for (int64_t s = lo; s < vector_end(lo, hi); ++s) {
    const double p = from0[s] + from1[s] + skip[s] * from2[s];
    const double c = p * y[s];
    pre[s] = p;
    r[s] = c;
    sum += s <= hi ? c : 0.0;
    lost += s <= hi && p > 0.0 && c < kTiny ? 1.0 : 0.0;
  }
  return RowSum{sum, lost};
}

// The first row of a pass (alpha's t = 0, beta's t = il - 1): its cells are y itself.
LOSSKIT_INLINE RowSum first_row(double* LOSSKIT_RESTRICT r, double* LOSSKIT_RESTRICT pre,
                                const double* LOSSKIT_RESTRICT y, int64_t lo, int64_t hi) {
  RowSum row;
  for (int64_t s = lo; s <= hi; ++s) {
    pre[s] = 1.0;
    r[s] = y[s];
    row.sum += y[s];
    row.lost += y[s] < kTiny ? 1.0 : 0.0;
  }
  return row;
}

// log(x 2^e) for x > 0, finite: log of x's fraction m in [sqrt(1/2), sqrt(2)) plus the exponents
// times log 2, so a large e costs no cancellation, nor does a loss near 0 (p near 1: log m alone).
LOSSKIT_INLINE double log_scaled(double x, int64_t e) {
  constexpr double kSqrt2 = 1.4142135623730951;
  int64_t ex = exponent_of(x);  // x >= kTiny, below 2^403 here
  double m = x * pow2(-ex);     // [1, 2)
  ex += m >= kSqrt2 ? 1 : 0;
  m = m >= kSqrt2 ? m * 0.5 : m;
  return vmath::log(m) + static_cast<double>(e + ex) * kLn2;
}

// The loss (and, with `with_grad`, the gradient into it.grad) of a sample whose band holds no
// NaN or +inf log-probability (the band trimmed as in log space, see the top), or false when the
// sample needs log space (above). The layout is the log-space one's, its cells holding the scaled
// values: alpha's rows alpha_t 2^-A_t, beta's rows beta_t 2^-B_t (beta including y_t, as
// torch's), `pre` a row's sums before its y_t factor (then its posteriors); `scale` A_t.
template <class T>
bool scaled_item(const detail::CtcItem<T>& it, bool with_grad, double& nll_out) {
  const detail::CtcLayout& lay = it.layout;
  const int64_t L = it.target_length, W = 2 * L + 1, il = it.input_length;
  const int64_t row = lay.row, stride = it.stride;
  double* LOSSKIT_RESTRICT alpha = it.scratch + lay.alpha;
  double* LOSSKIT_RESTRICT beta = it.scratch + lay.beta;
  const double* LOSSKIT_RESTRICT allow = it.scratch + lay.allow;
  double* LOSSKIT_RESTRICT pre = it.scratch + lay.post;
  const int64_t* LOSSKIT_RESTRICT ext = reinterpret_cast<const int64_t*>(it.scratch + lay.ext);
  const auto band_lo = [&](int64_t t) {
    return W - 2 * (il - t) > 0 ? W - 2 * (il - t) : int64_t{0};
  };
  const auto band_hi = [&](int64_t t) { return 2 * t + 1 < W - 1 ? 2 * t + 1 : W - 1; };
  const auto lp_row = [&](int64_t t) { return it.log_probs + t * stride; };
  // With the gradient (its layout, even for the loss alone), every row of alpha and y is kept.
  const bool all_rows = it.grad != nullptr;
  const auto alpha_row = [&](int64_t t) { return alpha + (all_rows ? t : (t & 1)) * row + 2; };
  // y's rows: kept from alpha's pass for beta's with the gradient, else one row
  const auto y_row = [&](int64_t t) { return it.scratch + (all_rows ? lay.y + t * row : lay.lpe); };

  // ---- alpha: row 0 holds the blank and the first label (the band is within {0, 1})
  int64_t a_exp = 0;  // A_t: alpha_t = alpha-hat_t 2^A_t
  for (int64_t t = 0; t < il; ++t) {
    double* LOSSKIT_RESTRICT cur = alpha_row(t);
    double* LOSSKIT_RESTRICT y = y_row(t);
    const int64_t lo = band_lo(t), hi = band_hi(t);
    if (!gather_y(y, lp_row(t), ext, lo, hi)) return false;
    RowSum sums;
    if (t == 0) {
      sums = first_row(cur, pre, y, lo, hi);
    } else {
      // eq. (6) / (7): alpha_t(s) = (alpha_{t-1}(s) + alpha_{t-1}(s-1) [+ alpha_{t-1}(s-2)]) y_t
      const double* LOSSKIT_RESTRICT prev = alpha_row(t - 1);
      sums = recurse_row(cur, pre, y, prev, prev - 1, prev - 2, allow, lo, hi);
    }
    int64_t shift;
    if (!scale_band(cur, sums, lo, hi, shift)) return false;
    a_exp -= shift;
    if (all_rows) it.scratch[lay.scale + t] = static_cast<double>(a_exp);
    set_margins(cur, lo, hi, -2, W - 1, 0.0);
  }
  // p(l|x) = (alpha-hat(|l'|) + alpha-hat(|l'| - 1)) 2^A at the last step
  const double* last = alpha_row(il - 1);
  const int64_t last_lo = band_lo(il - 1), last_hi = band_hi(il - 1);
  const double end_blank = last_hi == W - 1 ? last[W - 1] : 0.0;
  const double end_label = L > 0 && last_lo <= W - 2 && W - 2 <= last_hi ? last[W - 2] : 0.0;
  const double p_hat = end_blank + end_label;
  if (!(p_hat > 0.0)) return false;  // no alignment: log space gives torch's inf
  const double nll = -log_scaled(p_hat, a_exp);
  if (!with_grad) {
    nll_out = nll;
    return true;
  }

  // ---- beta, the posteriors and the gradient, t = il - 1 .. 0
  const int64_t C = it.num_labels;
  double* LOSSKIT_RESTRICT occ = it.scratch + lay.occ;
  const double* LOSSKIT_RESTRICT a_exps = it.scratch + lay.scale;
  const double inv_p_hat = 1.0 / p_hat;
  for (int64_t t = il; t < it.max_time; ++t) {
    T* LOSSKIT_RESTRICT gt = it.grad + t * stride;
    for (int64_t c = 0; c < C; ++c) store(gt[c], detail::compute_t<T>(0));
  }
  for (int64_t c = 0; c < C; ++c) occ[c] = 0.0;
  int64_t b_exp_next = 0;  // B_{t+1}: beta_{t+1} = beta-hat_{t+1} 2^B_{t+1}
  for (int64_t t = il - 1; t >= 0; --t) {
    double* LOSSKIT_RESTRICT cur = beta + (t & 1) * row;
    const double* LOSSKIT_RESTRICT next = beta + ((t + 1) & 1) * row;
    const double* LOSSKIT_RESTRICT a = alpha_row(t);
    const double* LOSSKIT_RESTRICT y = y_row(t);  // alpha's pass checked and kept it
    const int64_t lo = band_lo(t), hi = band_hi(t);
    RowSum sums;
    if (t == il - 1) {  // the blank at the end or the last label: the band is within {W - 2, W - 1}
      sums = first_row(cur, pre, y, lo, hi);
    } else {
      // eq. (10) / (11): beta_t(s) = (beta_{t+1}(s) + beta_{t+1}(s+1) [+ beta_{t+1}(s+2)]) y_t
      sums = recurse_row(cur, pre, y, next, next + 1, next + 2, allow + 2, lo, hi);
    }
    int64_t shift;
    if (!scale_band(cur, sums, lo, hi, shift)) return false;
    set_margins(cur, lo, hi, 0, W + 1, 0.0);
    // eq. (16)'s posterior alpha_t(s) beta_t(s) / (y_t(s) p(l|x)) = alpha-hat_t(s) pre(s) k, the
    // scales in one factor k (beta_t / y_t is pre's row times 2^B_{t+1}); a k out of the double
    // range fails the sum below.
    const int64_t k_exp = static_cast<int64_t>(a_exps[t]) + b_exp_next - a_exp;
    const int64_t k_clipped = k_exp < -1022 ? -1022 : k_exp > 1023 ? 1023 : k_exp;
    const double k = pow2(k_clipped) * inv_p_hat;
    double total = 0.0, blank_sum = 0.0;
#pragma omp simd reduction(+ : total, blank_sum)
    for (int64_t s = lo; s <= hi; ++s) {
      const double posterior = a[s] * pre[s] * k;
      pre[s] = posterior;
      total += posterior;
      blank_sum += (s & 1) ? 0.0 : posterior;
    }
    if (!(total >= 1.0 - kPosteriorSlack && total <= 1.0 + kPosteriorSlack)) return false;
    b_exp_next -= shift;
    occ[it.blank] = blank_sum;
    for (int64_t s = lo | 1; s <= hi; s += 2) occ[ext[s]] += pre[s];
    store_gradient_row(it, t, occ, nll);
    occ[it.blank] = 0.0;
    for (int64_t s = lo | 1; s <= hi; s += 2) occ[ext[s]] = 0.0;
  }
  nll_out = nll;
  return true;
}

// The log-space recursions (see the top), the fallback of scaled_item: the loss, and the gradient
// with it.grad. `full`: whole rows, as torch computes them, for a sample with a NaN or +inf
// log-probability where torch's rows differ from the band's.
template <class T>
double log_space_item(const detail::CtcItem<T>& it, const bool full) {
  using F = detail::compute_t<T>;  // T, or float for 16-bit storage
  const detail::CtcLayout& lay = it.layout;
  const int64_t L = it.target_length, W = 2 * L + 1, il = it.input_length;
  const int64_t row = lay.row, stride = it.stride, blank = it.blank;
  const bool want_grad = it.grad != nullptr;
  double* LOSSKIT_RESTRICT alpha = it.scratch + lay.alpha;
  double* LOSSKIT_RESTRICT beta = it.scratch + lay.beta;
  double* LOSSKIT_RESTRICT lpe = it.scratch + lay.lpe;
  const double* LOSSKIT_RESTRICT allow = it.scratch + lay.allow;
  double* LOSSKIT_RESTRICT post = it.scratch + lay.post;
  const int64_t* LOSSKIT_RESTRICT ext = reinterpret_cast<const int64_t*>(it.scratch + lay.ext);
  double* LOSSKIT_RESTRICT occ = it.scratch + lay.occ;

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
  // torch's gradient is (exp(lp) - exp(lcab + nll - lp)) * grad, lcab = log sum alpha beta over the
  // s with l'_s = c (store_gradient_row).
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

    store_gradient_row(it, t, occ, nll);
    occ[blank] = 0.0;
    for (int64_t s = lo | 1; s <= hi; s += 2) occ[ext[s]] = 0.0;
  }
  return nll;
}

// One sample: the extended labels, the NaN / +inf scans, then the scaled recursions where they
// are exact and log space otherwise.
template <class T>
double item(const detail::CtcItem<T>& it) {
  using F = detail::compute_t<T>;  // T, or float for 16-bit storage
  const detail::CtcLayout& lay = it.layout;
  const int64_t L = it.target_length, W = 2 * L + 1, il = it.input_length;
  const int64_t row = lay.row, stride = it.stride, blank = it.blank;
  const bool want_grad = it.grad != nullptr;
  double* LOSSKIT_RESTRICT allow = it.scratch + lay.allow;
  int64_t* LOSSKIT_RESTRICT ext = reinterpret_cast<int64_t*>(it.scratch + lay.ext);

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
  constexpr F kInf = std::numeric_limits<F>::infinity();
  const auto bad_above_band = [&] {
    bool bad = false;
    for (int64_t t = 1; t < il && !bad; ++t) {
      const T* LOSSKIT_RESTRICT lpt = it.log_probs + t * stride;
      for (int64_t s = 2 * t + 2; s < W; ++s) bad = bad || !(load(lpt[ext[s]]) < kInf);
    }
    return bad;
  };
  const auto bad_anywhere = [&] {
    const int64_t C = it.num_labels;
    bool any = false;
    for (int64_t t = 0; t < il && !any; ++t) {
      const T* LOSSKIT_RESTRICT lpt = it.log_probs + t * stride;
      int64_t bad = 0;
      if (8 * W < C) {
        for (int64_t s = 0; s < W; ++s) bad += load(lpt[ext[s]]) < kInf ? 0 : 1;
      } else {
#pragma omp simd reduction(+ : bad)
        for (int64_t c = 0; c < C; ++c) bad += load(lpt[c]) < kInf ? 0 : 1;
      }
      any = bad != 0;
    }
    return any;
  };
  const bool full = want_grad ? bad_anywhere() : bad_above_band();
  // The scaled recursions where they are exact (scaled_item), else log space. The loss must not
  // depend on whether a gradient is wanted: a NaN or +inf that the loss does not read (a class
  // outside the target, a cell below the band) sends the gradient to whole log-space rows, and the
  // loss still comes from the scaled alpha pass when that succeeds, as without the gradient.
  if (il > 0) {
    double nll;
    if (!full && scaled_item(it, want_grad, nll)) return nll;
    if (full && want_grad && !bad_above_band() && scaled_item(it, false, nll)) {
      log_space_item(it, true);
      return nll;
    }
  }
  return log_space_item(it, full);
}

}  // namespace
}  // namespace ctc

double ctc_item(const detail::CtcItem<float>& item) { return ctc::item(item); }
double ctc_item(const detail::CtcItem<double>& item) { return ctc::item(item); }
double ctc_item(const detail::CtcItem<bfloat16>& item) { return ctc::item(item); }
double ctc_item(const detail::CtcItem<float16>& item) { return ctc::item(item); }

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
