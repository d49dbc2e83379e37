// Interface between the detection entry points (detection.cpp, compiled once) and the kernels
// (detection_kernels.cpp, compiled once per instruction set).
#pragma once

#include <cstdint>

#include "common/target.hpp"
#include "losskit/half.hpp"

namespace losskit::detail {

enum class BoxLossKind : int { Generalized, Distance, Complete };

// n box pairs; pair i is boxes1[4 i .. 4 i + 3] and boxes2[4 i .. 4 i + 3]. T is the storage
// type: float, double, or bfloat16/float16, read and written in place and computed in float.
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
