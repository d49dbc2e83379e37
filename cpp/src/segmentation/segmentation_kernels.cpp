// Tile kernels of dice_loss and tversky_loss (see segmentation_kernels.hpp), compiled once per
// instruction set. Hot loops only: no exceptions, allocation or Python.
//
// Layout: input (N, C, S) with S the spatial positions, so a channel's positions are contiguous
// and the channels of one position are S apart. Every loop therefore runs over the contiguous
// positions of one channel, and the softmax over the channels is built up channel by channel in
// per-position arrays of the tile (its running maximum, then its sum): the vector lanes hold
// neighbouring positions, never the strided classes.
#include "segmentation/segmentation_kernels.hpp"

#include <cstdint>

#include "common/ordered_sum.hpp"
#include "common/target.hpp"
#include "common/vmath.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS {
namespace segmentation {
namespace {

using detail::SegmentationActivation;
using detail::SegmentationTile;
constexpr int64_t kTile = detail::kSegmentationTile;

// The softmax statistics of the tile's positions: the maximum over the channels (NaN if any
// channel is NaN, as torch's softmax then gives NaN) and 1 / sum_c exp(x_c - max). `e`, when
// given, receives exp(x_c - max) for every channel c at e + c * e_stride (the tile's part of
// grad, or a stack scratch).
template <class T>
LOSSKIT_INLINE void softmax_stats(const SegmentationTile<T>& t, T* LOSSKIT_RESTRICT max,
                                  T* LOSSKIT_RESTRICT inv_sum, T* e, int64_t e_stride) {
  const int64_t n = t.length;
  const T* LOSSKIT_RESTRICT x0 = t.input;
  for (int64_t s = 0; s < n; ++s) max[s] = x0[s];
  for (int64_t c = 1; c < t.channels; ++c) {
    const T* LOSSKIT_RESTRICT x = t.input + c * t.plane;
    for (int64_t s = 0; s < n; ++s) max[s] = (x[s] > max[s] || x[s] != x[s]) ? x[s] : max[s];
  }
  for (int64_t s = 0; s < n; ++s) inv_sum[s] = T(0);
  for (int64_t c = 0; c < t.channels; ++c) {
    const T* LOSSKIT_RESTRICT x = t.input + c * t.plane;
    if (e != nullptr) {
      T* LOSSKIT_RESTRICT ec = e + c * e_stride;
      for (int64_t s = 0; s < n; ++s) {
        ec[s] = vmath::exp_nonpositive(x[s] - max[s]);
        inv_sum[s] += ec[s];
      }
    } else {
      for (int64_t s = 0; s < n; ++s) inv_sum[s] += vmath::exp_nonpositive(x[s] - max[s]);
    }
  }
  for (int64_t s = 0; s < n; ++s) inv_sum[s] = T(1) / inv_sum[s];
}

// p of channel c over the tile (softmax: from the statistics above, and from the kept
// exponentials `e` of softmax_stats when given), computed into `p`, or the input itself without
// an activation (read in place: a copy cost as much as the sums).
template <class T>
LOSSKIT_INLINE const T* activate(const SegmentationTile<T>& t, int64_t c,
                                 const T* LOSSKIT_RESTRICT max, const T* LOSSKIT_RESTRICT inv_sum,
                                 T* LOSSKIT_RESTRICT p, const T* LOSSKIT_RESTRICT e = nullptr) {
  const T* LOSSKIT_RESTRICT x = t.input + c * t.plane;
  const int64_t n = t.length;
  switch (t.activation) {
    case SegmentationActivation::None: return x;
    case SegmentationActivation::Sigmoid:
      for (int64_t s = 0; s < n; ++s) p[s] = vmath::sigmoid(x[s]);
      break;
    case SegmentationActivation::Softmax:
      if (e != nullptr) {
        const T* LOSSKIT_RESTRICT ec = e + c * kTile;
        for (int64_t s = 0; s < n; ++s) p[s] = ec[s] * inv_sum[s];
      } else {
        for (int64_t s = 0; s < n; ++s) p[s] = vmath::exp_nonpositive(x[s] - max[s]) * inv_sum[s];
      }
      break;
  }
  return p;
}

// g of channel c over the tile: the dense target, read in place, or 1 where the label is the
// channel's class, computed into `g`.
template <class T>
LOSSKIT_INLINE const T* target_of(const SegmentationTile<T>& t, int64_t c, T* LOSSKIT_RESTRICT g) {
  if (t.labels == nullptr) return t.target + c * t.plane;
  const int64_t n = t.length;
  const int64_t* LOSSKIT_RESTRICT lab = t.labels;
  const int64_t cls = c + t.label_base;
  for (int64_t s = 0; s < n; ++s) g[s] = lab[s] == cls ? T(1) : T(0);
  return g;
}

// The three sums of one channel over the tile, each in ordered_sum's fixed order. Three sweeps
// over the staged p and g (in L1) rather than one sweep with three interleaved sums: each sweep
// is a plain 8-lane reduction the compiler vectorises, where the interleaved form strides by 3.
template <bool kSquared, class T>
LOSSKIT_INLINE void channel_sums(int64_t n, const T* LOSSKIT_RESTRICT p,
                                 const T* LOSSKIT_RESTRICT g, double (&out)[3]) {
  out[0] = ordered_sum(n, [&](int64_t j) {
    return static_cast<double>(p[j]) * static_cast<double>(g[j]);
  });
  out[1] = ordered_sum(n, [&](int64_t j) {
    const double pj = p[j];
    return kSquared ? pj * pj : pj;
  });
  out[2] = ordered_sum(n, [&](int64_t j) {
    const double gj = g[j];
    return kSquared ? gj * gj : gj;
  });
}

// The soft-label sums of one channel: |p - g|, |p| and |g| (differences and magnitudes in double).
template <class T>
LOSSKIT_INLINE void channel_soft_sums(int64_t n, const T* LOSSKIT_RESTRICT p,
                                      const T* LOSSKIT_RESTRICT g, double (&out)[3]) {
  out[0] = ordered_sum(n, [&](int64_t j) {
    const double d = static_cast<double>(p[j]) - static_cast<double>(g[j]);
    return d < 0.0 ? -d : d;
  });
  out[1] = ordered_sum(n, [&](int64_t j) {
    const double pj = p[j];
    return pj < 0.0 ? -pj : pj;
  });
  out[2] = ordered_sum(n, [&](int64_t j) {
    const double gj = g[j];
    return gj < 0.0 ? -gj : gj;
  });
}

// Up to this many channels the softmax's exponentials are kept on the stack between the sum
// over the channels and the channel sweeps (else recomputed there).
constexpr int64_t kKeptChannels = 8;

template <class T>
void sums(const SegmentationTile<T>& t, double* out) {
  alignas(64) T max[kTile], inv_sum[kTile], p[kTile], g[kTile];
  alignas(64) T kept[kKeptChannels * kTile];
  const T* e = nullptr;
  if (t.activation == SegmentationActivation::Softmax) {
    e = t.channels <= kKeptChannels ? kept : nullptr;
    softmax_stats<T>(t, max, inv_sum, e ? kept : nullptr, kTile);
    // A channel left out has no sums, but its softmax gradient reads its p.
    if (t.keep_p)
      for (int64_t c = 0; c < t.first_channel; ++c)
        activate(t, c, max, inv_sum, t.keep_p + c * t.plane, e);
  }
  for (int64_t c = t.first_channel; c < t.channels; ++c) {
    const T* pc = activate(t, c, max, inv_sum, t.keep_p ? t.keep_p + c * t.plane : p, e);
    const T* gc = target_of(t, c, g);
    double s[3];
    if (t.soft) channel_soft_sums(t.length, pc, gc, s);
    else if (t.squared) channel_sums<true>(t.length, pc, gc, s);
    else channel_sums<false>(t.length, pc, gc, s);
    double* o = out + 3 * (c - t.first_channel);
    o[0] = s[0], o[1] = s[1], o[2] = s[2];
  }
}

template <class T>
LOSSKIT_INLINE T sign_of(T x) {
  return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
}

// dL/dp over the tile for a counted channel: coef_g g + coef_q q, q = p (squared) or 1; soft:
// coef_g (sgn p - sgn(p - g)) / 2 + coef_q sgn p.
template <class T>
LOSSKIT_INLINE void dloss_dp(int64_t n, const SegmentationTile<T>& t, T cg, T cq,
                             const T* LOSSKIT_RESTRICT p, const T* LOSSKIT_RESTRICT g,
                             T* LOSSKIT_RESTRICT d) {
  if (t.soft)
    for (int64_t s = 0; s < n; ++s) {
      const T sp = sign_of(p[s]);
      d[s] = cg * ((sp - sign_of(p[s] - g[s])) * T(0.5)) + cq * sp;
    }
  else if (t.squared)
    for (int64_t s = 0; s < n; ++s) d[s] = cg * g[s] + cq * p[s];
  else
    for (int64_t s = 0; s < n; ++s) d[s] = cg * g[s] + cq;
}

// The dense target's gradient of channel c (the tile's p of that channel in pc): dloss_dp with
// the roles of p and g swapped; 0 for a channel left out.
template <class T>
LOSSKIT_INLINE void target_grad(const SegmentationTile<T>& t, int64_t c, const T* coef_g,
                                const T* coef_t, const T* pc, T* grad_target) {
  T* LOSSKIT_RESTRICT o = grad_target + c * t.plane;
  if (c < t.first_channel) {
    for (int64_t s = 0; s < t.length; ++s) o[s] = T(0);
    return;
  }
  dloss_dp(t.length, t, coef_g[c], coef_t[c], t.target + c * t.plane, pc, o);
}

template <class T>
void grad(const SegmentationTile<T>& t, const T* coef_g, const T* coef_q, const T* coef_t, T* out,
          T* grad_target) {
  const int64_t n = t.length;
  alignas(64) T max[kTile], inv_sum[kTile], g[kTile], d[kTile];
  if (t.activation == SegmentationActivation::Sigmoid && !t.soft && grad_target == nullptr) {
    // The common case in one sweep per channel: p, g, dL/dp and the sigmoid's derivative per
    // element (the arithmetic of the general sweeps below).
    for (int64_t c = 0; c < t.channels; ++c) {
      T* LOSSKIT_RESTRICT o = out + c * t.plane;
      if (c < t.first_channel) {
        for (int64_t s = 0; s < n; ++s) o[s] = T(0);
        continue;
      }
      const T* LOSSKIT_RESTRICT x = t.input + c * t.plane;
      const T* gc = target_of(t, c, g);
      const T cg = coef_g[c], cq = coef_q[c];
      if (t.p_kept) {  // o holds p
        for (int64_t s = 0; s < n; ++s) {
          const T pc = o[s];
          o[s] = (t.squared ? cg * gc[s] + cq * pc : cg * gc[s] + cq) * (T(1) - pc) * pc;
        }
      } else {
        for (int64_t s = 0; s < n; ++s) {
          const T pc = vmath::sigmoid(x[s]);
          o[s] = (t.squared ? cg * gc[s] + cq * pc : cg * gc[s] + cq) * (T(1) - pc) * pc;
        }
      }
    }
    return;
  }
  if (t.activation != SegmentationActivation::Softmax) {
    alignas(64) T p[kTile];
    for (int64_t c = 0; c < t.channels; ++c) {
      T* LOSSKIT_RESTRICT o = out + c * t.plane;
      if (c < t.first_channel) {  // left out: no gradient, even at a NaN input (as MONAI's slice)
        for (int64_t s = 0; s < n; ++s) o[s] = T(0);
        if (grad_target) target_grad<T>(t, c, coef_g, coef_t, nullptr, grad_target);
        continue;
      }
      const T* LOSSKIT_RESTRICT pc = activate(t, c, max, inv_sum, p);
      const T* gc = target_of(t, c, g);
      if (grad_target) target_grad(t, c, coef_g, coef_t, pc, grad_target);
      dloss_dp(n, t, coef_g[c], coef_q[c], pc, gc, d);
      if (t.activation == SegmentationActivation::Sigmoid)
        for (int64_t s = 0; s < n; ++s)
          o[s] = d[s] * (T(1) - pc[s]) * pc[s];  // torch's sigmoid_backward order
      else
        for (int64_t s = 0; s < n; ++s) o[s] = d[s];
    }
    return;
  }
  // Softmax: d loss / d x_c = p_c (d_c - sum_k p_k d_k). The grad tile holds exp(x_c - max), then
  // p_c, until the last sweep writes the gradient over it.
  alignas(64) T dot[kTile];
  for (int64_t s = 0; s < n; ++s) dot[s] = T(0);
  if (!t.soft && grad_target == nullptr) {
    // The common case with dL/dp formed in the sweeps that use it (the arithmetic of the general
    // sweeps below), from p kept by the sums or from the exponentials.
    if (!t.p_kept) softmax_stats<T>(t, max, inv_sum, out, t.plane);
    for (int64_t c = 0; c < t.channels; ++c) {
      T* LOSSKIT_RESTRICT pc = out + c * t.plane;
      if (c < t.first_channel) {
        if (!t.p_kept)
          for (int64_t s = 0; s < n; ++s) pc[s] = pc[s] * inv_sum[s];
        continue;
      }
      const T* LOSSKIT_RESTRICT gc = target_of(t, c, g);
      const T cg = coef_g[c], cq = coef_q[c];
      if (t.p_kept) {
        for (int64_t s = 0; s < n; ++s) {
          const T ps = pc[s];
          dot[s] += ps * (t.squared ? cg * gc[s] + cq * ps : cg * gc[s] + cq);
        }
      } else {
        for (int64_t s = 0; s < n; ++s) {
          const T ps = pc[s] * inv_sum[s];
          pc[s] = ps;
          dot[s] += ps * (t.squared ? cg * gc[s] + cq * ps : cg * gc[s] + cq);
        }
      }
    }
    for (int64_t c = 0; c < t.channels; ++c) {
      T* LOSSKIT_RESTRICT pc = out + c * t.plane;
      if (c < t.first_channel) {
        for (int64_t s = 0; s < n; ++s) pc[s] = pc[s] * (T(0) - dot[s]);
        continue;
      }
      const T* LOSSKIT_RESTRICT gc = target_of(t, c, g);
      const T cg = coef_g[c], cq = coef_q[c];
      for (int64_t s = 0; s < n; ++s) {
        const T ds = t.squared ? cg * gc[s] + cq * pc[s] : cg * gc[s] + cq;
        pc[s] = pc[s] * (ds - dot[s]);
      }
    }
    return;
  }
  softmax_stats<T>(t, max, inv_sum, out, t.plane);
  for (int64_t c = 0; c < t.channels; ++c) {
    T* LOSSKIT_RESTRICT pc = out + c * t.plane;
    for (int64_t s = 0; s < n; ++s) pc[s] = pc[s] * inv_sum[s];
    if (grad_target) target_grad(t, c, coef_g, coef_t, pc, grad_target);
    if (c < t.first_channel) continue;
    const T* gc = target_of(t, c, g);
    dloss_dp(n, t, coef_g[c], coef_q[c], pc, gc, d);
    for (int64_t s = 0; s < n; ++s) dot[s] += pc[s] * d[s];
  }
  for (int64_t c = 0; c < t.channels; ++c) {
    T* LOSSKIT_RESTRICT pc = out + c * t.plane;
    if (c < t.first_channel) {
      for (int64_t s = 0; s < n; ++s) pc[s] = pc[s] * (T(0) - dot[s]);
      continue;
    }
    const T* gc = target_of(t, c, g);
    dloss_dp(n, t, coef_g[c], coef_q[c], pc, gc, d);
    for (int64_t s = 0; s < n; ++s) pc[s] = pc[s] * (d[s] - dot[s]);
  }
}

}  // namespace
}  // namespace segmentation

void segmentation_sums(const detail::SegmentationTile<float>& tile, double* sums) {
  segmentation::sums(tile, sums);
}
void segmentation_sums(const detail::SegmentationTile<double>& tile, double* sums) {
  segmentation::sums(tile, sums);
}
void segmentation_grad(const detail::SegmentationTile<float>& tile, const float* coef_g,
                       const float* coef_q, const float* coef_t, float* grad, float* grad_target) {
  segmentation::grad(tile, coef_g, coef_q, coef_t, grad, grad_target);
}
void segmentation_grad(const detail::SegmentationTile<double>& tile, const double* coef_g,
                       const double* coef_q, const double* coef_t, double* grad,
                       double* grad_target) {
  segmentation::grad(tile, coef_g, coef_q, coef_t, grad, grad_target);
}

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
