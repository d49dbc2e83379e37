// Interface between the detection entry points (detection.cpp, compiled once) and the kernels
// (detection_kernels.cpp, compiled once per instruction set).
#pragma once

#include <cstdint>

#include "common/target.hpp"
#include "losskit/half.hpp"

namespace losskit::detail {

enum class BoxLossKind : int { Generalized, Distance, Complete };

// Broadcasting of the boxes' leading dimensions. A pair's multi-index over `dims` (the pairs'
// shape with its dimensions of 1 dropped and neighbours that both operands read alike merged)
// dotted with an operand's `stride` (0 along a dimension it broadcasts) is the box it reads.
constexpr int kMaxBoxDims = 64;  // NumPy's limit of dimensions; merging only lowers the count

struct BoxBroadcast {
  int nd = 0;
  int64_t dims[kMaxBoxDims] = {};
  int64_t stride[2][kMaxBoxDims] = {};
  bool active[2] = {false, false};  // operand k broadcasts (else pair p reads its box p)
};

// f(i, box) for the pairs lo + i, i in [0, m), with the box of operand k that each reads: the
// multi-index of pair lo once, then advanced like an odometer.
template <class F>
LOSSKIT_INLINE void for_each_source_box(const BoxBroadcast& b, int k, int64_t lo, int64_t m,
                                        F&& f) {
  if (m <= 0) return;  // no pairs: `dims` may hold a 0
  int64_t at[kMaxBoxDims];
  int64_t box = 0, rest = lo;
  for (int d = b.nd; d-- > 0;) {
    at[d] = rest % b.dims[d];
    rest /= b.dims[d];
    box += at[d] * b.stride[k][d];
  }
  for (int64_t i = 0; i < m; ++i) {
    f(i, box);
    for (int d = b.nd; d-- > 0;) {
      box += b.stride[k][d];
      if (++at[d] < b.dims[d]) break;
      box -= b.stride[k][d] * b.dims[d];
      at[d] = 0;
    }
  }
}

// n box pairs; pair i is boxes1[4 i .. 4 i + 3] and boxes2[4 i .. 4 i + 3], or, for an operand
// that `broadcast` marks active, the box for_each_source_box gives. T is the storage type: float,
// double, or bfloat16/float16, read and written in place and computed in float.
template <class T>
struct BoxPairs {
  BoxLossKind kind = BoxLossKind::Generalized;
  int64_t n = 0;
  const T* boxes1 = nullptr;
  const T* boxes2 = nullptr;
  double eps = 1e-7;
  const T* grad_out = nullptr;   // per-box upstream gradient (Reduction::None), nullptr = ones
  double grad_scale = 1.0;       // reduction scale times a scalar grad_output
  T* out = nullptr;              // per-box loss (Reduction::None), or nullptr
  double* block_sums = nullptr;  // one double per kReduceBlock boxes (reduced), or nullptr
  T* grad1 = nullptr;            // gradients, each nullptr when not wanted
  T* grad2 = nullptr;
  const BoxBroadcast* broadcast = nullptr;  // nullptr: both operands have the pairs' shape
  // A broadcast operand's gradient, written instead of grad1 / grad2 for the entry point to sum
  // over the pairs that read each box: per pair (4 values of the compute type at 4 p), or, where
  // the reduction blocks read few boxes each, per block and box (at 4 (b box_count + box), the
  // block's pairs added in pair order; the kernel zeroes its blocks' rows first).
  double* pair_grad[2] = {nullptr, nullptr};
  double* block_grad[2] = {nullptr, nullptr};
  int64_t box_count[2] = {0, 0};  // boxes of each operand: block_grad's rows per block
};

}  // namespace losskit::detail

namespace losskit::kernels {
// Processes the reduction blocks [b0, b1) (block b: boxes [b kReduceBlock, (b+1) kReduceBlock)),
// writing each block's ordered sum of losses to block_sums[b] when block_sums is set.
#define LOSSKIT_DECLARE_DETECTION(ns)                                                              \
  namespace ns {                                                                                   \
  void box_loss_blocks(const detail::BoxPairs<float>&, int64_t b0, int64_t b1);                    \
  void box_loss_blocks(const detail::BoxPairs<double>&, int64_t b0, int64_t b1);                   \
  void box_loss_blocks(const detail::BoxPairs<bfloat16>&, int64_t b0, int64_t b1);                 \
  void box_loss_blocks(const detail::BoxPairs<float16>&, int64_t b0, int64_t b1);                  \
  }
LOSSKIT_FOR_EACH_TARGET(LOSSKIT_DECLARE_DETECTION)
#undef LOSSKIT_DECLARE_DETECTION
}  // namespace losskit::kernels
