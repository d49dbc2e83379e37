// Box IoU loss kernels, compiled once per instruction set: one pass over the box pairs computes
// each pair's loss and (when asked) both boxes' gradients from values still in registers. The
// formulas are in detection_ops.hpp.
#include "detection/detection_kernels.hpp"

#include <algorithm>

#include "common/ordered_sum.hpp"
#include "common/reduce.hpp"
#include "detection/detection_ops.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS {
namespace detection {
namespace {

using detail::BoxPairs;

// Box i: its loss (returned in double) and, with kBackward, its gradients.
template <class Loss, bool kBackward, class T>
LOSSKIT_INLINE double box(const BoxPairs<T>& R, int64_t i) {
  const Pair s = pair_of(R.boxes1 + 4 * i, R.boxes2 + 4 * i, R.eps);
  typename Loss::State st;
  const double loss = Loss::forward(s, R.eps, st);
  if (R.out) R.out[i] = static_cast<T>(loss);
  if constexpr (kBackward) {
    const double g = R.grad_out ? R.grad_scale * static_cast<double>(R.grad_out[i]) : R.grad_scale;
    PairGrad gr;
    Loss::backward(s, st, g, R.eps, gr);
    double d1[4], d2[4];
    pair_backward(s, gr, R.eps, d1, d2);
    if (R.grad1)
      for (int k = 0; k < 4; ++k) R.grad1[4 * i + k] = static_cast<T>(d1[k]);
    if (R.grad2)
      for (int k = 0; k < 4; ++k) R.grad2[4 * i + k] = static_cast<T>(d2[k]);
  }
  return loss;
}

template <class Loss, bool kBackward, class T>
void blocks(const BoxPairs<T>& R, int64_t b0, int64_t b1) {
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t lo = b * detail::kReduceBlock;
    const int64_t hi = std::min(R.n, lo + detail::kReduceBlock);
    // The pairs are independent: one SIMD loop computes them (and their gradients) into a
    // block of losses, summed after in the fixed order of common/ordered_sum.hpp, whatever the
    // thread count.
    double losses[detail::kReduceBlock];
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) losses[i - lo] = box<Loss, kBackward>(R, i);
    if (R.block_sums) R.block_sums[b] = ordered_sum(hi - lo, [&](int64_t j) { return losses[j]; });
  }
}

template <class Loss, class T>
void dispatch_backward(const BoxPairs<T>& R, int64_t b0, int64_t b1) {
  if (R.grad1 || R.grad2) blocks<Loss, true>(R, b0, b1);
  else blocks<Loss, false>(R, b0, b1);
}

template <class T>
void run(const BoxPairs<T>& R, int64_t b0, int64_t b1) {
  using K = detail::BoxLossKind;
  switch (R.kind) {
    case K::Generalized: return dispatch_backward<Generalized>(R, b0, b1);
    case K::Distance: return dispatch_backward<Distance>(R, b0, b1);
    case K::Complete: return dispatch_backward<Complete>(R, b0, b1);
  }
}

}  // namespace
}  // namespace detection

void box_loss_blocks(const detail::BoxPairs<float>& R, int64_t b0, int64_t b1) {
  detection::run(R, b0, b1);
}
void box_loss_blocks(const detail::BoxPairs<double>& R, int64_t b0, int64_t b1) {
  detection::run(R, b0, b1);
}

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
