// Interface between the pointwise entry points (pointwise.cpp, compiled once) and the kernels
// (pointwise_kernels.cpp, compiled once per instruction set).
#pragma once

#include "common/elementwise.hpp"
#include "common/target.hpp"
#include "losskit/pointwise.hpp"

namespace losskit::detail {

// One id per kernel; option values that change the formula's shape (log_input, full,
// log_target, pos_weight, beta == 0) select distinct kernels so inner loops carry no
// loop-invariant branches.
enum class PointwiseLoss {
  L1,
  Mse,
  Huber,
  SmoothL1,
  SoftMargin,
  Bce,
  BceWithLogits,
  BceWithLogitsPosWeight,
  PoissonNllLogInput,
  PoissonNllLogInputFull,
  PoissonNll,
  PoissonNllFull,
  GaussianNll,
  KlDiv,
  KlDivLogTarget,
  MarginRanking,
  HingeEmbedding,
#define LOSSKIT_KERNEL_ID(NAME, OPTIONS, OPS, ...) OPS,
  LOSSKIT_REGISTERED_POINTWISE(LOSSKIT_KERNEL_ID)
#undef LOSSKIT_KERNEL_ID
};

struct PointwiseParams {
  double a = 0.0;  // delta, beta, margin or eps; a registered loss's first LOSSKIT_PARAM
  double b = 0.0;  // gaussian_nll_loss's 0.5 log 2 pi when full; a registered loss's second
};

struct PointwiseCall {
  PointwiseLoss loss;
  PointwiseParams params;
};

}  // namespace losskit::detail

namespace losskit::kernels {
#define LOSSKIT_DECLARE_POINTWISE(ns)                                                              \
  namespace ns {                                                                                   \
  detail::SegmentResult pointwise_segment(const detail::Segment<float>&, detail::OutKind,          \
                                          const void*);                                            \
  detail::SegmentResult pointwise_segment(const detail::Segment<double>&, detail::OutKind,         \
                                          const void*);                                            \
  detail::SegmentResult pointwise_segment(const detail::Segment<bfloat16>&, detail::OutKind,       \
                                          const void*);                                            \
  detail::SegmentResult pointwise_segment(const detail::Segment<bfloat16, float>&,                 \
                                          detail::OutKind, const void*);                           \
  detail::SegmentResult pointwise_segment(const detail::Segment<float16>&, detail::OutKind,        \
                                          const void*);                                            \
  detail::SegmentResult pointwise_segment(const detail::Segment<float16, float>&, detail::OutKind, \
                                          const void*);                                            \
  }
LOSSKIT_FOR_EACH_TARGET(LOSSKIT_DECLARE_POINTWISE)
#undef LOSSKIT_DECLARE_POINTWISE
}  // namespace losskit::kernels
