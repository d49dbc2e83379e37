// The box IoU losses' formulas and derivatives: the only C++ place they live. Included by the
// per-target kernels (detection_kernels.cpp), so everything here sits in the target namespace.
//
// Each loss is torchvision.ops' composition of tensor operations, evaluated per box pair in
// double; the backward is torch.autograd's chain rule through that composition, step by step in
// reverse, including its conventions at the kinks:
// * torch.maximum / torch.minimum pass the gradient to the larger / smaller argument, half to each
//   on a tie (identical boxes share every edge), all to both where one is NaN;
// * the intersection is written only where the boxes overlap (torchvision's masked assignment),
//   so a disjoint pair's intersection has no gradient (not 0 times something, which could be NaN);
// * a quotient a / b gives a the gradient g / b and b the gradient -g * ((a / b) / b), as torch's
//   division does, so zero and infinite denominators give torch's NaN and inf.
#pragma once

#include <cmath>

#include "common/target.hpp"
#include "common/vmath.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS {
namespace detection {

// torch.maximum / torch.minimum: NaN propagates (std::max would drop a NaN in `b`).
LOSSKIT_INLINE double max_nan(double a, double b) { return (a > b || a != a) ? a : b; }
LOSSKIT_INLINE double min_nan(double a, double b) { return (a < b || a != a) ? a : b; }

// The share of max(a, b)'s gradient `g` that reaches a (torch: half on a tie, none to the
// smaller argument, exactly 0 even when g is inf or NaN).
LOSSKIT_INLINE double max_share(double g, double a, double b) {
  return a == b ? 0.5 * g : (a < b ? 0.0 : g);
}
LOSSKIT_INLINE double min_share(double g, double a, double b) {
  return a == b ? 0.5 * g : (a > b ? 0.0 : g);
}

// Gradients w.r.t. quotient q = a / b: da = g / b, db = -g * (q / b).
struct QuotientGrad {
  double num, den;
};
LOSSKIT_INLINE QuotientGrad quotient_grad(double g, double q, double b) {
  return {g / b, -g * (q / b)};
}

// One pair of boxes p = boxes1's (x1, y1, x2, y2), q = boxes2's: what all three losses share
// (torchvision's _loss_inter_union and the smallest enclosing box).
struct Pair {
  double p[4], q[4];
  double inter_w, inter_h;  // min(x2) - max(x1), min(y2) - max(y1)
  bool overlap;             // both > 0: torchvision's mask
  double inter, uni, iou;   // intersection, union (without eps), inter / (union + eps)
  double w1, h1, w2, h2;    // widths and heights (negative for x2 < x1: not clamped)
  double enc_w, enc_h;      // the enclosing box: max(x2) - min(x1), max(y2) - min(y1)
};

template <class T>
LOSSKIT_INLINE Pair pair_of(const T* b1, const T* b2, double eps) {
  Pair s;
  for (int k = 0; k < 4; ++k) {
    s.p[k] = static_cast<double>(b1[k]);
    s.q[k] = static_cast<double>(b2[k]);
  }
  const double* p = s.p;
  const double* q = s.q;
  s.inter_w = min_nan(p[2], q[2]) - max_nan(p[0], q[0]);
  s.inter_h = min_nan(p[3], q[3]) - max_nan(p[1], q[1]);
  s.overlap = s.inter_w > 0 && s.inter_h > 0;
  s.inter = s.overlap ? s.inter_w * s.inter_h : 0.0;
  s.w1 = p[2] - p[0];
  s.h1 = p[3] - p[1];
  s.w2 = q[2] - q[0];
  s.h2 = q[3] - q[1];
  s.uni = s.w1 * s.h1 + s.w2 * s.h2 - s.inter;
  s.iou = s.inter / (s.uni + eps);
  s.enc_w = max_nan(p[2], q[2]) - min_nan(p[0], q[0]);
  s.enc_h = max_nan(p[3], q[3]) - min_nan(p[1], q[1]);
  return s;
}

// Upstream gradients of the shared quantities, filled by each loss's backward.
struct PairGrad {
  double iou = 0, uni = 0;                // direct gradients of iou and of the union
  double enc_w = 0, enc_h = 0;            // of the enclosing box's sides
  double w1 = 0, h1 = 0, w2 = 0, h2 = 0;  // of the sides, besides through the union
  double centre_x = 0, centre_y = 0;      // of (x1 + x2)/2 - (x1g + x2g)/2, and in y
};

// The shared reverse pass: from PairGrad to the gradients of the eight coordinates.
LOSSKIT_INLINE void pair_backward(const Pair& s, const PairGrad& gr, double eps, double d1[4],
                                  double d2[4]) {
  const double* p = s.p;
  const double* q = s.q;
  const QuotientGrad gi = quotient_grad(gr.iou, s.iou, s.uni + eps);
  const double g_uni = gr.uni + gi.den;
  double g_inter = gi.num - g_uni;  // union = a1 + a2 - inter
  g_inter = s.overlap ? g_inter : 0.0;
  const double g_iw = s.overlap ? g_inter * s.inter_h : 0.0;
  const double g_ih = s.overlap ? g_inter * s.inter_w : 0.0;
  // sides: the union's areas, the loss's own terms, the centres
  const double g_w1 = gr.w1 + g_uni * s.h1, g_h1 = gr.h1 + g_uni * s.w1;
  const double g_w2 = gr.w2 + g_uni * s.h2, g_h2 = gr.h2 + g_uni * s.w2;
  const double cx = 0.5 * gr.centre_x, cy = 0.5 * gr.centre_y;
  // x: index 0 (x1) and 2 (x2); y: 1 and 3. The same steps per axis.
  const double g_inter_side[2] = {g_iw, g_ih};
  const double g_enc[2] = {gr.enc_w, gr.enc_h};
  const double g_side1[2] = {g_w1, g_h1}, g_side2[2] = {g_w2, g_h2};
  const double g_centre[2] = {cx, cy};
  for (int a = 0; a < 2; ++a) {
    const int lo = a, hi = a + 2;
    const double gs = g_inter_side[a], ge = g_enc[a];
    // intersection side = min(hi) - max(lo); enclosing side = max(hi) - min(lo)
    d1[lo] = -max_share(gs, p[lo], q[lo]) - min_share(ge, p[lo], q[lo]) - g_side1[a] + g_centre[a];
    d2[lo] = -max_share(gs, q[lo], p[lo]) - min_share(ge, q[lo], p[lo]) - g_side2[a] - g_centre[a];
    d1[hi] = min_share(gs, p[hi], q[hi]) + max_share(ge, p[hi], q[hi]) + g_side1[a] + g_centre[a];
    d2[hi] = min_share(gs, q[hi], p[hi]) + max_share(ge, q[hi], p[hi]) + g_side2[a] - g_centre[a];
  }
}

// ---- the three losses: value, and the PairGrad of an upstream gradient g ----------------------
// Rezatofighi et al. 2019, eq. in Alg. 1: L = 1 - IoU + (|C| - |U|) / |C|, with torchvision's eps.
struct Generalized {
  struct State {
    double area_c, penalty;
  };
  static LOSSKIT_INLINE double forward(const Pair& s, double eps, State& st) {
    st.area_c = s.enc_w * s.enc_h;
    st.penalty = (st.area_c - s.uni) / (st.area_c + eps);
    return 1.0 - (s.iou - st.penalty);
  }
  static LOSSKIT_INLINE void backward(const Pair& s, const State& st, double g, double eps,
                                      PairGrad& gr) {
    gr.iou = -g;
    const QuotientGrad gp = quotient_grad(g, st.penalty, st.area_c + eps);
    const double g_area = gp.num + gp.den;
    gr.uni = -gp.num;
    gr.enc_w = g_area * s.enc_h;
    gr.enc_h = g_area * s.enc_w;
  }
};

// Zheng et al. 2020, eq. (6): L = 1 - IoU + rho^2(b, b_gt) / c^2 (c^2 + eps in torchvision).
struct DistanceTerm {
  double diag, dx, dy, dist, ratio;
};
LOSSKIT_INLINE DistanceTerm distance_term(const Pair& s, double eps) {
  DistanceTerm t;
  t.diag = s.enc_w * s.enc_w + s.enc_h * s.enc_h + eps;
  t.dx = (s.p[2] + s.p[0]) / 2 - (s.q[0] + s.q[2]) / 2;
  t.dy = (s.p[3] + s.p[1]) / 2 - (s.q[1] + s.q[3]) / 2;
  t.dist = t.dx * t.dx + t.dy * t.dy;
  t.ratio = t.dist / t.diag;
  return t;
}
LOSSKIT_INLINE void distance_backward(const Pair& s, const DistanceTerm& t, double g,
                                      PairGrad& gr) {
  gr.iou = -g;
  const QuotientGrad gq = quotient_grad(g, t.ratio, t.diag);
  gr.enc_w = gq.den * (2 * s.enc_w);
  gr.enc_h = gq.den * (2 * s.enc_h);
  gr.centre_x = gq.num * (2 * t.dx);
  gr.centre_y = gq.num * (2 * t.dy);
}

struct Distance {
  using State = DistanceTerm;
  static LOSSKIT_INLINE double forward(const Pair& s, double eps, State& st) {
    st = distance_term(s, eps);
    return 1.0 - s.iou + st.ratio;
  }
  static LOSSKIT_INLINE void backward(const Pair& s, const State& st, double g, double,
                                      PairGrad& gr) {
    distance_backward(s, st, g, gr);
  }
};

// Zheng et al. 2020, eqs. (8)-(11): the distance loss + alpha v,
// v = 4/pi^2 (atan(w_gt/h_gt) - atan(w/h))^2, alpha = v / ((1 - IoU) + v) (+ eps in torchvision),
// alpha a constant of the gradient (torchvision computes it under no_grad).
struct Complete {
  struct State {
    DistanceTerm d;
    double r1, r2, angle, v, alpha;
  };
  static constexpr double kFourOverPiSquared = 0.40528473456935108578;  // 4 / pi^2
  static LOSSKIT_INLINE double forward(const Pair& s, double eps, State& st) {
    st.d = distance_term(s, eps);
    st.r1 = s.w1 / s.h1;
    st.r2 = s.w2 / s.h2;
    st.angle = vmath::atan(st.r2) - vmath::atan(st.r1);
    st.v = kFourOverPiSquared * (st.angle * st.angle);
    st.alpha = st.v / (1.0 - s.iou + st.v + eps);
    return 1.0 - s.iou + st.d.ratio + st.alpha * st.v;
  }
  static LOSSKIT_INLINE void backward(const Pair& s, const State& st, double g, double,
                                      PairGrad& gr) {
    distance_backward(s, st.d, g, gr);
    const double g_angle = (g * st.alpha) * kFourOverPiSquared * (2 * st.angle);
    // d atan(r) / dr = 1 / (r^2 + 1); r = w / h
    const double g_r2 = g_angle / (st.r2 * st.r2 + 1), g_r1 = -g_angle / (st.r1 * st.r1 + 1);
    const QuotientGrad q2 = quotient_grad(g_r2, st.r2, s.h2);
    const QuotientGrad q1 = quotient_grad(g_r1, st.r1, s.h1);
    gr.w2 = q2.num;
    gr.h2 = q2.den;
    gr.w1 = q1.num;
    gr.h1 = q1.den;
  }
};

}  // namespace detection
}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
