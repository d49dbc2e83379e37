// The one reduction type shared by every loss.
#pragma once

#include <optional>
#include <string_view>

namespace losskit {

// How per-element losses are combined: as they are ('none'), averaged ('mean'), added ('sum'),
// or added and divided by the batch size ('batchmean', kl_div only).
enum class Reduction { None, Mean, Sum, BatchMean };

// A global divisor for the dividing reductions. Every loss options struct ends with
// `Normalizer normalizer{};`. Absent (the default), 'mean' divides by the loss's own divisor (the
// element count, the weight of the counted targets, the batch size, ...; NAME_mean_normalizer
// returns it without computing the loss). Given, 'mean' and 'batchmean' divide by it instead, so
// summing a loss over the parts of a batch (gradient accumulation, data-parallel processes), each
// part called with the sum of the parts' own divisors, gives the whole batch's mean and gradients.
// It must be finite and > 0, and only goes with 'mean' or 'batchmean' (ValueError otherwise).
// It is the last member so that brace initialisation written before it existed keeps its meaning.
using Normalizer = std::optional<double>;

// Parses torch's reduction names; throws losskit::ValueError naming `function` otherwise.
// `allow_batchmean` is true only for kl_div.
Reduction parse_reduction(std::string_view name, std::string_view function,
                          bool allow_batchmean = false);

// The torch spelling of a reduction ("none", "mean", "sum", "batchmean").
std::string_view reduction_name(Reduction reduction);

}  // namespace losskit
