// What one call computes. Every loss has three entry points, NAME (the value), NAME_backward
// (the gradients) and NAME_forward_backward (both, in one fused pass); each builds a Request and
// hands it to its family's single driver, which checks and runs it.
#pragma once

#include <array>

#include "losskit/view.hpp"

namespace losskit::detail {

// K: the number of gradients the loss can produce (in the order its entry points take them).
template <class T, int K>
struct Request {
  bool forward = false;
  bool backward = false;
  View<T> grad_output;                // absent: 1 (ones for Reduction::None)
  MutView<T> output;                  // the loss (forward)
  std::array<MutView<T>, K> grads{};  // absent where a gradient is not wanted

  static Request forward_only(MutView<T> output) {
    Request r;
    r.forward = true;
    r.output = output;
    return r;
  }
  static Request backward_only(View<T> grad_output, std::array<MutView<T>, K> grads) {
    Request r;
    r.backward = true;
    r.grad_output = grad_output;
    r.grads = grads;
    return r;
  }
  static Request fused(View<T> grad_output, MutView<T> output, std::array<MutView<T>, K> grads) {
    Request r = backward_only(grad_output, grads);
    r.forward = true;
    r.output = output;
    return r;
  }
};

}  // namespace losskit::detail
