// One struct per element-wise loss: the only C++ place its formula and derivatives live.
//
// Each struct gives
//   kArity      number of element operands, in torch's argument order (weights excluded: the
//               driver applies a multiplicative weight itself);
//   kDiff       bit k set when operand k has a derivative;
//   eval(v0, v1, v2, p) -> {l, d0, d1, d2}: the unweighted loss and dl/dv_k for k in kDiff;
//   invalid(v0), invalid_target(v1) true for an input or target value torch rejects (only BCE
//               checks, both ranges).
// Operands and results travel by value: a local whose address is taken inside an `omp simd`
// loop is privatised into a per-lane array, which stops GCC from vectorising the loop.
// The formulas (in torch's notation) are documented once, in
// python/losskit/_functional/pointwise.py. The code follows torch's own evaluation order where it
// decides edge values (log clamp at -100, the 1e-12 floor of BCE's backward, sign(NaN) = 0,
// where() selects that keep NaN out of masked terms), so that values at edges match torch's, not
// just the mathematics. Everything is branch-free: `c ? a : b` on arithmetic compiles to a blend.
#pragma once

#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

#include "common/target.hpp"
#include "common/vmath.hpp"
#include "pointwise/pointwise_kernels.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS::pointwise {

// Options of a loss converted once to the element type.
template <class T>
struct Params {
  T a;  // delta, beta, margin or eps
  T b;  // gaussian's constant 0.5 log(2 pi) when full
  explicit Params(const detail::PointwiseParams& p)
      : a(static_cast<T>(p.a)), b(static_cast<T>(p.b)) {}
};

template <class T>
struct Value {
  T l, d0, d1, d2;
};

struct NoCheck {
  template <class T>
  static LOSSKIT_INLINE bool invalid(T) {
    return false;
  }
  template <class T>
  static LOSSKIT_INLINE bool invalid_target(T) {
    return false;
  }
};

template <class T>
LOSSKIT_INLINE T sign(T v) {  // torch.sgn: 0 at 0 and at NaN
  return static_cast<T>(v > T(0)) - static_cast<T>(v < T(0));
}

// d/da clamp_min(a, 0) in torch's autograd: 1 where a >= 0 (NaN gives 0).
template <class T>
LOSSKIT_INLINE T clamp_min_zero_mask(T a) {
  return a >= T(0) ? T(1) : T(0);
}

struct L1 : NoCheck {  // |x - y|
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b11;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T v2, const Params<T>&) {
    Value<T> r{};
    const T diff = v0 - v1;
    const T s = sign(diff);
    r.d0 = s;
    r.d1 = -s;
    r.l = std::abs(diff);
    return r;
  }
};

struct Mse : NoCheck {  // (x - y)^2
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b11;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T v2, const Params<T>&) {
    Value<T> r{};
    const T diff = v0 - v1;
    r.d0 = T(2) * diff;
    r.d1 = T(-2) * diff;
    r.l = diff * diff;
    return r;
  }
};

struct Huber : NoCheck {  // 0.5 z^2 if |z| < delta else delta (|z| - delta/2), z = x - y
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b11;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T v2, const Params<T>& p) {
    Value<T> r{};
    const T delta = p.a;
    const T z = v0 - v1;
    const T az = std::abs(z);
    const T g = z < -delta ? -delta : (z > delta ? delta : z);
    r.d0 = g;
    r.d1 = -g;
    r.l = az < delta ? T(0.5) * z * z : delta * (az - T(0.5) * delta);
    return r;
  }
};

struct SmoothL1 : NoCheck {  // 0.5 z^2 / beta if |z| < beta else |z| - beta/2 (beta > 0)
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b11;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T v2, const Params<T>& p) {
    Value<T> r{};
    const T beta = p.a;
    const T z = v0 - v1;
    const T az = std::abs(z);
    const T g = z <= -beta ? T(-1) : (z >= beta ? T(1) : z / beta);
    r.d0 = g;
    r.d1 = -g;
    r.l = az < beta ? T(0.5) * z * z / beta : az - T(0.5) * beta;
    return r;
  }
};

struct Bce {  // -(y max(log x, -100) + (1 - y) max(log(1 - x), -100))
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b11;
  template <class T>
  static LOSSKIT_INLINE bool invalid(T v0) {
    return !(v0 >= T(0) && v0 <= T(1));
  }
  template <class T>
  static LOSSKIT_INLINE bool invalid_target(T v1) {  // torch 2.13 checks the target too
    return !(v1 >= T(0) && v1 <= T(1));
  }
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T v2, const Params<T>&) {
    Value<T> r{};
    const T x = v0, y = v1;
    const T log_x = vmath::log(x);
    const T log_1mx = vmath::log1p(-x);
    // The 1e-12 floor on x (1 - x) is torch's, and keeps the input gradient finite at 0 and 1.
    const T denom = (T(1) - x) * x;
    r.d0 = (x - y) / (denom < T(1e-12) ? T(1e-12) : denom);
    // torch's target gradient uses the unclamped logs: +-inf at x = 0 and 1.
    r.d1 = log_1mx - log_x;
    const T clamped_log_x = log_x < T(-100) ? T(-100) : log_x;
    const T clamped_log_1mx = log_1mx < T(-100) ? T(-100) : log_1mx;
    r.l = (y - T(1)) * clamped_log_1mx - y * clamped_log_x;
    return r;
  }
};

// One exp serves both log sigmoid(x) = min(x, 0) - log1p(e) and sigmoid(x), with e = exp(-|x|)
// (sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) below): stable for any x, and log sigmoid(-x)
// = min(-x, 0) - log1p(e) and sigmoid(-x) = 1 - sigmoid(x) (without its cancellation) come with it.
template <class T>
struct Sigmoids {
  T log_sig;      // log sigmoid(x)
  T log_sig_neg;  // log sigmoid(-x)
  T sig;          // sigmoid(x)
  T sig_neg;      // sigmoid(-x)
};
template <class T>
LOSSKIT_INLINE Sigmoids<T> sigmoids(T x) {
  const T e = vmath::exp(-std::abs(x));
  const T l1pe = vmath::log1p_unit(e);
  const T inv = T(1) / (T(1) + e);
  const T small = e * inv;  // sigmoid(-|x|)
  return {(x < T(0) ? x : T(0)) - l1pe, (x > T(0) ? -x : T(0)) - l1pe, x >= T(0) ? inv : small,
          x >= T(0) ? small : inv};
}

struct BceWithLogits : NoCheck {  // (1 - y) x - log sigmoid(x)
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b11;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T, const Params<T>&) {
    Value<T> r{};
    const T x = v0, y = v1;
    const Sigmoids<T> s = sigmoids(x);
    r.d0 = s.sig - y;
    r.d1 = -x;
    r.l = (T(1) - y) * x - s.log_sig;
    return r;
  }
};

struct BceWithLogitsPosWeight : NoCheck {  // (1 - y) x - (1 + (p - 1) y) log sigmoid(x)
  static constexpr int kArity = 3;         // input, target, pos_weight
  static constexpr unsigned kDiff = 0b011;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T v2, const Params<T>&) {
    Value<T> r{};
    const T x = v0, y = v1, pw = v2;
    const Sigmoids<T> s = sigmoids(x);
    const T t = pw * y;
    r.d0 = (t + T(1) - y) * s.sig - t;
    r.d1 = s.log_sig_neg - pw * s.log_sig;
    r.l = (T(1) - y) * x - ((pw - T(1)) * y + T(1)) * s.log_sig;
    return r;
  }
};

// log(1 + exp(z)), z = -y x. In float as the softplus -log sigmoid(-z) = max(z, 0) +
// log1p(e^-|z|), input derivative -y sigmoid(z): log1p of an argument in [0, 1] only (log1p_unit,
// 1.08x faster at 1 thread). torch evaluates log1p(exp(z)) as written, so where exp(z) overflows
// its loss is inf and its gradient inf / inf = NaN: kept by the selects at exp's overflow
// threshold. In double, log1p has no cheaper form for [0, 1] and those selects made the loss 0.93x
// as fast (docs/performance.md), so it is evaluated as written.
struct SoftMargin : NoCheck {
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b01;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T, const Params<T>&) {
    Value<T> r{};
    const T y = v1;
    const T z = -v0 * y;
    if constexpr (std::is_same_v<T, float>) {
      const Sigmoids<T> s = sigmoids(z);
      const bool overflow = z > vmath::kExpOverflow<T>;
      r.d0 = overflow ? std::numeric_limits<T>::quiet_NaN() : -y * s.sig;
      r.l = overflow ? std::numeric_limits<T>::infinity() : -s.log_sig_neg;
    } else {
      const T e = vmath::exp(z);
      r.d0 = -y * e / (T(1) + e);
      r.l = vmath::log1p(e);
    }
    return r;
  }
};

// Stirling term of poisson_nll_loss(full=True): y log y - y + 0.5 log(2 pi y) for y > 1, else 0.
// Its target derivative is log y + 1/(2y) for y > 1, except at y = +inf: torch's autograd forms
// d(y log y) as log y + y (1/y), and inf * 0 is NaN. Below 1, it multiplies a zero gradient by
// log(y) and 1/y, which is 0 for y in (0, 1] and NaN for y <= 0.
template <class T>
LOSSKIT_INLINE Value<T> stirling(T y) {
  const T log_y = vmath::log(y);
  constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();
  Value<T> r{};
  r.d1 = y > T(1) ? (y == std::numeric_limits<T>::infinity() ? kNaN : log_y + T(0.5) / y)
                  : (y > T(0) ? T(0) : kNaN);
  const T s = y * log_y - y + T(0.5) * vmath::log(T(6.283185307179586476925286766559) * y);
  r.l = y > T(1) ? s : T(0);
  return r;
}

template <bool kFull>
struct PoissonNllLogInput : NoCheck {  // exp(x) - y x
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b11;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T v2, const Params<T>&) {
    Value<T> r{};
    const T x = v0, y = v1;
    const T ex = vmath::exp(x);
    r.d0 = ex - y;
    r.d1 = -x;
    T l = ex - y * x;
    if constexpr (kFull) {
      const Value<T> st = stirling(y);
      l += st.l;
      r.d1 += st.d1;
    }
    r.l = l;
    return r;
  }
};

template <bool kFull>
struct PoissonNll : NoCheck {  // x - y log(x + eps)
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b11;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T v2, const Params<T>& p) {
    Value<T> r{};
    const T x = v0, y = v1;
    const T xe = x + p.a;
    const T log_xe = vmath::log(xe);
    r.d0 = T(1) - y / xe;
    r.d1 = -log_xe;
    T l = x - y * log_xe;
    if constexpr (kFull) {
      const Value<T> st = stirling(y);
      l += st.l;
      r.d1 += st.d1;
    }
    r.l = l;
    return r;
  }
};

struct GaussianNll : NoCheck {  // 0.5 (log v + (x - y)^2 / v) [+ 0.5 log 2pi], v = max(var, eps)
  static constexpr int kArity = 3;  // input, target, var
  static constexpr unsigned kDiff = 0b111;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T v2, const Params<T>& p) {
    Value<T> r{};
    const T eps = p.a;
    const T var = v2 < eps ? eps : v2;  // clamped without gradient, as torch does
    const T diff = v0 - v1;
    const T q = diff / var;
    r.d0 = q;
    r.d1 = -q;
    r.d2 = T(0.5) / var - T(0.5) * q * q;
    r.l = T(0.5) * (vmath::log(var) + diff * diff / var) + p.b;
    return r;
  }
};

struct KlDiv : NoCheck {  // xlogy(y, y) - y x
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b11;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T v2, const Params<T>&) {
    Value<T> r{};
    const T x = v0, y = v1;
    const T log_y = vmath::log(y);
    const T ylogy = y == T(0) ? T(0) : y * log_y;
    r.d0 = -y;
    // torch's autograd of xlogy(y, y): (y != 0 ? log y : 0) + y / y.
    r.d1 = (y == T(0) ? T(0) : log_y) + y / y - x;
    r.l = ylogy - y * x;
    return r;
  }
};

struct KlDivLogTarget : NoCheck {  // exp(y) (y - x)
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b11;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T v2, const Params<T>&) {
    Value<T> r{};
    const T x = v0, y = v1;
    const T ey = vmath::exp(y);
    r.d0 = -ey;
    r.d1 = ey * (y - x) + ey;
    r.l = ey * (y - x);
    return r;
  }
};

struct MarginRanking : NoCheck {    // max(0, -y (x1 - x2) + margin)
  static constexpr int kArity = 3;  // input1, input2, target
  static constexpr unsigned kDiff = 0b011;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T v2, const Params<T>& p) {
    Value<T> r{};
    const T y = v2;
    const T a = -y * (v0 - v1) + p.a;
    const T m = clamp_min_zero_mask(a);
    r.d0 = -y * m;
    r.d1 = y * m;
    r.l = a < T(0) ? T(0) : a;
    return r;
  }
};

struct HingeEmbedding : NoCheck {  // (y != 1 ? max(0, margin - x) : 0) + (y != -1 ? x : 0)
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b01;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T v2, const Params<T>& p) {
    Value<T> r{};
    const T x = v0, y = v1;
    const T a = p.a - x;
    const T hinge = a < T(0) ? T(0) : a;
    r.d0 = (y != T(1) ? -clamp_min_zero_mask(a) : T(0)) + (y != T(-1) ? T(1) : T(0));
    r.l = (y != T(1) ? hinge : T(0)) + (y != T(-1) ? x : T(0));
    return r;
  }
};

// ---- registered losses (LOSSKIT_REGISTERED_POINTWISE, losskit/pointwise.hpp) -----------------
// Operands: v0 the input, v1 the target; Params a, b are the LOSSKIT_PARAMs in order.

// log cosh(z), z = x - y. Below |z| = 1 as -log(1 - tanh^2 z) / 2 (accurate to the last bits as
// z -> 0, where the other form cancels); above as |z| - log 2 + log1p(e^(-2|z|)), which never
// overflows (cosh does beyond |z| ~ 89 in float). d/dz = tanh z.
struct LogCosh : NoCheck {
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b11;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T, const Params<T>&) {
    Value<T> r{};
    const T z = v0 - v1;
    const T az = std::abs(z);
    const T e = vmath::tanh_exp(z);  // e^(-2|z|), shared by tanh and the far form
    const T t = vmath::tanh_with_exp(z, e);
    const T near_zero = T(-0.5) * vmath::log1p(-t * t);
    const T far = az - T(0.693147180559945309417232121458) + vmath::log1p_unit(e);
    r.l = az < T(1) ? near_zero : far;
    r.d0 = t;
    r.d1 = -t;
    return r;
  }
};

// delta^2 (sqrt(1 + (z/delta)^2) - 1), z = x - y, evaluated as delta |z| q, q = r / (s + 1),
// r = |z| / delta, s = sqrt(1 + r^2): no cancellation near 0, no overflow of r^2 (beyond
// r = 1e18, s = r and q = 1 to the last bit). d/dz = z / s (delta sign(z) beyond 1e18).
struct PseudoHuber : NoCheck {
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b11;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T, const Params<T>& p) {
    Value<T> r{};
    const T delta = p.a;
    const T z = v0 - v1;
    const T az = std::abs(z);
    const T ratio = az / delta;
    const bool huge = ratio > T(1e18);
    const T s = huge ? ratio : std::sqrt(T(1) + ratio * ratio);
    const T q = huge ? T(1) : ratio / (s + T(1));
    const T g = huge ? delta * sign(z) : z / s;
    r.l = delta * az * q;
    r.d0 = g;
    r.d1 = -g;
    return r;
  }
};

// (log1p(x) - log1p(y))^2, as log1p gives it: inf at x = -1 or y = -1, NaN below (no clamp).
struct Msle : NoCheck {
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b11;
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T, const Params<T>&) {
    Value<T> r{};
    const T diff = vmath::log1p(v0) - vmath::log1p(v1);
    const T twice = T(2) * diff;
    r.l = diff * diff;
    r.d0 = twice / (T(1) + v0);
    r.d1 = -twice / (T(1) + v1);
    return r;
  }
};

// m^g and g m^(g-1), the focusing factor of sigmoid_focal_loss and its derivative, as torch's
// pow and pow_backward give them: m^0 = 1 with derivative 0 (torch masks exponent 0), a negative
// m only to an integer power (NaN otherwise). Exponent 1 exactly (m), as torch does (2 is
// SigmoidFocal's variant of its own); other exponents as exp(g log|m|) in double, so that float
// results are within about 1 ulp (in float the product g log m would lose g |log m| ulps to exp).
template <class T>
struct Power {
  T value, derivative;
};
template <class T>
LOSSKIT_INLINE Power<T> focal_power(T m, T g) {
  const double log_m = vmath::log(static_cast<double>(std::abs(m)));
  const T general = static_cast<T>(vmath::exp(static_cast<double>(g) * log_m));
  const T below = static_cast<T>(vmath::exp((static_cast<double>(g) - 1.0) * log_m));
  const bool integral = std::floor(g) == g;
  const bool odd = integral && std::floor(g * T(0.5)) * T(2) != g;
  const bool negative = m < T(0);
  constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();
  const T sign_g = negative && odd ? T(-1) : T(1);                   // sign of m^g
  const T sign_below = negative && integral && !odd ? T(-1) : T(1);  // sign of m^(g-1)
  T value = negative && !integral ? kNaN : sign_g * general;
  T below_value = negative && !integral ? kNaN : sign_below * below;
  value = g == T(1) ? m : (g == T(0) ? T(1) : value);
  below_value = g == T(1) ? T(1) : below_value;
  return {value, g == T(0) ? T(0) : g * below_value};
}

// torchvision.ops.sigmoid_focal_loss: alpha_t ce (1 - p_t)^gamma with p = sigmoid(x),
// ce = -(y log p + (1 - y) log(1 - p)), p_t = p y + (1 - p)(1 - y), alpha_t = alpha y +
// (1 - alpha)(1 - y) (1 when alpha < 0). 1 - p_t is formed as y sigmoid(-x) + (1 - y) sigmoid(x),
// equal for any y but without the cancellation of 1 - p_t where p saturates (there torch's
// float32 1 - p_t is 0 or a few ulps of 1, and its loss and gradient lose every digit); ce and
// its x-derivative p - y likewise from the sigmoids of x and -x. Params a = alpha, b = gamma.
// gamma = 2, the default, is a variant of its own (Specialised below): (1 - p_t)^2 without the
// exp and log of a general power.
struct SigmoidFocal : NoCheck {
  static constexpr int kArity = 2;
  static constexpr unsigned kDiff = 0b11;
  template <class T>
  static bool special(const Params<T>& p) {
    return p.b == T(2);
  }
  template <bool kSquare, class T>
  static LOSSKIT_INLINE Value<T> eval_as(T v0, T v1, T, const Params<T>& p) {
    Value<T> r{};
    const T x = v0, y = v1, alpha = p.a;
    const Sigmoids<T> s = sigmoids(x);
    const T ny = T(1) - y;
    const T ce = -(y * s.log_sig + ny * s.log_sig_neg);
    const T m = y * s.sig_neg + ny * s.sig;  // 1 - p_t
    const Power<T> f = kSquare ? Power<T>{m * m, T(2) * m} : focal_power(m, p.b);
    const bool weighted = alpha >= T(0);
    const T alpha_t = weighted ? alpha * y + (T(1) - alpha) * ny : T(1);
    const T dalpha_t = weighted ? T(2) * alpha - T(1) : T(0);
    const T ce_df = ce * f.derivative;
    r.l = alpha_t * (ce * f.value);
    r.d0 = alpha_t * ((ny * s.sig - y * s.sig_neg) * f.value +
                      ce_df * ((T(1) - T(2) * y) * (s.sig * s.sig_neg)));
    r.d1 = dalpha_t * (ce * f.value) + alpha_t * (-x * f.value + ce_df * (s.sig_neg - s.sig));
    return r;
  }
};

// A registered ops struct whose options allow a cheaper formula for some value that is the same
// for every element declares `special(params)` and `eval_as<bool special>`: the driver picks the
// variant once per call. (A branch on the parameter inside the element loop is no use: the
// vectoriser turns it into a select and evaluates both sides.)
template <class Op, bool kSpecial>
struct Specialised : Op {
  template <class T>
  static LOSSKIT_INLINE Value<T> eval(T v0, T v1, T v2, const Params<T>& p) {
    return Op::template eval_as<kSpecial>(v0, v1, v2, p);
  }
};

template <class Op, class = void>
struct HasSpecial : std::false_type {};
template <class Op>
struct HasSpecial<Op, std::void_t<decltype(Op::special(std::declval<const Params<float>&>()))>>
    : std::true_type {};

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS::pointwise
