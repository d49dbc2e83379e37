// Hot loops of the embedding family; compiled once per instruction set (see common/target.hpp).
// No exceptions, allocation or Python here.
//
// Each row is independent. Forward and backward share one read of the row from memory: sweep 1
// accumulates the row sums (in double) that give the distances and the loss; the row's upstream
// gradient is then folded into a few per-row coefficients; sweep 2 (backward only) re-reads the
// row, now in cache, and writes every gradient of the row in one loop.
#include "embedding/embedding_kernels.hpp"

#include "embedding/embedding_ops.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS {
namespace embedding {
namespace {

using detail::EmbeddingRows;

template <class T>
LOSSKIT_INLINE double row_grad(const EmbeddingRows<T>& R, int64_t row) {
  return R.grad_out ? R.grad_scale * static_cast<double>(R.grad_out[row]) : R.grad_scale;
}

template <class T>
LOSSKIT_INLINE void store_loss(const EmbeddingRows<T>& R, int64_t row, double loss) {
  if (R.out) R.out[row] = static_cast<T>(loss);
  if (R.row_loss) R.row_loss[row] = loss;
}

// Row `row` of input k (its only row when the input is repeated).
template <class T>
LOSSKIT_INLINE const T* input_row(const EmbeddingRows<T>& R, int k, int64_t row) {
  return R.x[k] + (R.repeat[k] ? 0 : row) * R.dim;
}

// Gradient row k: the caller's array, or this thread's scratch when not wanted or summed.
template <class T>
LOSSKIT_INLINE T* grad_row(const EmbeddingRows<T>& R, int k, int64_t row, T* scratch) {
  return R.grad[k] ? R.grad[k] + row * R.dim : scratch + k * R.dim;
}

// Adds the gradient rows just written to the sums of the repeated inputs.
template <class T>
LOSSKIT_INLINE void add_summed_rows(const EmbeddingRows<T>& R, int count, T* const* rows) {
  for (int k = 0; k < count; ++k) {
    double* LOSSKIT_RESTRICT acc = R.grad_sum[k];
    if (!acc) continue;
    const T* LOSSKIT_RESTRICT g = rows[k];
#pragma omp simd
    for (int64_t j = 0; j < R.dim; ++j) acc[j] += static_cast<double>(g[j]);
  }
}

// ---- triplet_margin_loss / triplet_margin_with_distance_loss ------------------------------
template <class Dist, bool kSwap, class T>
void triplet_rows(const EmbeddingRows<T>& R, int64_t r0, int64_t r1, T* scratch) {
  const int64_t n = R.dim;
  const Params<T> prm{static_cast<T>(R.eps), R.p};
  using State = typename Dist::template State<T>;
  for (int64_t row = r0; row < r1; ++row) {
    const T* LOSSKIT_RESTRICT a = input_row(R, 0, row);
    const T* LOSSKIT_RESTRICT p = input_row(R, 1, row);
    const T* LOSSKIT_RESTRICT q = input_row(R, 2, row);  // the negative
    State s_ap = Dist::forward(a, p, n, prm);
    State s_an = Dist::forward(a, q, n, prm);
    State s_pn{};
    if constexpr (kSwap) s_pn = Dist::forward(p, q, n, prm);
    const TripletRow t =
        triplet_row<kSwap, T>(static_cast<double>(s_ap.dist), static_cast<double>(s_an.dist),
                              static_cast<double>(s_pn.dist), R.margin, row_grad(R, row));
    store_loss(R, row, t.loss);
    if (!R.backward) continue;

    Dist::prepare(s_ap, a, p, n, prm);
    Dist::prepare(s_an, a, q, n, prm);
    if constexpr (kSwap) Dist::prepare(s_pn, p, q, n, prm);
    Dist::set_grad(s_ap, t.g_ap, prm);
    Dist::set_grad(s_an, t.g_an, prm);
    if constexpr (kSwap) Dist::set_grad(s_pn, t.g_pn, prm);
    T* LOSSKIT_RESTRICT ga = grad_row(R, 0, row, scratch);
    T* LOSSKIT_RESTRICT gp = grad_row(R, 1, row, scratch);
    T* LOSSKIT_RESTRICT gq = grad_row(R, 2, row, scratch);
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      T da = T(0), dp = T(0), dq = T(0);
      Dist::grad(s_ap, a[j], p[j], da, dp, prm);
      Dist::grad(s_an, a[j], q[j], da, dq, prm);
      if constexpr (kSwap) Dist::grad(s_pn, p[j], q[j], dp, dq, prm);
      ga[j] = da;
      gp[j] = dp;
      gq[j] = dq;
    }
    T* const written[3] = {ga, gp, gq};
    add_summed_rows(R, 3, written);
  }
}

template <class Dist, class T>
void triplet_dispatch(const EmbeddingRows<T>& R, int64_t r0, int64_t r1, T* scratch) {
  if (R.swap) triplet_rows<Dist, true>(R, r0, r1, scratch);
  else triplet_rows<Dist, false>(R, r0, r1, scratch);
}

// ---- the triplet loss on precomputed distances (dim = 1) ----------------------------------
template <bool kSwap, class T>
void triplet_distance_rows(const EmbeddingRows<T>& R, int64_t r0, int64_t r1) {
  for (int64_t row = r0; row < r1; ++row) {
    const T d_pn = kSwap ? R.x[2][row] : T(0);
    const TripletRow t =
        triplet_row<kSwap, T>(static_cast<double>(R.x[0][row]), static_cast<double>(R.x[1][row]),
                              static_cast<double>(d_pn), R.margin, row_grad(R, row));
    store_loss(R, row, t.loss);
    if (!R.backward) continue;
    if (R.grad[0]) R.grad[0][row] = static_cast<T>(t.g_ap);
    if (R.grad[1]) R.grad[1][row] = static_cast<T>(t.g_an);
    if (kSwap && R.grad[2]) R.grad[2][row] = static_cast<T>(t.g_pn);
  }
}

// ---- cosine_embedding_loss ----------------------------------------------------------------
// torch (aten Loss.cpp): cos = sum(x1 x2) / sqrt((sum(x1^2) + 1e-12) (sum(x2^2) + 1e-12));
// l = 1 - cos where y = 1, clamp_min(cos - margin, 0) where y = -1, 0 for any other label.
// With M_k = sum(x_k^2) + 1e-12 and denom = sqrt(M1 M2):
//   dcos/dx1_j = x2_j / denom - cos x1_j / M1,   dcos/dx2_j = x1_j / denom - cos x2_j / M2.
template <class T>
void cosine_embedding_rows(const EmbeddingRows<T>& R, int64_t r0, int64_t r1, T* scratch) {
  constexpr double kEps = 1e-12;
  const int64_t n = R.dim;
  for (int64_t row = r0; row < r1; ++row) {
    const T* LOSSKIT_RESTRICT x = input_row(R, 0, row);
    const T* LOSSKIT_RESTRICT y = input_row(R, 1, row);
    double sums[3];  // x.y, x.x, y.y
    ordered_sums<3>(n, sums, [&](int64_t j, double(&t)[3]) {
      const double a = static_cast<double>(x[j]), b = static_cast<double>(y[j]);
      t[0] = a * b;
      t[1] = a * a;
      t[2] = b * b;
    });
    const double dot = sums[0], sx = sums[1], sy = sums[2];
    const double m1 = sx + kEps, m2 = sy + kEps;
    const double denom = std::sqrt(m1 * m2);
    const double cos = dot / denom;
    const T label = R.target[R.repeat[2] ? 0 : row];
    const bool pos = label == T(1), neg = label == T(-1);
    const double hinge = cos - R.margin;
    const double loss = pos ? 1.0 - cos : (neg ? clamp_min(hinge, 0.0) : 0.0);
    store_loss(R, row, loss);
    if (!R.backward) continue;

    const double g = row_grad(R, row);
    const double gc = pos ? -g : ((neg && hinge >= 0.0) ? g : 0.0);  // dL/dcos
    const T a = static_cast<T>(gc / denom);
    const T bx = static_cast<T>(-gc * cos / m1);
    const T by = static_cast<T>(-gc * cos / m2);
    T* LOSSKIT_RESTRICT gx = grad_row(R, 0, row, scratch);
    T* LOSSKIT_RESTRICT gy = grad_row(R, 1, row, scratch);
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      gx[j] = a * y[j] + bx * x[j];
      gy[j] = a * x[j] + by * y[j];
    }
    T* const written[2] = {gx, gy};
    add_summed_rows(R, 2, written);
  }
}

template <class T>
void rows(const EmbeddingRows<T>& R, int64_t r0, int64_t r1, T* scratch) {
  using K = detail::EmbeddingKernelId;
  switch (R.kernel) {
    case K::CosineEmbedding: return cosine_embedding_rows(R, r0, r1, scratch);
    case K::TripletL2: return triplet_dispatch<L2>(R, r0, r1, scratch);
    case K::TripletL1: return triplet_dispatch<L1>(R, r0, r1, scratch);
    case K::TripletLp: return triplet_dispatch<Lp>(R, r0, r1, scratch);
    case K::TripletLinf: return triplet_dispatch<Linf>(R, r0, r1, scratch);
    case K::TripletCosine: return triplet_dispatch<Cosine>(R, r0, r1, scratch);
    case K::TripletSquared: return triplet_dispatch<Squared>(R, r0, r1, scratch);
    case K::TripletDistances:
      if (R.swap) return triplet_distance_rows<true>(R, r0, r1);
      return triplet_distance_rows<false>(R, r0, r1);
  }
}

}  // namespace
}  // namespace embedding

void embedding_rows(const detail::EmbeddingRows<float>& R, int64_t r0, int64_t r1, float* scratch) {
  embedding::rows(R, r0, r1, scratch);
}
void embedding_rows(const detail::EmbeddingRows<double>& R, int64_t r0, int64_t r1,
                    double* scratch) {
  embedding::rows(R, r0, r1, scratch);
}

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
