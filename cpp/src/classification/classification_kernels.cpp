// Hot loops of the classification family; compiled once per instruction set (see
// common/target.hpp). No exceptions, allocation or Python here: every class index was validated
// by the entry points (classification.cpp) before these run.
//
// Formulas: see classification_kernels.hpp (CeArgs) and the docstrings in
// python/losskit/_functional/classification.py.
//
// Determinism: a row's softmax statistics are built from fixed chunks of kCeChunk classes folded
// left to right, and the functions that compute and fold them are out of line (noinline), so the
// serial row path and the in-row parallel path execute the very same code on the same chunks and
// give the same bits.
#include "classification/classification_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "common/ordered_sum.hpp"
#include "common/storage_strips.hpp"
#include "common/vmath.hpp"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#if defined(__GNUC__)
#define LOSSKIT_PREFETCH(p, write) __builtin_prefetch((p), (write), 2)
#else
#define LOSSKIT_PREFETCH(p, write) ((void)0)
#endif

namespace losskit::kernels::LOSSKIT_TARGET_NS {
namespace classification {
namespace {

using detail::CeArgs;
using detail::CeRowConsts;
using detail::CeStats;
using detail::kCeChunk;
using detail::kCeTile;
using detail::NllArgs;
using detail::RowLossArgs;

template <class T>
constexpr T kInf = std::numeric_limits<T>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- softmax statistics ---------------------------------------------------------------------

// e^d for softmax arguments d = x - max <= 0: vmath's one-factor variant (see vmath.hpp for its
// accuracy and its flush of results below the smallest normal to 0).
template <class T>
LOSSKIT_INLINE T exp_nonpos(T d) {
  return vmath::exp_nonpositive(d);
}

// Largest value; NaN is skipped here but still reaches the sums (torch's row is then all NaN).
template <class T>
LOSSKIT_INLINE T run_max(const T* LOSSKIT_RESTRICT x, int64_t n) {
  T m = -kInf<T>;
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// The softcap of the extras: x' = cap tanh(x ic) with ic = 1 / cap, and dx'/dx = 1 - t^2; and
// whether the statistics are wanted (a softcap alone skips their per-logit work).
template <class T>
struct Cap {
  T cap = T(0), ic = T(0);
  bool stats = false;
  explicit Cap(const CeArgs<T>& a)
      : cap(static_cast<T>(a.softcap)),
        ic(a.softcap > 0.0 ? static_cast<T>(1.0 / a.softcap) : T(0)),
        stats(a.stats()) {}
};

// Statistics of one chunk with the extras (kX = 1: entropy sum and argmax; kX = 2: also the
// softcap), class indices only (kMode 0 or 1). Softcap is monotone, so the chunk's reference is
// the softcapped raw max; d is clamped to <= 0 should the scalar and vector tanh round apart.
// With `e` (a gradient wanted) the exponentials are stored there; with a softcap, e (1 - t^2)
// without smoothing (the whole gradient but its row factor: the gradient pass is a rescale), and
// t = tanh(x ic) with smoothing, whose term -B w (1 - t^2) needs t alone (the gradient pass
// rebuilds exp(x' - ref) from t: the logits may already be overwritten).
template <class T, int kMode, bool kWeighted, int kX, bool kStore, bool kStats>
LOSSKIT_NOINLINE CeStats chunk_stats_extras(const T* x, const T* LOSSKIT_RESTRICT w, T* e,
                                            int64_t n, Cap<T> cp) {
  const T m = run_max(x, n);
  const bool valid = kX == 2 || !(m == -kInf<T>);  // x' of a -inf logit is -cap
  const T ref = kX == 2 ? cp.cap * vmath::tanh(m * cp.ic) : (valid ? m : T(0));
  // The first index of the max, as a T min-reduction (exact: n <= kCeChunk), which every target
  // vectorises (SSE2 has no int32 min).
  const int32_t n32 = static_cast<int32_t>(n);
  const T none = static_cast<T>(n32);
  T s = 0, wx = 0, ws = 0, hx = 0, first = none;
#pragma omp simd reduction(+ : s, wx, ws, hx) reduction(min : first)
  for (int32_t i = 0; i < n32; ++i) {
    const T xi = x[i];
    T d, t = T(0);
    if constexpr (kX == 2) {
      t = vmath::tanh(xi * cp.ic);
      d = cp.cap * t - ref;
      d = d > T(0) ? T(0) : d;
    } else {
      d = xi - ref;
    }
    const T ex = exp_nonpos(d);
    if constexpr (kStore) e[i] = kX == 2 ? (kMode == 0 ? ex * (T(1) - t * t) : t) : ex;
    s += ex;
    if constexpr (kStats) {
      hx += ex > T(0) ? ex * d : T(0);  // a -inf logit adds 0, not 0 * -inf
      const T at = xi == m ? static_cast<T>(i) : none;
      first = at < first ? at : first;
    }
    if constexpr (kMode == 1) {
      const T v = kWeighted ? w[i] : T(1);
      wx += v * d;
      ws += v;
    }
  }
  CeStats st;
  st.ref = ref;
  st.s = s;
  st.wx = wx;
  st.ws = ws;
  st.valid = valid;
  st.ex = hx;
  st.amax = m;
  st.arg = first < none ? static_cast<int64_t>(first) : -1;
  return st;
}

// Statistics of one chunk. kMode: 0 plain (class index, no smoothing), 1 smoothing (v = w or 1),
// 2 probabilities (v = w y' with y' = (1 - eps) y + eps / C). With `e` (class indices with a
// gradient wanted) the exponentials exp(x - ref) are also stored there, so the gradient pass only
// rescales them; `e` may be `x` itself (in place), so no restrict on that pair.
template <class T, int kMode, bool kWeighted, int kX = 0>
LOSSKIT_NOINLINE CeStats chunk_stats(const T* x, const T* LOSSKIT_RESTRICT y,
                                     const T* LOSSKIT_RESTRICT w, T* e, int64_t n, T om, T ec,
                                     Cap<T> cp) {
  if constexpr (kX != 0 && kMode != 2) {
    // kX == 1 is the statistics alone: always wanted there.
    if (kX == 1 || cp.stats)
      return e ? chunk_stats_extras<T, kMode, kWeighted, kX, true, true>(x, w, e, n, cp)
               : chunk_stats_extras<T, kMode, kWeighted, kX, false, true>(x, w, e, n, cp);
    return e ? chunk_stats_extras<T, kMode, kWeighted, kX, true, false>(x, w, e, n, cp)
             : chunk_stats_extras<T, kMode, kWeighted, kX, false, false>(x, w, e, n, cp);
  }
  const T m = run_max(x, n);
  const bool valid = !(m == -kInf<T>);  // a chunk of -inf (and NaN) has no reference point
  const T ref = valid ? m : T(0);
  T s = 0, wx = 0, ws = 0;
  if (e) {
    if constexpr (kMode != 2) {
#pragma omp simd reduction(+ : s, wx, ws)
      for (int64_t i = 0; i < n; ++i) {
        const T d = x[i] - ref;
        const T ex = exp_nonpos(d);
        e[i] = ex;
        s += ex;
        if constexpr (kMode == 1) {
          const T v = kWeighted ? w[i] : T(1);
          wx += v * d;
          ws += v;
        }
      }
    }
  } else {
#pragma omp simd reduction(+ : s, wx, ws)
    for (int64_t i = 0; i < n; ++i) {
      const T d = x[i] - ref;
      s += exp_nonpos(d);
      if constexpr (kMode == 1) {
        const T v = kWeighted ? w[i] : T(1);
        wx += v * d;
        ws += v;
      } else if constexpr (kMode == 2) {
        const T yp = y[i] * om + ec;
        const T v = kWeighted ? yp * w[i] : yp;
        wx += v * d;
        ws += v;
      }
    }
  }
  CeStats st;
  st.ref = ref;
  st.s = s;
  st.wx = wx;
  st.ws = ws;
  st.valid = valid;
  return st;
}

// Gradient of a chunk whose exponentials exp(x - ref) chunk_stats stored in e:
// g = e f - B v with f = A exp(ref - lse) (for a chunk of -inf, whose e are 0 or NaN, f is 0, or
// NaN when the whole row is -inf).
// With a softcap and smoothing (kX == 2, kMode == 1) e holds t = tanh(x ic):
// g = (e f - B v) (1 - t^2), e = exp(cap t - ref); without smoothing it holds e (1 - t^2).
template <class T, int kMode, bool kWeighted, int kX>
struct Rescale {
  T f, B;
  Cap<T> cp;
  T ref;
  LOSSKIT_INLINE T operator()(T e, const T* LOSSKIT_RESTRICT w, int64_t i) const {
    if constexpr (kX == 2 && kMode == 1) {
      T d = cp.cap * e - ref;
      d = d > T(0) ? T(0) : d;
      const T v = exp_nonpos(d) * f - B * (kWeighted ? w[i] : T(1));
      return v * (T(1) - e * e);
    } else if constexpr (kMode == 1) {
      return e * f - B * (kWeighted ? w[i] : T(1));
    } else {
      return e * f;
    }
  }
};

// g = the gradient of the chunk whose statistics left e; g may be e itself (in place).
template <class T, int kMode, bool kWeighted, int kX>
LOSSKIT_NOINLINE void chunk_rescale(const T* e, T* g, const T* LOSSKIT_RESTRICT w, int64_t n,
                                    const Rescale<T, kMode, kWeighted, kX>& r) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) g[i] = r(e[i], w, i);
}

// acc := acc (+) next, both relative to their own reference; the result is relative to the
// larger one. An invalid (all -inf) side adds no exponentials and only shifts its sums.
LOSSKIT_NOINLINE void combine(CeStats& a, const CeStats& b) {
  if (b.arg >= 0 && (a.arg < 0 || b.amax > a.amax)) {  // strict: the first index wins a tie
    a.arg = b.arg;
    a.amax = b.amax;
  }
  if (!b.valid) {
    a.ex += b.ex;
    a.s += b.s;
    a.wx += b.wx + b.ws * (b.ref - a.ref);
    a.ws += b.ws;
    return;
  }
  if (!a.valid) {
    CeStats r = b;
    r.arg = a.arg;
    r.amax = a.amax;
    r.ex += a.ex;
    r.s += a.s;
    r.wx += a.wx + a.ws * (a.ref - b.ref);
    r.ws += a.ws;
    a = r;
    return;
  }
  const double R = (a.ref != a.ref || b.ref != b.ref) ? kNaN : std::max(a.ref, b.ref);
  // sum e (x - R) = exp(ref - R) (ex + (ref - R) s) on each side
  a.ex = std::exp(a.ref - R) * (a.ex + (a.ref - R) * a.s) +
         std::exp(b.ref - R) * (b.ex + (b.ref - R) * b.s);
  a.s = a.s * std::exp(a.ref - R) + b.s * std::exp(b.ref - R);
  a.wx = (a.wx + a.ws * (a.ref - R)) + (b.wx + b.ws * (b.ref - R));
  a.ws += b.ws;
  a.ref = R;
}

// The loss of a position with probability targets, sum_c v_c (lse - x_c) = ws log s - wx. With no
// classes (C = 0) that is torch's empty sum, negated: -0.0, where ws log s would be 0 * -inf.
LOSSKIT_INLINE double prob_loss(double ws, double logs, double wx, int64_t C) {
  return C == 0 ? -0.0 : ws * logs - wx;
}

// Per-position loss and gradient constants from the statistics over all classes. `xt` is the
// target logit (class indices only).
// The softcapped target logit x'_t (as the kernels compute x') and dx'_t/dx_t.
struct CapTarget {
  double x, dcap;
};
template <class T>
LOSSKIT_INLINE CapTarget cap_target(const CeArgs<T>& a, T xt) {
  if (!(a.softcap > 0.0)) return {static_cast<double>(xt), 1.0};
  const Cap<T> cp(a);
  const T t = vmath::tanh(xt * cp.ic);
  return {static_cast<double>(cp.cap * t), static_cast<double>(T(1) - t * t)};
}

// The statistics outputs of a position (class indices).
template <class T>
LOSSKIT_INLINE void write_stats(const CeArgs<T>& a, int64_t p, double lse, double entropy,
                                bool correct) {
  if (a.lse_out) a.lse_out[p] = static_cast<T>(lse);
  if (a.entropy_out) a.entropy_out[p] = static_cast<T>(entropy);
  if (a.correct_out) a.correct_out[p] = correct;
}

// The loss F(l) and slope F'(l) of a CeTransform (classification_kernels.hpp) at the unweighted
// cross-entropy l. Below l = 0.5, q = 1 - e^-l is Kahan's expm1, (u - 1) x / log(u) with
// u = e^x, x = -l: exact to a few ulps at p near 1, where 1 - u alone cancels (above, 1 - p is
// exact enough, and a subnormal p would spoil log(p)). The focal slope is written
// q^g (1 + g p l / q) with l / q -> 1 as l -> 0: finite at p = 1 for every g >= 0, g < 1 included,
// where q^(g-1) alone is infinite (the autograd of the composed formula gives 0 * inf = NaN
// there). g = 0 is cross-entropy exactly. A target logit of -inf (l = inf) gives p l = 0 * inf =
// NaN, as that autograd does. Only vmath's exp and log, never libm's expm1 or pow: glibc picks
// their FMA variants by the CPU at run time, and the bits must not depend on it.
struct Transformed {
  double loss, slope;
};
inline Transformed transform_loss(detail::CeTransform tr, double param, double l) {
  const double p = vmath::exp(-l);
  const double q = !(l < 0.5) ? 1.0 - p : (p == 1.0 ? l : (p - 1.0) * l / vmath::log(p));
  if (tr == detail::CeTransform::Poly1) return {l + param * q, 1.0 + param * p};
  if (param == 0.0) return {l, 1.0};
  const double qg = vmath::exp(param * vmath::log(q));  // q^g, 0 at q = 0
  const double l_over_q = q == 0.0 ? 1.0 : l / q;
  return {qg * l, qg * (1.0 + param * p * l_over_q)};
}

template <class T>
LOSSKIT_NOINLINE double finish(const CeArgs<T>& a, int64_t p, const CeStats& st, T xt,
                               CeRowConsts* rc) {
  const double eps = a.smoothing;
  const double logs = std::log(st.s);
  const double lse = st.ref + logs;
  double scale = a.grad_scale * (a.grad_out ? static_cast<double>(a.grad_out[p]) : 1.0);
  double loss = 0.0;
  rc->lse = lse;
  rc->ref = st.ref;
  rc->logs = logs;
  rc->target = -1;
  rc->fix = 0.0;
  if (a.prob) {
    loss = prob_loss(st.ws, logs, st.wx, a.C);
    rc->a = scale * st.ws;
    rc->b = scale;
  } else {
    const int64_t t = a.target[p];
    if (a.stats()) write_stats(a, p, lse, logs - st.ex / st.s, t != a.ignore_index && st.arg == t);
    if (t == a.ignore_index) {
      scale = 0.0;
      rc->a = rc->b = 0.0;
    } else {
      const double wt = a.weight ? static_cast<double>(a.weight[t]) : 1.0;
      const CapTarget ct = cap_target(a, xt);
      loss = (1.0 - eps) * wt * (logs - (ct.x - st.ref));
      if (eps > 0.0) loss += eps / static_cast<double>(a.C) * (st.ws * logs - st.wx);
      // The smoothing terms read every class's weight, so only with eps > 0: without smoothing
      // torch reads w_t alone, and a NaN or inf weight of another class (0 * inf) must not reach
      // the gradient.
      const double smooth = eps > 0.0 ? eps / static_cast<double>(a.C) * a.weight_sum : 0.0;
      rc->a = scale * ((1.0 - eps) * wt + smooth);
      rc->b = scale * eps / static_cast<double>(a.C);
      rc->fix = scale * (1.0 - eps) * wt;
      if (a.softcap > 0.0) rc->fix *= ct.dcap;
      if (a.transform != detail::CeTransform::None) {
        const Transformed f =
            transform_loss(a.transform, a.transform_param, logs - (ct.x - st.ref));
        loss = wt * f.loss;
        rc->a = rc->fix = scale * wt * f.slope;
      }
      if (a.z_loss != 0.0) {  // + z lse^2; its gradient 2 z lse softmax_j joins A
        loss += a.z_loss * lse * lse;
        rc->a += scale * 2.0 * a.z_loss * lse;
      }
      rc->target = t;
    }
  }
  rc->scale = scale;
  if (a.out) a.out[p] = static_cast<T>(loss);
  return loss;
}

// Gradient of one chunk: g = exp(x - lse) A - B v (v as in chunk_stats); probabilities also write
// the target gradient. g may be x itself (in place), so no restrict on that pair. The log-softmax
// x - lse is formed as torch forms it, (x - ref) - logs: x - ref is exact where the two are close,
// whereas lse rounded to T would lose T's digits to cancellation at x near lse (the target
// gradient is proportional to x - lse). With softcap, x' and ref are the capped values.
template <class T, int kMode, bool kWeighted, int kX = 0>
LOSSKIT_NOINLINE void chunk_grad(const T* x, T* g, const T* LOSSKIT_RESTRICT y,
                                 const T* LOSSKIT_RESTRICT w, T* LOSSKIT_RESTRICT gy, int64_t n,
                                 T ref, T logs, T A, T B, T om, T ec, Cap<T> cp) {
  if constexpr (kX == 2 && kMode != 2) {  // g = (exp(x' - lse) A - B v) (1 - t^2)
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const T t = vmath::tanh(x[i] * cp.ic);
      T v = exp_nonpos((cp.cap * t - ref) - logs) * A;
      if constexpr (kMode == 1) v -= B * (kWeighted ? w[i] : T(1));
      g[i] = v * (T(1) - t * t);
    }
  } else if constexpr (kMode == 0) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) g[i] = exp_nonpos((x[i] - ref) - logs) * A;
  } else if constexpr (kMode == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i)
      g[i] = exp_nonpos((x[i] - ref) - logs) * A - B * (kWeighted ? w[i] : T(1));
  } else {
    // B is the position's scale; d/dy = (1 - eps) w (lse - x) scaled. g may be absent when only
    // the target gradient is wanted. The softmax comes from vmath::exp, which keeps subnormals:
    // with a target of +-inf or 1e38s, A = scale sum(v) is infinite, and torch's float32 softmax of
    // 3e-39 times it is +-inf where exp_nonpos's flushed 0 gave NaN.
    const T by = B * om;
    if (!g) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i)
        gy[i] = -(by * (kWeighted ? w[i] : T(1))) * ((x[i] - ref) - logs);
    } else if (gy) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T wi = kWeighted ? w[i] : T(1);
        const T d = (x[i] - ref) - logs;
        gy[i] = -(by * wi) * d;
        g[i] = vmath::exp(d) * A - B * ((y[i] * om + ec) * wi);
      }
    } else {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T wi = kWeighted ? w[i] : T(1);
        g[i] = vmath::exp((x[i] - ref) - logs) * A - B * ((y[i] * om + ec) * wi);
      }
    }
  }
}

// ---- rows (S == 1) ---------------------------------------------------------------------------

template <class T>
struct Smoothing {
  T om, ec;  // 1 - eps, eps / C
  explicit Smoothing(const CeArgs<T>& a)
      : om(static_cast<T>(1.0 - a.smoothing)),
        ec(static_cast<T>(a.smoothing / static_cast<double>(a.C))) {}
};

// Rows up to this many chunks keep the exponentials of the statistics pass in the gradient buffer
// (the per-chunk references then fit on the stack); longer rows recompute them.
constexpr int64_t kMaxStoredChunks = 256;

template <class T, int kMode>
bool stores_exp(const CeArgs<T>& a) {
  return kMode != 2 && a.grad != nullptr && (a.C + kCeChunk - 1) / kCeChunk <= kMaxStoredChunks;
}

template <class T, int kMode, bool kWeighted, int kX>
void row_stats_impl(const CeArgs<T>& a, int64_t row, int64_t k0, int64_t k1, CeStats* stats) {
  const Smoothing<T> sm(a);
  const Cap<T> cp(a);
  const int64_t base = row * a.C;
  const bool store = stores_exp<T, kMode>(a);
  for (int64_t k = k0; k < k1; ++k) {
    const int64_t c0 = k * kCeChunk, c1 = std::min(a.C, c0 + kCeChunk);
    CeStats& st = stats[k - k0];
    st = chunk_stats<T, kMode, kWeighted, kX>(a.input + base + c0,
                                              kMode == 2 ? a.prob + base + c0 : nullptr,
                                              kWeighted ? a.weight + c0 : nullptr,
                                              store ? a.grad + base + c0 : nullptr, c1 - c0, sm.om,
                                              sm.ec, cp);
    if (st.arg >= 0) st.arg += c0;
  }
}

// `stats` holds the statistics of chunks [k0, k1) (their references, for the stored exponentials).
template <class T, int kMode, bool kWeighted, int kX>
void row_grad_impl(const CeArgs<T>& a, int64_t row, const CeRowConsts& rc, int64_t k0, int64_t k1,
                   const CeStats* stats) {
  const Smoothing<T> sm(a);
  const Cap<T> cp(a);
  const int64_t base = row * a.C;
  const bool store = stores_exp<T, kMode>(a);
  for (int64_t k = k0; k < k1; ++k) {
    const int64_t c0 = k * kCeChunk, c1 = std::min(a.C, c0 + kCeChunk);
    if (store) {
      const CeStats& st = stats[k - k0];
      // exp(x - lse) for a -inf logit is 0, unless lse itself is -inf or NaN (torch: NaN).
      const double f = st.valid ? rc.a * std::exp(st.ref - rc.lse)
                       : (rc.lse == -std::numeric_limits<double>::infinity() || rc.lse != rc.lse)
                           ? kNaN
                           : 0.0;
      const Rescale<T, kMode, kWeighted, kX> rs{static_cast<T>(f), static_cast<T>(rc.b), cp,
                                                static_cast<T>(st.ref)};
      chunk_rescale(a.grad + base + c0, a.grad + base + c0, kWeighted ? a.weight + c0 : nullptr,
                    c1 - c0, rs);
      continue;
    }
    chunk_grad<T, kMode, kWeighted, kX>(a.input + base + c0, a.grad ? a.grad + base + c0 : nullptr,
                                        kMode == 2 ? a.prob + base + c0 : nullptr,
                                        kWeighted ? a.weight + c0 : nullptr,
                                        kMode == 2 && a.grad_target ? a.grad_target + base + c0
                                                                    : nullptr,
                                        c1 - c0, static_cast<T>(rc.ref), static_cast<T>(rc.logs),
                                        static_cast<T>(rc.a), static_cast<T>(rc.b), sm.om, sm.ec,
                                        cp);
  }
}

template <class T>
T target_logit(const CeArgs<T>& a, int64_t p, int64_t n, int64_t s) {
  if (a.prob) return T(0);
  const int64_t t = a.target[p];
  return t == a.ignore_index ? T(0) : a.input[(n * a.C + t) * a.S + s];
}

template <class T, int kMode, bool kWeighted, int kX>
double rows_impl(const CeArgs<T>& a, int64_t p0, int64_t p1) {
  const int64_t nchunks = (a.C + kCeChunk - 1) / kCeChunk;
  const bool keep = nchunks <= kMaxStoredChunks;
  CeStats kept[kMaxStoredChunks];
  double total = 0.0;
  for (int64_t r = p0; r < p1; ++r) {
    const T xt = target_logit(a, r, r, 0);  // read first: an in-place gradient overwrites it
    CeStats acc;
    for (int64_t k = 0; k < nchunks; ++k) {
      CeStats st;
      row_stats_impl<T, kMode, kWeighted, kX>(a, r, k, k + 1, &st);
      combine(acc, st);
      if (keep) kept[k] = st;
    }
    CeRowConsts rc;
    total += finish(a, r, acc, xt, &rc);
    if (a.grad || a.grad_target) {
      row_grad_impl<T, kMode, kWeighted, kX>(a, r, rc, 0, nchunks, kept);
      if (a.grad && rc.target >= 0) {
        T& gt = a.grad[r * a.C + rc.target];
        gt = static_cast<T>(gt - static_cast<T>(rc.fix));
      }
    }
  }
  return total;
}

// ---- rows (S == 1) on 16-bit storage --------------------------------------------------------

// rows_impl on bfloat16/float16 logits (probabilities, per-row values and gradients of S): each
// chunk is widened into a float strip on the stack as it is read (a shift for bfloat16, F16C for
// float16 where the target has it; storage_access.hpp) and the same chunk functions run on it, so
// every float is the float path's on the upcast input, and each output is rounded once as it is
// stored. The logits are read from memory once; the exponentials wait in `rowbuf` (C floats),
// not in the 16-bit gradient, between the passes; the gradient pass finishes each chunk in float
// (target fix included) and narrows it straight into the output. `f` carries the scalars and the
// widened class weights; its arrays of float are never read.
// The memory of the chunk after element `from` (the next row's first, after a row's last) is
// requested while this one computes: a chunk's exponentials take about as long as its logits take
// to arrive, and the hardware prefetcher alone leaves the two in turn.
template <class S>
LOSSKIT_INLINE void prefetch_next(const S* base, int64_t from, int64_t end) {
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(S));
  const int64_t to = std::min(end, from + kCeChunk);
  for (int64_t i = from; i < to; i += kLine) LOSSKIT_PREFETCH(base + i, 0);
}

template <class S, int kMode, bool kWeighted, int kX>
double rows_half_impl(const CeArgs<float>& f, const CeArgs<S>& h, int64_t p0, int64_t p1,
                      float* rowbuf) {
  const int64_t C = f.C, nchunks = (C + kCeChunk - 1) / kCeChunk;
  alignas(64) float xs[kCeChunk], ys[kCeChunk], gs[kCeChunk], gys[kCeChunk];
  CeArgs<float> a = f;  // per row: its target, its per-position values (finish() writes at p = 0)
  a.prob = kMode == 2 ? ys : nullptr;
  a.grad = h.grad ? rowbuf : nullptr;
  const bool keep_exp = stores_exp<float, kMode>(a);  // implies nchunks <= kMaxStoredChunks
  const Smoothing<float> sm(a);
  const Cap<float> cp(a);
  CeStats kept[kMaxStoredChunks];
  float go = 0.0f, out = 0.0f, lse = 0.0f, entropy = 0.0f;
  a.grad_out = h.grad_out ? &go : nullptr;
  a.out = h.out ? &out : nullptr;
  a.lse_out = h.lse_out ? &lse : nullptr;
  a.entropy_out = h.entropy_out ? &entropy : nullptr;
  const int64_t end = f.N * C;
  double total = 0.0;
  for (int64_t r = p0; r < p1; ++r) {
    const S* x = h.input + r * C;
    const S* y = kMode == 2 ? h.prob + r * C : nullptr;
    a.target = kMode == 2 ? nullptr : f.target + r;
    a.correct_out = f.correct_out ? f.correct_out + r : nullptr;
    const float xt = kMode == 2 || a.target[0] == a.ignore_index ? 0.0f : load(x[a.target[0]]);
    CeStats acc;
    for (int64_t k = 0; k < nchunks; ++k) {
      const int64_t c0 = k * kCeChunk, n = std::min(C, c0 + kCeChunk) - c0;
      prefetch_next(h.input, r * C + c0 + n, end);
      if constexpr (kMode == 2) prefetch_next(h.prob, r * C + c0 + n, end);
      widen_strip(x + c0, xs, n);
      if constexpr (kMode == 2) widen_strip(y + c0, ys, n);
      CeStats st = chunk_stats<float, kMode, kWeighted, kX>(xs, kMode == 2 ? ys : nullptr,
                                                            kWeighted ? f.weight + c0 : nullptr,
                                                            keep_exp ? rowbuf + c0 : nullptr, n,
                                                            sm.om, sm.ec, cp);
      if (st.arg >= 0) st.arg += c0;
      combine(acc, st);
      if (keep_exp) kept[k] = st;
    }
    if (h.grad_out) go = load(h.grad_out[r]);
    CeRowConsts rc;
    total += finish(a, 0, acc, xt, &rc);
    if (h.out) store(h.out[r], out);
    if (h.lse_out) store(h.lse_out[r], lse);
    if (h.entropy_out) store(h.entropy_out[r], entropy);
    if (!h.grad && !(kMode == 2 && h.grad_target)) continue;
    for (int64_t k = 0; k < nchunks; ++k) {
      const int64_t c0 = k * kCeChunk, n = std::min(C, c0 + kCeChunk) - c0;
      const float* w = kWeighted ? f.weight + c0 : nullptr;
      if (keep_exp) {  // as row_grad_impl
        const CeStats& st = kept[k];
        const double fk = st.valid ? rc.a * std::exp(st.ref - rc.lse)
                          : (rc.lse == -std::numeric_limits<double>::infinity() || rc.lse != rc.lse)
                              ? kNaN
                              : 0.0;
        const Rescale<float, kMode, kWeighted, kX> rs{static_cast<float>(fk),
                                                      static_cast<float>(rc.b), cp,
                                                      static_cast<float>(st.ref)};
        // Rescaled from the row buffer (L2) into the L1 strip, narrowed from there: one pass over
        // the row buffer, which is only read.
        chunk_rescale(rowbuf + c0, gs, w, n, rs);
      } else {
        widen_strip(x + c0, xs, n);
        if constexpr (kMode == 2) widen_strip(y + c0, ys, n);
        chunk_grad<float, kMode, kWeighted, kX>(xs, h.grad ? gs : nullptr,
                                                kMode == 2 ? ys : nullptr, w,
                                                kMode == 2 && h.grad_target ? gys : nullptr, n,
                                                static_cast<float>(rc.ref),
                                                static_cast<float>(rc.logs),
                                                static_cast<float>(rc.a), static_cast<float>(rc.b),
                                                sm.om, sm.ec, cp);
      }
      if (h.grad) {
        if (rc.target >= c0 && rc.target < c0 + n) gs[rc.target - c0] -= static_cast<float>(rc.fix);
        narrow_strip(gs, h.grad + r * C + c0, n);
      }
      if (kMode == 2 && h.grad_target) narrow_strip(gys, h.grad_target + r * C + c0, n);
    }
  }
  return total;
}

// ---- strided tiles (S > 1): classes are kCeTile-wide columns, vectorised across positions ----

// With the extras (kX) the max pass also keeps the first argmax, the sum pass the entropy sum,
// and with a softcap the gradient holds t = tanh(x ic) between the passes (see
// chunk_stats_extras).
template <class T, int kMode, bool kWeighted, int kX>
double tile_impl(const CeArgs<T>& a, int64_t n, int64_t s0, int64_t s1) {
  const int64_t L = s1 - s0, C = a.C, S = a.S;
  const Smoothing<T> sm(a);
  const T om = sm.om, ec = sm.ec;
  const T* xn = a.input + n * C * S + s0;
  const T* yn = kMode == 2 ? a.prob + n * C * S + s0 : nullptr;
  T* gn = a.grad ? a.grad + n * C * S + s0 : nullptr;
  const bool any_grad = gn != nullptr || (kMode == 2 && a.grad_target != nullptr);
  const bool store = kMode != 2 && gn != nullptr;  // keep exp(x - ref) in the gradient
  const Cap<T> cp(a);
  alignas(64) T m[kCeTile], sum[kCeTile], wx[kCeTile], ws[kCeTile], hx[kCeTile];
  int64_t arg[kCeTile];
  for (int64_t l = 0; l < L; ++l) {
    m[l] = -kInf<T>;
    sum[l] = wx[l] = ws[l] = hx[l] = T(0);
    arg[l] = 0;  // a position of -inf logits: torch.argmax gives 0
  }
  // The next tile of this sample (the next unit, on this thread as a rule) is prefetched into L2
  // while this one computes: its C runs are too short and too many for the hardware prefetcher
  // alone to keep the memory busy.
  const int64_t ahead = std::min(L, S - s1);
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
  for (int64_t c = 0; c < C; ++c) {
    const T* LOSSKIT_RESTRICT xc = xn + c * S;
    for (int64_t o = 0; o < ahead; o += kLine) {
      LOSSKIT_PREFETCH(xc + L + o, 0);
      if (gn) LOSSKIT_PREFETCH(gn + c * S + L + o, 1);
    }
    if constexpr (kX != 0) {
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) {
        arg[l] = xc[l] > m[l] ? c : arg[l];
        m[l] = xc[l] > m[l] ? xc[l] : m[l];
      }
    } else {
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) m[l] = xc[l] > m[l] ? xc[l] : m[l];
    }
  }
  bool valid[kCeTile];
  for (int64_t l = 0; l < L; ++l) {
    if constexpr (kX == 2) {  // the reference is the softcapped max (softcap is monotone)
      valid[l] = true;
      m[l] = cp.cap * vmath::tanh(m[l] * cp.ic);
    } else {
      valid[l] = !(m[l] == -kInf<T>);
      m[l] = valid[l] ? m[l] : T(0);
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    const T* xc = xn + c * S;
    const T wc = kWeighted ? a.weight[c] : T(1);
    if constexpr (kMode == 2) {
      const T* LOSSKIT_RESTRICT yc = yn + c * S;
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) {
        const T d = xc[l] - m[l];
        const T v = (yc[l] * om + ec) * wc;
        sum[l] += exp_nonpos(d);
        wx[l] += v * d;
        ws[l] += v;
      }
    } else if constexpr (kX != 0) {
      T* gc = store ? gn + c * S : nullptr;
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) {
        T d, t = T(0);
        if constexpr (kX == 2) {
          t = vmath::tanh(xc[l] * cp.ic);
          d = cp.cap * t - m[l];
          d = d > T(0) ? T(0) : d;
        } else {
          d = xc[l] - m[l];
        }
        const T e = exp_nonpos(d);
        if (gc)
          gc[l] = kX == 2 ? (kMode == 0 ? e * (T(1) - t * t) : t) : e;  // as chunk_stats_extras
        sum[l] += e;
        hx[l] += e > T(0) ? e * d : T(0);
        if constexpr (kMode == 1) wx[l] += wc * d;
      }
    } else if (store) {
      T* gc = gn + c * S;
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) {
        const T d = xc[l] - m[l];
        const T e = exp_nonpos(d);
        gc[l] = e;
        sum[l] += e;
        if constexpr (kMode == 1) wx[l] += wc * d;
      }
    } else {
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) {
        const T d = xc[l] - m[l];
        sum[l] += exp_nonpos(d);
        if constexpr (kMode == 1) wx[l] += wc * d;
      }
    }
  }
  // Per-position loss and gradient constants (the row path's finish(), with the logarithms
  // vectorised across the tile: C is small here, so per-position work matters).
  alignas(64) T logs[kCeTile], A[kCeTile], B[kCeTile], Fs[kCeTile], fix[kCeTile];
#pragma omp simd
  for (int64_t l = 0; l < L; ++l) logs[l] = vmath::log(sum[l]);
  int64_t tgt[kCeTile];
  const double eps = a.smoothing, eps_c = a.smoothing / static_cast<double>(C);
  double total = 0.0;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t p = n * S + s0 + l;
    double scale = a.grad_scale * (a.grad_out ? static_cast<double>(a.grad_out[p]) : 1.0);
    const double lg = logs[l], ref = m[l];
    double loss = 0.0, ca = 0.0, cb = 0.0, cf = 0.0;
    tgt[l] = -1;
    if constexpr (kMode == 2) {
      loss = prob_loss(static_cast<double>(ws[l]), lg, static_cast<double>(wx[l]), C);
      ca = scale * static_cast<double>(ws[l]);
      cb = scale;
    } else {
      const int64_t t = a.target[p];
      if constexpr (kX != 0)
        if (a.stats())
          write_stats(a, p, ref + lg, lg - static_cast<double>(hx[l]) / static_cast<double>(sum[l]),
                      t != a.ignore_index && arg[l] == t);
      if (t == a.ignore_index) {
        scale = 0.0;
      } else {
        const double wt = kWeighted ? static_cast<double>(a.weight[t]) : 1.0;
        const CapTarget ct = cap_target(a, xn[t * S + l]);
        loss = (1.0 - eps) * wt * (lg - (ct.x - ref));
        if (kMode == 1) loss += eps_c * (a.weight_sum * lg - static_cast<double>(wx[l]));
        ca = scale * ((1.0 - eps) * wt + (kMode == 1 ? eps_c * a.weight_sum : 0.0));  // finish()
        cb = scale * eps_c;
        cf = scale * (1.0 - eps) * wt;
        if (a.softcap > 0.0) cf *= ct.dcap;
        if (a.transform != detail::CeTransform::None) {  // as finish()
          const Transformed f = transform_loss(a.transform, a.transform_param, lg - (ct.x - ref));
          loss = wt * f.loss;
          ca = cf = scale * wt * f.slope;
        }
        if (a.z_loss != 0.0) {
          loss += a.z_loss * (ref + lg) * (ref + lg);
          ca += scale * 2.0 * a.z_loss * (ref + lg);
        }
        tgt[l] = t;
      }
    }
    if (a.out) a.out[p] = static_cast<T>(loss);
    total += loss;
    A[l] = static_cast<T>(ca);
    B[l] = static_cast<T>(cb);
    fix[l] = static_cast<T>(cf);
    // softmax = exp(x - ref) / sum: the stored exponentials times A / sum (NaN for a row of -inf).
    Fs[l] = static_cast<T>(ca / static_cast<double>(sum[l]));
  }
  if (!any_grad) return total;
  T* gyn = kMode == 2 && a.grad_target ? a.grad_target + n * C * S + s0 : nullptr;
  for (int64_t c = 0; c < C; ++c) {
    const T* xc = xn + c * S;
    T* gc = gn ? gn + c * S : nullptr;
    const T wc = kWeighted ? a.weight[c] : T(1);
    if constexpr (kMode == 2) {
      const T* LOSSKIT_RESTRICT yc = yn + c * S;
      if (!gc) {
        T* LOSSKIT_RESTRICT gyc = gyn + c * S;
#pragma omp simd
        for (int64_t l = 0; l < L; ++l) gyc[l] = -(B[l] * om * wc) * ((xc[l] - m[l]) - logs[l]);
      } else if (gyn) {
        T* LOSSKIT_RESTRICT gyc = gyn + c * S;
#pragma omp simd
        for (int64_t l = 0; l < L; ++l) {
          const T d = (xc[l] - m[l]) - logs[l];  // as chunk_grad forms it
          gyc[l] = -(B[l] * om * wc) * d;
          gc[l] = vmath::exp(d) * A[l] - B[l] * ((yc[l] * om + ec) * wc);
        }
      } else {
#pragma omp simd
        for (int64_t l = 0; l < L; ++l)
          gc[l] = vmath::exp((xc[l] - m[l]) - logs[l]) * A[l] - B[l] * ((yc[l] * om + ec) * wc);
      }
    } else if constexpr (kX == 2 &&
                         kMode == 1) {  // gc holds t: (exp(x' - ref) A / sum - B w) (1 - t^2)
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) {
        const T t = gc[l];
        T d = cp.cap * t - m[l];
        d = d > T(0) ? T(0) : d;
        gc[l] = (exp_nonpos(d) * Fs[l] - B[l] * wc) * (T(1) - t * t);
      }
    } else if constexpr (kMode == 1) {
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) gc[l] = gc[l] * Fs[l] - B[l] * wc;
    } else {  // no smoothing: w_c of a class other than the target is never read (see finish())
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) gc[l] = gc[l] * Fs[l];
    }
  }
  for (int64_t l = 0; l < L; ++l)
    if (gn && tgt[l] >= 0) {
      T& gt = gn[tgt[l] * S + l];
      gt = static_cast<T>(gt - fix[l]);
    }
  return total;
}

// ---- poly1_cross_entropy with smoothing or probability targets -------------------------------
// The formulas are at ClassificationKernels::poly1_soft. Three sweeps over a position's classes
// (S apart): the max, the sums (exp(x - ref), V, sum v (x - ref), sum v exp(x - ref)), and the
// gradient. The softmax of the gradient sweep is formed as chunk_grad's probability path forms it.
// The per-position end of both poly1 kernels: the loss from the four sums (written to a.out[p]
// when wanted) and the gradient's constants, g_c = p_c A - v_c (B + E p_c) and
// d loss / d y_c = (gy w_c) (eps (1 - p_c) - (x_c - lse)), with lse = ref + lg.
template <class T>
struct Poly1Position {
  double loss = 0.0;
  T A = 0, B = 0, E = 0, lg = 0, gy = 0;
};
template <class T>
LOSSKIT_INLINE Poly1Position<T> poly1_position(const CeArgs<T>& a, int64_t p, bool counted,
                                               double scale, double se, double sv, double svx,
                                               double sve, T om) {
  const double eps = a.transform_param;
  const double logs = std::log(se);
  const double P = sve / se;
  Poly1Position<T> r;
  if (counted && a.C > 0) r.loss = prob_loss(sv, logs, svx, a.C) + eps * (sv - P);
  if (a.out) a.out[p] = static_cast<T>(r.loss);
  r.A = static_cast<T>(scale * (sv + eps * P));
  r.B = static_cast<T>(scale);
  r.E = static_cast<T>(scale * eps);
  r.lg = static_cast<T>(logs);
  r.gy = static_cast<T>(scale * static_cast<double>(om));
  return r;
}

// v_c = w_c y'_c of class c at a position whose classes lie S apart: y' is the smoothed one-hot of
// target t (class indices; t = -1 where ignored) or the smoothed probability target y.
template <bool kProb, bool kWeighted, class T>
LOSSKIT_INLINE T poly1_target_weight(const T* y, const T* w, int64_t c, int64_t S, int64_t t, T om,
                                     T ec) {
  const T yc = kProb ? y[c * S] * om + ec : (c == t ? om : T(0)) + ec;
  return kWeighted ? yc * w[c] : yc;
}

// Rows (S == 1): the same per-position formulas with contiguous, vectorised class loops; the four
// terms of a chunk of kCeChunk classes go to stack buffers, and the four sums are taken over them
// in ordered_sums' fixed order (per chunk, the chunks in sequence), so values do not depend on the
// target's vector width or the thread count.
template <class T, bool kProb, bool kWeighted>
double poly1_soft_rows(const CeArgs<T>& a, int64_t p0, int64_t p1) {
  const int64_t C = a.C;
  const Smoothing<T> sm(a);
  const T om = sm.om, ec = sm.ec;
  const double eps = a.transform_param;
  const T* LOSSKIT_RESTRICT w = a.weight;
  alignas(64) T ebuf[kCeChunk], vbuf[kCeChunk], vxbuf[kCeChunk], vebuf[kCeChunk];
  double total = 0.0;
  for (int64_t p = p0; p < p1; ++p) {
    const T* LOSSKIT_RESTRICT x = a.input + p * C;
    const T* LOSSKIT_RESTRICT y = kProb ? a.prob + p * C : nullptr;
    const int64_t t = kProb ? -1 : (a.target[p] == a.ignore_index ? -1 : a.target[p]);
    const bool counted = kProb || t >= 0;
    double scale = a.grad_scale * (a.grad_out ? static_cast<double>(a.grad_out[p]) : 1.0);
    if (!counted) scale = 0.0;
    const T m = run_max(x, C);
    const T ref = m == -kInf<T> ? T(0) : m;
    double se = 0.0, sv = 0.0, svx = 0.0, sve = 0.0;
    for (int64_t c0 = 0; c0 < C; c0 += kCeChunk) {
      const int64_t n = std::min(kCeChunk, C - c0);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const int64_t c = c0 + i;
        const T d = x[c] - ref;
        const T e = exp_nonpos(d);
        const T v = poly1_target_weight<kProb, kWeighted>(y, w, c, 1, t, om, ec);
        ebuf[i] = e;
        vbuf[i] = v;
        vxbuf[i] = v * d;
        vebuf[i] = v * e;
      }
      double part[4];
      ordered_sums_of<4>(n, {ebuf, vbuf, vxbuf, vebuf}, part);
      se += part[0];
      sv += part[1];
      svx += part[2];
      sve += part[3];
    }
    const Poly1Position<T> k = poly1_position(a, p, counted, scale, se, sv, svx, sve, om);
    total += k.loss;
    if (!a.grad && !a.grad_target) continue;
    const T A = k.A, B = k.B, E = k.E, lg = k.lg, gy_scale = k.gy;
    const T eps_t = static_cast<T>(eps);
    // The gradient may be written over the input (in place): x and g are not restrict here.
    T* g = a.grad ? a.grad + p * C : nullptr;
    T* LOSSKIT_RESTRICT gy = a.grad_target ? a.grad_target + p * C : nullptr;
    const T* xr = a.input + p * C;
    if (gy) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const T d = (xr[c] - ref) - lg;  // x - lse, as chunk_grad forms it
        const T wc = kWeighted ? w[c] : T(1);
        gy[c] = (gy_scale * wc) * (eps_t * (T(1) - vmath::exp(d)) - d);
      }
    }
    if (g) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const T d = (xr[c] - ref) - lg;
        const T pc = vmath::exp(d);
        const T v = poly1_target_weight<kProb, kWeighted>(y, w, c, 1, t, om, ec);
        g[c] = pc * A - v * (B + E * pc);
      }
    }
  }
  return total;
}

// K-dimensional inputs (S > 1): a tile of L <= kPoly1Tile positions of sample n from s0, one class
// row (L contiguous logits) at a time, vectorised across the positions. Each position's four sums
// run over its classes in plain order, in double.
constexpr int64_t kPoly1Tile = 64;

// Adds the positions' losses to `total` in position order.
template <class T, bool kProb, bool kWeighted>
void poly1_soft_tile(const CeArgs<T>& a, int64_t n, int64_t s0, int64_t L, double& total) {
  const int64_t C = a.C, S = a.S, p0 = n * S + s0, base = n * C * S + s0;
  const Smoothing<T> sm(a);
  const T om = sm.om, ec = sm.ec;
  const T eps = static_cast<T>(a.transform_param);
  const T* LOSSKIT_RESTRICT w = a.weight;
  alignas(64) T ref[kPoly1Tile], A[kPoly1Tile], B[kPoly1Tile], E[kPoly1Tile], lg[kPoly1Tile],
      gys[kPoly1Tile];
  alignas(64) double se[kPoly1Tile], sv[kPoly1Tile], svx[kPoly1Tile], sve[kPoly1Tile];
  alignas(64)
      int64_t tgt[kPoly1Tile];  // the target class; -1 where ignored (and for probabilities)
  for (int64_t l = 0; l < L; ++l) {
    ref[l] = -kInf<T>;
    se[l] = sv[l] = svx[l] = sve[l] = 0.0;
    tgt[l] = kProb ? -1 : (a.target[p0 + l] == a.ignore_index ? -1 : a.target[p0 + l]);
  }
  // v_c = w_c y'_c at position l of class row c (poly1_target_weight across the tile)
  const auto v_of = [&](const T* yc, int64_t c, int64_t l, T wc) {
    const T yv = kProb ? yc[l] * om + ec : (c == tgt[l] ? om : T(0)) + ec;
    return kWeighted ? yv * wc : yv;
  };
  for (int64_t c = 0; c < C; ++c) {
    const T* LOSSKIT_RESTRICT xc = a.input + base + c * S;
#pragma omp simd
    for (int64_t l = 0; l < L; ++l) ref[l] = xc[l] > ref[l] ? xc[l] : ref[l];
  }
  for (int64_t l = 0; l < L; ++l) ref[l] = ref[l] == -kInf<T> ? T(0) : ref[l];
  for (int64_t c = 0; c < C; ++c) {
    const T* LOSSKIT_RESTRICT xc = a.input + base + c * S;
    const T* LOSSKIT_RESTRICT yc = kProb ? a.prob + base + c * S : nullptr;
    const T wc = kWeighted ? w[c] : T(1);
#pragma omp simd
    for (int64_t l = 0; l < L; ++l) {
      const T d = xc[l] - ref[l];
      const T e = exp_nonpos(d);
      const T v = v_of(yc, c, l, wc);
      se[l] += static_cast<double>(e);
      sv[l] += static_cast<double>(v);
      svx[l] += static_cast<double>(v * d);
      sve[l] += static_cast<double>(v * e);
    }
  }
  for (int64_t l = 0; l < L; ++l) {
    const int64_t p = p0 + l;
    const bool counted = kProb || tgt[l] >= 0;
    double scale = a.grad_scale * (a.grad_out ? static_cast<double>(a.grad_out[p]) : 1.0);
    if (!counted) scale = 0.0;
    const Poly1Position<T> k =
        poly1_position(a, p, counted, scale, se[l], sv[l], svx[l], sve[l], om);
    total += k.loss;
    A[l] = k.A;
    B[l] = k.B;
    E[l] = k.E;
    lg[l] = k.lg;
    gys[l] = k.gy;
  }
  if (!a.grad && !a.grad_target) return;
  for (int64_t c = 0; c < C; ++c) {
    // The gradient may be written over the input (in place): x and g are not restrict here.
    const T* xc = a.input + base + c * S;
    const T* yc = kProb ? a.prob + base + c * S : nullptr;
    const T wc = kWeighted ? w[c] : T(1);
    if (a.grad_target) {
      T* gy = a.grad_target + base + c * S;
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) {
        const T d = (xc[l] - ref[l]) - lg[l];  // x - lse, as chunk_grad forms it
        gy[l] = (gys[l] * wc) * (eps * (T(1) - vmath::exp(d)) - d);
      }
    }
    if (a.grad) {
      T* g = a.grad + base + c * S;
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) {
        const T d = (xc[l] - ref[l]) - lg[l];
        const T pc = vmath::exp(d);
        g[l] = pc * A[l] - v_of(yc, c, l, wc) * (B[l] + E[l] * pc);
      }
    }
  }
}

template <class T, bool kProb, bool kWeighted>
double poly1_soft_impl(const CeArgs<T>& a, int64_t p0, int64_t p1) {
  const int64_t S = a.S;
  if (S == 1) return poly1_soft_rows<T, kProb, kWeighted>(a, p0, p1);
  // [p0, p1) may cross samples: tiles within one sample, in position order.
  double total = 0.0;
  for (int64_t p = p0; p < p1;) {
    const int64_t n = p / S, s = p % S;
    const int64_t L = std::min({p1 - p, S - s, kPoly1Tile});
    poly1_soft_tile<T, kProb, kWeighted>(a, n, s, L, total);
    p += L;
  }
  return total;
}

template <class T>
double poly1_soft(const CeArgs<T>& a, int64_t p0, int64_t p1) {
  const bool weighted = a.weight != nullptr;
  if (a.prob)
    return weighted ? poly1_soft_impl<T, true, true>(a, p0, p1)
                    : poly1_soft_impl<T, true, false>(a, p0, p1);
  return weighted ? poly1_soft_impl<T, false, true>(a, p0, p1)
                  : poly1_soft_impl<T, false, false>(a, p0, p1);
}

// ---- runtime flags -> template instances ----------------------------------------------------

template <class T>
int ce_mode(const CeArgs<T>& a) {
  return a.prob ? 2 : (a.smoothing > 0.0 ? 1 : 0);
}
// 0: no extras in the loops (z_loss alone only changes the per-position constants);
// 1: entropy and argmax tracked; 2: also the softcap.
template <class T>
int ce_extras(const CeArgs<T>& a) {
  return a.prob ? 0 : (a.softcap > 0.0 ? 2 : (a.stats() ? 1 : 0));
}

#define LOSSKIT_CE_CASE(FN, M, X, ...)                                                             \
  return weighted ? FN<T, M, true, X>(__VA_ARGS__) : FN<T, M, false, X>(__VA_ARGS__)
#define LOSSKIT_CE_DISPATCH(FN, ...)                                                               \
  do {                                                                                             \
    const bool weighted = a.weight != nullptr;                                                     \
    switch (ce_mode(a) * 3 + ce_extras(a)) {                                                       \
      case 0: LOSSKIT_CE_CASE(FN, 0, 0, __VA_ARGS__);                                              \
      case 1: LOSSKIT_CE_CASE(FN, 0, 1, __VA_ARGS__);                                              \
      case 2: LOSSKIT_CE_CASE(FN, 0, 2, __VA_ARGS__);                                              \
      case 3: LOSSKIT_CE_CASE(FN, 1, 0, __VA_ARGS__);                                              \
      case 4: LOSSKIT_CE_CASE(FN, 1, 1, __VA_ARGS__);                                              \
      case 5: LOSSKIT_CE_CASE(FN, 1, 2, __VA_ARGS__);                                              \
      default: LOSSKIT_CE_CASE(FN, 2, 0, __VA_ARGS__);                                             \
    }                                                                                              \
  } while (0)

template <class T>
double ce_rows(const CeArgs<T>& a, int64_t p0, int64_t p1) {
  LOSSKIT_CE_DISPATCH(rows_impl, a, p0, p1);
}
template <class T>
double ce_tile(const CeArgs<T>& a, int64_t n, int64_t s0, int64_t s1) {
  LOSSKIT_CE_DISPATCH(tile_impl, a, n, s0, s1);
}
template <class T>
void ce_row_stats(const CeArgs<T>& a, int64_t row, int64_t k0, int64_t k1, CeStats* stats) {
  LOSSKIT_CE_DISPATCH(row_stats_impl, a, row, k0, k1, stats);
}
template <class S>
double ce_rows_half(const CeArgs<float>& f, const CeArgs<S>& h, int64_t p0, int64_t p1,
                    float* rowbuf) {
  const CeArgs<S>& a = h;  // the flags LOSSKIT_CE_DISPATCH reads
  using T = S;
  LOSSKIT_CE_DISPATCH(rows_half_impl, f, h, p0, p1, rowbuf);
}
template <class T>
void ce_row_grad(const CeArgs<T>& a, int64_t row, const CeRowConsts& rc, int64_t k0, int64_t k1,
                 const CeStats* stats) {
  LOSSKIT_CE_DISPATCH(row_grad_impl, a, row, rc, k0, k1, stats);
}
#undef LOSSKIT_CE_DISPATCH
#undef LOSSKIT_CE_CASE

// The in-row path's finish (same code as rows_impl); xt read before the statistics pass.
template <class T>
double ce_row_finish(const CeArgs<T>& a, int64_t row, const CeStats& st, T xt, CeRowConsts* rc) {
  return finish(a, row, st, xt, rc);
}
template <class T>
T ce_target_logit(const CeArgs<T>& a, int64_t row) {
  return target_logit(a, row, row, 0);
}

// ---- nll_loss --------------------------------------------------------------------------------

// Zeroes n values with non-temporal stores where the target has them: the gradient of nll_loss is
// almost all zeros, and streaming stores skip reading each line before writing it (half the
// memory traffic of a plain fill). Callers end with _mm_sfence (stream_fence) before returning.
// Without SSE2 (on aarch64, for one) it is a plain fill and stream_fence does nothing.
template <class T>
void stream_zero(T* p, int64_t n) {
#if defined(__SSE2__)
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<uintptr_t>(p + i) & 63) != 0; ++i) p[i] = T(0);
  char* b = reinterpret_cast<char*>(p + i);
  const int64_t bytes = (n - i) * static_cast<int64_t>(sizeof(T));
  const int64_t body = bytes & ~int64_t{63};
#if defined(__AVX512F__)
  const __m512i z = _mm512_setzero_si512();
  for (int64_t o = 0; o < body; o += 64) _mm512_stream_si512(reinterpret_cast<__m512i*>(b + o), z);
#elif defined(__AVX__)
  const __m256i z = _mm256_setzero_si256();
  for (int64_t o = 0; o < body; o += 64) {
    _mm256_stream_si256(reinterpret_cast<__m256i*>(b + o), z);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(b + o + 32), z);
  }
#else
  const __m128i z = _mm_setzero_si128();
  for (int64_t o = 0; o < body; o += 16) _mm_stream_si128(reinterpret_cast<__m128i*>(b + o), z);
#endif
  i += body / static_cast<int64_t>(sizeof(T));
  for (; i < n; ++i) p[i] = T(0);
#else
  std::fill_n(p, n, T(0));
#endif
}

inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

// Positions [p0, p1): whole rows when S == 1, else a run inside one sample.
template <class T>
double nll(const NllArgs<T>& a, int64_t p0, int64_t p1) {
  const int64_t C = a.C, S = a.S;
  double total = 0.0;
  if (a.grad && p1 > p0) {
    if (S > 1) {
      const int64_t n = p0 / S, s0 = p0 % S, L = p1 - p0;
      for (int64_t c = 0; c < C; ++c) stream_zero(a.grad + (n * C + c) * S + s0, L);
    } else {
      stream_zero(a.grad + p0 * C, (p1 - p0) * C);  // the rows are contiguous
    }
    stream_fence();
  }
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t n = p / S, s = p % S;
    const int64_t t = a.target[p];
    double loss = 0.0;
    if (t != a.ignore_index) {
      const T wt = a.weight ? a.weight[t] : T(1);
      const int64_t idx = (n * C + t) * S + s;
      loss = -static_cast<double>(wt) * static_cast<double>(a.input[idx]);
      if (a.grad) {
        const double scale = a.grad_scale * (a.grad_out ? static_cast<double>(a.grad_out[p]) : 1.0);
        a.grad[idx] = static_cast<T>(-static_cast<double>(wt) * scale);
      }
    }
    if (a.out) a.out[p] = static_cast<T>(loss);
    total += loss;
  }
  return total;
}

// ---- multi_margin_loss -----------------------------------------------------------------------
// l = sum_{j != t} max(0, margin - x_t + x_j)^p w_t / C

template <class T, int P, bool kGrad>
double multi_margin_impl(const RowLossArgs<T>& a, int64_t r0, int64_t r1) {
  const int64_t C = a.C;
  const T mg = static_cast<T>(a.margin);
  double total = 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    const T* LOSSKIT_RESTRICT x = a.input + r * C;
    T* LOSSKIT_RESTRICT g = kGrad ? a.grad + r * C : nullptr;
    const int64_t t = a.target[r];
    const T xt = x[t];
    const T wt = a.weight ? a.weight[t] : T(1);
    const double scale = a.grad_scale * (a.grad_out ? static_cast<double>(a.grad_out[r]) : 1.0);
    const T coef = static_cast<T>(scale * static_cast<double>(wt) / static_cast<double>(C));
    // Each active class's gradient is scaled before the target's sum of them, as torch does: the
    // unscaled 2 z of a margin near float32's largest value (1e38) would overflow that sum.
    const T coef_p = P == 1 ? coef : T(2) * coef;
    double sum = 0.0;
    T gsum = 0;
#pragma omp simd reduction(+ : sum, gsum)
    for (int64_t j = 0; j < C; ++j) {
      const T z = mg - xt + x[j];
      const bool act = (z > T(0)) & (j != t);
      const T h = P == 1 ? z : z * z;
      sum += act ? static_cast<double>(h) : 0.0;
      const T gj = act ? (P == 1 ? coef_p : coef_p * z) : T(0);
      gsum += gj;
      if constexpr (kGrad) g[j] = gj;
    }
    if constexpr (kGrad) g[t] = -gsum;
    // torch weights each active term, so a row with none is 0 even for an infinite weight.
    const double loss = sum == 0.0 ? 0.0 : sum * static_cast<double>(wt) / static_cast<double>(C);
    if (a.out) a.out[r] = static_cast<T>(loss);
    total += loss;
  }
  return total;
}

template <class T>
double multi_margin(const RowLossArgs<T>& a, int64_t r0, int64_t r1) {
  if (a.p == 1)
    return a.grad ? multi_margin_impl<T, 1, true>(a, r0, r1)
                  : multi_margin_impl<T, 1, false>(a, r0, r1);
  return a.grad ? multi_margin_impl<T, 2, true>(a, r0, r1)
                : multi_margin_impl<T, 2, false>(a, r0, r1);
}

// ---- multilabel_margin_loss ------------------------------------------------------------------
// l = sum_{targets t} sum_{j not a target} max(0, 1 - (x_t - x_j)) / C, targets read up to the
// first negative value (duplicates count twice, as in torch).

template <class T, bool kGrad>
double multilabel_margin_impl(const RowLossArgs<T>& a, int64_t r0, int64_t r1,
                              T* LOSSKIT_RESTRICT is_target) {
  const int64_t C = a.C;
  double total = 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    const T* LOSSKIT_RESTRICT x = a.input + r * C;
    const int64_t* tg = a.target + r * C;
    T* LOSSKIT_RESTRICT g = kGrad ? a.grad + r * C : nullptr;
    std::fill_n(is_target, C, T(0));
    for (int64_t k = 0; k < C && tg[k] >= 0; ++k) is_target[tg[k]] = T(1);
    const double scale = a.grad_scale * (a.grad_out ? static_cast<double>(a.grad_out[r]) : 1.0);
    const T coef = static_cast<T>(scale / static_cast<double>(C));
    if constexpr (kGrad) std::fill_n(g, C, T(0));
    double sum = 0.0;
    for (int64_t k = 0; k < C && tg[k] >= 0; ++k) {
      const int64_t t = tg[k];
      const T xt = x[t];
      double part = 0.0;
      T cnt = 0;
#pragma omp simd reduction(+ : part, cnt)
      for (int64_t j = 0; j < C; ++j) {
        const T z = T(1) - xt + x[j];
        const bool act = (z > T(0)) & (is_target[j] == T(0));
        part += act ? static_cast<double>(z) : 0.0;
        cnt += act ? T(1) : T(0);
        if constexpr (kGrad) g[j] += act ? coef : T(0);
      }
      if constexpr (kGrad) g[t] -= cnt * coef;
      sum += part;
    }
    const double loss = sum / static_cast<double>(C);
    if (a.out) a.out[r] = static_cast<T>(loss);
    total += loss;
  }
  return total;
}

template <class T>
double multilabel_margin(const RowLossArgs<T>& a, int64_t r0, int64_t r1, T* scratch) {
  return a.grad ? multilabel_margin_impl<T, true>(a, r0, r1, scratch)
                : multilabel_margin_impl<T, false>(a, r0, r1, scratch);
}

// ---- multilabel_soft_margin_loss -------------------------------------------------------------
// l = -sum_j w_j (y_j log sigmoid(x_j) + (1 - y_j) log sigmoid(-x_j)) / C
// dl/dx_j = w_j (sigmoid(x_j) - y_j) / C,  dl/dy_j = -w_j (log sigmoid(x_j) - log sigmoid(-x_j)) / C
// The gradients are evaluated term by term as torch's autograd does, with u = w_j g / C:
// dx = (-u y) sigmoid(-x) - (-u (1 - y)) sigmoid(x) and dy = (-u) log sigmoid(x) + u log sigmoid(-x),
// so an infinite weight gives torch's NaN (inf * 0 where y is 0 or 1), not +-inf. The term-by-term
// dx is also the accurate one for 0/1 targets: at y = 1 it is u sigmoid(-x), where the fused
// u (sigmoid(x) - 1) would lose every digit of a small sigmoid(-x) to cancellation.

template <class T, bool kGrad, bool kGradY, bool kWeighted>
double soft_margin_impl(const RowLossArgs<T>& a, int64_t r0, int64_t r1) {
  const int64_t C = a.C;
  double total = 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    const T* LOSSKIT_RESTRICT x = a.input + r * C;
    const T* LOSSKIT_RESTRICT y = a.prob + r * C;
    const T* LOSSKIT_RESTRICT w = kWeighted ? a.weight + r * a.weight_row_stride : nullptr;
    T* LOSSKIT_RESTRICT g = kGrad ? a.grad + r * C : nullptr;
    T* LOSSKIT_RESTRICT gy = kGradY ? a.grad_target + r * C : nullptr;
    const double scale = a.grad_scale * (a.grad_out ? static_cast<double>(a.grad_out[r]) : 1.0);
    const T coef = static_cast<T>(scale / static_cast<double>(C));
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < C; ++j) {
      const T xj = x[j], yj = y[j];
      const T wj = kWeighted ? w[j] : T(1);
      const T ax = xj < T(0) ? -xj : xj;
      // exp, not exp_nonpos: e^-|x| below 1.7e-38 (|x| > 87, float) must not flush to 0, as
      // sigmoid(-x) = e / (1 + e) then meets an infinite target: torch's inf * 6e-39 = inf.
      const T e = vmath::exp(-ax);
      const T l1p = vmath::log1p_unit(e);
      const T lsp = (xj < T(0) ? xj : T(0)) - l1p;   // log sigmoid(x)
      const T lsn = (xj > T(0) ? -xj : T(0)) - l1p;  // log sigmoid(-x)
      sum += static_cast<double>(-(yj * lsp + (T(1) - yj) * lsn) * wj);
      const T nu = -(wj * coef);  // -u
      if constexpr (kGrad) {
        const T sig = (xj >= T(0) ? T(1) : e) / (T(1) + e);     // sigmoid(x)
        const T sig_neg = (xj < T(0) ? T(1) : e) / (T(1) + e);  // sigmoid(-x)
        g[j] = (nu * yj) * sig_neg - (nu * (T(1) - yj)) * sig;
      }
      if constexpr (kGradY) gy[j] = nu * lsp - nu * lsn;
    }
    const double loss = sum / static_cast<double>(C);
    if (a.out) a.out[r] = static_cast<T>(loss);
    total += loss;
  }
  return total;
}

template <class T>
double multilabel_soft_margin(const RowLossArgs<T>& a, int64_t r0, int64_t r1) {
  const int mask = (a.grad ? 1 : 0) | (a.grad_target ? 2 : 0) | (a.weight ? 4 : 0);
  switch (mask) {
    case 0: return soft_margin_impl<T, false, false, false>(a, r0, r1);
    case 1: return soft_margin_impl<T, true, false, false>(a, r0, r1);
    case 2: return soft_margin_impl<T, false, true, false>(a, r0, r1);
    case 3: return soft_margin_impl<T, true, true, false>(a, r0, r1);
    case 4: return soft_margin_impl<T, false, false, true>(a, r0, r1);
    case 5: return soft_margin_impl<T, true, false, true>(a, r0, r1);
    case 6: return soft_margin_impl<T, false, true, true>(a, r0, r1);
    default: return soft_margin_impl<T, true, true, true>(a, r0, r1);
  }
}

// The table is constant data: taking the kernels' addresses runs none of this target's code
// (the rule in common/cpu_dispatch.hpp).
template <class T>
constexpr detail::ClassificationKernels<T> make_table() {
  detail::ClassificationKernels<T> k{};
  k.ce.rows = &ce_rows<T>;
  k.ce.tile = &ce_tile<T>;
  k.ce.row_stats = &ce_row_stats<T>;
  k.ce.combine = &combine;
  k.ce.row_finish = &ce_row_finish<T>;
  k.ce.row_grad = &ce_row_grad<T>;
  k.ce.target_logit = &ce_target_logit<T>;
  if constexpr (std::is_same_v<T, float>) {
    k.ce.rows_bfloat16 = &ce_rows_half<bfloat16>;
    k.ce.rows_float16 = &ce_rows_half<float16>;
  }
  k.nll = &nll<T>;
  k.multi_margin = &multi_margin<T>;
  k.multilabel_margin = &multilabel_margin<T>;
  k.multilabel_soft_margin = &multilabel_soft_margin<T>;
  k.poly1_soft = &poly1_soft<T>;
  return k;
}

}  // namespace
}  // namespace classification

constexpr detail::ClassificationKernels<float> classification_kernels_f32 =
    classification::make_table<float>();
constexpr detail::ClassificationKernels<double> classification_kernels_f64 =
    classification::make_table<double>();

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
