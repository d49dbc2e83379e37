// Interface between the embedding entry points (embedding.cpp, compiled once) and the kernels
// (embedding_kernels.cpp, compiled once per instruction set).
#pragma once

#include <cstdint>

#include "common/target.hpp"

namespace losskit::detail {

// One id per row kernel. The pairwise distance's p selects a kernel (2, 1, inf, any other p),
// so inner loops carry no loop-invariant branches.
enum class EmbeddingKernelId : int {
  CosineEmbedding,   // x = (input1, input2), target
  TripletL2,         // torch.pairwise_distance, p = 2
  TripletL1,         // p = 1
  TripletLp,         // any other finite p > 0
  TripletLinf,       // p = inf
  TripletCosine,     // 1 - cosine_similarity (eps 1e-8)
  TripletSquared,    // sum((x1 - x2)^2)
  TripletDistances,  // x = precomputed (dist_pos, dist_neg, dist_swap), dim = 1
};

// A batch of independent rows of `dim` values. Row r of input k starts at x[k] + r * dim, or at
// x[k] itself when repeat[k] (a broadcast input: its one row serves every row). Operand 2 is the
// negative of the triplet losses, the target of cosine_embedding_loss.
template <class T>
struct EmbeddingRows {
  EmbeddingKernelId kernel = EmbeddingKernelId::CosineEmbedding;
  int64_t dim = 0;
  const T* x[3] = {nullptr, nullptr, nullptr};
  bool repeat[3] = {false, false, false};
  const T* target = nullptr;    // cosine_embedding_loss: one label per row
  const T* grad_out = nullptr;  // per-row upstream gradient (Reduction::None), nullptr = ones
  double grad_scale = 1.0;      // reduction scale times a scalar grad_output
  double margin = 0.0;
  double p = 2.0;
  double eps = 0.0;
  bool swap = false;
  bool backward = false;                     // write gradients (pass 2 over each row)
  T* out = nullptr;                          // per-row loss in T (Reduction::None), or nullptr
  double* row_loss = nullptr;                // per-row loss in double (for a reduction), or nullptr
  T* grad[3] = {nullptr, nullptr, nullptr};  // nullptr: not wanted (written to scratch)
  // A repeated input's gradient is the sum of its rows' gradients: each row's, written to scratch
  // (grad[k] = nullptr), is added to grad_sum[k] (dim doubles), so it is never rounded row by row.
  double* grad_sum[3] = {nullptr, nullptr, nullptr};
};

}  // namespace losskit::detail

namespace losskit::kernels {
// Processes rows [r0, r1). `scratch` holds 3 * dim elements private to the calling thread; it
// receives the gradients that were not asked for, so the inner loops store unconditionally.
#define LOSSKIT_DECLARE_EMBEDDING(ns)                                                              \
  namespace ns {                                                                                   \
  void embedding_rows(const detail::EmbeddingRows<float>&, int64_t r0, int64_t r1,                 \
                      float* scratch);                                                             \
  void embedding_rows(const detail::EmbeddingRows<double>&, int64_t r0, int64_t r1,                \
                      double* scratch);                                                            \
  }
LOSSKIT_FOR_EACH_TARGET(LOSSKIT_DECLARE_EMBEDDING)
#undef LOSSKIT_DECLARE_EMBEDDING
}  // namespace losskit::kernels
