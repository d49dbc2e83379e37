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

// S is the storage type of the operands and the per-element loss; G that of the gradients: S, or
// compute_t<S> for 16-bit storage whose gradients are summed over broadcast dimensions. Kernels
// compute in compute_t<S>, converting 16-bit values in register (common/storage_access.hpp).
template <class S, class G = S>
struct Segment {
  const S* in[kMaxOperands];  // operands, contiguous over len
  const S* weight;            // multiplicative weight; points at ones when the loss has none
  const S* grad_out;          // upstream gradient per element; ones when reduced
  S* out;                     // per-element loss (OutKind::PerElement)
  G* grad[kMaxOperands];      // gradient per operand, nullptr where not wanted
  int64_t len;
  compute_t<S> grad_scale;  // reduction scale times a scalar grad_output
};

struct SegmentResult {
  double sum;        // sum of the weighted losses (OutKind::Accumulate)
  unsigned invalid;  // bit k: an element of operand k failed the loss's data check
};

// A kernel processes one segment; ctx carries the family's loss id and options.
template <class S, class G = S>
using SegmentKernel = SegmentResult (*)(const Segment<S, G>&, OutKind, const void* ctx);

// A loss's kernels for storage T: `storage` writes gradients in T; `compute` writes them in
// compute_t<T>, into the scratch of gradients summed over broadcast dimensions (for 16-bit
// storage, so that a summed gradient is rounded once, from its double sum). For float and double
// the two are the same kernel.
template <class T>
struct SegmentKernels {
  SegmentKernel<T> storage;
  SegmentKernel<T, compute_t<T>> compute;
};

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
// compute_t<T> (float for bfloat16 and float16, whose values they convert in register, reading and
// writing the 16-bit arrays in place: common/storage.hpp). When a 16-bit operand's gradient is
// summed over broadcast dimensions, every wanted gradient goes through compute-type scratch of
// the broadcast shape (kernels.compute) and is rounded once after the pass. Throws ValueError
// before any work for bad shapes; a data check (SegmentResult::invalid) throws
// ValueError(invalid_messages[k]) after the pass, leaving outputs unspecified; the last failing
// operand is named (torch's binary_cross_entropy checks the target before the input).
// Returns the loss's own divisor for Mean/BatchMean (what NAME_mean_normalizer reports), 1 for
// the other reductions; a request that asks for nothing (neither forward nor backward) stops
// there, after the shape checks.
template <class T>
double run_elementwise(const ElementwiseProblem<T>& problem, const SegmentKernels<T>& kernels,
                       const void* ctx);

}  // namespace losskit::detail
