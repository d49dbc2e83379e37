// Box IoU loss kernels, compiled once per instruction set: one pass over the box pairs computes
// each pair's loss and (when asked) both boxes' gradients from values still in registers. The
// formulas are in detection_ops.hpp.
#include "detection/detection_kernels.hpp"

#include <algorithm>
#include <type_traits>
#include <utility>

#include "common/ordered_sum.hpp"
#include "common/reduce.hpp"
#include "common/storage_access.hpp"
#include "detection/detection_ops.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS {
namespace detection {
namespace {

using detail::BoxPairs;

// The pairs of one stage: few enough that its buffers stay in L1. The coordinates are moved
// (16-bit storage: widened) into one array per coordinate of the compute type first and the
// gradients written (rounded) from such arrays after, so that
// the loop between them reads and writes contiguous arrays only and unconditionally (an upstream
// gradient of ones when there is none): GCC does not vectorise the interleaved (x1, y1, x2, y2)
// layout through that much arithmetic, nor a conditional store, and the scalar loop pays a
// mispredicted branch at the formulas' max and min.
constexpr int64_t kStage = 256;

template <class T>
struct Stage {
  T coord1[4][kStage], coord2[4][kStage], grad1[4][kStage], grad2[4][kStage];
  T out[kStage], ones[kStage], grad_out[kStage];
};

// Pairs [lo, lo + m) of R, m <= kStage: each loss into losses[0, m) (and R.out), and, with
// kBackward, both boxes' gradients. S: the storage type, T: the compute type.
template <class Loss, bool kBackward, class S, class T>
void stage(const BoxPairs<S>& R, int64_t lo, int64_t m, Stage<T>& st,
           double* LOSSKIT_RESTRICT losses) {
  constexpr bool kInPlace = std::is_same_v<S, T>;  // outputs written where they lie
  const S* const boxes[] = {R.boxes1, R.boxes2};
  T(*const coords[])[kStage] = {st.coord1, st.coord2};
  for (int j = 0; j < 2; ++j) {
    if (R.broadcast && R.broadcast->active[j]) {
      detail::for_each_source_box(*R.broadcast, j, lo, m, [&](int64_t i, int64_t b) {
        for (int k = 0; k < 4; ++k) coords[j][k][i] = load(boxes[j][4 * b + k]);
      });
    } else {
      for (int64_t i = 0; i < m; ++i)
        for (int k = 0; k < 4; ++k) coords[j][k][i] = load(boxes[j][4 * (lo + i) + k]);
    }
  }
  const T* LOSSKIT_RESTRICT go = st.ones;
  if (R.grad_out) {
    if constexpr (kInPlace) {
      go = R.grad_out + lo;
    } else {
      for (int64_t i = 0; i < m; ++i) st.grad_out[i] = load(R.grad_out[lo + i]);
      go = st.grad_out;
    }
  }
  T* LOSSKIT_RESTRICT out = st.out;
  if constexpr (kInPlace) out = R.out ? R.out + lo : st.out;
  const double eps = R.eps, scale = R.grad_scale;
  // No `omp simd` here: it turns the per-pair arrays (b1, Pair, d1) into per-lane arrays in
  // memory, which GCC 12 then fails to vectorise; left alone, it scalarises them and vectorises
  // the loop (checked with -fopt-info-vec for every instantiation).
  for (int64_t i = 0; i < m; ++i) {
    const T b1[4] = {st.coord1[0][i], st.coord1[1][i], st.coord1[2][i], st.coord1[3][i]};
    const T b2[4] = {st.coord2[0][i], st.coord2[1][i], st.coord2[2][i], st.coord2[3][i]};
    const Pair s = pair_of(b1, b2, eps);
    typename Loss::State ls;
    const double loss = Loss::forward(s, eps, ls);
    out[i] = static_cast<T>(loss);
    losses[i] = loss;
    if constexpr (kBackward) {
      const double g = scale * static_cast<double>(go[i]);  // x 1 is exact: no upstream array
      PairGrad gr;
      Loss::backward(s, ls, g, eps, gr);
      double d1[4], d2[4];
      pair_backward(s, gr, eps, d1, d2);
      for (int k = 0; k < 4; ++k) {
        st.grad1[k][i] = static_cast<T>(d1[k]);
        st.grad2[k][i] = static_cast<T>(d2[k]);
      }
    }
  }
  if (!kInPlace && R.out)
    for (int64_t i = 0; i < m; ++i) store(R.out[lo + i], st.out[i]);
  if constexpr (kBackward) {
    const std::pair<S*, const T(*)[kStage]> write_back[] = {{R.grad1, st.grad1},
                                                            {R.grad2, st.grad2}};
    for (int j = 0; j < 2; ++j) {
      const auto [to, from] = write_back[j];
      if (double* pg = R.pair_grad[j]) {
        for (int64_t i = 0; i < m; ++i)
          for (int k = 0; k < 4; ++k) pg[4 * (lo + i) + k] = static_cast<double>(from[k][i]);
      } else if (R.block_grad[j]) {
        double* part = R.block_grad[j] + 4 * R.box_count[j] * (lo / detail::kReduceBlock);
        detail::for_each_source_box(*R.broadcast, j, lo, m, [&](int64_t i, int64_t box) {
          for (int k = 0; k < 4; ++k) part[4 * box + k] += static_cast<double>(from[k][i]);
        });
      } else if (to) {
        for (int64_t i = 0; i < m; ++i)
          for (int k = 0; k < 4; ++k) store(to[4 * (lo + i) + k], from[k][i]);
      }
    }
  }
}

template <class Loss, bool kBackward, class S>
void blocks(const BoxPairs<S>& R, int64_t b0, int64_t b1) {
  using T = detail::compute_t<S>;
  Stage<T> st;
  for (int64_t i = 0; i < kStage; ++i) st.ones[i] = T(1);
  double losses[detail::kReduceBlock];
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t lo = b * detail::kReduceBlock;
    const int64_t hi = std::min(R.n, lo + detail::kReduceBlock);
    for (int j = 0; j < 2; ++j)
      if (double* part = R.block_grad[j])
        std::fill(part + 4 * R.box_count[j] * b, part + 4 * R.box_count[j] * (b + 1), 0.0);
    for (int64_t s = lo; s < hi; s += kStage) {
      const int64_t m = std::min(kStage, hi - s);
      stage<Loss, kBackward>(R, s, m, st, losses + (s - lo));
    }
    // The fixed summation order of common/ordered_sum.hpp, whatever the thread count.
    if (R.block_sums) R.block_sums[b] = ordered_sum(hi - lo, [&](int64_t j) { return losses[j]; });
  }
}

template <class Loss, class T>
void dispatch_backward(const BoxPairs<T>& R, int64_t b0, int64_t b1) {
  const bool broadcast_grad =
      R.pair_grad[0] || R.pair_grad[1] || R.block_grad[0] || R.block_grad[1];
  if (R.grad1 || R.grad2 || broadcast_grad) blocks<Loss, true>(R, b0, b1);
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
void box_loss_blocks(const detail::BoxPairs<bfloat16>& R, int64_t b0, int64_t b1) {
  detection::run(R, b0, b1);
}
void box_loss_blocks(const detail::BoxPairs<float16>& R, int64_t b0, int64_t b1) {
  detection::run(R, b0, b1);
}

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
