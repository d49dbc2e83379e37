// Branch-free exp, log and log1p that GCC and Clang auto-vectorise (the libm calls do not: a
// std::exp loop stays a scalar call per element unless -ffast-math, which breaks the NaN and inf
// behaviour we owe torch). Only integer and floating-point arithmetic and selects, no tables, so
// a loop calling them compiles to straight SIMD code on every target.
//
// Accuracy, measured against NumPy (glibc) over each function's whole range and its edges
// (tests/test_vmath.py checks these bounds on every CPU target):
//   exp   float: <= 1 ulp, double: <= 1 ulp; exact 0 below -103.97 (f) / -745.13 (d), where the
//         true result rounds to 0 (subnormal results are produced, with up to 1 ulp of the
//         subnormal), +inf above 88.72 (f) / 709.78 (d), where it rounds to inf.
//   log   float: < 0.84 ulp over every float32 input (faithful: at most 1 ulp from the correctly
//         rounded result), double: <= 1 ulp; log(0) = -inf, log(x<0) = NaN, log(inf) = inf.
//   log1p float: < 0.88 ulp over every float32 input (faithful), double: <= 2 ulp;
//         log1p(-1) = -inf, log1p(x<-1) = NaN. log1p_unit, for arguments in [0, 1]: log1p's bits.
//   (The float figures are proven exhaustively per target by tests/cpp_checks/vmath_exhaustive.cpp;
//   docs/performance.md has the table.)
//   tanh  float: <= 3 ulp, double: <= 3 ulp (worst just above |u| = 1/4); tanh(+-inf) = +-1.
//   atan  double only: <= 2 ulp (glibc's: 1), the reduction's division rounding r for |x| between
//         tan(pi/8) and tan(3pi/8); atan(+-inf) = +-pi/2.
// NaN in gives NaN out for all three, and no NaN reaches their integer arithmetic.
//
// Method: exp reduces x = n ln2 + r, |r| <= ln2/2, evaluates the Taylor series of e^r to the
// degree where its truncation is below a quarter ulp, and scales by 2^n as two factors 2^n1 2^n2
// so that results near overflow and in the subnormal range are formed without intermediate
// overflow. log and log1p in float: see log_reduced below (division-free minimax polynomial).
// log in double reduces x = 2^k m with m in [sqrt(1/2), sqrt(2)), and uses
// log(m) = f - f^2/2 + s (f^2/2 + R(s^2)), f = m - 1, s = f / (2 + f), with R the tail of the
// series 2 atanh(s) = 2s + 2s^3/3 + 2s^5/5 + ... log1p in double: log(u) - ((u - 1) - x) / u with
// u = 1 + x (the second term corrects the rounding of u to first order).
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "common/target.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS::vmath {

LOSSKIT_INLINE uint64_t to_bits(double x) {
  uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
LOSSKIT_INLINE double from_bits(uint64_t u) {
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}
LOSSKIT_INLINE uint32_t to_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
LOSSKIT_INLINE float from_bits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// a * b + c, rounded once (a fused multiply-add) on the targets with FMA and twice on the
// baseline. Written out, never left to contraction: the element-wise, classification and box
// kernels and the accuracy hook (vmath_kernels.cpp) are compiled with -ffp-contract=off (see
// CMakeLists.txt), and an explicit fma is the same instruction in every instantiation of a target,
// so the forward and fused kernels of one target agree bit for bit. (The CTC, embedding,
// contrastive and segmentation kernels allow contraction for their own dot products, so there the
// compiler may fuse vmath's other multiplies too: the measured bounds are those of the
// uncontracted arithmetic.)
// Used for the polynomials and range reductions inside vmath only, whose error bounds hold both
// ways (tests/test_vmath.py checks them on every target), never for a loss's own formula.
template <class T>
LOSSKIT_INLINE T madd(T a, T b, T c) {
#ifdef __FMA__
  if constexpr (sizeof(T) == 4) return __builtin_fmaf(a, b, c);
  else return __builtin_fma(a, b, c);
#else
  return a * b + c;
#endif
}

// c0 x^n + c1 x^(n-1) + ... + cn by Horner's rule, highest coefficient first, one madd a step.
template <class T>
LOSSKIT_INLINE T horner(T, T c) {
  return c;
}
template <class T, class... Rest>
LOSSKIT_INLINE T horner(T x, T c0, T c1, Rest... rest) {
  return horner(x, madd(c0, x, c1), rest...);
}

// ---- exp ----------------------------------------------------------------------------------
// e^x = p * 2^n with x = n ln2 + r, |r| <= ln2/2, p the Taylor series of e^r; exp_parts needs
// x already clamped to the range its caller handles.
template <class T, class I>
struct ExpParts {
  T p;  // e^r, in [sqrt(1/2), sqrt(2)]
  I n;
};

LOSSKIT_INLINE ExpParts<double, int64_t> exp_parts(double xc) {
  const double shift = 0x1.8p52;  // adding it rounds to an integer held in the low mantissa bits
  const double kd_shifted = madd(xc, 0x1.71547652b82fep0, shift);
  const int64_t n = static_cast<int64_t>(to_bits(kd_shifted) - to_bits(shift));
  const double kd = kd_shifted - shift;
  // ln2 split so that kd * hi is exact for |kd| < 2^11.
  const double r = madd(-kd, 0x1.a39ef35793c76p-33, madd(-kd, 0x1.62e42feep-1, xc));
  const double p = horner(r, 1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0,
                          1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0,
                          1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0);  // Taylor, to 1/13!
  return {p, n};
}

LOSSKIT_INLINE ExpParts<float, int32_t> exp_parts(float xc) {
  const float shift = 0x1.8p23f;
  const float kd_shifted = madd(xc, 0x1.715476p0f, shift);
  const int32_t n = static_cast<int32_t>(to_bits(kd_shifted) - to_bits(shift));
  const float kd = kd_shifted - shift;
  const float r = madd(-kd, 0x1.7f7d1cp-20f, madd(-kd, 0x1.62e4p-1f, xc));
  float p = horner(r, 1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f,
                   1.0f, 1.0f);
  return {p, n};
}

// The largest x with e^x finite (709.78... double, 88.72... float): exp(x) is +inf above it.
template <class T>
inline constexpr T kExpOverflow = std::is_same_v<T, float> ? T(0x1.62e42ep+6f)
                                                           : T(0x1.62e42fefa39efp+9);

// exp's arguments go through the integer exponent arithmetic below only when finite: a NaN's bits
// would make n enormous (n - n1 overflowed, undefined behaviour, for a NaN with its sign bit set,
// which is what x86 gives for inf - inf). Each clamp is written so that a NaN fails its comparison
// and takes the finite bound as a stand-in; the result is then selected explicitly for NaN, for
// x above the overflow threshold (+inf) and below the underflow one (0), so that those values do
// not depend on how the compiler evaluates the final products (it may contract the last one with
// the caller's next subtraction into a fused multiply-add, whose exact product never overflows: in
// the sanitized build poisson_nll_loss's e^x - y x at x = +inf came out -inf instead of NaN).
LOSSKIT_INLINE double exp(double x) {
  constexpr double kOverflow = kExpOverflow<double>;
  constexpr double kUnderflow = -0x1.74910d52d3051p+9;  // -745.13...: smallest with e^x > 0
  const double xc = x >= -746.0 ? (x <= 710.0 ? x : 710.0) : -746.0;  // NaN takes -746
  const auto e = exp_parts(xc);
  // n in [-1076, 1024]; n = n1 + n2 with both halves in a normal exponent's range, so results
  // near overflow and in the subnormal range form without intermediate overflow. The +1100 bias
  // keeps the shift logical (AVX2 has no 64-bit arithmetic shift).
  const int64_t n1 = static_cast<int64_t>(static_cast<uint64_t>(e.n + 1100) >> 1) - 550;
  const int64_t n2 = e.n - n1;
  const double s1 = from_bits(static_cast<uint64_t>(n1 + 1023) << 52);
  const double s2 = from_bits(static_cast<uint64_t>(n2 + 1023) << 52);
  double y = e.p * s1 * s2;
  y = x > kOverflow ? std::numeric_limits<double>::infinity() : y;
  y = x < kUnderflow ? 0.0 : y;
  y = x != x ? x : y;
  return y;
}

LOSSKIT_INLINE float exp(float x) {
  constexpr float kOverflow = kExpOverflow<float>;
  constexpr float kUnderflow = -0x1.9fe368p+6f;  // -103.97...: smallest with e^x > 0
  const float xc = x >= -104.0f ? (x <= 89.0f ? x : 89.0f) : -104.0f;  // NaN takes -104
  const auto e = exp_parts(xc);
  const int32_t n1 = ((e.n + 160) >> 1) - 80;  // n in [-151, 129]
  const int32_t n2 = e.n - n1;
  const float s1 = from_bits(static_cast<uint32_t>(n1 + 127) << 23);
  const float s2 = from_bits(static_cast<uint32_t>(n2 + 127) << 23);
  float y = e.p * s1 * s2;
  y = x > kOverflow ? std::numeric_limits<float>::infinity() : y;
  y = x < kUnderflow ? 0.0f : y;
  y = x != x ? x : y;
  return y;
}

// e^d for d <= 0 (softmax arguments d = x - max): one scale factor instead of two and no
// overflow side, since the result is at most 1. Results for d < -87 (float) / -708 (double),
// that is below 1.7e-38 / 3.3e-308, are flushed to 0, far under any tolerance against a softmax
// denominator >= 1 (and the scale factor stays a normal number). <= 1 ulp otherwise; NaN passes
// (as a selected result: the integer path sees the cut-off instead); -inf gives 0.
LOSSKIT_INLINE double exp_nonpositive(double d) {
  const auto e = exp_parts(d >= -708.0 ? d : -708.0);  // NaN takes -708
  double y = e.p * from_bits(static_cast<uint64_t>(e.n + 1023) << 52);
  y = d < -708.0 ? 0.0 : y;
  y = d != d ? d : y;
  return y;
}

LOSSKIT_INLINE float exp_nonpositive(float d) {
  const auto e = exp_parts(d >= -87.0f ? d : -87.0f);  // NaN takes -87
  float y = e.p * from_bits(static_cast<uint32_t>(e.n + 127) << 23);
  y = d < -87.0f ? 0.0f : y;
  y = d != d ? d : y;
  return y;
}

// ---- log ----------------------------------------------------------------------------------
LOSSKIT_INLINE double log(double x) {
  constexpr uint64_t kSqrtHalf = 0x3fe6a09e667f3bcd;  // bits of sqrt(1/2)
  const bool tiny = x < 0x1p-1022;                    // subnormal (or <= 0, fixed below)
  const double xs = tiny ? x * 0x1p54 : x;
  const uint64_t ix = to_bits(xs) + (uint64_t{0x3ff0000000000000} - kSqrtHalf);
  const uint64_t biased = ix >> 52;
  const double k =
      (from_bits(uint64_t{0x4330000000000000} | biased) - 0x1p52) - (tiny ? 1023.0 + 54.0 : 1023.0);
  const double m = from_bits((ix & uint64_t{0x000fffffffffffff}) + kSqrtHalf);
  const double f = m - 1.0;
  const double s = f / (2.0 + f);
  const double z = s * s;
  double R = horner(z, 2.0 / 23.0, 2.0 / 21.0, 2.0 / 19.0, 2.0 / 17.0, 2.0 / 15.0, 2.0 / 13.0,
                    2.0 / 11.0, 2.0 / 9.0, 2.0 / 7.0, 2.0 / 5.0, 2.0 / 3.0);
  R = R * z;
  const double hfsq = 0.5 * f * f;
  double y = k * 0x1.62e42feep-1 + ((f - hfsq) + (s * (hfsq + R) + k * 0x1.a39ef35793c76p-33));
  constexpr double inf = std::numeric_limits<double>::infinity();
  y = x == 0.0 ? -inf : y;
  y = x < 0.0 ? std::numeric_limits<double>::quiet_NaN() : y;
  y = x == inf ? inf : y;
  y = x != x ? x : y;
  return y;
}

// float: division-free. x = 2^k (1 + f) with 1 + f in [2/3, 4/3), log(1 + f) = f - f^2/2 + f^3 p(f),
// p of degree 7 from the minimax fit of tools/fit_vmath_log.py (relative error 0.08 x 2^-24; f^2/2
// is kept apart because it is the largest term after f, so that only its own rounding and none
// of the polynomial's scales with it). k ln2 + f is formed as an exact pair (Fast2Sum:
// |k ln2_hi| >= ln2 > 1/3 >= |f| where k != 0, and f alone where k = 0), so that near x = 4/3
// and 2/3, where log(x) is smaller than f, f's rounding does not count twice. log1p reduces
// 1 + x the same way, with 1 + f = (1 + x) 2^-k formed as x 2^-k + (2^-k - 1) (exact for k = 0,
// i.e. x in [-1/3, 1/3)) and its rounding error e added back to first order, e / (1 + f) ~
// e (1 - f). Accuracy over every float32 input, per target: tests/cpp_checks/vmath_exhaustive.cpp
// and docs/performance.md.
template <bool kLog1p>
LOSSKIT_INLINE float log_reduced(int32_t k, float f, float f_error) {
  float p = horner(f, -0x1.07e5fep-3f, 0x1.1e73a2p-3f, -0x1.f32076p-4f, 0x1.1ed424p-3f,
                   -0x1.559d36p-3f, 0x1.99d05ep-3f, -0x1.fffef4p-3f, 0x1.555506p-2f);
  const float kf = static_cast<float>(k);
  const float k_hi = kf * 0x1.62e4p-1f;  // exact: ln2's high part has 16 bits, |k| <= 152
  const float hi = k_hi + f;
  const float hi_error = (k_hi - hi) + f;
  const float f2 = f * f;
  float lo = (f2 * f) * p + kf * 0x1.7f7d1cp-20f;
  if constexpr (kLog1p) lo = lo + f_error * (1.0f - f);
  lo = lo - 0.5f * f2;
  return hi + (hi_error + lo);
}

LOSSKIT_INLINE float log(float x) {
  constexpr uint32_t kTwoThirds = 0x3f2aaaabu;  // bits of 2/3, rounded up
  const bool tiny = x < 0x1p-126f;              // subnormal (or <= 0, fixed below)
  const float xs = tiny ? x * 0x1p23f : x;
  const uint32_t offset = to_bits(xs) - kTwoThirds;
  const int32_t e = static_cast<int32_t>(offset) >> 23;  // xs in 2^e [2/3, 4/3)
  const float m = from_bits(to_bits(xs) - (static_cast<uint32_t>(e) << 23));
  float y = log_reduced<false>(tiny ? e - 23 : e, m - 1.0f, 0.0f);  // m - 1 exact (Sterbenz)
  constexpr float inf = std::numeric_limits<float>::infinity();
  y = x == 0.0f ? -inf : y;
  y = x < 0.0f ? std::numeric_limits<float>::quiet_NaN() : y;
  y = x == inf ? inf : y;
  y = x != x ? x : y;
  return y;
}

// ---- log1p --------------------------------------------------------------------------------
template <class T>
LOSSKIT_INLINE T log1p(T x) {
  const T u = T(1) + x;
  const T c = (u - T(1)) - x;  // rounding error of u
  T y = vmath::log(u) - c / u;
  y = u == T(1) ? x : y;  // |x| below half an ulp of 1: log1p(x) = x, keeping the sign of -0
  constexpr T inf = std::numeric_limits<T>::infinity();
  y = x == inf ? inf : y;
  y = x == T(-1) ? -inf : y;
  return y;
}

LOSSKIT_INLINE float log1p(float x) {
  constexpr uint32_t kTwoThirds = 0x3f2aaaabu;
  const float u = 1.0f + x;  // in [2^-24, 2^128] for x > -1: normal, k in [-24, 128]
  const int32_t k = static_cast<int32_t>(to_bits(u) - kTwoThirds) >> 23;  // u in 2^k [2/3, 4/3)
  const uint32_t k_bits = static_cast<uint32_t>(k) << 23;
  // x 2^-k through the exponent bits: x is normal and so is the result where k != 0 (|x| > 1/3).
  const float a = from_bits(to_bits(x) - k_bits);
  // 2^-k - 1, 2^-k as 4 2^-k / 4 so that k = 128 (x near FLT_MAX) stays representable.
  const float b = from_bits(0x40800000u - k_bits) * 0.25f - 1.0f;
  const float f = a + b;
  const float b_part = f - a;  // TwoSum: f_error = a + b - f exactly
  const float f_error = (a - (f - b_part)) + (b - b_part);
  float y = log_reduced<true>(k, f, f_error);
  y = x == 0.0f ? x : y;  // -0 keeps its sign
  constexpr float inf = std::numeric_limits<float>::infinity();
  y = x == inf ? inf : y;
  y = x < -1.0f ? std::numeric_limits<float>::quiet_NaN() : y;
  y = x == -1.0f ? -inf : y;
  y = x != x ? x : y;
  return y;
}

// log1p(e) for e in [0, 1] or NaN, the e = exp(-|x|) of the sigmoid losses: log1p(float)'s
// reduction and result, bit for bit, without its exponent arithmetic and its selects for inputs
// outside [0, 1]. There, log1p's k is 1 exactly where 1 + e rounds to 4/3 (rounded up) or above,
// and its f = e 2^-k + (2^-k - 1) is e (k = 0) or (e - 1) / 2, whose rounding error TwoSum
// finds and Fast2Sum finds here the same (|-1| >= e). NaN passes through the arithmetic.
// tests/cpp_checks/vmath_exhaustive.cpp checks the equality with log1p on floats in [0, 1] (on
// every one in CI's full sweep).
LOSSKIT_INLINE float log1p_unit(float e) {
  const bool k1 = 1.0f + e >= 0x1.555556p0f;  // the bits of 4/3 rounded up: 0x3faaaaab
  const float s = e - 1.0f;
  const float s_error = e - (s + 1.0f);
  return log_reduced<true>(k1 ? 1 : 0, k1 ? 0.5f * s : e, k1 ? 0.5f * s_error : 0.0f);
}
LOSSKIT_INLINE double log1p_unit(double e) { return vmath::log1p(e); }

// ---- tanh ---------------------------------------------------------------------------------
// tanh(u) = sign(u) (1 - e) / (1 + e), e = e^(-2|u|), for |u| >= 1/4; below, where 1 - e would
// cancel, the Taylor series u - u^3/3 + 2u^5/15 - ... (coefficients 2^2k (2^2k - 1) B_2k / (2k)!)
// to the degree whose truncation at |u| = 1/4 is under a quarter ulp (u^9 float, u^21 double).
// Odd and monotone; +-inf gives +-1, NaN passes, -0 keeps its sign. Accuracy: see the header.
// tanh_exp(u) is the e above (a caller with a use of its own for it computes it once and passes
// it to tanh_with_exp, which gives tanh(u)'s bits).
template <class T>
LOSSKIT_INLINE T tanh_exp(T u) {
  const T a = u < T(0) ? -u : u;
  return vmath::exp_nonpositive(T(-2) * (a < T(1e4) ? a : T(1e4)));  // inf: e = 0
}

template <class T>
LOSSKIT_INLINE T tanh_with_exp(T u, T e) {
  const T a = u < T(0) ? -u : u;
  const T z = u * u;
  T p;
  if constexpr (sizeof(T) == 4) {
    p = horner(z, 0.021869488536155203f, -0.05396825396825397f, 0.13333333333333333f,
               -0.3333333333333333f);
  } else {
    p = horner(z, -3.927832388331683e-05, 9.691537956929451e-05, -0.00023912911424355248,
               0.000590027440945586, -0.0014558343870513183, 0.003592128036572481,
               -0.008863235529902197, 0.021869488536155203, -0.05396825396825397,
               0.13333333333333333, -0.3333333333333333);
  }
  const T small = madd(u, z * p, u);
  const T big = (T(1) - e) / (T(1) + e);
  T y = a < T(0.25) ? small : (u < T(0) ? -big : big);
  y = z == T(0) ? u : y;  // +-0 (and tiny u, where tanh(u) = u) exactly, sign kept
  y = u != u ? u : y;
  return y;
}

template <class T>
LOSSKIT_INLINE T tanh(T u) {
  return tanh_with_exp(u, tanh_exp(u));
}

// ---- atan (double) ------------------------------------------------------------------------
// |x| is reduced to r in [-tan(pi/8), tan(pi/8)] by atan(a) = pi/2 + atan(-1/a) above
// tan(3pi/8) and pi/4 + atan((a - 1)/(a + 1)) above tan(pi/8) (one division for all three
// cases: the numerator and denominator are selected), then atan(r) = r + r z p(z), z = r^2, with
// p the degree-10 fit of tools/fit_vmath_atan.py (its own error 0.05 x 2^-53 relative to r).
// The offset is added as pi/2 or pi/4 in two parts. Odd; +-inf gives +-pi/2, NaN passes, -0
// keeps its sign. Accuracy: see the header.
LOSSKIT_INLINE double atan(double x) {
  const double a = x < 0.0 ? -x : x;
  const bool big = a > 2.414213562373095;    // tan(3 pi / 8)
  const bool mid = a > 0.41421356237309503;  // tan(pi / 8)
  const double num = big ? -1.0 : (mid ? a - 1.0 : a);
  const double den = big ? a : (mid ? a + 1.0 : 1.0);
  const double r = num / den;
  const double z = r * r;
  double p = horner(z, -0x1.3a31b1c0fd3b7p-6, 0x1.4162c02b1dda3p-5, -0x1.a0999c632b6edp-5,
                    0x1.dfe6497e96323p-5, -0x1.10fa77b1a6d57p-4, 0x1.3b1263064f6b9p-4,
                    -0x1.745d0b28a7e37p-4, 0x1.c71c71853d7fap-4, -0x1.2492492436201p-3,
                    0x1.999999999934cp-3, -0x1.5555555555555p-2);
  // pi/2 and pi/4 as hi + lo (hi the double nearest, lo the rest)
  const double off_hi = big ? 0x1.921fb54442d18p0 : (mid ? 0x1.921fb54442d18p-1 : 0.0);
  const double off_lo = big ? 0x1.1a62633145c07p-54 : (mid ? 0x1.1a62633145c07p-55 : 0.0);
  const double y = off_hi + (r + madd(r * z, p, off_lo));
  return x < 0.0 ? -y : (x == 0.0 ? x : y);  // NaN: y is NaN already
}

// ---- helpers built on them ----------------------------------------------------------------
template <class T>
LOSSKIT_INLINE T sigmoid(T x) {
  return T(1) / (T(1) + vmath::exp(-x));
}

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS::vmath
