// info_nce_loss: the checks, the row normalisation and its backward, and the block loop (the
// caller's GEMM for the similarities and the two gradient products, the per-ISA kernels of
// contrastive_kernels.cpp for the softmax statistics and the gradient in place). The memory plan
// and the formulas are in losskit/contrastive.hpp.
#include "losskit/contrastive.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common/checks.hpp"
#include "common/cpu_dispatch.hpp"
#include "common/parallel.hpp"
#include "common/reduce.hpp"
#include "common/storage.hpp"
#include "contrastive/contrastive_kernels.hpp"

namespace losskit {

namespace {

using detail::fail_value;

constexpr const char* kFn = "info_nce_loss";
// Elements per thread-grain of the row and column passes (fixed: the sums never depend on it).
constexpr int64_t kGrainElems = 1 << 16;
// torch's F.normalize default: x / max(||x||, eps).
constexpr double kNormEps = 1e-12;

template <class T>
const detail::ContrastiveKernels<T>& contrastive_kernels() {
  if constexpr (std::is_same_v<T, float>)
    return *LOSSKIT_DISPATCH(const detail::ContrastiveKernels<float>*, contrastive_kernels_f32);
  else return *LOSSKIT_DISPATCH(const detail::ContrastiveKernels<double>*, contrastive_kernels_f64);
}

void check_options(const InfoNceOptions& o) {
  detail::check_reduction(kFn, o);
  detail::check_normalizer(kFn, o.reduction, o.normalizer);
  if (!(std::isfinite(o.temperature) && o.temperature > 0.0))
    fail_value(kFn, "temperature", "a finite number > 0", std::to_string(o.temperature));
}

// out = x / max(||x||, eps) per row, norm[r] = ||x_r|| (squares summed in double in
// column order, one row per thread). x may be 16-bit storage, read in place (out is float).
template <class S, class T>
void normalize_rows(const S* x, T* out, double* norm, int64_t N, int64_t D) {
  detail::parallel_for(0, N, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, D)),
                       [&](int64_t r0, int64_t r1, int) {
                         for (int64_t r = r0; r < r1; ++r) {
                           const S* xr = x + r * D;
                           double ss = 0.0;
                           for (int64_t d = 0; d < D; ++d)
                             ss += static_cast<double>(xr[d]) * static_cast<double>(xr[d]);
                           norm[r] = std::sqrt(ss);
                           const double inv = 1.0 / std::max(norm[r], kNormEps);
                           for (int64_t d = 0; d < D; ++d)
                             out[r * D + d] = static_cast<T>(static_cast<double>(xr[d]) * inv);
                         }
                       });
}

// Backward of normalize_rows, in place on g (d loss / d a -> d loss / d x): with a = x / n,
// d x = (d a - a (a . d a)) / n where ||x|| >= eps, and d a / eps below (the clamp's branch, whose
// norm gets no gradient: torch's clamp_min passes the gradient where ||x|| >= eps).
template <class T>
void normalize_rows_backward(T* g, const T* a, const double* norm, int64_t N, int64_t D) {
  detail::parallel_for(0, N, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, D)),
                       [&](int64_t r0, int64_t r1, int) {
                         for (int64_t r = r0; r < r1; ++r) {
                           T* gr = g + r * D;
                           const T* ar = a + r * D;
                           const double inv = 1.0 / std::max(norm[r], kNormEps);
                           double dot = 0.0;
                           if (norm[r] >= kNormEps)
                             for (int64_t d = 0; d < D; ++d)
                               dot += static_cast<double>(ar[d]) * static_cast<double>(gr[d]);
                           for (int64_t d = 0; d < D; ++d)
                             gr[d] = static_cast<T>(
                                 (static_cast<double>(gr[d]) - static_cast<double>(ar[d]) * dot) *
                                 inv);
                         }
                       });
}

// out = x converted, rows [0, N) of D: 16-bit rows widened to the float GEMM operands (without
// normalisation), or float gradients rounded once to 16-bit storage.
template <class From, class To>
void convert_rows(const From* x, To* out, int64_t N, int64_t D) {
  detail::parallel_for(0, N, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, D)),
                       [&](int64_t r0, int64_t r1, int) {
                         if constexpr (detail::is_half_v<From>)
                           detail::widen(x + r0 * D, out + r0 * D, (r1 - r0) * D);
                         else detail::narrow(x + r0 * D, out + r0 * D, (r1 - r0) * D);
                       });
}

}  // namespace

int64_t info_nce_block_rows(int64_t num_rows, int64_t itemsize, int64_t budget_bytes,
                            int64_t min_rows) {
  const int64_t row_bytes = std::max<int64_t>(1, num_rows) * std::max<int64_t>(1, itemsize);
  const int64_t rows = std::max<int64_t>({1, min_rows, budget_bytes / row_bytes});
  return std::max<int64_t>(1, std::min(rows, num_rows));
}

int64_t info_nce_workspace_size(int64_t num_rows, int64_t dim, int64_t block_rows,
                                bool half_storage) {
  const int64_t N = std::max<int64_t>(0, num_rows), D = std::max<int64_t>(0, dim);
  const int64_t rows = std::max<int64_t>(0, block_rows);
  // A, B and one block of S; 16-bit storage adds the float gradients (z2's whole, z1's a block)
  return 2 * N * D + rows * N + (half_storage ? N * D + rows * D : 0);
}

double info_nce_mean_normalizer(int64_t num_rows, const InfoNceOptions& o) {
  check_options(o);
  detail::check_dividing_reduction(kFn, o.reduction);
  return static_cast<double>(num_rows);
}

namespace {

// The loss for storage S (float, double, or 16-bit read in place), computed in T = compute_t<S>.
// 16-bit storage differs only where it is read and written: its GEMM operands A and B are float
// (the normalised rows, as float computes them, or the rows widened), and its gradients are
// computed into float workspace (z1's a block at a time, z2's summed over the blocks) and rounded
// once into the 16-bit outputs, so every result is float's, rounded once.
template <class S>
void run_info_nce(View<S> z1, View<S> z2, View<S> grad_output, MutView<S> output,
                  MutView<S> grad_z1, MutView<S> grad_z2, MutView<detail::compute_t<S>> workspace,
                  int64_t block_rows, const InfoNceOptions& o,
                  LinearCrossEntropyGemm<detail::compute_t<S>> gemm) {
  using T = detail::compute_t<S>;
  constexpr bool half = detail::is_half_v<S>;
  // ---- checks, all before any work
  check_options(o);
  detail::check_required(kFn, "z1", z1);
  detail::check_required(kFn, "z2", z2);
  if (z1.dim() != 2)
    fail_value(kFn, "z1", "an (N, D) array of embeddings", "shape " + shape_to_string(z1.shape));
  detail::check_shape_equal(kFn, "z2", z2.shape, z1.shape, "z1's shape");
  const int64_t N = z1.shape[0], D = z1.shape[1];
  const bool none = o.reduction == Reduction::None;
  const Shape loss_shape = none ? Shape{N} : Shape{};
  if (output.present() || !output.shape.empty())
    detail::check_output(kFn, "output", output, loss_shape);
  if (grad_output.present() || !grad_output.shape.empty()) {
    detail::check_required(kFn, "grad_output", grad_output);
    detail::check_shape_equal(kFn, "grad_output", grad_output.shape, loss_shape,
                              none ? "the loss's shape" : "a scalar, shape");
  }
  if (grad_z1.present()) detail::check_output(kFn, "grad_z1", grad_z1, z1.shape);
  if (grad_z2.present()) detail::check_output(kFn, "grad_z2", grad_z2, z2.shape);
  const bool want_grad = grad_z1.present() || grad_z2.present();
  if (block_rows < 1) fail_value(kFn, "block_rows", "a number >= 1", std::to_string(block_rows));
  const int64_t rows = std::min(block_rows, std::max<int64_t>(N, 1));
  const int64_t need = info_nce_workspace_size(N, D, rows, half);
  if (workspace.numel() < need || (need > 0 && !workspace.present()))
    fail_value(kFn, "workspace", std::to_string(need) + " elements (info_nce_workspace_size)",
               std::to_string(workspace.numel()));
  detail::check_aligned(kFn, "workspace", workspace.data);
  if (!gemm.fn) fail_value(kFn, "gemm", "a GEMM function", "none");
  detail::DisjointArrays(kFn)
      .read("z1", z1)
      .read("z2", z2)
      .read("grad_output", grad_output)
      .write("output", output)
      .write("grad_z1", grad_z1)
      .write("grad_z2", grad_z2)
      .write("workspace", workspace)
      .check();

  const double divisor = detail::mean_divisor(o.normalizer, static_cast<double>(N));
  const double wr = o.symmetric ? 0.5 : 1.0, wc = o.symmetric ? 0.5 : 0.0;
  if (N == 0) {
    if (output.present() && !none)
      output.data[0] =
          static_cast<S>(static_cast<T>(o.reduction == Reduction::Mean ? 0.0 / divisor : 0.0));
    return;
  }

  // ---- the normalised embeddings (or the inputs themselves); S = alpha A B^T
  const T alpha = static_cast<T>(1.0 / o.temperature);
  std::vector<double> norm1, norm2;
  const T* A = nullptr;
  const T* B = nullptr;
  if constexpr (!half) {
    A = z1.data;
    B = z2.data;
  }
  T* const sim = workspace.data + 2 * N * D;
  // 16-bit: z1's gradient block (rows x D) and z2's gradient (N x D), in float
  T* const grad_a_block = half ? sim + rows * N : nullptr;
  T* grad_b = half ? sim + rows * N + rows * D : nullptr;
  if constexpr (!half) grad_b = grad_z2.data;
  if (o.normalize) {
    norm1.resize(static_cast<size_t>(N));
    norm2.resize(static_cast<size_t>(N));
    normalize_rows(z1.data, workspace.data, norm1.data(), N, D);
    normalize_rows(z2.data, workspace.data + N * D, norm2.data(), N, D);
    A = workspace.data;
    B = workspace.data + N * D;
  } else if constexpr (half) {
    convert_rows(z1.data, workspace.data, N, D);
    convert_rows(z2.data, workspace.data + N * D, N, D);
    A = workspace.data;
    B = workspace.data + N * D;
  }

  const auto& k = contrastive_kernels<T>();
  std::vector<double> row_lse(static_cast<size_t>(N)), diag(static_cast<size_t>(N));
  std::vector<double> col_ref, col_sum, block_ref, block_sum;
  if (o.symmetric) {
    col_ref.assign(static_cast<size_t>(N), -std::numeric_limits<double>::infinity());
    col_sum.assign(static_cast<size_t>(N), 0.0);
    block_ref.resize(static_cast<size_t>(N));
    block_sum.resize(static_cast<size_t>(N));
  }
  const int64_t row_grain = std::max<int64_t>(1, kGrainElems / N);
  const int64_t chunks = (N + detail::kInfoNceColumnChunk - 1) / detail::kInfoNceColumnChunk;

  const auto similarities = [&](int64_t r0, int64_t n) {
    gemm.fn(gemm.context, false, true, n, N, D, alpha, A + r0 * D, D, B, D, T(0), sim, N);
  };
  // Row statistics of block [r0, r0 + n) and (symmetric) its column statistics, merged into the
  // running ones in block order.
  const auto statistics = [&](int64_t r0, int64_t n) {
    detail::InfoNceBlock<T> blk;
    blk.sim = sim;
    blk.n = n;
    blk.N = N;
    blk.row0 = r0;
    blk.row_lse = row_lse.data() + r0;
    blk.diag = diag.data() + r0;
    detail::parallel_for(0, n, row_grain,
                         [&](int64_t a, int64_t b, int) { k.row_stats(blk, a, b); });
    if (!o.symmetric) return;
    blk.col_ref = block_ref.data();
    blk.col_sum = block_sum.data();
    detail::parallel_for(0, chunks,
                         std::max<int64_t>(1, kGrainElems / (n * detail::kInfoNceColumnChunk)),
                         [&](int64_t a, int64_t b, int) {
                           for (int64_t q = a; q < b; ++q)
                             k.column_stats(blk, q * detail::kInfoNceColumnChunk,
                                            std::min(N, (q + 1) * detail::kInfoNceColumnChunk));
                         });
    // Merged in block order: (R, s) and (m, t) give (max(R, m), s e^(R - max) + t e^(m - max)). A
    // block with nothing above -inf adds its sum (0, or NaN) and leaves the reference alone.
    for (int64_t c = 0; c < N; ++c) {
      const double m = block_ref[c];
      if (m == -std::numeric_limits<double>::infinity()) {
        col_sum[c] += block_sum[c];
        continue;
      }
      const double R = std::max(col_ref[c], m);
      col_sum[c] = col_sum[c] * std::exp(col_ref[c] - R) + block_sum[c] * std::exp(m - R);
      col_ref[c] = R;
    }
  };

  // ---- per-sample gradient scales: d loss / d l_n
  std::vector<T> row_lse_t, row_scale_t, col_lse_t, col_scale_t;
  std::vector<double> sample_scale;
  if (want_grad) {
    const double go =
        (!none && grad_output.present()) ? static_cast<double>(grad_output.data[0]) : 1.0;
    const double scale = o.reduction == Reduction::Mean ? go / divisor : go;
    sample_scale.resize(static_cast<size_t>(N));
    for (int64_t r = 0; r < N; ++r)
      sample_scale[r] =
          none && grad_output.present() ? static_cast<double>(grad_output.data[r]) : scale;
    row_lse_t.resize(static_cast<size_t>(rows));
    row_scale_t.resize(static_cast<size_t>(rows));
  }
  const auto gradient = [&](int64_t r0, int64_t n) {
    for (int64_t r = 0; r < n; ++r) {
      row_lse_t[r] = static_cast<T>(row_lse[r0 + r]);
      row_scale_t[r] = static_cast<T>(wr * sample_scale[r0 + r]);
    }
    detail::InfoNceBlock<T> blk;
    blk.sim = sim;
    blk.n = n;
    blk.N = N;
    blk.row0 = r0;
    blk.row_lse_in = row_lse_t.data();
    blk.row_scale = row_scale_t.data();
    if (o.symmetric) {
      blk.col_lse = col_lse_t.data();
      blk.col_scale = col_scale_t.data();
    }
    detail::parallel_for(0, n, row_grain,
                         [&](int64_t a, int64_t b, int) { k.grad_rows(blk, a, b); });
    // dA[block] = alpha G B;  dB (+)= alpha G^T A[block]
    // and z1's rows through the normalisation's backward while the block is in cache
    if (grad_z1.present()) {
      T* ga = grad_a_block;
      if constexpr (!half) ga = grad_z1.data + r0 * D;
      gemm.fn(gemm.context, false, false, n, D, N, alpha, sim, N, B, D, T(0), ga, D);
      if (o.normalize) normalize_rows_backward(ga, A + r0 * D, norm1.data() + r0, n, D);
      if constexpr (half) convert_rows(ga, grad_z1.data + r0 * D, n, D);
    }
    if (grad_z2.present())
      gemm.fn(gemm.context, true, false, N, D, n, alpha, sim, N, A + r0 * D, D,
              r0 == 0 ? T(0) : T(1), grad_b, D);
  };
  const auto finish_columns = [&] {
    if (!o.symmetric) return;
    // now the column lse (a column of -inf only: -inf, its reference taken as 0 as for the rows)
    for (int64_t c = 0; c < N; ++c)
      col_ref[c] = (col_ref[c] == -std::numeric_limits<double>::infinity() ? 0.0 : col_ref[c]) +
                   std::log(col_sum[c]);
    if (!want_grad) return;
    col_lse_t.resize(static_cast<size_t>(N));
    col_scale_t.resize(static_cast<size_t>(N));
    for (int64_t c = 0; c < N; ++c) {
      col_lse_t[c] = static_cast<T>(col_ref[c]);
      col_scale_t[c] = static_cast<T>(wc * sample_scale[c]);
    }
  };

  // ---- the passes: statistics (and the one-sided gradient) per block; the symmetric gradient
  // after every column is complete, recomputing S unless one block held it all.
  const bool single = rows >= N;
  for (int64_t r0 = 0; r0 < N; r0 += rows) {
    const int64_t n = std::min(rows, N - r0);
    similarities(r0, n);
    statistics(r0, n);
    if (want_grad && !o.symmetric) gradient(r0, n);
  }
  finish_columns();
  if (want_grad && o.symmetric) {
    for (int64_t r0 = 0; r0 < N; r0 += rows) {
      const int64_t n = std::min(rows, N - r0);
      if (!single) similarities(r0, n);
      gradient(r0, n);
    }
  }
  // z2's gradient is complete only after the last block
  if (grad_z2.present() && o.normalize) normalize_rows_backward(grad_b, B, norm2.data(), N, D);
  if constexpr (half)
    if (grad_z2.present()) convert_rows(grad_b, grad_z2.data, N, D);

  // ---- the losses: l_n = wr (row lse - S[n, n]) + wc (column lse - S[n, n])
  if (output.present()) {
    std::vector<double> loss(static_cast<size_t>(N));
    for (int64_t r = 0; r < N; ++r)
      loss[r] = wr * (row_lse[r] - diag[r]) + (o.symmetric ? wc * (col_ref[r] - diag[r]) : 0.0);
    if (none) {
      for (int64_t r = 0; r < N; ++r) output.data[r] = static_cast<S>(static_cast<T>(loss[r]));
    } else {
      const double total = detail::combine_partials(loss.data(), N);
      output.data[0] =
          static_cast<S>(static_cast<T>(o.reduction == Reduction::Mean ? total / divisor : total));
    }
  }
}

}  // namespace

template <class T>
void info_nce_loss_forward_backward(View<T> z1, View<T> z2, View<T> grad_output, MutView<T> output,
                                    MutView<T> grad_z1, MutView<T> grad_z2, MutView<T> workspace,
                                    int64_t block_rows, const InfoNceOptions& options,
                                    LinearCrossEntropyGemm<T> gemm) {
  run_info_nce<T>(z1, z2, grad_output, output, grad_z1, grad_z2, workspace, block_rows, options,
                  gemm);
}

#define LOSSKIT_HALF_OVERLOAD(S)                                                                   \
  void info_nce_loss_forward_backward(View<S> z1, View<S> z2, View<S> grad_output,                 \
                                      MutView<S> output, MutView<S> grad_z1, MutView<S> grad_z2,   \
                                      MutView<float> workspace, int64_t block_rows,                \
                                      const InfoNceOptions& options,                               \
                                      LinearCrossEntropyGemm<float> gemm) {                        \
    run_info_nce<S>(z1, z2, grad_output, output, grad_z1, grad_z2, workspace, block_rows, options, \
                    gemm);                                                                         \
  }
LOSSKIT_HALF_OVERLOAD(bfloat16)
LOSSKIT_HALF_OVERLOAD(float16)
#undef LOSSKIT_HALF_OVERLOAD

#define LOSSKIT_INSTANTIATE(T)                                                                     \
  template void info_nce_loss_forward_backward<T>(View<T>, View<T>, View<T>, MutView<T>,           \
                                                  MutView<T>, MutView<T>, MutView<T>, int64_t,     \
                                                  const InfoNceOptions&,                           \
                                                  LinearCrossEntropyGemm<T>);
LOSSKIT_INSTANTIATE(float)
LOSSKIT_INSTANTIATE(double)
#undef LOSSKIT_INSTANTIATE

}  // namespace losskit
