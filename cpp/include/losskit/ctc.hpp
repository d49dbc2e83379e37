// Connectionist temporal classification loss (torch.nn.CTCLoss, torch.nn.functional.ctc_loss).
//
// The formula, the gradient, shapes and edge values are documented once, in the docstring of
// losskit.functional.ctc_loss (python/losskit/_functional/ctc.py) and in docs/ctc.md.
//
// Arguments, in torch's order:
// * log_probs: (T, N, C) or unbatched (T, C), float, double, bfloat16 or float16 (read in place;
//   outputs and gradients of that type, rounded once), C-contiguous.
// * targets: int64, padded (N, S) (sample b uses targets[b, :target_lengths[b]]; the padding is
//   never read) or concatenated 1-D (sum(target_lengths),) with the samples one after another.
//   Unbatched log_probs take a (target_length,) or (1, S) target.
// * input_lengths, target_lengths: int64, N values each (any shape with N elements; one value for
//   unbatched log_probs).
// * output: shape ctc_loss_output_shape(log_probs.shape, reduction).
// * grad_output: a single value for a reduced loss, the output's shape for Reduction::None; in
//   ctc_loss_backward and ctc_loss_forward_backward an absent grad_output means 1 (ones).
// * grad_log_probs: log_probs' shape. It is exactly torch's gradient, which is the derivative plus
//   grad_output * exp(log_probs) at every t < input_length (torch assumes log_probs comes from a
//   log_softmax, whose backward cancels that term), and 0 for t >= input_length.
// * workspace (optional): caller-owned scratch, 8-byte aligned, of at least
//   ctc_loss_workspace_size(..., 1) bytes; with k times that, up to k threads run (warp-ctc
//   style). Absent ({}), the core uses a buffer kept per calling thread and grown when needed.
// All checks, including the data-dependent ones (lengths, label values), run before any work and
// throw losskit::ValueError, or losskit::IndexError for a label outside [0, C). Values are computed
// in double whatever T is; the reduced loss is bitwise the same for any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>

#include "losskit/half.hpp"
#include "losskit/reduction.hpp"
#include "losskit/view.hpp"

namespace losskit {

struct CtcLossOptions {
  int64_t blank = 0;
  Reduction reduction = Reduction::Mean;
  bool zero_infinity = false;
  Normalizer normalizer{};  // see reduction.hpp
};

// Caller-owned scratch memory; default-constructed means "let the core allocate".
struct CtcWorkspace {
  void* data = nullptr;
  size_t bytes = 0;
};

// Shape of the output: {} when reduced or unbatched, {N} for Reduction::None on (T, N, C).
Shape ctc_loss_output_shape(const Shape& log_probs_shape, Reduction reduction);

// Bytes of workspace that `num_threads` threads need (0 means losskit::get_num_threads()) for
// log_probs of shape (T, N, C) or (T, C) and targets no longer than max_target_length. `backward`
// says whether the gradient is wanted (ctc_loss_backward / ctc_loss_forward_backward): then each
// thread keeps a T x (2 max_target_length + 12) table of log alphas, otherwise two rows.
size_t ctc_loss_workspace_size(const Shape& log_probs_shape, int64_t max_target_length,
                               bool backward, int num_threads = 0);

template <class T>
void ctc_loss(View<T> log_probs, View<int64_t> targets, View<int64_t> input_lengths,
              View<int64_t> target_lengths, MutView<T> output, const CtcLossOptions& options = {},
              CtcWorkspace workspace = {});

template <class T>
void ctc_loss_backward(View<T> grad_output, View<T> log_probs, View<int64_t> targets,
                       View<int64_t> input_lengths, View<int64_t> target_lengths,
                       MutView<T> grad_log_probs, const CtcLossOptions& options = {},
                       CtcWorkspace workspace = {});

template <class T>
void ctc_loss_forward_backward(View<T> log_probs, View<int64_t> targets,
                               View<int64_t> input_lengths, View<int64_t> target_lengths,
                               View<T> grad_output, MutView<T> output, MutView<T> grad_log_probs,
                               const CtcLossOptions& options = {}, CtcWorkspace workspace = {});

// The divisor 'mean' uses for these inputs, without computing the loss: the batch size N ('mean'
// first divides each sample's loss by its target length, clamped to at least 1, then averages;
// a Normalizer replaces N, never the target lengths). Every check of the loss runs (lengths and
// labels too); options.reduction must be 'mean' (ValueError otherwise).
template <class T>
double ctc_loss_mean_normalizer(View<T> log_probs, View<int64_t> targets,
                                View<int64_t> input_lengths, View<int64_t> target_lengths,
                                const CtcLossOptions& options = {});

}  // namespace losskit
