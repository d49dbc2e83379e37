// One struct per distance of the embedding family: the only C++ place its formula and
// derivative live. The formulas in torch's notation are documented once, in
// python/losskit/_functional/embedding.py and docs/embedding.md.
//
// A distance d(x, y) over one row of D values is computed in two sweeps:
//   forward(x, y, D, p)   -> State: the row sums (accumulated in double) and d itself;
//   set_grad(s, g, ...)   folds the upstream gradient g = dL/dd into per-row coefficients;
//   grad(s, x_j, y_j, gx, gy, p) adds dL/dx_j and dL/dy_j (branch-free, vectorisable).
// The second sweep reads the row again from cache. Where torch's autograd decides an edge value
// (the masked_fill at a zero norm, sgn(0) = 0, the no_grad clamp of cosine_similarity's norms)
// the coefficients below follow torch's backward formula, not just the mathematics.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "common/ordered_sum.hpp"
#include "common/target.hpp"
#include "common/vmath.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS::embedding {

template <class T>
LOSSKIT_INLINE T sign(T v) {  // torch.sgn: 0 at 0 and at NaN
  return static_cast<T>(v > T(0)) - static_cast<T>(v < T(0));
}

// torch.clamp_min(v, lo), which keeps NaN.
LOSSKIT_INLINE double clamp_min(double v, double lo) { return v < lo ? lo : v; }

template <class T>
struct Params {
  T eps;     // pairwise_distance's eps, added to the difference in T as torch does
  double p;  // the norm's order (TripletLp)
};

// ---- torch.pairwise_distance(x, y, p=2, eps) = ||x - y + eps||_2 -------------------------
// Backward (torch's norm_backward, p = 2): g * u / ||u||, 0 where the norm is 0.
// u is formed in double: a triplet loss is a difference of two distances, which cancel where a
// coordinate is large (1e4 against values near 1: distances 1e4 apart by 0.26), and float32's
// rounding of x - y there (5e-4) left the loss 6e-4 from torch's float64 result. The squares are
// summed in double, but torch sums float32 squares in float32, so a sum past float32's range is
// inf as in torch (||(2e38, 1e38)|| = inf, and inf - inf = NaN in the loss).
struct L2 {
  template <class T>
  struct State {
    double dist;
    T coef;
  };
  template <class T>
  static LOSSKIT_INLINE State<T> forward(const T* LOSSKIT_RESTRICT x, const T* LOSSKIT_RESTRICT y,
                                         int64_t n, const Params<T>& p) {
    const double eps = p.eps;
    double s = ordered_sum(n, [&](int64_t j) {
      const double u = (static_cast<double>(x[j]) - static_cast<double>(y[j])) + eps;
      return u * u;
    });
    if (s > static_cast<double>(std::numeric_limits<T>::max()))
      s = std::numeric_limits<double>::infinity();
    return {std::sqrt(s), T(0)};
  }
  template <class T>
  static LOSSKIT_INLINE void prepare(State<T>&, const T*, const T*, int64_t, const Params<T>&) {}
  template <class T>
  static LOSSKIT_INLINE void set_grad(State<T>& s, double g, const Params<T>&) {
    s.coef = static_cast<T>(s.dist == 0.0 ? 0.0 : g / s.dist);
  }
  template <class T>
  static LOSSKIT_INLINE void grad(const State<T>& s, T x, T y, T& gx, T& gy, const Params<T>& p) {
    const T t = s.coef * ((x - y) + p.eps);
    gx += t;
    gy -= t;
  }
};

// ---- p = 1: sum |x - y + eps|; backward g * sgn(u) ---------------------------------------
struct L1 {
  template <class T>
  struct State {
    double dist;
    T coef;
  };
  template <class T>
  static LOSSKIT_INLINE State<T> forward(const T* LOSSKIT_RESTRICT x, const T* LOSSKIT_RESTRICT y,
                                         int64_t n, const Params<T>& p) {
    const T eps = p.eps;
    const double s = ordered_sum(n, [&](int64_t j) {
      return static_cast<double>(std::abs((x[j] - y[j]) + eps));
    });
    return {s, T(0)};
  }
  template <class T>
  static LOSSKIT_INLINE void prepare(State<T>&, const T*, const T*, int64_t, const Params<T>&) {}
  template <class T>
  static LOSSKIT_INLINE void set_grad(State<T>& s, double g, const Params<T>&) {
    s.coef = static_cast<T>(g);
  }
  template <class T>
  static LOSSKIT_INLINE void grad(const State<T>& s, T x, T y, T& gx, T& gy, const Params<T>& p) {
    const T t = s.coef * sign((x - y) + p.eps);
    gx += t;
    gy -= t;
  }
};

// ---- any other finite p > 0: (sum |u|^p)^(1/p) --------------------------------------------
// |u|^p = exp(p log|u|) in double (vmath; log 0 = -inf gives exactly 0). Backward, torch's
// norm_backward for every p != 1, 2: sgn(u) |u|^(p-1) * g / ||u||^(p-1), with the element term
// 0 at u = 0 (p < 1 masks it; p > 1 gives 0) and the row factor 0 at a zero norm.
struct Lp {
  template <class T>
  struct State {
    double dist;
    double coef;
  };
  template <class T>
  static LOSSKIT_INLINE State<T> forward(const T* LOSSKIT_RESTRICT x, const T* LOSSKIT_RESTRICT y,
                                         int64_t n, const Params<T>& p) {
    const T eps = p.eps;
    const double order = p.p;
    const double s = ordered_sum(n, [&](int64_t j) {
      const double a = std::abs(static_cast<double>((x[j] - y[j]) + eps));
      return vmath::exp(order * vmath::log(a));
    });
    return {std::pow(s, 1.0 / order), 0.0};
  }
  template <class T>
  static LOSSKIT_INLINE void prepare(State<T>&, const T*, const T*, int64_t, const Params<T>&) {}
  template <class T>
  static LOSSKIT_INLINE void set_grad(State<T>& s, double g, const Params<T>& p) {
    s.coef = p.p < 1.0 ? g * std::pow(s.dist, 1.0 - p.p)
                       : (s.dist == 0.0 ? 0.0 : g / std::pow(s.dist, p.p - 1.0));
  }
  template <class T>
  static LOSSKIT_INLINE void grad(const State<T>& s, T x, T y, T& gx, T& gy, const Params<T>& p) {
    const double u = static_cast<double>((x - y) + p.eps);
    const double pw = vmath::exp((p.p - 1.0) * vmath::log(std::abs(u)));
    const double e = u == 0.0 ? 0.0 : sign(u) * pw;
    const T t = static_cast<T>(e * s.coef);
    gx += t;
    gy -= t;
  }
};

// ---- p = inf: max |u| ---------------------------------------------------------------------
// Backward (torch): sgn(u) * g / count * mask, mask = (|u| == max) or isnan(u); the gradient is
// shared among the maximal elements. prepare() counts them (a sweep from cache).
struct Linf {
  template <class T>
  struct State {
    double dist;
    double count;
    T coef;
  };
  template <class T>
  static LOSSKIT_INLINE State<T> forward(const T* LOSSKIT_RESTRICT x, const T* LOSSKIT_RESTRICT y,
                                         int64_t n, const Params<T>& p) {
    T m = T(0);
    int nan = 0;
    const T eps = p.eps;
#pragma omp simd reduction(max : m) reduction(| : nan)
    for (int64_t j = 0; j < n; ++j) {
      const T a = std::abs((x[j] - y[j]) + eps);
      nan |= static_cast<int>(a != a);
      m = a > m ? a : m;
    }
    return {nan ? std::numeric_limits<double>::quiet_NaN() : static_cast<double>(m), 0.0, T(0)};
  }
  template <class T>
  static LOSSKIT_INLINE void prepare(State<T>& s, const T* LOSSKIT_RESTRICT x,
                                     const T* LOSSKIT_RESTRICT y, int64_t n, const Params<T>& p) {
    const T m = static_cast<T>(s.dist);
    const T eps = p.eps;
    int64_t c = 0;
#pragma omp simd reduction(+ : c)
    for (int64_t j = 0; j < n; ++j) {
      const T a = std::abs((x[j] - y[j]) + eps);
      c += static_cast<int64_t>(a == m || a != a);
    }
    s.count = static_cast<double>(c);
  }
  template <class T>
  static LOSSKIT_INLINE void set_grad(State<T>& s, double g, const Params<T>&) {
    s.coef = static_cast<T>(g / s.count);
  }
  template <class T>
  static LOSSKIT_INLINE void grad(const State<T>& s, T x, T y, T& gx, T& gy, const Params<T>& p) {
    const T u = (x - y) + p.eps;
    const T a = std::abs(u);
    const T m = static_cast<T>(s.dist);
    const T t = (a == m || a != a) ? sign(u) * s.coef : T(0);
    gx += t;
    gy -= t;
  }
};

// ---- 1 - torch.cosine_similarity(x, y, dim=-1, eps=1e-8) ----------------------------------
// torch 2.13 computes sum((x / n_x) * (y / n_y)) with n = clamp_min(||.||, eps) applied under
// no_grad, so autograd differentiates through the unclamped norm r = ||.||:
//   dcos/dx_j = y_j / (n_x n_y) - cos * x_j / (n_x r_x)   (second term 0 where r_x = 0)
// and symmetrically for y; d(1 - cos) = -dcos. The two terms cancel where x and y are parallel
// (exactly at D = 1, where torch's gradient is exactly 0): their coefficients stay in double and
// each element's pair is summed in double, so a float32 gradient is not off by eps / ||x||
// (0.3 at ||x|| = 1e-3, D = 1, measured against torch's float64).
struct Cosine {
  static constexpr double kEps = 1e-8;
  template <class T>
  struct State {
    double dist, cos, nx, ny, rx, ry;
    double ax, bx, by;  // grad_x = ax * y + bx * x, grad_y = ax * x + by * y
  };
  template <class T>
  static LOSSKIT_INLINE State<T> forward(const T* LOSSKIT_RESTRICT x, const T* LOSSKIT_RESTRICT y,
                                         int64_t n, const Params<T>&) {
    double sums[3];  // x.y, x.x, y.y
    ordered_sums<3>(n, sums, [&](int64_t j, double(&t)[3]) {
      const double a = static_cast<double>(x[j]), b = static_cast<double>(y[j]);
      t[0] = a * b;
      t[1] = a * a;
      t[2] = b * b;
    });
    const double dot = sums[0], sx = sums[1], sy = sums[2];
    State<T> s{};
    s.rx = std::sqrt(sx);
    s.ry = std::sqrt(sy);
    s.nx = clamp_min(s.rx, kEps);
    s.ny = clamp_min(s.ry, kEps);
    // sqrt(sx sy) rather than rx ry where neither norm is clamped: a vector's distance to itself
    // is then exactly 0 (sqrt(s^2) = s in binary floating point), as torch's is, where rx ry can
    // round to 1 + 2^-52 times dot and move a triplet at its hinge (margin + d_ap - d_an = 0) to
    // the other side. The product of the norms where sx sy would overflow.
    const double prod = sx * sy;
    const bool unclamped =
        s.rx >= kEps && s.ry >= kEps && prod < std::numeric_limits<double>::max();
    s.cos = dot / (unclamped ? std::sqrt(prod) : s.nx * s.ny);
    s.dist = 1.0 - s.cos;
    return s;
  }
  template <class T>
  static LOSSKIT_INLINE void prepare(State<T>&, const T*, const T*, int64_t, const Params<T>&) {}
  template <class T>
  static LOSSKIT_INLINE void set_grad(State<T>& s, double g, const Params<T>&) {
    const double gc = -g;  // d(1 - cos)
    s.ax = gc / (s.nx * s.ny);
    s.bx = s.rx == 0.0 ? 0.0 : -gc * s.cos / (s.nx * s.rx);
    s.by = s.ry == 0.0 ? 0.0 : -gc * s.cos / (s.ny * s.ry);
  }
  template <class T>
  static LOSSKIT_INLINE void grad(const State<T>& s, T x, T y, T& gx, T& gy, const Params<T>&) {
    const double xd = static_cast<double>(x), yd = static_cast<double>(y);
    gx += static_cast<T>(s.ax * yd + s.bx * xd);
    gy += static_cast<T>(s.ax * xd + s.by * yd);
  }
};

// ---- sum((x - y)^2): no eps; backward 2 g (x - y) -----------------------------------------
struct Squared {
  template <class T>
  struct State {
    double dist;
    T coef;
  };
  template <class T>
  static LOSSKIT_INLINE State<T> forward(const T* LOSSKIT_RESTRICT x, const T* LOSSKIT_RESTRICT y,
                                         int64_t n, const Params<T>&) {
    const double s = ordered_sum(n, [&](int64_t j) {
      const double u = static_cast<double>(x[j] - y[j]);
      return u * u;
    });
    return {s, T(0)};
  }
  template <class T>
  static LOSSKIT_INLINE void prepare(State<T>&, const T*, const T*, int64_t, const Params<T>&) {}
  template <class T>
  static LOSSKIT_INLINE void set_grad(State<T>& s, double g, const Params<T>&) {
    s.coef = static_cast<T>(2.0 * g);
  }
  template <class T>
  static LOSSKIT_INLINE void grad(const State<T>& s, T x, T y, T& gx, T& gy, const Params<T>&) {
    const T t = s.coef * (x - y);
    gx += t;
    gy -= t;
  }
};

// ---- the triplet loss on one row's distances ----------------------------------------------
//   d_neg = swap ? minimum(d_an, d_pn) : d_an,   l = clamp_min(margin + d_ap - d_neg, 0)
// Backward as torch's autograd: clamp_min passes g where its argument is >= 0; minimum gives
// the gradient to the smaller distance, half to each on a tie.
// Which branch the gradient takes is decided as torch decides it, on distances rounded to T with
// the hinge evaluated in T (torch's distances are tensors of the input's dtype and margin + d_ap -
// d_neg is float32 arithmetic for float32 input): a double hinge of float32 distances came out
// 1e-8 below torch's exact zero and dropped the whole gradient of a one-element triplet (a = 1.5,
// p = 1.5, n = 1, margin 0.5, eps 1e-6). The loss value comes from the double distances: the two
// distances cancel where coordinates are large, and float32 rounding of each (5e-4 at 1e4) would
// leave the loss that far from its true value.
struct TripletRow {
  double loss, g_ap, g_an, g_pn;
};

template <bool kSwap, class T>
LOSSKIT_INLINE TripletRow triplet_row(double d_ap, double d_an, double d_pn, double margin,
                                      double g) {
  const T t_ap = static_cast<T>(d_ap), t_an = static_cast<T>(d_an), t_pn = static_cast<T>(d_pn);
  T t_neg = t_an;
  double d_neg = d_an;
  if constexpr (kSwap) {
    const bool an = t_an < t_pn || t_an != t_an;  // NaN-propagating
    t_neg = an ? t_an : t_pn;
    d_neg = an ? d_an : d_pn;
  }
  const T pre = (static_cast<T>(margin) + t_ap) - t_neg;
  TripletRow r{};
  r.loss = clamp_min((margin + d_ap) - d_neg, 0.0);
  const double gm = pre >= T(0) ? g : 0.0;
  r.g_ap = gm;
  r.g_an = -gm;
  r.g_pn = 0.0;
  if constexpr (kSwap) {
    const double shared = t_an == t_pn ? -gm * 0.5 : -gm;
    r.g_an = t_an > t_pn ? 0.0 : shared;
    r.g_pn = t_an < t_pn ? 0.0 : shared;
  }
  return r;
}

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS::embedding
