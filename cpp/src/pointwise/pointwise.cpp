// Entry points of the pointwise family: per-loss checks, then the element-wise driver with this
// family's kernel for the active instruction set.
#include "losskit/pointwise.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/checks.hpp"
#include "common/cpu_dispatch.hpp"
#include "common/elementwise.hpp"
#include "common/parallel.hpp"
#include "pointwise/pointwise_kernels.hpp"

namespace losskit {
namespace {

using detail::ElementwiseProblem;
using detail::PointwiseCall;
using detail::PointwiseLoss;
using detail::PointwiseParams;

// The kernels compute in compute_t<T>: float for bfloat16 and float16 storage.
template <class T>
detail::SegmentKernels<T> pointwise_kernels() {
  using Storage = detail::SegmentKernel<T>;
  using Compute = detail::SegmentKernel<T, detail::compute_t<T>>;
  return {LOSSKIT_DISPATCH(Storage, pointwise_segment),
          LOSSKIT_DISPATCH(Compute, pointwise_segment)};
}

using detail::check_reduction;

// A problem with the given operands and the options' reduction and normalizer; the modes below
// fill in what to compute.
template <class T, class Options>
ElementwiseProblem<T> make_problem(const char* fn, const Options& o,
                                   std::initializer_list<std::pair<View<T>, const char*>> ops) {
  ElementwiseProblem<T> p;
  p.function = fn;
  p.reduction = o.reduction;
  p.normalizer = o.normalizer;
  for (const auto& [view, name] : ops) {
    p.operands[p.noperands] = view;
    p.names[p.noperands] = name;
    ++p.noperands;
  }
  return p;
}

template <class T>
double run(ElementwiseProblem<T>& p, PointwiseLoss loss, PointwiseParams params = {}) {
  const PointwiseCall call{loss, params};
  return detail::run_elementwise(p, pointwise_kernels<T>(), &call);
}

// NAME_mean_normalizer: the driver's checks and its own divisor, with nothing computed.
template <class T>
double mean_normalizer(ElementwiseProblem<T> p) {
  detail::check_dividing_reduction(p.function, p.reduction);
  p.request = {};
  return run(p, PointwiseLoss::Mse);  // the kernel is never called for an empty request
}

template <class T>
using Request = detail::Request<T, detail::kMaxOperands>;

// The gradients an entry point was given, in operand order, padded with absent ones.
template <class T>
std::array<MutView<T>, detail::kMaxOperands> grad_array(std::initializer_list<MutView<T>> grads) {
  std::array<MutView<T>, detail::kMaxOperands> out{};
  std::copy(grads.begin(), grads.end(), out.begin());
  return out;
}

template <class T>
void forward(ElementwiseProblem<T> p, MutView<T> output, PointwiseLoss loss,
             PointwiseParams params = {}) {
  p.request = Request<T>::forward_only(output);
  run(p, loss, params);
}

template <class T>
void backward(ElementwiseProblem<T> p, View<T> grad_output, std::initializer_list<MutView<T>> grads,
              PointwiseLoss loss, PointwiseParams params = {}) {
  p.request = Request<T>::backward_only(grad_output, grad_array(grads));
  run(p, loss, params);
}

template <class T>
void forward_backward(ElementwiseProblem<T> p, View<T> grad_output, MutView<T> output,
                      std::initializer_list<MutView<T>> grads, PointwiseLoss loss,
                      PointwiseParams params = {}) {
  p.request = Request<T>::fused(grad_output, output, grad_array(grads));
  run(p, loss, params);
}

// torch's F.l1_loss / mse_loss / huber_loss require weight to have the input's exact shape.
template <class T>
void weight_like_input(ElementwiseProblem<T>& p, View<T> weight, detail::WeightedMean mean) {
  if (!weight.present()) return;
  detail::check_shape_equal(p.function, "weight", weight.shape, p.operands[0].shape,
                            "the input's shape");
  p.weight = weight;
  p.weighted_mean = mean;
}

template <class T>
ElementwiseProblem<T> l1_problem(View<T> input, View<T> target, View<T> weight,
                                 const L1LossOptions& o) {
  check_reduction("l1_loss", o);
  auto p = make_problem<T>("l1_loss", o, {{input, "input"}, {target, "target"}});
  weight_like_input(p, weight, detail::WeightedMean::ByWeightSum);
  return p;
}

template <class T>
ElementwiseProblem<T> mse_problem(View<T> input, View<T> target, View<T> weight,
                                  const MseLossOptions& o) {
  check_reduction("mse_loss", o);
  auto p = make_problem<T>("mse_loss", o, {{input, "input"}, {target, "target"}});
  weight_like_input(p, weight, detail::WeightedMean::ByWeightSum);
  return p;
}

template <class T>
ElementwiseProblem<T> huber_problem(View<T> input, View<T> target, View<T> weight,
                                    const HuberLossOptions& o) {
  check_reduction("huber_loss", o);
  if (!(o.delta > 0))
    detail::fail_value("huber_loss", "delta", "a positive number", std::to_string(o.delta));
  auto p = make_problem<T>("huber_loss", o, {{input, "input"}, {target, "target"}});
  weight_like_input(p, weight, detail::WeightedMean::ByCount);  // torch: weighted_loss.mean()
  return p;
}

template <class T>
ElementwiseProblem<T> smooth_l1_problem(View<T> input, View<T> target,
                                        const SmoothL1LossOptions& o) {
  check_reduction("smooth_l1_loss", o);
  if (!(o.beta >= 0))
    detail::fail_value("smooth_l1_loss", "beta", "a non-negative number", std::to_string(o.beta));
  return make_problem<T>("smooth_l1_loss", o, {{input, "input"}, {target, "target"}});
}
// beta == 0 is exactly the L1 loss in torch (including its gradient, sign(x - y)).
PointwiseLoss smooth_l1_kernel(double beta) {
  return beta == 0 ? PointwiseLoss::L1 : PointwiseLoss::SmoothL1;
}

template <class T>
ElementwiseProblem<T> soft_margin_problem(View<T> input, View<T> target,
                                          const SoftMarginLossOptions& o) {
  const char* fn = "soft_margin_loss";
  check_reduction(fn, o);
  // torch writes this loss into an input-shaped output: the target may not grow it.
  if (broadcast_shapes(input.shape, target.shape, fn, "input", "target") != input.shape)
    detail::fail_value(fn, "target",
                       "a shape broadcastable to the input's " + shape_to_string(input.shape),
                       shape_to_string(target.shape));
  return make_problem<T>(fn, o, {{input, "input"}, {target, "target"}});
}

template <class T>
ElementwiseProblem<T> bce_problem(View<T> input, View<T> target, View<T> weight,
                                  const BinaryCrossEntropyOptions& o) {
  const char* fn = "binary_cross_entropy";
  check_reduction(fn, o);
  detail::check_shape_equal(fn, "target", target.shape, input.shape, "the input's shape");
  auto p = make_problem<T>(fn, o, {{input, "input"}, {target, "target"}});
  p.weight = weight;  // broadcast to the target's shape, as torch expands it
  p.invalid_messages = {"input expected all elements between 0 and 1",
                        "target expected all elements between 0 and 1"};
  return p;
}

template <class T>
ElementwiseProblem<T> bce_logits_problem(View<T> input, View<T> target, View<T> weight,
                                         View<T> pos_weight,
                                         const BinaryCrossEntropyWithLogitsOptions& o) {
  const char* fn = "binary_cross_entropy_with_logits";
  check_reduction(fn, o);
  detail::check_shape_equal(fn, "target", target.shape, input.shape, "the input's shape");
  auto p = pos_weight.present()
               ? make_problem<T>(fn, o,
                                 {{input, "input"}, {target, "target"}, {pos_weight, "pos_weight"}})
               : make_problem<T>(fn, o, {{input, "input"}, {target, "target"}});
  if (pos_weight.present() &&
      broadcast_shapes(input.shape, pos_weight.shape, fn, "input", "pos_weight") != input.shape)
    detail::fail_value(fn, "pos_weight", "a shape broadcastable to " + shape_to_string(input.shape),
                       shape_to_string(pos_weight.shape));
  p.weight = weight;
  return p;
}
PointwiseLoss bce_logits_kernel(bool pos_weight) {
  return pos_weight ? PointwiseLoss::BceWithLogitsPosWeight : PointwiseLoss::BceWithLogits;
}

template <class T>
ElementwiseProblem<T> poisson_problem(View<T> input, View<T> target,
                                      const PoissonNllLossOptions& o) {
  check_reduction("poisson_nll_loss", o);
  return make_problem<T>("poisson_nll_loss", o, {{input, "input"}, {target, "target"}});
}
PointwiseLoss poisson_kernel(const PoissonNllLossOptions& o) {
  if (o.log_input)
    return o.full ? PointwiseLoss::PoissonNllLogInputFull : PointwiseLoss::PoissonNllLogInput;
  return o.full ? PointwiseLoss::PoissonNllFull : PointwiseLoss::PoissonNll;
}

template <class T>
ElementwiseProblem<T> gaussian_problem(View<T> input, View<T> target, View<T> var,
                                       const GaussianNllLossOptions& o) {
  const char* fn = "gaussian_nll_loss";
  check_reduction(fn, o);
  detail::check_required(fn, "var", var);
  var.shape = gaussian_nll_var_shape(input.shape, var.shape, o.scalar_var);
  return make_problem<T>(fn, o, {{input, "input"}, {target, "target"}, {var, "var"}});
}
PointwiseParams gaussian_params(const GaussianNllLossOptions& o) {
  return {o.eps, o.full ? 0.5 * std::log(2 * 3.14159265358979323846) : 0.0};
}
// The pre-pass torch makes before computing: var must be non-negative (NaN passes, as in torch).
template <class T>
void check_var(View<T> var) {
  using C = detail::compute_t<T>;
  const T* v = var.data;
  if (detail::parallel_any(var.numel(), int64_t{1} << 18,
                           [v](int64_t i) { return static_cast<C>(v[i]) < C(0); }))
    detail::fail_value("gaussian_nll_loss", "var", "non-negative entries", "a negative entry");
}

// grad_var has var's shape; the driver sees it with var's aligned shape (same elements).
template <class T>
void align_grad_var(View<T> var, const ElementwiseProblem<T>& p, MutView<T>& grad_var) {
  if (!grad_var.present()) return;
  detail::check_output("gaussian_nll_loss", "grad_var", grad_var, var.shape);
  grad_var.shape = p.operands[2].shape;
}

template <class T>
ElementwiseProblem<T> kl_problem(View<T> input, View<T> target, const KlDivOptions& o) {
  check_reduction("kl_div", o, true);
  auto p = make_problem<T>("kl_div", o, {{input, "input"}, {target, "target"}});
  p.batch_size = input.dim() == 0 ? 1 : input.shape[0];
  return p;
}
// torch evaluates kl_div's target-only factor, xlogy(y, y) or exp(y) with log_target, at the
// target's own shape and broadcasts afterwards. When the broadcast is empty, the gradient reaching
// that factor is an empty sum, and torch's target gradient is that 0 carried through: NaN for
// a non-finite factor (torch's xlogy backward for the second argument, 0 * y / y: NaN at y = 0,
// +-inf or NaN; exp(y) = inf or NaN with log_target), where the empty driver leaves 0.
template <class T>
void kl_empty_target_grad(View<T> input, View<T> target, MutView<T> grad_target,
                          const KlDivOptions& o) {
  if (!grad_target.present() ||
      numel(elementwise_output_shape({input.shape, target.shape}, "kl_div")) != 0)
    return;
  for (int64_t i = 0; i < target.numel(); ++i) {
    using C = detail::compute_t<T>;
    const C y = static_cast<C>(target.data[i]);
    grad_target.data[i] = static_cast<T>(o.log_target ? C(0) * std::exp(y) : C(0) * y / y);
  }
}
PointwiseLoss kl_kernel(const KlDivOptions& o) {
  return o.log_target ? PointwiseLoss::KlDivLogTarget : PointwiseLoss::KlDiv;
}

template <class T>
ElementwiseProblem<T> margin_ranking_problem(View<T> input1, View<T> input2, View<T> target,
                                             const MarginRankingLossOptions& o) {
  const char* fn = "margin_ranking_loss";
  check_reduction(fn, o);
  if (input1.dim() != input2.dim() || input1.dim() != target.dim())
    detail::fail_value(fn, "input2", "inputs and target of the same number of dimensions",
                       "input1 " + shape_to_string(input1.shape) + ", input2 " +
                           shape_to_string(input2.shape) + ", target " +
                           shape_to_string(target.shape));
  return make_problem<T>(fn, o, {{input1, "input1"}, {input2, "input2"}, {target, "target"}});
}

template <class T>
ElementwiseProblem<T> hinge_problem(View<T> input, View<T> target,
                                    const HingeEmbeddingLossOptions& o) {
  check_reduction("hinge_embedding_loss", o);
  return make_problem<T>("hinge_embedding_loss", o, {{input, "input"}, {target, "target"}});
}

// ---- registered losses (LOSSKIT_REGISTERED_POINTWISE in losskit/pointwise.hpp) -------------
// Each gets problem(input, target, options): its reduction and parameter checks and the two
// broadcast operands; kernel_of and params_of: its kernel id and its parameters in field order.
#define LOSSKIT_PARAM(field, value, valid, expected)                                               \
  if (const double v = o.field; !(valid))                                                          \
    detail::fail_value(fn, #field, expected, std::to_string(v));
#define LOSSKIT_PROBLEM(NAME, OPTIONS, OPS, REDUCTION, INPUT, TARGET, PARAMS)                      \
  template <class T>                                                                               \
  ElementwiseProblem<T> problem(View<T> input, View<T> target, const OPTIONS& o) {                 \
    const char* fn = #NAME;                                                                        \
    check_reduction(fn, o);                                                                        \
    PARAMS                                                                                         \
    return make_problem<T>(fn, o, {{input, INPUT}, {target, TARGET}});                             \
  }                                                                                                \
  constexpr PointwiseLoss kernel_of(const OPTIONS&) { return PointwiseLoss::OPS; }
LOSSKIT_REGISTERED_POINTWISE(LOSSKIT_PROBLEM)
#undef LOSSKIT_PROBLEM
#undef LOSSKIT_PARAM

#define LOSSKIT_PARAM(field, ...) o.field,
#define LOSSKIT_PARAMS_OF(NAME, OPTIONS, OPS, REDUCTION, INPUT, TARGET, PARAMS)                    \
  PointwiseParams params_of(const OPTIONS& o) { return {PARAMS}; }
LOSSKIT_REGISTERED_POINTWISE(LOSSKIT_PARAMS_OF)
#undef LOSSKIT_PARAMS_OF
#undef LOSSKIT_PARAM

}  // namespace

Shape elementwise_output_shape(std::initializer_list<Shape> shapes, const char* function) {
  Shape out;
  bool first = true;
  for (const Shape& s : shapes) {
    out = first ? s : broadcast_shapes(out, s, function, "input", "target");
    first = false;
  }
  return out;
}

Shape elementwise_output_shape(std::initializer_list<Shape> shapes, Reduction reduction,
                               const char* function) {
  Shape out = elementwise_output_shape(shapes, function);
  return reduction == Reduction::None ? out : Shape{};
}

Shape gaussian_nll_var_shape(const Shape& input, const Shape& var, bool scalar_var) {
  const char* fn = "gaussian_nll_loss";
  if (scalar_var) {
    if (!var.empty())
      detail::fail_value(fn, "var", "a 0-d view for a scalar var", shape_to_string(var));
    return var;
  }
  if (var == input) return var;
  // One dimension short (a 0-d var beside a 1-d input too): var gets a trailing 1 (torch's
  // unsqueeze(-1)).
  if (var.size() + 1 == input.size() && std::equal(var.begin(), var.end(), input.begin())) {
    Shape unsqueezed = var;
    unsqueezed.push_back(1);
    return unsqueezed;
  }
  // torch's test, kept as it is: the var sizes where var and input differ add up to 1. That is one
  // broadcast dimension (of size 1), plus any 0 facing an input's 1; whether var then
  // broadcasts is checked with the other operands.
  if (var.size() == input.size()) {
    int64_t mismatched = 0;
    for (size_t i = 0; i < var.size(); ++i)
      if (var[i] != input[i]) mismatched += var[i];
    if (mismatched == 1) return var;
  }
  detail::fail_value(fn, "var",
                     "the input's shape " + shape_to_string(input) +
                         ", that shape without its last dimension, or that shape with one "
                         "dimension of size 1" +
                         (var.empty() ? std::string(" (a 0-d var array goes only with a 0-d or "
                                                    "1-d input; a scalar var is a float)")
                                      : std::string()),
                     shape_to_string(var));
}

Shape gaussian_nll_output_shape(const Shape& input, const Shape& target, const Shape& var,
                                bool scalar_var) {
  const char* fn = "gaussian_nll_loss";
  const Shape v = gaussian_nll_var_shape(input, var, scalar_var);
  // The same order and names as the driver's checks, so both report the same argument.
  return broadcast_shapes(broadcast_shapes(input, target, fn, "input", "target"), v, fn, "input",
                          "var");
}

// ---- entry points ----------------------------------------------------------------------------
template <class T>
void l1_loss(View<T> input, View<T> target, View<T> weight, MutView<T> output,
             const L1LossOptions& o) {
  forward(l1_problem(input, target, weight, o), output, PointwiseLoss::L1);
}
template <class T>
void l1_loss_backward(View<T> grad_output, View<T> input, View<T> target, View<T> weight,
                      MutView<T> grad_input, MutView<T> grad_target, const L1LossOptions& o) {
  backward(l1_problem(input, target, weight, o), grad_output, {grad_input, grad_target},
           PointwiseLoss::L1);
}
template <class T>
void l1_loss_forward_backward(View<T> input, View<T> target, View<T> weight, View<T> grad_output,
                              MutView<T> output, MutView<T> grad_input, MutView<T> grad_target,
                              const L1LossOptions& o) {
  forward_backward(l1_problem(input, target, weight, o), grad_output, output,
                   {grad_input, grad_target}, PointwiseLoss::L1);
}

template <class T>
void mse_loss(View<T> input, View<T> target, View<T> weight, MutView<T> output,
              const MseLossOptions& o) {
  forward(mse_problem(input, target, weight, o), output, PointwiseLoss::Mse);
}
template <class T>
void mse_loss_backward(View<T> grad_output, View<T> input, View<T> target, View<T> weight,
                       MutView<T> grad_input, MutView<T> grad_target, const MseLossOptions& o) {
  backward(mse_problem(input, target, weight, o), grad_output, {grad_input, grad_target},
           PointwiseLoss::Mse);
}
template <class T>
void mse_loss_forward_backward(View<T> input, View<T> target, View<T> weight, View<T> grad_output,
                               MutView<T> output, MutView<T> grad_input, MutView<T> grad_target,
                               const MseLossOptions& o) {
  forward_backward(mse_problem(input, target, weight, o), grad_output, output,
                   {grad_input, grad_target}, PointwiseLoss::Mse);
}

template <class T>
void huber_loss(View<T> input, View<T> target, View<T> weight, MutView<T> output,
                const HuberLossOptions& o) {
  forward(huber_problem(input, target, weight, o), output, PointwiseLoss::Huber, {o.delta});
}
template <class T>
void huber_loss_backward(View<T> grad_output, View<T> input, View<T> target, View<T> weight,
                         MutView<T> grad_input, MutView<T> grad_target, const HuberLossOptions& o) {
  backward(huber_problem(input, target, weight, o), grad_output, {grad_input, grad_target},
           PointwiseLoss::Huber, {o.delta});
}
template <class T>
void huber_loss_forward_backward(View<T> input, View<T> target, View<T> weight, View<T> grad_output,
                                 MutView<T> output, MutView<T> grad_input, MutView<T> grad_target,
                                 const HuberLossOptions& o) {
  forward_backward(huber_problem(input, target, weight, o), grad_output, output,
                   {grad_input, grad_target}, PointwiseLoss::Huber, {o.delta});
}

template <class T>
void smooth_l1_loss(View<T> input, View<T> target, MutView<T> output,
                    const SmoothL1LossOptions& o) {
  forward(smooth_l1_problem(input, target, o), output, smooth_l1_kernel(o.beta), {o.beta});
}
template <class T>
void smooth_l1_loss_backward(View<T> grad_output, View<T> input, View<T> target,
                             MutView<T> grad_input, MutView<T> grad_target,
                             const SmoothL1LossOptions& o) {
  backward(smooth_l1_problem(input, target, o), grad_output, {grad_input, grad_target},
           smooth_l1_kernel(o.beta), {o.beta});
}
template <class T>
void smooth_l1_loss_forward_backward(View<T> input, View<T> target, View<T> grad_output,
                                     MutView<T> output, MutView<T> grad_input,
                                     MutView<T> grad_target, const SmoothL1LossOptions& o) {
  forward_backward(smooth_l1_problem(input, target, o), grad_output, output,
                   {grad_input, grad_target}, smooth_l1_kernel(o.beta), {o.beta});
}

template <class T>
void soft_margin_loss(View<T> input, View<T> target, MutView<T> output,
                      const SoftMarginLossOptions& o) {
  forward(soft_margin_problem(input, target, o), output, PointwiseLoss::SoftMargin);
}
template <class T>
void soft_margin_loss_backward(View<T> grad_output, View<T> input, View<T> target,
                               MutView<T> grad_input, const SoftMarginLossOptions& o) {
  backward(soft_margin_problem(input, target, o), grad_output, {grad_input},
           PointwiseLoss::SoftMargin);
}
template <class T>
void soft_margin_loss_forward_backward(View<T> input, View<T> target, View<T> grad_output,
                                       MutView<T> output, MutView<T> grad_input,
                                       const SoftMarginLossOptions& o) {
  forward_backward(soft_margin_problem(input, target, o), grad_output, output, {grad_input},
                   PointwiseLoss::SoftMargin);
}

template <class T>
void binary_cross_entropy(View<T> input, View<T> target, View<T> weight, MutView<T> output,
                          const BinaryCrossEntropyOptions& o) {
  forward(bce_problem(input, target, weight, o), output, PointwiseLoss::Bce);
}
template <class T>
void binary_cross_entropy_backward(View<T> grad_output, View<T> input, View<T> target,
                                   View<T> weight, MutView<T> grad_input, MutView<T> grad_target,
                                   const BinaryCrossEntropyOptions& o) {
  backward(bce_problem(input, target, weight, o), grad_output, {grad_input, grad_target},
           PointwiseLoss::Bce);
}
template <class T>
void binary_cross_entropy_forward_backward(View<T> input, View<T> target, View<T> weight,
                                           View<T> grad_output, MutView<T> output,
                                           MutView<T> grad_input, MutView<T> grad_target,
                                           const BinaryCrossEntropyOptions& o) {
  forward_backward(bce_problem(input, target, weight, o), grad_output, output,
                   {grad_input, grad_target}, PointwiseLoss::Bce);
}

template <class T>
void binary_cross_entropy_with_logits(View<T> input, View<T> target, View<T> weight,
                                      View<T> pos_weight, MutView<T> output,
                                      const BinaryCrossEntropyWithLogitsOptions& o) {
  forward(bce_logits_problem(input, target, weight, pos_weight, o), output,
          bce_logits_kernel(pos_weight.present()));
}
template <class T>
void binary_cross_entropy_with_logits_backward(View<T> grad_output, View<T> input, View<T> target,
                                               View<T> weight, View<T> pos_weight,
                                               MutView<T> grad_input, MutView<T> grad_target,
                                               const BinaryCrossEntropyWithLogitsOptions& o) {
  backward(bce_logits_problem(input, target, weight, pos_weight, o), grad_output,
           {grad_input, grad_target}, bce_logits_kernel(pos_weight.present()));
}
template <class T>
void binary_cross_entropy_with_logits_forward_backward(
    View<T> input, View<T> target, View<T> weight, View<T> pos_weight, View<T> grad_output,
    MutView<T> output, MutView<T> grad_input, MutView<T> grad_target,
    const BinaryCrossEntropyWithLogitsOptions& o) {
  forward_backward(bce_logits_problem(input, target, weight, pos_weight, o), grad_output, output,
                   {grad_input, grad_target}, bce_logits_kernel(pos_weight.present()));
}

template <class T>
void poisson_nll_loss(View<T> input, View<T> target, MutView<T> output,
                      const PoissonNllLossOptions& o) {
  forward(poisson_problem(input, target, o), output, poisson_kernel(o), {o.eps});
}
template <class T>
void poisson_nll_loss_backward(View<T> grad_output, View<T> input, View<T> target,
                               MutView<T> grad_input, MutView<T> grad_target,
                               const PoissonNllLossOptions& o) {
  backward(poisson_problem(input, target, o), grad_output, {grad_input, grad_target},
           poisson_kernel(o), {o.eps});
}
template <class T>
void poisson_nll_loss_forward_backward(View<T> input, View<T> target, View<T> grad_output,
                                       MutView<T> output, MutView<T> grad_input,
                                       MutView<T> grad_target, const PoissonNllLossOptions& o) {
  forward_backward(poisson_problem(input, target, o), grad_output, output,
                   {grad_input, grad_target}, poisson_kernel(o), {o.eps});
}

template <class T>
void gaussian_nll_loss(View<T> input, View<T> target, View<T> var, MutView<T> output,
                       const GaussianNllLossOptions& o) {
  auto p = gaussian_problem(input, target, var, o);
  check_var(var);
  forward(p, output, PointwiseLoss::GaussianNll, gaussian_params(o));
}
template <class T>
void gaussian_nll_loss_backward(View<T> grad_output, View<T> input, View<T> target, View<T> var,
                                MutView<T> grad_input, MutView<T> grad_var, MutView<T> grad_target,
                                const GaussianNllLossOptions& o) {
  auto p = gaussian_problem(input, target, var, o);
  check_var(var);
  align_grad_var(var, p, grad_var);
  backward(p, grad_output, {grad_input, grad_target, grad_var}, PointwiseLoss::GaussianNll,
           gaussian_params(o));
}
template <class T>
void gaussian_nll_loss_forward_backward(View<T> input, View<T> target, View<T> var,
                                        View<T> grad_output, MutView<T> output,
                                        MutView<T> grad_input, MutView<T> grad_var,
                                        MutView<T> grad_target, const GaussianNllLossOptions& o) {
  auto p = gaussian_problem(input, target, var, o);
  check_var(var);
  align_grad_var(var, p, grad_var);
  forward_backward(p, grad_output, output, {grad_input, grad_target, grad_var},
                   PointwiseLoss::GaussianNll, gaussian_params(o));
}

template <class T>
void kl_div(View<T> input, View<T> target, MutView<T> output, const KlDivOptions& o) {
  forward(kl_problem(input, target, o), output, kl_kernel(o));
}
template <class T>
void kl_div_backward(View<T> grad_output, View<T> input, View<T> target, MutView<T> grad_input,
                     MutView<T> grad_target, const KlDivOptions& o) {
  backward(kl_problem(input, target, o), grad_output, {grad_input, grad_target}, kl_kernel(o));
  kl_empty_target_grad(input, target, grad_target, o);
}
template <class T>
void kl_div_forward_backward(View<T> input, View<T> target, View<T> grad_output, MutView<T> output,
                             MutView<T> grad_input, MutView<T> grad_target, const KlDivOptions& o) {
  forward_backward(kl_problem(input, target, o), grad_output, output, {grad_input, grad_target},
                   kl_kernel(o));
  kl_empty_target_grad(input, target, grad_target, o);
}

template <class T>
void margin_ranking_loss(View<T> input1, View<T> input2, View<T> target, MutView<T> output,
                         const MarginRankingLossOptions& o) {
  forward(margin_ranking_problem(input1, input2, target, o), output, PointwiseLoss::MarginRanking,
          {o.margin});
}
template <class T>
void margin_ranking_loss_backward(View<T> grad_output, View<T> input1, View<T> input2,
                                  View<T> target, MutView<T> grad_input1, MutView<T> grad_input2,
                                  const MarginRankingLossOptions& o) {
  backward(margin_ranking_problem(input1, input2, target, o), grad_output,
           {grad_input1, grad_input2}, PointwiseLoss::MarginRanking, {o.margin});
}
template <class T>
void margin_ranking_loss_forward_backward(View<T> input1, View<T> input2, View<T> target,
                                          View<T> grad_output, MutView<T> output,
                                          MutView<T> grad_input1, MutView<T> grad_input2,
                                          const MarginRankingLossOptions& o) {
  forward_backward(margin_ranking_problem(input1, input2, target, o), grad_output, output,
                   {grad_input1, grad_input2}, PointwiseLoss::MarginRanking, {o.margin});
}

template <class T>
void hinge_embedding_loss(View<T> input, View<T> target, MutView<T> output,
                          const HingeEmbeddingLossOptions& o) {
  forward(hinge_problem(input, target, o), output, PointwiseLoss::HingeEmbedding, {o.margin});
}
template <class T>
void hinge_embedding_loss_backward(View<T> grad_output, View<T> input, View<T> target,
                                   MutView<T> grad_input, const HingeEmbeddingLossOptions& o) {
  backward(hinge_problem(input, target, o), grad_output, {grad_input},
           PointwiseLoss::HingeEmbedding, {o.margin});
}
template <class T>
void hinge_embedding_loss_forward_backward(View<T> input, View<T> target, View<T> grad_output,
                                           MutView<T> output, MutView<T> grad_input,
                                           const HingeEmbeddingLossOptions& o) {
  forward_backward(hinge_problem(input, target, o), grad_output, output, {grad_input},
                   PointwiseLoss::HingeEmbedding, {o.margin});
}

// ---- NAME_mean_normalizer ---------------------------------------------------------------
template <class T>
double l1_loss_mean_normalizer(View<T> input, View<T> target, View<T> weight,
                               const L1LossOptions& o) {
  return mean_normalizer(l1_problem(input, target, weight, o));
}
template <class T>
double mse_loss_mean_normalizer(View<T> input, View<T> target, View<T> weight,
                                const MseLossOptions& o) {
  return mean_normalizer(mse_problem(input, target, weight, o));
}
template <class T>
double huber_loss_mean_normalizer(View<T> input, View<T> target, View<T> weight,
                                  const HuberLossOptions& o) {
  return mean_normalizer(huber_problem(input, target, weight, o));
}
template <class T>
double smooth_l1_loss_mean_normalizer(View<T> input, View<T> target, const SmoothL1LossOptions& o) {
  return mean_normalizer(smooth_l1_problem(input, target, o));
}
template <class T>
double soft_margin_loss_mean_normalizer(View<T> input, View<T> target,
                                        const SoftMarginLossOptions& o) {
  return mean_normalizer(soft_margin_problem(input, target, o));
}
template <class T>
double binary_cross_entropy_mean_normalizer(View<T> input, View<T> target, View<T> weight,
                                            const BinaryCrossEntropyOptions& o) {
  return mean_normalizer(bce_problem(input, target, weight, o));
}
template <class T>
double binary_cross_entropy_with_logits_mean_normalizer(
    View<T> input, View<T> target, View<T> weight, View<T> pos_weight,
    const BinaryCrossEntropyWithLogitsOptions& o) {
  return mean_normalizer(bce_logits_problem(input, target, weight, pos_weight, o));
}
template <class T>
double poisson_nll_loss_mean_normalizer(View<T> input, View<T> target,
                                        const PoissonNllLossOptions& o) {
  return mean_normalizer(poisson_problem(input, target, o));
}
template <class T>
double gaussian_nll_loss_mean_normalizer(View<T> input, View<T> target, View<T> var,
                                         const GaussianNllLossOptions& o) {
  return mean_normalizer(gaussian_problem(input, target, var, o));
}
template <class T>
double kl_div_mean_normalizer(View<T> input, View<T> target, const KlDivOptions& o) {
  return mean_normalizer(kl_problem(input, target, o));
}
template <class T>
double margin_ranking_loss_mean_normalizer(View<T> input1, View<T> input2, View<T> target,
                                           const MarginRankingLossOptions& o) {
  return mean_normalizer(margin_ranking_problem(input1, input2, target, o));
}
template <class T>
double hinge_embedding_loss_mean_normalizer(View<T> input, View<T> target,
                                            const HingeEmbeddingLossOptions& o) {
  return mean_normalizer(hinge_problem(input, target, o));
}

// ---- registered losses' entry points ----------------------------------------------------
#define LOSSKIT_ENTRY_POINTS(NAME, OPTIONS, ...)                                                   \
  template <class T>                                                                               \
  void NAME(View<T> input, View<T> target, MutView<T> output, const OPTIONS& o) {                  \
    forward(problem(input, target, o), output, kernel_of(o), params_of(o));                        \
  }                                                                                                \
  template <class T>                                                                               \
  void NAME##_backward(View<T> grad_output, View<T> input, View<T> target, MutView<T> grad_input,  \
                       MutView<T> grad_target, const OPTIONS& o) {                                 \
    backward(problem(input, target, o), grad_output, {grad_input, grad_target}, kernel_of(o),      \
             params_of(o));                                                                        \
  }                                                                                                \
  template <class T>                                                                               \
  void NAME##_forward_backward(View<T> input, View<T> target, View<T> grad_output,                 \
                               MutView<T> output, MutView<T> grad_input, MutView<T> grad_target,   \
                               const OPTIONS& o) {                                                 \
    forward_backward(problem(input, target, o), grad_output, output, {grad_input, grad_target},    \
                     kernel_of(o), params_of(o));                                                  \
  }                                                                                                \
  template <class T>                                                                               \
  double NAME##_mean_normalizer(View<T> input, View<T> target, const OPTIONS& o) {                 \
    return mean_normalizer(problem(input, target, o));                                             \
  }
LOSSKIT_REGISTERED_POINTWISE(LOSSKIT_ENTRY_POINTS)
#undef LOSSKIT_ENTRY_POINTS

#define LOSSKIT_INSTANTIATE_FOR(T, NAME, OPTIONS)                                                  \
  template void NAME<T>(View<T>, View<T>, MutView<T>, const OPTIONS&);                             \
  template void NAME##_backward<T>(View<T>, View<T>, View<T>, MutView<T>, MutView<T>,              \
                                   const OPTIONS&);                                                \
  template void NAME##_forward_backward<T>(View<T>, View<T>, View<T>, MutView<T>, MutView<T>,      \
                                           MutView<T>, const OPTIONS&);                            \
  template double NAME##_mean_normalizer<T>(View<T>, View<T>, const OPTIONS&);
#define LOSSKIT_INSTANTIATE_REGISTERED(NAME, OPTIONS, ...)                                         \
  LOSSKIT_INSTANTIATE_FOR(float, NAME, OPTIONS)                                                    \
  LOSSKIT_INSTANTIATE_FOR(double, NAME, OPTIONS)                                                   \
  LOSSKIT_INSTANTIATE_FOR(bfloat16, NAME, OPTIONS)                                                 \
  LOSSKIT_INSTANTIATE_FOR(float16, NAME, OPTIONS)
LOSSKIT_REGISTERED_POINTWISE(LOSSKIT_INSTANTIATE_REGISTERED)
#undef LOSSKIT_INSTANTIATE_REGISTERED
#undef LOSSKIT_INSTANTIATE_FOR

// ---- float, double, bfloat16 and float16 instantiations ----------------------------------------
#define LOSSKIT_INSTANTIATE(T)                                                                     \
  template void l1_loss<T>(View<T>, View<T>, View<T>, MutView<T>, const L1LossOptions&);           \
  template void l1_loss_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>, MutView<T>,    \
                                    const L1LossOptions&);                                         \
  template void l1_loss_forward_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>,        \
                                            MutView<T>, MutView<T>, const L1LossOptions&);         \
  template void mse_loss<T>(View<T>, View<T>, View<T>, MutView<T>, const MseLossOptions&);         \
  template void mse_loss_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>, MutView<T>,   \
                                     const MseLossOptions&);                                       \
  template void mse_loss_forward_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>,       \
                                             MutView<T>, MutView<T>, const MseLossOptions&);       \
  template void huber_loss<T>(View<T>, View<T>, View<T>, MutView<T>, const HuberLossOptions&);     \
  template void huber_loss_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>, MutView<T>, \
                                       const HuberLossOptions&);                                   \
  template void huber_loss_forward_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>,     \
                                               MutView<T>, MutView<T>, const HuberLossOptions&);   \
  template void smooth_l1_loss<T>(View<T>, View<T>, MutView<T>, const SmoothL1LossOptions&);       \
  template void smooth_l1_loss_backward<T>(View<T>, View<T>, View<T>, MutView<T>, MutView<T>,      \
                                           const SmoothL1LossOptions&);                            \
  template void smooth_l1_loss_forward_backward<T>(View<T>, View<T>, View<T>, MutView<T>,          \
                                                   MutView<T>, MutView<T>,                         \
                                                   const SmoothL1LossOptions&);                    \
  template void soft_margin_loss<T>(View<T>, View<T>, MutView<T>, const SoftMarginLossOptions&);   \
  template void soft_margin_loss_backward<T>(View<T>, View<T>, View<T>, MutView<T>,                \
                                             const SoftMarginLossOptions&);                        \
  template void soft_margin_loss_forward_backward<T>(View<T>, View<T>, View<T>, MutView<T>,        \
                                                     MutView<T>, const SoftMarginLossOptions&);    \
  template void binary_cross_entropy<T>(View<T>, View<T>, View<T>, MutView<T>,                     \
                                        const BinaryCrossEntropyOptions&);                         \
  template void binary_cross_entropy_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>,   \
                                                 MutView<T>, const BinaryCrossEntropyOptions&);    \
  template void binary_cross_entropy_forward_backward<T>(View<T>, View<T>, View<T>, View<T>,       \
                                                         MutView<T>, MutView<T>, MutView<T>,       \
                                                         const BinaryCrossEntropyOptions&);        \
  template void binary_cross_entropy_with_logits<T>(View<T>, View<T>, View<T>, View<T>,            \
                                                    MutView<T>,                                    \
                                                    const BinaryCrossEntropyWithLogitsOptions&);   \
  template void binary_cross_entropy_with_logits_backward<T>(                                      \
      View<T>, View<T>, View<T>, View<T>, View<T>, MutView<T>, MutView<T>,                         \
      const BinaryCrossEntropyWithLogitsOptions&);                                                 \
  template void binary_cross_entropy_with_logits_forward_backward<T>(                              \
      View<T>, View<T>, View<T>, View<T>, View<T>, MutView<T>, MutView<T>, MutView<T>,             \
      const BinaryCrossEntropyWithLogitsOptions&);                                                 \
  template void poisson_nll_loss<T>(View<T>, View<T>, MutView<T>, const PoissonNllLossOptions&);   \
  template void poisson_nll_loss_backward<T>(View<T>, View<T>, View<T>, MutView<T>, MutView<T>,    \
                                             const PoissonNllLossOptions&);                        \
  template void poisson_nll_loss_forward_backward<T>(View<T>, View<T>, View<T>, MutView<T>,        \
                                                     MutView<T>, MutView<T>,                       \
                                                     const PoissonNllLossOptions&);                \
  template void gaussian_nll_loss<T>(View<T>, View<T>, View<T>, MutView<T>,                        \
                                     const GaussianNllLossOptions&);                               \
  template void gaussian_nll_loss_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>,      \
                                              MutView<T>, MutView<T>,                              \
                                              const GaussianNllLossOptions&);                      \
  template void gaussian_nll_loss_forward_backward<T>(View<T>, View<T>, View<T>, View<T>,          \
                                                      MutView<T>, MutView<T>, MutView<T>,          \
                                                      MutView<T>, const GaussianNllLossOptions&);  \
  template void kl_div<T>(View<T>, View<T>, MutView<T>, const KlDivOptions&);                      \
  template void kl_div_backward<T>(View<T>, View<T>, View<T>, MutView<T>, MutView<T>,              \
                                   const KlDivOptions&);                                           \
  template void kl_div_forward_backward<T>(View<T>, View<T>, View<T>, MutView<T>, MutView<T>,      \
                                           MutView<T>, const KlDivOptions&);                       \
  template void margin_ranking_loss<T>(View<T>, View<T>, View<T>, MutView<T>,                      \
                                       const MarginRankingLossOptions&);                           \
  template void margin_ranking_loss_backward<T>(View<T>, View<T>, View<T>, View<T>, MutView<T>,    \
                                                MutView<T>, const MarginRankingLossOptions&);      \
  template void margin_ranking_loss_forward_backward<T>(View<T>, View<T>, View<T>, View<T>,        \
                                                        MutView<T>, MutView<T>, MutView<T>,        \
                                                        const MarginRankingLossOptions&);          \
  template void hinge_embedding_loss<T>(View<T>, View<T>, MutView<T>,                              \
                                        const HingeEmbeddingLossOptions&);                         \
  template void hinge_embedding_loss_backward<T>(View<T>, View<T>, View<T>, MutView<T>,            \
                                                 const HingeEmbeddingLossOptions&);                \
  template void hinge_embedding_loss_forward_backward<T>(View<T>, View<T>, View<T>, MutView<T>,    \
                                                         MutView<T>,                               \
                                                         const HingeEmbeddingLossOptions&);
LOSSKIT_INSTANTIATE(float)
LOSSKIT_INSTANTIATE(double)
LOSSKIT_INSTANTIATE(bfloat16)
LOSSKIT_INSTANTIATE(float16)
#undef LOSSKIT_INSTANTIATE

#define LOSSKIT_INSTANTIATE_NORMALIZER(T)                                                          \
  template double l1_loss_mean_normalizer<T>(View<T>, View<T>, View<T>, const L1LossOptions&);     \
  template double mse_loss_mean_normalizer<T>(View<T>, View<T>, View<T>, const MseLossOptions&);   \
  template double huber_loss_mean_normalizer<T>(View<T>, View<T>, View<T>,                         \
                                                const HuberLossOptions&);                          \
  template double smooth_l1_loss_mean_normalizer<T>(View<T>, View<T>, const SmoothL1LossOptions&); \
  template double soft_margin_loss_mean_normalizer<T>(View<T>, View<T>,                            \
                                                      const SoftMarginLossOptions&);               \
  template double binary_cross_entropy_mean_normalizer<T>(View<T>, View<T>, View<T>,               \
                                                          const BinaryCrossEntropyOptions&);       \
  template double binary_cross_entropy_with_logits_mean_normalizer<T>(                             \
      View<T>, View<T>, View<T>, View<T>, const BinaryCrossEntropyWithLogitsOptions&);             \
  template double poisson_nll_loss_mean_normalizer<T>(View<T>, View<T>,                            \
                                                      const PoissonNllLossOptions&);               \
  template double gaussian_nll_loss_mean_normalizer<T>(View<T>, View<T>, View<T>,                  \
                                                       const GaussianNllLossOptions&);             \
  template double kl_div_mean_normalizer<T>(View<T>, View<T>, const KlDivOptions&);                \
  template double margin_ranking_loss_mean_normalizer<T>(View<T>, View<T>, View<T>,                \
                                                         const MarginRankingLossOptions&);         \
  template double hinge_embedding_loss_mean_normalizer<T>(View<T>, View<T>,                        \
                                                          const HingeEmbeddingLossOptions&);
LOSSKIT_INSTANTIATE_NORMALIZER(float)
LOSSKIT_INSTANTIATE_NORMALIZER(double)
LOSSKIT_INSTANTIATE_NORMALIZER(bfloat16)
LOSSKIT_INSTANTIATE_NORMALIZER(float16)
#undef LOSSKIT_INSTANTIATE_NORMALIZER

}  // namespace losskit
