// Interface between the segmentation entry points (segmentation.cpp, compiled once) and the tile
// kernels (segmentation_kernels.cpp, compiled once per instruction set). Plain data only.
//
// The work is cut into tiles: kSegmentationTile consecutive spatial positions of one sample n
// (the last tile of a row may be shorter). Tile boundaries depend only on the shape, never on the
// thread count, and each tile's sums are added in a fixed order, so the per-(n, c) sums (the tile
// partials combined in a fixed tree) are bitwise the same on any number of threads.
#pragma once

#include <cstdint>

#include "common/target.hpp"

namespace losskit::detail {

constexpr int64_t kSegmentationTile = 1024;

enum class SegmentationActivation : int { None = 0, Sigmoid = 1, Softmax = 2 };

// One tile: positions [s0, s0 + length) of sample n, for every channel.
template <class T>
struct SegmentationTile {
  const T* input = nullptr;         // element (n, 0, s0); channel c at input + c * plane
  const T* target = nullptr;        // dense target, element (n, 0, s0); nullptr for labels
  const int64_t* labels = nullptr;  // class-index target, element (n, s0); nullptr for dense
  int64_t plane = 0;                // positions per channel: d1 * ... * dK
  int64_t channels = 0;             // C
  int64_t first_channel = 0;        // 0, or 1 when the background is left out
  int64_t label_base = 0;           // channel c is the class c + label_base (1 when C == 1)
  int64_t length = 0;               // positions in this tile, <= kSegmentationTile
  SegmentationActivation activation = SegmentationActivation::None;
  bool squared = false;  // the second and third sums are of p^2 and g^2
  bool soft = false;     // the soft-label sums |p - g|, |p| and |g| (never with squared)
  // Sigmoid or softmax, not soft, no target gradient: the sums also write p of every channel
  // the gradient will read to keep_p (the tile's part of the gradient, laid out as the input),
  // and a gradient tile with p_kept finds it there instead of activating the input again.
  T* keep_p = nullptr;
  bool p_kept = false;
};

// sums[3 (c - first_channel) + {0, 1, 2}] = the tile's sum of p g, of p (p^2 when squared) and of
// g (g^2) for every counted channel c, p the activated input and g the target; with `soft`, of
// |p - g|, |p| and |g|.
template <class T>
using SegmentationSumsKernel = void (*)(const SegmentationTile<T>&, double* sums);

// grad[c, s] of the tile (same layout as input) = d loss / d input for every channel, from the
// per-channel derivative with respect to p, dL/dp_c = coef_g[c] g + coef_q[c] q (q = 1, or p when
// squared; with `soft`, coef_g[c] (sgn p - sgn(p - g)) / 2 + coef_q[c] sgn p, sgn 0 = 0 as torch's
// abs backward), which is 0 for a channel left out, then through the activation.
// grad_target (a dense target's gradient, or nullptr) = the same with p and g swapped and
// coef_t for coef_q: coef_g[c] p + coef_t[c] r (r = 1, or g when squared; soft: coef_g[c]
// (sgn g - sgn(g - p)) / 2 + coef_t[c] sgn g); the target is not activated.
template <class T>
using SegmentationGradKernel = void (*)(const SegmentationTile<T>&, const T* coef_g,
                                        const T* coef_q, const T* coef_t, T* grad, T* grad_target);

}  // namespace losskit::detail

namespace losskit::kernels {
#define LOSSKIT_DECLARE_SEGMENTATION(ns)                                                           \
  namespace ns {                                                                                   \
  void segmentation_sums(const detail::SegmentationTile<float>& tile, double* sums);               \
  void segmentation_sums(const detail::SegmentationTile<double>& tile, double* sums);              \
  void segmentation_grad(const detail::SegmentationTile<float>& tile, const float* coef_g,         \
                         const float* coef_q, const float* coef_t, float* grad,                    \
                         float* grad_target);                                                      \
  void segmentation_grad(const detail::SegmentationTile<double>& tile, const double* coef_g,       \
                         const double* coef_q, const double* coef_t, double* grad,                 \
                         double* grad_target);                                                     \
  }
LOSSKIT_FOR_EACH_TARGET(LOSSKIT_DECLARE_SEGMENTATION)
#undef LOSSKIT_DECLARE_SEGMENTATION
}  // namespace losskit::kernels
