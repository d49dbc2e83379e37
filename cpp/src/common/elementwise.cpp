#include "common/elementwise.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "common/checks.hpp"
#include "common/parallel.hpp"
#include "common/reduce.hpp"

namespace losskit::detail {
namespace {

// Operands plus the weight and grad_output, all seen as inputs of the broadcast iteration.
constexpr int kMaxIterated = kMaxOperands + 2;
constexpr int kWeightSlot = kMaxOperands;
constexpr int kGradOutSlot = kMaxOperands + 1;

// Blocks per thread below which a loss stays on one thread (4 blocks = 32K elements).
constexpr int64_t kGrainBlocks = 4;

template <class T>
const T* ones_block() {
  static const std::vector<T> ones(static_cast<size_t>(kReduceBlock), T(1));
  return ones.data();
}

// Element strides of a C-contiguous `shape` broadcast to `target` (0 on broadcast dimensions).
std::vector<int64_t> broadcast_strides(const Shape& shape, const Shape& target) {
  const size_t nd = target.size(), offset = nd - shape.size();
  std::vector<int64_t> strides(nd, 0);
  int64_t stride = 1;
  for (size_t i = nd; i-- > offset;) {
    const int64_t size = shape[i - offset];
    strides[i] = size == 1 ? 0 : stride;
    stride *= size;
  }
  return strides;
}

// The iteration space after dropping size-1 dimensions and merging dimensions that every operand
// walks contiguously, so the common same-shape case is one flat run.
struct Layout {
  std::vector<int64_t> sizes;
  std::vector<std::vector<int64_t>> strides;  // [slot][dim]
};

Layout coalesce(const Shape& shape, const std::vector<std::vector<int64_t>>& strides) {
  Layout out;
  out.strides.resize(strides.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !out.sizes.empty();
    for (size_t k = 0; merge && k < strides.size(); ++k)
      merge = strides[k][d] * shape[d] == out.strides[k].back();
    if (merge) {
      out.sizes.back() *= shape[d];
      for (size_t k = 0; k < strides.size(); ++k) out.strides[k].back() = strides[k][d];
    } else {
      out.sizes.push_back(shape[d]);
      for (size_t k = 0; k < strides.size(); ++k) out.strides[k].push_back(strides[k][d]);
    }
  }
  if (out.sizes.empty()) {
    out.sizes.push_back(1);
    for (auto& s : out.strides) s.push_back(0);
  }
  return out;
}

// Offset of row `row` (an index over all dimensions but the last) for slot k.
inline int64_t row_offset(const Layout& L, size_t k, int64_t row) {
  int64_t off = 0;
  for (size_t d = L.sizes.size() - 1; d-- > 0;) {
    const int64_t i = row % L.sizes[d];
    row /= L.sizes[d];
    off += i * L.strides[k][d];
  }
  return off;
}

// Sums a gradient computed at the broadcast shape (in the compute type C) into an operand's
// (smaller) shape of storage type S, in a fixed order with double accumulators.
template <class C, class S>
void sum_to_shape(const C* full, const Shape& bshape, const Shape& shape, S* out) {
  const std::vector<int64_t> strides = broadcast_strides(shape, bshape);
  std::vector<double> acc(static_cast<size_t>(numel(shape)), 0.0);
  const int64_t n = numel(bshape);
  std::vector<int64_t> idx(bshape.size(), 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    acc[static_cast<size_t>(off)] += static_cast<double>(full[i]);
    for (size_t d = bshape.size(); d-- > 0;) {  // increment the multi-index
      off += strides[d];
      if (++idx[d] < bshape[d]) break;
      off -= strides[d] * idx[d];
      idx[d] = 0;
    }
  }
  for (size_t i = 0; i < acc.size(); ++i) out[i] = static_cast<S>(static_cast<C>(acc[i]));
}

}  // namespace

template <class T>
double run_elementwise(const ElementwiseProblem<T>& p, const SegmentKernels<T>& kernels,
                       const void* ctx) {
  using C = compute_t<T>;
  const char* fn = p.function;
  // ---- checks, all before any work (each loss's problem builder checked the normalizer) -----
  Shape bshape;
  for (int k = 0; k < p.noperands; ++k) {
    check_required(fn, p.names[k], p.operands[k]);
    bshape = k == 0 ? p.operands[0].shape
                    : broadcast_shapes(bshape, p.operands[k].shape, fn, p.names[0], p.names[k]);
  }
  check_optional(fn, "weight", p.weight);
  if (p.weight.present() &&
      broadcast_shapes(bshape, p.weight.shape, fn, p.names[0], "weight") != bshape)
    fail_value(fn, "weight", "a shape broadcastable to " + shape_to_string(bshape),
               shape_to_string(p.weight.shape));
  const bool reduced = p.reduction != Reduction::None;
  const Shape out_shape = reduced ? Shape{} : bshape;
  if (p.request.forward) check_output(fn, "output", p.request.output, out_shape);
  if (p.request.backward) {
    check_optional(fn, "grad_output", p.request.grad_output);
    if (p.request.grad_output.present()) {
      if (reduced && !p.request.grad_output.shape.empty())
        fail_value(fn, "grad_output", "a scalar for a reduced loss",
                   "shape " + shape_to_string(p.request.grad_output.shape));
      if (!reduced)
        check_shape_equal(fn, "grad_output", p.request.grad_output.shape, out_shape, "shape");
    }
    for (int k = 0; k < p.noperands; ++k)
      if (p.request.grads[k].present())
        check_output(fn, ("grad_" + std::string(p.names[k])).c_str(), p.request.grads[k],
                     p.operands[k].shape);
  }
  DisjointArrays arrays(fn);
  for (int k = 0; k < p.noperands; ++k) {
    arrays.read(p.names[k], p.operands[k]);
    arrays.write("grad_" + std::string(p.names[k]), p.request.grads[k]);
  }
  arrays.read("weight", p.weight);
  arrays.read("grad_output", p.request.grad_output);
  arrays.write("output", p.request.output);
  arrays.check();

  const int64_t n = numel(bshape);
  // ---- reduction scale ----------------------------------------------------------------------
  // The loss is divided by `divisor` (as torch divides); gradients are scaled by its inverse.
  double own_divisor = 1.0;
  if (p.reduction == Reduction::Mean) {
    own_divisor = (p.weight.present() && p.weighted_mean == WeightedMean::ByWeightSum)
                      ? blocked_sum(p.weight.data, p.weight.numel())
                      : static_cast<double>(n);
  } else if (p.reduction == Reduction::BatchMean) {
    own_divisor = static_cast<double>(p.batch_size);
  }
  if (!p.request.forward && !p.request.backward) return own_divisor;
  const double divisor = mean_divisor(p.normalizer, own_divisor);
  const double scale = 1.0 / divisor;
  const bool scalar_grad_out = p.request.backward && reduced;
  const double grad_scale =
      scalar_grad_out && p.request.grad_output.present()
          ? scale * static_cast<double>(static_cast<C>(p.request.grad_output.data[0]))
          : scale;

  // ---- layout -------------------------------------------------------------------------------
  std::vector<std::vector<int64_t>> strides(kMaxIterated, std::vector<int64_t>(bshape.size(), 0));
  for (int k = 0; k < p.noperands; ++k) strides[k] = broadcast_strides(p.operands[k].shape, bshape);
  if (p.weight.present()) strides[kWeightSlot] = broadcast_strides(p.weight.shape, bshape);
  const bool grad_out_array = p.request.backward && !reduced && p.request.grad_output.present();
  if (grad_out_array) strides[kGradOutSlot] = broadcast_strides(bshape, bshape);
  const Layout L = coalesce(bshape, strides);
  const int64_t inner = L.sizes.back();
  const size_t last = L.sizes.size() - 1;

  const T* bases[kMaxIterated] = {};
  for (int k = 0; k < p.noperands; ++k) bases[k] = p.operands[k].data;
  bases[kWeightSlot] = p.weight.present() ? p.weight.data : nullptr;
  bases[kGradOutSlot] = grad_out_array ? p.request.grad_output.data : nullptr;
  // Slots whose innermost stride is 0 are expanded into a per-thread row buffer.
  bool expand[kMaxIterated] = {};
  int nexpand = 0;
  for (int k = 0; k < kMaxIterated; ++k)
    if (bases[k] && L.strides[k][last] == 0 && inner > 1) expand[k] = true, ++nexpand;

  // Gradients of operands smaller than the broadcast shape are computed full-size, then summed.
  // The sum is written even when the broadcast is empty (n = 0) and the operand is not: its
  // gradient is then all zeros, as torch's. A kernel writes all its gradients in one type, so
  // with 16-bit storage and a summed gradient every gradient goes through compute-type scratch
  // (that of an operand of the broadcast shape is only rounded afterwards).
  bool any_summed = false;
  if (p.request.backward)
    for (int k = 0; k < p.noperands; ++k)
      any_summed |= p.request.grads[k].present() && p.operands[k].shape != bshape;
  const bool compute_grads = is_half_v<T> && any_summed;
  std::vector<std::vector<C>> full_grads(kMaxOperands);
  bool summed[kMaxOperands] = {};
  T* grad_bases[kMaxOperands] = {};  // outputs of operand shape
  C* full_bases[kMaxOperands] = {};  // broadcast-shape scratch of the operands summed afterwards
  if (p.request.backward)
    for (int k = 0; k < p.noperands; ++k) {
      if (!p.request.grads[k].present()) continue;
      if (p.operands[k].shape == bshape && !compute_grads) {
        grad_bases[k] = p.request.grads[k].data;
      } else {
        full_grads[k].resize(static_cast<size_t>(n));
        full_bases[k] = full_grads[k].data();
        summed[k] = true;
      }
    }

  const int64_t nblocks = reduce_blocks(n);
  const int nthreads = threads_for(nblocks, kGrainBlocks);
  std::vector<double> partials(static_cast<size_t>(nblocks), 0.0);
  std::vector<unsigned char> invalid(static_cast<size_t>(nblocks), 0);
  std::vector<T> row_buffers(static_cast<size_t>(nexpand ? nthreads * nexpand * kReduceBlock : 0));

  const OutKind out_kind =
      !p.request.forward ? OutKind::None : (reduced ? OutKind::Accumulate : OutKind::PerElement);
  const T* ones = ones_block<T>();

  // ---- the pass -----------------------------------------------------------------------------
  parallel_for(0, nblocks, kGrainBlocks, [&](int64_t b0, int64_t b1, int thread) {
    T* buffers = row_buffers.data() + static_cast<size_t>(thread) * nexpand * kReduceBlock;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t lo = b * kReduceBlock, hi = std::min(n, lo + kReduceBlock);
      double sum = 0.0;
      unsigned bad = 0;
      for (int64_t s = lo; s < hi;) {
        const int64_t row = s / inner, col = s % inner;
        const int64_t len = std::min(hi - s, inner - col);
        const T* ptr[kMaxIterated] = {};
        int e = 0;
        for (int k = 0; k < kMaxIterated; ++k) {
          if (!bases[k]) continue;
          const T* at = bases[k] + row_offset(L, k, row) + col * L.strides[k][last];
          if (expand[k]) {
            T* buf = buffers + static_cast<size_t>(e++) * kReduceBlock;
            std::fill(buf, buf + len, *at);
            at = buf;
          }
          ptr[k] = at;
        }
        Segment<T> seg{};
        Segment<T, C> compute_seg{};
        for (int k = 0; k < p.noperands; ++k) {
          seg.in[k] = compute_seg.in[k] = ptr[k];
          if (compute_grads) {
            compute_seg.grad[k] = full_bases[k] ? full_bases[k] + s : nullptr;
          } else {
            seg.grad[k] = grad_bases[k] ? grad_bases[k] + s : nullptr;
            if constexpr (!is_half_v<T>)  // float and double sum from scratch of their own type
              if (full_bases[k]) seg.grad[k] = full_bases[k] + s;
          }
        }
        seg.weight = compute_seg.weight = ptr[kWeightSlot] ? ptr[kWeightSlot] : ones;
        seg.grad_out = compute_seg.grad_out = ptr[kGradOutSlot] ? ptr[kGradOutSlot] : ones;
        seg.out = compute_seg.out =
            out_kind == OutKind::PerElement ? p.request.output.data + s : nullptr;
        seg.len = compute_seg.len = len;
        seg.grad_scale = compute_seg.grad_scale = static_cast<C>(grad_scale);
        const SegmentResult r = compute_grads ? kernels.compute(compute_seg, out_kind, ctx)
                                              : kernels.storage(seg, out_kind, ctx);
        sum += r.sum;
        bad |= r.invalid;
        s += len;
      }
      partials[static_cast<size_t>(b)] = sum;
      invalid[static_cast<size_t>(b)] = static_cast<unsigned char>(bad);
    }
  });

  unsigned failed = 0;
  for (unsigned char v : invalid) failed |= v;
  for (int k = p.noperands - 1; k >= 0; --k)  // the last operand first, as torch's BCE checks
    if (failed & (1u << k)) throw ValueError(std::string(fn) + ": " + p.invalid_messages[k]);
  if (out_kind == OutKind::Accumulate)
    p.request.output.data[0] =
        static_cast<T>(static_cast<C>(combine_partials(partials.data(), nblocks) / divisor));
  for (int k = 0; k < p.noperands; ++k) {
    if (!summed[k]) continue;
    if constexpr (is_half_v<T>)
      if (p.operands[k].shape == bshape) {  // only rounded (a sum from +0.0 would lose -0.0)
        narrow(full_grads[k].data(), p.request.grads[k].data, n);
        continue;
      }
    sum_to_shape(full_grads[k].data(), bshape, p.operands[k].shape, p.request.grads[k].data);
  }
  return own_divisor;
}

template double run_elementwise<float>(const ElementwiseProblem<float>&,
                                       const SegmentKernels<float>&, const void*);
template double run_elementwise<double>(const ElementwiseProblem<double>&,
                                        const SegmentKernels<double>&, const void*);
template double run_elementwise<bfloat16>(const ElementwiseProblem<bfloat16>&,
                                          const SegmentKernels<bfloat16>&, const void*);
template double run_elementwise<float16>(const ElementwiseProblem<float16>&,
                                         const SegmentKernels<float16>&, const void*);

}  // namespace losskit::detail
