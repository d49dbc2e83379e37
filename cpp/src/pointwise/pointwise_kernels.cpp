// Hot loops of the pointwise family; compiled once per instruction set (see common/target.hpp).
// No exceptions, allocation or Python here.
#include "pointwise/pointwise_kernels.hpp"

#include <algorithm>
#include <type_traits>

#include "common/storage_access.hpp"
#include "pointwise/pointwise_ops.hpp"

namespace losskit::kernels::LOSSKIT_TARGET_NS {
namespace pointwise {
namespace {

using detail::OutKind;
using detail::Segment;
using detail::SegmentResult;

// One fused loop: loss, weight, reduction and gradients per element. kGradMask selects which
// operand gradients are written; everything else is data (ones for absent weights and scalar
// grad_outputs) so the loop has no branches. The loss sum is reassociated only inside this
// segment (omp simd), whose boundaries the driver fixes, so sums are thread-count independent.
// Storage S (and G, the gradients') is loaded into and stored from the compute type T in
// register (common/storage_access.hpp), so 16-bit arrays are read and written in place.
template <class Op, class S, class G, OutKind kOut, unsigned kGradMask>
SegmentResult run_in_register(const Segment<S, G>& s, const Params<detail::compute_t<S>>& p) {
  using T = detail::compute_t<S>;
  constexpr int K = Op::kArity;
  const S* LOSSKIT_RESTRICT in0 = s.in[0];
  const S* LOSSKIT_RESTRICT in1 = s.in[1];
  const S* LOSSKIT_RESTRICT in2 = K > 2 ? s.in[2] : s.in[0];
  const S* LOSSKIT_RESTRICT w = s.weight;
  const S* LOSSKIT_RESTRICT go = s.grad_out;
  S* LOSSKIT_RESTRICT out = s.out;
  G* LOSSKIT_RESTRICT g0 = s.grad[0];
  G* LOSSKIT_RESTRICT g1 = s.grad[1];
  G* LOSSKIT_RESTRICT g2 = s.grad[2];
  const T scale = s.grad_scale;
  const int64_t n = s.len;
  double sum = 0.0;
  T bad = 0, bad_target = 0;  // counts in T: an int reduction beside a double one stops GCC 12
                              // vectorising
#pragma omp simd reduction(+ : sum, bad, bad_target)
  for (int64_t i = 0; i < n; ++i) {
    const T v0 = load(in0[i]), v1 = load(in1[i]), wi = load(w[i]);
    const Value<T> r = Op::eval(v0, v1, load(in2[i]), p);
    const T l = r.l * wi;
    if constexpr (kOut == OutKind::PerElement) store(out[i], l);
    if constexpr (kOut == OutKind::Accumulate) sum += static_cast<double>(l);
    bad += Op::invalid(v0) ? T(1) : T(0);
    bad_target += Op::invalid_target(v1) ? T(1) : T(0);
    const T g = scale * load(go[i]) * wi;
    if constexpr ((kGradMask & 1u) != 0) store(g0[i], g * r.d0);
    if constexpr ((kGradMask & 2u) != 0) store(g1[i], g * r.d1);
    if constexpr ((kGradMask & 4u) != 0) store(g2[i], g * r.d2);
  }
  return {sum, (bad != T(0) ? 1u : 0u) | (bad_target != T(0) ? 2u : 0u)};
}

// float16 on targets with F16C: the float loop above on strips widened onto the stack, outputs
// rounded back per strip (kFloat16Strips in common/storage_access.hpp). Only the operands the
// loop reads are widened: the grad_output only when a gradient is wanted.
template <class Op, class G, OutKind kOut, unsigned kGradMask>
SegmentResult run_strips(const Segment<float16, G>& s, const Params<float>& p) {
  constexpr int K = Op::kArity;
  constexpr int kWeight = K, kGradOut = K + 1, kOutSlot = K + 2, kGrad0 = K + 3;
  alignas(64) float strip[kGrad0 + K][kStripLen];
  SegmentResult total{0.0, 0u};
  for (int64_t lo = 0; lo < s.len; lo += kStripLen) {
    const int64_t len = std::min(kStripLen, s.len - lo);
    Segment<float> f{};
    for (int k = 0; k < K; ++k) {
      widen_strip(s.in[k] + lo, strip[k], len);
      f.in[k] = strip[k];
    }
    widen_strip(s.weight + lo, strip[kWeight], len);
    f.weight = strip[kWeight];
    f.grad_out = f.weight;  // not read without gradients
    if constexpr (kGradMask != 0) {
      widen_strip(s.grad_out + lo, strip[kGradOut], len);
      f.grad_out = strip[kGradOut];
    }
    f.out = kOut == OutKind::PerElement ? strip[kOutSlot] : nullptr;
    for (int k = 0; k < K; ++k) {
      if ((kGradMask >> k & 1u) == 0) continue;
      if constexpr (std::is_same_v<G, float>) f.grad[k] = s.grad[k] + lo;
      else f.grad[k] = strip[kGrad0 + k];
    }
    f.len = len;
    f.grad_scale = s.grad_scale;
    const SegmentResult r = run_in_register<Op, float, float, kOut, kGradMask>(f, p);
    total.sum += r.sum;
    total.invalid |= r.invalid;
    if constexpr (kOut == OutKind::PerElement) narrow_strip(strip[kOutSlot], s.out + lo, len);
    if constexpr (!std::is_same_v<G, float>)
      for (int k = 0; k < K; ++k)
        if ((kGradMask >> k & 1u) != 0) narrow_strip(strip[kGrad0 + k], s.grad[k] + lo, len);
  }
  return total;
}

template <class Op, class S, class G, OutKind kOut, unsigned kGradMask>
SegmentResult run(const Segment<S, G>& s, const Params<detail::compute_t<S>>& p) {
  if constexpr (std::is_same_v<S, float16> && kFloat16Strips)
    return run_strips<Op, G, kOut, kGradMask>(s, p);
  else return run_in_register<Op, S, G, kOut, kGradMask>(s, p);
}

template <class Op, class S, class G, OutKind kOut>
SegmentResult run_masked(const Segment<S, G>& s, const Params<detail::compute_t<S>>& p) {
  const unsigned mask = (s.grad[0] ? 1u : 0u) | (s.grad[1] ? 2u : 0u) | (s.grad[2] ? 4u : 0u);
  switch (mask & Op::kDiff) {
    case 0: return run<Op, S, G, kOut, 0>(s, p);
    case 1: return run<Op, S, G, kOut, 1 & Op::kDiff>(s, p);
    case 2: return run<Op, S, G, kOut, 2 & Op::kDiff>(s, p);
    case 3: return run<Op, S, G, kOut, 3 & Op::kDiff>(s, p);
    case 4: return run<Op, S, G, kOut, 4 & Op::kDiff>(s, p);
    case 5: return run<Op, S, G, kOut, 5 & Op::kDiff>(s, p);
    case 6: return run<Op, S, G, kOut, 6 & Op::kDiff>(s, p);
    default: return run<Op, S, G, kOut, 7 & Op::kDiff>(s, p);
  }
}

template <class Op, class S, class G>
SegmentResult dispatch_out(const Segment<S, G>& s, OutKind out,
                           const Params<detail::compute_t<S>>& p) {
  switch (out) {
    case OutKind::PerElement: return run_masked<Op, S, G, OutKind::PerElement>(s, p);
    case OutKind::Accumulate: return run_masked<Op, S, G, OutKind::Accumulate>(s, p);
    default: return run_masked<Op, S, G, OutKind::None>(s, p);
  }
}

// A registered loss, through its variant for this call's options where it has two (HasSpecial).
template <class Op, class S, class G>
SegmentResult dispatch_registered(const Segment<S, G>& s, OutKind out,
                                  const Params<detail::compute_t<S>>& p) {
  if constexpr (HasSpecial<Op>::value) {
    if (Op::special(p)) return dispatch_out<Specialised<Op, true>>(s, out, p);
    return dispatch_out<Specialised<Op, false>>(s, out, p);
  } else {
    return dispatch_out<Op>(s, out, p);
  }
}

template <class S, class G>
SegmentResult segment(const Segment<S, G>& s, OutKind out, const void* ctx) {
  const auto& call = *static_cast<const detail::PointwiseCall*>(ctx);
  const Params<detail::compute_t<S>> p(call.params);
  using L = detail::PointwiseLoss;
  switch (call.loss) {
    case L::L1: return dispatch_out<L1>(s, out, p);
    case L::Mse: return dispatch_out<Mse>(s, out, p);
    case L::Huber: return dispatch_out<Huber>(s, out, p);
    case L::SmoothL1: return dispatch_out<SmoothL1>(s, out, p);
    case L::SoftMargin: return dispatch_out<SoftMargin>(s, out, p);
    case L::Bce: return dispatch_out<Bce>(s, out, p);
    case L::BceWithLogits: return dispatch_out<BceWithLogits>(s, out, p);
    case L::BceWithLogitsPosWeight: return dispatch_out<BceWithLogitsPosWeight>(s, out, p);
    case L::PoissonNllLogInput: return dispatch_out<PoissonNllLogInput<false>>(s, out, p);
    case L::PoissonNllLogInputFull: return dispatch_out<PoissonNllLogInput<true>>(s, out, p);
    case L::PoissonNll: return dispatch_out<PoissonNll<false>>(s, out, p);
    case L::PoissonNllFull: return dispatch_out<PoissonNll<true>>(s, out, p);
    case L::GaussianNll: return dispatch_out<GaussianNll>(s, out, p);
    case L::KlDiv: return dispatch_out<KlDiv>(s, out, p);
    case L::KlDivLogTarget: return dispatch_out<KlDivLogTarget>(s, out, p);
    case L::MarginRanking: return dispatch_out<MarginRanking>(s, out, p);
    case L::HingeEmbedding: return dispatch_out<HingeEmbedding>(s, out, p);
#define LOSSKIT_KERNEL_CASE(NAME, OPTIONS, OPS, ...)                                               \
  case L::OPS: return dispatch_registered<OPS>(s, out, p);
      LOSSKIT_REGISTERED_POINTWISE(LOSSKIT_KERNEL_CASE)
#undef LOSSKIT_KERNEL_CASE
  }
  return {0.0, false};
}

}  // namespace
}  // namespace pointwise

detail::SegmentResult pointwise_segment(const detail::Segment<float>& s, detail::OutKind out,
                                        const void* ctx) {
  return pointwise::segment(s, out, ctx);
}
detail::SegmentResult pointwise_segment(const detail::Segment<double>& s, detail::OutKind out,
                                        const void* ctx) {
  return pointwise::segment(s, out, ctx);
}
detail::SegmentResult pointwise_segment(const detail::Segment<bfloat16>& s, detail::OutKind out,
                                        const void* ctx) {
  return pointwise::segment(s, out, ctx);
}
detail::SegmentResult pointwise_segment(const detail::Segment<bfloat16, float>& s,
                                        detail::OutKind out, const void* ctx) {
  return pointwise::segment(s, out, ctx);
}
detail::SegmentResult pointwise_segment(const detail::Segment<float16>& s, detail::OutKind out,
                                        const void* ctx) {
  return pointwise::segment(s, out, ctx);
}
detail::SegmentResult pointwise_segment(const detail::Segment<float16, float>& s,
                                        detail::OutKind out, const void* ctx) {
  return pointwise::segment(s, out, ctx);
}

}  // namespace losskit::kernels::LOSSKIT_TARGET_NS
