// The one reduction type shared by every loss.
#pragma once

#include <string_view>

namespace losskit {

// How per-element losses are combined: as they are ('none'), averaged ('mean'), added ('sum'),
// or added and divided by the batch size ('batchmean', kl_div only).
enum class Reduction { None, Mean, Sum, BatchMean };

// Parses torch's reduction names; throws losskit::ValueError naming `function` otherwise.
// `allow_batchmean` is true only for kl_div.
Reduction parse_reduction(std::string_view name, std::string_view function,
                          bool allow_batchmean = false);

// The torch spelling of a reduction ("none", "mean", "sum", "batchmean").
std::string_view reduction_name(Reduction reduction);

}  // namespace losskit
