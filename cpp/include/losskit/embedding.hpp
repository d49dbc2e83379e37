// Embedding losses (torch.nn: CosineEmbeddingLoss, TripletMarginLoss,
// TripletMarginWithDistanceLoss).
//
// Formulas, gradients and edge values are documented once, in the Python docstrings of
// losskit.functional (python/losskit/_functional/embedding.py) and in docs/embedding.md.
//
// Every loss has three entry points with torch's argument order:
//   NAME(inputs..., output, options)
//   NAME_backward(grad_output, inputs..., grads..., options)
//   NAME_forward_backward(inputs..., grad_output, output, grads..., options)
// * Inputs are C-contiguous views. The last dimension holds the D values of one vector; every
//   other dimension indexes rows, which are independent. Rows broadcast as in torch (a (1, D)
//   positive for an (N, D) anchor; cosine_embedding_loss's target too); the vector dimension
//   must be the same for all inputs (torch would broadcast a size-1 one). An input of a single
//   row is read in place for every row and its gradient summed in double over fixed blocks of
//   rows (no input-sized temporary, bitwise the same on any thread count); a broadcast over some
//   of several row dimensions ((1, B, D) beside (A, B, D)) expands the smaller inputs.
// * The unreduced output has the broadcast inputs' shape without the last dimension
//   (triplet_output_shape, cosine_embedding_output_shape); a reduced one has shape {}.
// * grad_output is a 0-d view for reduced losses and an output-shaped view for Reduction::None;
//   an absent grad_output means 1 (ones), in NAME_backward as in NAME_forward_backward.
// * Each gradient has the shape of its input; pass `{}` for gradients not wanted.
// * Every row's D values are read once for forward and backward together (a second sweep over
//   the row runs from cache).
// All checks run before any work and throw losskit::ValueError / TypeError.
// float and double are instantiated, and so are losskit::bfloat16 and losskit::float16
// (losskit/half.hpp): 16-bit buffers are read in place, computed in float (row sums in double)
// and every output rounded once to 16 bits, a single broadcast row's gradient too. Rows broadcast
// over some of several row dimensions are expanded as for float, and such an input's gradient is
// summed from the rows' 16-bit gradients (so it may differ from the float computation rounded by
// more than one 16-bit ulp; the Python layer computes that case in float32).
#pragma once

#include "losskit/reduction.hpp"
#include "losskit/view.hpp"

namespace losskit {

// Shape of an unreduced embedding loss of inputs shaped `input` ({} for 0-d or 1-d inputs).
Shape embedding_output_shape(const Shape& input);
// Unreduced output shapes with torch's broadcasting of rows (what the loss will have when its
// checks pass; these never throw).
Shape cosine_embedding_output_shape(const Shape& input1, const Shape& input2, const Shape& target);
Shape triplet_output_shape(const Shape& anchor, const Shape& positive, const Shape& negative);

struct CosineEmbeddingLossOptions {
  Reduction reduction = Reduction::Mean;
  double margin = 0.0;
  Normalizer normalizer{};  // see reduction.hpp
};

struct TripletMarginLossOptions {
  Reduction reduction = Reduction::Mean;
  double margin = 1.0;  // > 0
  double p = 2.0;       // > 0 (inf allowed)
  double eps = 1e-6;    // added to the difference, as torch's pairwise_distance
  bool swap = false;
  Normalizer normalizer{};  // see reduction.hpp
};

// The distances computed in the core for triplet_margin_with_distance_loss.
enum class TripletDistance {
  Euclidean,         // torch.pairwise_distance(x1, x2): ||x1 - x2 + 1e-6||_2 (the default)
  Cosine,            // 1 - torch.cosine_similarity(x1, x2, dim=-1), eps = 1e-8
  SquaredEuclidean,  // sum((x1 - x2)^2, -1)
};

// Parses "euclidean", "cosine", "squared_euclidean"; ValueError naming `function` otherwise.
TripletDistance parse_triplet_distance(const char* name, const char* function);

struct TripletMarginWithDistanceLossOptions {
  Reduction reduction = Reduction::Mean;
  TripletDistance distance = TripletDistance::Euclidean;
  double margin = 1.0;  // > 0
  bool swap = false;
  Normalizer normalizer{};  // see reduction.hpp
};

// ---- cosine_embedding_loss: inputs (N, D) with target (N,), or (D,) with a 0-d target ------
template <class T>
void cosine_embedding_loss(View<T> input1, View<T> input2, View<T> target, MutView<T> output,
                           const CosineEmbeddingLossOptions& options = {});
template <class T>
void cosine_embedding_loss_backward(View<T> grad_output, View<T> input1, View<T> input2,
                                    View<T> target, MutView<T> grad_input1, MutView<T> grad_input2,
                                    const CosineEmbeddingLossOptions& options = {});
template <class T>
void cosine_embedding_loss_forward_backward(View<T> input1, View<T> input2, View<T> target,
                                            View<T> grad_output, MutView<T> output,
                                            MutView<T> grad_input1, MutView<T> grad_input2,
                                            const CosineEmbeddingLossOptions& options = {});

// ---- triplet_margin_loss: anchor, positive, negative of one shape (*, D) -------------------
template <class T>
void triplet_margin_loss(View<T> anchor, View<T> positive, View<T> negative, MutView<T> output,
                         const TripletMarginLossOptions& options = {});
template <class T>
void triplet_margin_loss_backward(View<T> grad_output, View<T> anchor, View<T> positive,
                                  View<T> negative, MutView<T> grad_anchor,
                                  MutView<T> grad_positive, MutView<T> grad_negative,
                                  const TripletMarginLossOptions& options = {});
template <class T>
void triplet_margin_loss_forward_backward(View<T> anchor, View<T> positive, View<T> negative,
                                          View<T> grad_output, MutView<T> output,
                                          MutView<T> grad_anchor, MutView<T> grad_positive,
                                          MutView<T> grad_negative,
                                          const TripletMarginLossOptions& options = {});

// ---- triplet_margin_with_distance_loss (a built-in distance) --------------------------------
template <class T>
void triplet_margin_with_distance_loss(View<T> anchor, View<T> positive, View<T> negative,
                                       MutView<T> output,
                                       const TripletMarginWithDistanceLossOptions& options = {});
template <class T>
void triplet_margin_with_distance_loss_backward(
    View<T> grad_output, View<T> anchor, View<T> positive, View<T> negative, MutView<T> grad_anchor,
    MutView<T> grad_positive, MutView<T> grad_negative,
    const TripletMarginWithDistanceLossOptions& options = {});
template <class T>
void triplet_margin_with_distance_loss_forward_backward(
    View<T> anchor, View<T> positive, View<T> negative, View<T> grad_output, MutView<T> output,
    MutView<T> grad_anchor, MutView<T> grad_positive, MutView<T> grad_negative,
    const TripletMarginWithDistanceLossOptions& options = {});

// ---- the triplet loss on precomputed distances (for a distance the core does not know) -----
// dist_pos = d(anchor, positive), dist_neg = d(anchor, negative) and, with options.swap,
// dist_swap = d(positive, negative): arrays of one shape (the output's). Computes the loss
// (output, optional) and the gradients with respect to the distances (each optional; grad_swap
// only with swap), from grad_output (absent means 1 or ones). options.distance is ignored.
template <class T>
void triplet_margin_loss_from_distances(View<T> dist_pos, View<T> dist_neg, View<T> dist_swap,
                                        View<T> grad_output, MutView<T> output,
                                        MutView<T> grad_dist_pos, MutView<T> grad_dist_neg,
                                        MutView<T> grad_dist_swap,
                                        const TripletMarginWithDistanceLossOptions& options = {});

// The checks a custom distance's call makes before it calls the distance (reduction, margin,
// and torch's rule that the three inputs have the same number of dimensions).
void triplet_margin_with_distance_loss_check(const Shape& anchor, const Shape& positive,
                                             const Shape& negative,
                                             const TripletMarginWithDistanceLossOptions& options);

// ---- NAME_mean_normalizer -------------------------------------------------------------
// The divisor 'mean' uses for these inputs, without computing the loss: the number of rows (the
// unreduced loss's size, after row broadcasting). The loss's shape checks run; options.reduction
// must be 'mean' (ValueError otherwise). See Normalizer (reduction.hpp). For a custom distance
// (triplet_margin_loss_from_distances) it is the number of distances.
template <class T>
double cosine_embedding_loss_mean_normalizer(View<T> input1, View<T> input2, View<T> target,
                                             const CosineEmbeddingLossOptions& options = {});
template <class T>
double triplet_margin_loss_mean_normalizer(View<T> anchor, View<T> positive, View<T> negative,
                                           const TripletMarginLossOptions& options = {});
template <class T>
double triplet_margin_with_distance_loss_mean_normalizer(
    View<T> anchor, View<T> positive, View<T> negative,
    const TripletMarginWithDistanceLossOptions& options = {});

}  // namespace losskit
