// The one element-wise driver. Every element-wise loss (the pointwise family, and the
// element-wise parts of other families) runs through run_elementwise, which owns what ATen
// re-derives in each backward: broadcasting, the reduction scale (mean, batchmean, weighted
// total), the grad_output multiply, the deterministic blocked accumulation, threading, and the
// summation of gradients over broadcast dimensions.
//
// Kernels see only Segments: contiguous runs of at most kReduceBlock elements in which every
// operand is a plain pointer. The driver cuts the broadcast index space into fixed blocks (so
// sums do not depend on the thread count) and each block into segments along the innermost
// dimension.
#pragma once

#include <array>
#include <cstdint>

#include "common/request.hpp"
#include "common/storage.hpp"
#include "losskit/reduction.hpp"
#include "losskit/view.hpp"

namespace losskit::detail {

constexpr int kMaxOperands = 4;

enum class OutKind : int {
  None = 0,        // backward only
  PerElement = 1,  // write the (weighted) loss of each element (Reduction::None)
  Accumulate = 2,  // return the sum of the (weighted) losses (reduced)
};

template <class T>
struct Segment {
  const T* in[kMaxOperands];  // operands, contiguous over len
  const T* weight;            // multiplicative weight; points at ones when the loss has none
  const T* grad_out;          // upstream gradient per element; ones when reduced
  T* out;                     // per-element loss (OutKind::PerElement)
  T* grad[kMaxOperands];      // gradient per operand, nullptr where not wanted
  int64_t len;
  T grad_scale;               // reduction scale times a scalar grad_output
};

struct SegmentResult {
  double sum;    // sum of the weighted losses (OutKind::Accumulate)
  unsigned invalid;  // bit k: an element of operand k failed the loss's data check
};

// A kernel processes one segment; ctx carries the family's loss id and options.
template <class T>
using SegmentKernel = SegmentResult (*)(const Segment<T>&, OutKind, const void* ctx);

// How Reduction::Mean divides a weighted loss.
enum class WeightedMean {
  ByCount,      // sum(w l) / numel (torch's BCE, huber with weight)
  ByWeightSum,  // sum(w l) / sum(w) (torch's l1, mse with weight)
};

template <class T>
struct ElementwiseProblem {
  const char* function = "";
  int noperands = 0;
  std::array<View<T>, kMaxOperands> operands{};
  std::array<const char*, kMaxOperands> names{};
  View<T> weight;  // optional; must broadcast to the operands' broadcast shape without growing it
  WeightedMean weighted_mean = WeightedMean::ByCount;
  Reduction reduction = Reduction::Mean;
  int64_t batch_size = 1;  // divisor of Reduction::BatchMean
  Normalizer normalizer;   // the caller's divisor for Mean/BatchMean (reduction.hpp)
  std::array<const char*, kMaxOperands> invalid_messages{};  // per operand, for its data check

  Request<T, kMaxOperands> request;  // what to compute; grads per operand
};

// Checks every shape and pointer, then runs. T is the storage type; kernels compute in
// compute_t<T> (float for bfloat16 and float16, whose operands the driver widens block by block
// into float scratch and whose outputs it narrows back: common/storage.hpp). Throws ValueError before any work for bad shapes; a
// data check (SegmentResult::invalid) throws ValueError(invalid_messages[k]) after the pass,
// leaving outputs unspecified; the last failing operand is named (torch's binary_cross_entropy
// checks the target before the input).
// Returns the loss's own divisor for Mean/BatchMean (what NAME_mean_normalizer reports), 1 for
// the other reductions; a request that asks for nothing (neither forward nor backward) stops
// there, after the shape checks.
template <class T>
double run_elementwise(const ElementwiseProblem<T>& problem, SegmentKernel<compute_t<T>> kernel,
                       const void* ctx);

}  // namespace losskit::detail
