// linear_cross_entropy, one chunk of rows at a time: the checks, the bias add, the fused
// cross-entropy row kernel of the classification family (detail::cross_entropy_rows, per-ISA
// kernels) run in place on the caller's logits, and the bias-gradient column sums.
//
// Memory plan (Liger-Kernel's): the caller holds one (rows x V) logits buffer. Per chunk,
//   logits = x_chunk @ W^T (caller's GEMM) -> here: + b, loss, d logits in place, with the global
//   'mean' scale and the per-row grad_output folded in -> caller's two GEMMs read d logits.
// Nothing here allocates more than O(V) doubles.
#include "losskit/large_vocab.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "classification/classification_kernels.hpp"
#include "common/checks.hpp"
#include "common/parallel.hpp"
#include "common/reduce.hpp"

namespace losskit {

namespace {

using detail::fail_index;
using detail::fail_value;

constexpr const char* kFn = "linear_cross_entropy";

void check_options(const LinearCrossEntropyOptions& o) {
  detail::check_reduction(kFn, o);
  if (!(o.label_smoothing >= 0.0 && o.label_smoothing <= 1.0))
    fail_value(kFn, "label_smoothing", "a value between 0.0 and 1.0",
               std::to_string(o.label_smoothing));
  detail::check_ce_extras(kFn, o.z_loss, o.softcap);
}

template <class T>
void check_class_vector(const char* argument, const View<T>& v, int64_t V) {
  if (!v.present() && v.shape.empty()) return;
  detail::check_required(kFn, argument, v);
  if (v.shape != Shape{V})
    fail_value(kFn, argument, "shape (" + std::to_string(V) + ",), one value per class",
               "shape " + shape_to_string(v.shape));
}

// Every index is ignore_index or in [0, V); returns the sum of the counted targets' weights.
template <class T>
double target_weight(const View<int64_t>& target, const T* weight, int64_t V, int64_t ignore) {
  double total = 0.0;
  const int64_t n = target.numel();
  for (int64_t p = 0; p < n; ++p) {
    const int64_t t = target.data[p];
    if (t == ignore) continue;
    if (t < 0 || t >= V)
      fail_index(kFn, "target",
                 "class indices in [0, " + std::to_string(V) + ") or ignore_index " +
                     std::to_string(ignore),
                 std::to_string(t));
    total += weight ? static_cast<double>(weight[t]) : 1.0;
  }
  return total;
}

// Rows of the bias add per thread-grain, and the column block of the bias-gradient sums; both
// fixed, so the result never depends on the thread count (each column is summed over rows in
// order by one thread).
constexpr int64_t kGrainElems = 1 << 16;
constexpr int64_t kColumnBlock = 512;

// Rows [r0, r0 + n) of the statistics outputs (absent ones stay absent).
template <class T>
CrossEntropyStats<T> chunk_stats(const CrossEntropyStats<T>& s, int64_t r0, int64_t n) {
  const auto part = [&](const auto& v) {
    using V = std::decay_t<decltype(v)>;
    return v.present() ? V(v.data + r0, {n}) : V();
  };
  return {part(s.lse), part(s.entropy), part(s.correct)};
}

}  // namespace

int64_t linear_cross_entropy_chunk_rows(int64_t num_rows, int64_t num_classes, int64_t itemsize,
                                        int64_t budget_bytes, int64_t min_rows) {
  const int64_t row_bytes = std::max<int64_t>(1, num_classes) * std::max<int64_t>(1, itemsize);
  const int64_t rows = std::max<int64_t>({1, min_rows, budget_bytes / row_bytes});
  return std::max<int64_t>(1, std::min(rows, num_rows));
}

template <class T>
double linear_cross_entropy_target_weight(View<int64_t> target, View<T> weight, int64_t num_classes,
                                          const LinearCrossEntropyOptions& options) {
  check_options(options);
  if (num_classes < 0)
    fail_value(kFn, "num_classes", "a non-negative number", std::to_string(num_classes));
  detail::check_required(kFn, "target", target);
  check_class_vector("weight", weight, num_classes);
  return target_weight(target, weight.data, num_classes, options.ignore_index);
}

template <class T>
double linear_cross_entropy_chunk(MutView<T> logits, View<int64_t> target, View<T> linear_bias,
                                  View<T> weight, View<T> grad_output, MutView<T> output,
                                  MutView<double> grad_bias_acc, bool want_grad, double grad_scale,
                                  const LinearCrossEntropyOptions& o,
                                  const CrossEntropyStats<T>& stats) {
  check_options(o);
  if (logits.shape.size() != 2)
    fail_value(kFn, "logits", "a (rows, num_classes) chunk",
               "shape " + shape_to_string(logits.shape));
  const int64_t n = logits.shape[0], V = logits.shape[1];
  detail::check_required(kFn, "logits", logits.view());
  detail::check_required(kFn, "target", target);
  detail::check_shape_equal(kFn, "target", target.shape, Shape{n},
                            "one class index per row, shape");
  check_class_vector("linear_bias", linear_bias, V);
  check_class_vector("weight", weight, V);
  if (grad_output.present() || !grad_output.shape.empty()) {
    detail::check_required(kFn, "grad_output", grad_output);
    detail::check_shape_equal(kFn, "grad_output", grad_output.shape, Shape{n},
                              "one value per row, shape");
  }
  if (output.present() || !output.shape.empty())
    detail::check_output(kFn, "output", output, Shape{n});
  if (grad_bias_acc.present() || !grad_bias_acc.shape.empty())
    detail::check_output(kFn, "grad_bias_acc", grad_bias_acc, Shape{V});
  detail::CeArgs<T> a;
  detail::set_ce_extras(kFn, a, o.z_loss, o.softcap, stats, Shape{n});
  detail::DisjointArrays arrays(kFn);
  arrays
      .write("logits", logits)  // read and written: the gradient replaces the logits
      .read("target", target)
      .read("linear_bias", linear_bias)
      .read("weight", weight)
      .read("grad_output", grad_output)
      .write("output", output)
      .write("grad_bias_acc", grad_bias_acc);
  detail::write_stats(arrays, stats).check();
  target_weight(target, weight.data, V, o.ignore_index);  // indices only; the total is global
  if (n == 0) return 0.0;
  if (V == 0) fail_value(kFn, "linear_weight", "at least one class", "0 classes");

  T* x = logits.data;
  if (linear_bias.present()) {
    const T* b = linear_bias.data;
    detail::parallel_for(0, n, std::max<int64_t>(1, kGrainElems / V),
                         [&](int64_t r0, int64_t r1, int) {
                           for (int64_t r = r0; r < r1; ++r) {
                             T* row = x + r * V;
                             for (int64_t c = 0; c < V; ++c) row[c] += b[c];
                           }
                         });
  }

  a.input = x;
  a.target = target.data;
  a.weight = weight.data;
  a.N = n;
  a.C = V;
  a.S = 1;
  a.ignore_index = o.ignore_index;
  a.smoothing = o.label_smoothing;
  a.weight_sum = weight.present() ? detail::blocked_sum(weight.data, V) : static_cast<double>(V);
  a.grad_scale = grad_scale;
  a.grad_out = grad_output.data;
  a.out = output.data;
  a.grad = want_grad ? x : nullptr;
  const double total = detail::cross_entropy_rows(a);

  if (want_grad && grad_bias_acc.present()) {
    double* gb = grad_bias_acc.data;
    const int64_t blocks = (V + kColumnBlock - 1) / kColumnBlock;
    detail::parallel_for(0, blocks,
                         std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, n * kColumnBlock)),
                         [&](int64_t k0, int64_t k1, int) {
                           for (int64_t k = k0; k < k1; ++k) {
                             const int64_t c0 = k * kColumnBlock,
                                           c1 = std::min(V, c0 + kColumnBlock);
                             double acc[kColumnBlock];
                             for (int64_t c = c0; c < c1; ++c) acc[c - c0] = gb[c];
                             for (int64_t r = 0; r < n; ++r) {
                               const T* row = x + r * V;
                               for (int64_t c = c0; c < c1; ++c)
                                 acc[c - c0] += static_cast<double>(row[c]);
                             }
                             for (int64_t c = c0; c < c1; ++c) gb[c] = acc[c - c0];
                           }
                         });
  }
  return total;
}

template <class T>
double linear_cross_entropy_mean_normalizer(View<int64_t> target, View<T> weight,
                                            int64_t num_classes,
                                            const LinearCrossEntropyOptions& o) {
  detail::check_dividing_reduction(kFn, o.reduction);
  return linear_cross_entropy_target_weight(target, weight, num_classes, o);
}

int64_t linear_cross_entropy_workspace_size(int64_t chunk_rows, int64_t num_classes) {
  return std::max<int64_t>(0, chunk_rows) * std::max<int64_t>(0, num_classes);
}

template <class T>
void linear_cross_entropy_forward_backward(
    View<T> input, View<T> linear_weight, View<int64_t> target, View<T> linear_bias, View<T> weight,
    View<T> grad_output, MutView<T> output, MutView<T> grad_input, MutView<T> grad_linear_weight,
    MutView<T> grad_linear_bias, MutView<T> workspace, const LinearCrossEntropyOptions& o,
    LinearCrossEntropyGemm<T> gemm, const CrossEntropyStats<T>& stats) {
  // ---- checks, all before any work
  check_options(o);
  detail::check_required(kFn, "input", input);
  detail::check_required(kFn, "linear_weight", linear_weight);
  if (input.dim() != 1 && input.dim() != 2)
    fail_value(kFn, "input", "a (in_features) or (N, in_features) array",
               "shape " + shape_to_string(input.shape));
  if (linear_weight.dim() != 2)
    fail_value(kFn, "linear_weight", "a (num_classes, in_features) array",
               "shape " + shape_to_string(linear_weight.shape));
  const int64_t V = linear_weight.shape[0], H = linear_weight.shape[1];
  if (input.shape.back() != H)
    fail_value(kFn, "input", std::to_string(H) + " features (linear_weight.shape[1])",
               "shape " + shape_to_string(input.shape));
  const bool batched = input.dim() == 2;
  const int64_t N = batched ? input.shape[0] : 1;
  const Shape loss_shape = batched ? Shape{N} : Shape{};
  detail::check_required(kFn, "target", target);
  detail::check_shape_equal(kFn, "target", target.shape, loss_shape, "class indices of shape");
  check_class_vector("linear_bias", linear_bias, V);
  const bool none = o.reduction == Reduction::None;
  if (output.present() || !output.shape.empty())
    detail::check_output(kFn, "output", output, none ? loss_shape : Shape{});
  if (grad_output.present() || !grad_output.shape.empty()) {
    detail::check_required(kFn, "grad_output", grad_output);
    detail::check_shape_equal(kFn, "grad_output", grad_output.shape, none ? loss_shape : Shape{},
                              none ? "the loss's shape" : "a scalar, shape");
  }
  if (grad_input.present()) detail::check_output(kFn, "grad_input", grad_input, input.shape);
  if (grad_linear_weight.present())
    detail::check_output(kFn, "grad_linear_weight", grad_linear_weight, linear_weight.shape);
  if (grad_linear_bias.present()) {
    if (!linear_bias.present())
      fail_value(kFn, "grad_linear_bias", "absent without linear_bias", "an array");
    detail::check_output(kFn, "grad_linear_bias", grad_linear_bias, Shape{V});
  }
  const bool want_grad =
      grad_input.present() || grad_linear_weight.present() || grad_linear_bias.present();
  if (workspace.shape.size() != 2 || workspace.shape[1] != V || workspace.shape[0] < 1 ||
      !workspace.present())
    fail_value(kFn, "workspace", "a (rows, " + std::to_string(V) + ") buffer with rows >= 1",
               "shape " + shape_to_string(workspace.shape));
  detail::check_aligned(kFn, "workspace", workspace.data);
  if (!gemm.fn) fail_value(kFn, "gemm", "a GEMM function", "none");
  {
    detail::CeArgs<T> probe;  // checks the statistics outputs against the loss's shape
    detail::set_ce_extras(kFn, probe, o.z_loss, o.softcap, stats, loss_shape);
  }
  detail::DisjointArrays arrays(kFn);
  arrays.read("input", input)
      .read("linear_weight", linear_weight)
      .read("target", target)
      .read("linear_bias", linear_bias)
      .read("weight", weight)
      .read("grad_output", grad_output)
      .write("output", output)
      .write("grad_input", grad_input)
      .write("grad_linear_weight", grad_linear_weight)
      .write("grad_linear_bias", grad_linear_bias)
      .write("workspace", workspace);
  detail::write_stats(arrays, stats).check();
  const double total_weight = linear_cross_entropy_target_weight(target, weight, V, o);

  // ---- the global scale: 'mean' divides by the weight of the counted targets (or the normalizer)
  const double divisor = detail::mean_divisor(o.normalizer, total_weight);
  const double go =
      (!none && grad_output.present()) ? static_cast<double>(grad_output.data[0]) : 1.0;
  const double scale = o.reduction == Reduction::Mean ? go / divisor : go;
  const int64_t rows = std::min<int64_t>(workspace.shape[0], std::max<int64_t>(N, 1));
  std::vector<double> gb;
  if (grad_linear_bias.present()) gb.assign(static_cast<size_t>(V), 0.0);
  if (grad_linear_weight.present() && N == 0)
    std::fill(grad_linear_weight.data, grad_linear_weight.data + V * H, T(0));

  T* buf = workspace.data;
  double total = 0.0;
  for (int64_t r0 = 0; r0 < N; r0 += rows) {
    const int64_t n = std::min(rows, N - r0);
    const T* xc = input.data + r0 * H;
    gemm.fn(gemm.context, false, true, n, V, H, T(1), xc, H, linear_weight.data, H, T(0), buf, V);
    total += linear_cross_entropy_chunk<T>(
        MutView<T>(buf, {n, V}), View<int64_t>(target.data + r0, {n}), linear_bias, weight,
        none && grad_output.present() ? View<T>(grad_output.data + r0, {n}) : View<T>(),
        none && output.present() ? MutView<T>(output.data + r0, {n}) : MutView<T>(),
        gb.empty() ? MutView<double>() : MutView<double>(gb.data(), {V}), want_grad, scale, o,
        chunk_stats(stats, r0, n));
    if (!want_grad) continue;
    if (grad_input.present())
      gemm.fn(gemm.context, false, false, n, H, V, T(1), buf, V, linear_weight.data, H, T(0),
              grad_input.data + r0 * H, H);
    if (grad_linear_weight.present())
      gemm.fn(gemm.context, true, false, V, H, n, T(1), buf, V, xc, H, r0 == 0 ? T(0) : T(1),
              grad_linear_weight.data, H);
  }
  if (!none && output.present())
    output.data[0] = static_cast<T>(o.reduction == Reduction::Mean ? total / divisor : total);
  for (size_t c = 0; c < gb.size(); ++c) grad_linear_bias.data[c] = static_cast<T>(gb[c]);
}

#define LOSSKIT_INSTANTIATE(T)                                                                     \
  template double linear_cross_entropy_target_weight<T>(View<int64_t>, View<T>, int64_t,           \
                                                        const LinearCrossEntropyOptions&);         \
  template double linear_cross_entropy_mean_normalizer<T>(View<int64_t>, View<T>, int64_t,         \
                                                          const LinearCrossEntropyOptions&);       \
  template double linear_cross_entropy_chunk<T>(MutView<T>, View<int64_t>, View<T>, View<T>,       \
                                                View<T>, MutView<T>, MutView<double>, bool,        \
                                                double, const LinearCrossEntropyOptions&,          \
                                                const CrossEntropyStats<T>&);                      \
  template void linear_cross_entropy_forward_backward<T>(View<T>, View<T>, View<int64_t>, View<T>, \
                                                         View<T>, View<T>, MutView<T>, MutView<T>, \
                                                         MutView<T>, MutView<T>, MutView<T>,       \
                                                         const LinearCrossEntropyOptions&,         \
                                                         LinearCrossEntropyGemm<T>,                \
                                                         const CrossEntropyStats<T>&);
LOSSKIT_INSTANTIATE(float)
LOSSKIT_INSTANTIATE(double)
#undef LOSSKIT_INSTANTIATE

}  // namespace losskit
