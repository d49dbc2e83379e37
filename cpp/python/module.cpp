// The only pybind11 file: argument conversion between NumPy arrays and the core's views.
//
// Every array arriving here is C-contiguous and of the kernel's dtype (the Python layer made it
// so, copying only non-contiguous or non-float input); the casters use noconvert, so nothing here
// ever copies silently. Outputs are allocated while holding the GIL, then the core runs with the
// GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "common/vmath_kernels.hpp"
#include "losskit/losskit.hpp"

namespace py = pybind11;
using losskit::MutView;
using losskit::Reduction;
using losskit::Shape;
using losskit::View;

namespace {

template <class T>
using Array = py::array_t<T, py::array::c_style>;

template <class T>
Shape shape_of(const py::array& a) {
  return Shape(a.shape(), a.shape() + a.ndim());
}

// A py::object that is None or an array of exactly dtype T, C-contiguous.
template <class T>
View<T> as_view(const py::handle& obj, const char* function, const char* argument) {
  if (obj.is_none()) return {};
  if (!Array<T>::check_(obj))
    throw losskit::TypeError(std::string(function) + ": " + argument + " expected a " +
                             (sizeof(T) == 4 ? "float32" : "float64") + " array");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!(a.flags() & py::array::c_style))
    throw losskit::ValueError(std::string(function) + ": " + argument +
                              " expected a C-contiguous array");
  return View<T>(static_cast<const T*>(a.data()), shape_of<T>(a));
}

template <class T>
Array<T> new_array(const Shape& shape) {
  return Array<T>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

template <class T>
MutView<T> as_mut(Array<T>& a) {
  return MutView<T>(a.mutable_data(), shape_of<T>(a));
}

template <class T>
using Inputs = std::vector<View<T>>;
template <class T>
using Grads = std::vector<MutView<T>>;

// ---- adapters: one per pointwise loss, mapping positional views onto its C++ signature -------
// Inputs arrive in torch's argument order; kGradOf lists the inputs that have a gradient, in the
// order the gradients are returned.

// Most pointwise adapters differ only in names and in which arguments they forward; these
// macros write the three forwarding functions from one argument list each.
#define LOSSKIT_FORWARDERS(FN, FWD_ARGS, BWD_ARGS, FB_ARGS)                                      \
  template <class T>                                                                            \
  static void forward(const Inputs<T>& in, MutView<T> out, const Options& o) {                  \
    losskit::FN FWD_ARGS;                                                                       \
  }                                                                                             \
  template <class T>                                                                            \
  static void backward(View<T> go, const Inputs<T>& in, Grads<T>& g, const Options& o) {        \
    losskit::FN##_backward BWD_ARGS;                                                            \
  }                                                                                             \
  template <class T>                                                                            \
  static void forward_backward(const Inputs<T>& in, View<T> go, MutView<T> out, Grads<T>& g,    \
                               const Options& o) {                                              \
    losskit::FN##_forward_backward FB_ARGS;                                                     \
  }

// input, target[, weight]: the output is their broadcast.
#define LOSSKIT_OUT_SHAPE_2                                                                      \
  template <class T>                                                                            \
  static Shape out_shape(const Inputs<T>& in) {                                                 \
    return losskit::elementwise_output_shape({in[0].shape, in[1].shape}, kName);                \
  }

struct L1 {
  static constexpr const char* kName = "l1_loss";
  static constexpr int kInputs = 3;  // input, target, weight
  static constexpr std::array<int, 2> kGradOf{0, 1};  // grad_input, grad_target
  using Options = losskit::L1LossOptions;
  static Options options(Reduction r, const py::kwargs&) { return {r}; }
  LOSSKIT_OUT_SHAPE_2
  LOSSKIT_FORWARDERS(l1_loss, (in[0], in[1], in[2], out, o),
                     (go, in[0], in[1], in[2], g[0], g[1], o),
                     (in[0], in[1], in[2], go, out, g[0], g[1], o))
};

struct Mse {
  static constexpr const char* kName = "mse_loss";
  static constexpr int kInputs = 3;
  static constexpr std::array<int, 2> kGradOf{0, 1};
  using Options = losskit::MseLossOptions;
  static Options options(Reduction r, const py::kwargs&) { return {r}; }
  LOSSKIT_OUT_SHAPE_2
  LOSSKIT_FORWARDERS(mse_loss, (in[0], in[1], in[2], out, o),
                     (go, in[0], in[1], in[2], g[0], g[1], o),
                     (in[0], in[1], in[2], go, out, g[0], g[1], o))
};

struct Huber {
  static constexpr const char* kName = "huber_loss";
  static constexpr int kInputs = 3;
  static constexpr std::array<int, 2> kGradOf{0, 1};
  using Options = losskit::HuberLossOptions;
  static Options options(Reduction r, const py::kwargs& kw) {
    return {r, kw["delta"].cast<double>()};
  }
  LOSSKIT_OUT_SHAPE_2
  LOSSKIT_FORWARDERS(huber_loss, (in[0], in[1], in[2], out, o),
                     (go, in[0], in[1], in[2], g[0], g[1], o),
                     (in[0], in[1], in[2], go, out, g[0], g[1], o))
};

struct SmoothL1 {
  static constexpr const char* kName = "smooth_l1_loss";
  static constexpr int kInputs = 2;
  static constexpr std::array<int, 2> kGradOf{0, 1};
  using Options = losskit::SmoothL1LossOptions;
  static Options options(Reduction r, const py::kwargs& kw) {
    return {r, kw["beta"].cast<double>()};
  }
  LOSSKIT_OUT_SHAPE_2
  LOSSKIT_FORWARDERS(smooth_l1_loss, (in[0], in[1], out, o), (go, in[0], in[1], g[0], g[1], o),
                     (in[0], in[1], go, out, g[0], g[1], o))
};

struct SoftMargin {
  static constexpr const char* kName = "soft_margin_loss";
  static constexpr int kInputs = 2;
  static constexpr std::array<int, 1> kGradOf{0};
  using Options = losskit::SoftMarginLossOptions;
  static Options options(Reduction r, const py::kwargs&) { return {r}; }
  LOSSKIT_OUT_SHAPE_2
  LOSSKIT_FORWARDERS(soft_margin_loss, (in[0], in[1], out, o), (go, in[0], in[1], g[0], o),
                     (in[0], in[1], go, out, g[0], o))
};

struct Bce {
  static constexpr const char* kName = "binary_cross_entropy";
  static constexpr int kInputs = 3;
  static constexpr std::array<int, 2> kGradOf{0, 1};
  using Options = losskit::BinaryCrossEntropyOptions;
  static Options options(Reduction r, const py::kwargs&) { return {r}; }
  LOSSKIT_OUT_SHAPE_2
  LOSSKIT_FORWARDERS(binary_cross_entropy, (in[0], in[1], in[2], out, o),
                     (go, in[0], in[1], in[2], g[0], g[1], o),
                     (in[0], in[1], in[2], go, out, g[0], g[1], o))
};

struct BceWithLogits {
  static constexpr const char* kName = "binary_cross_entropy_with_logits";
  static constexpr int kInputs = 4;  // input, target, weight, pos_weight
  static constexpr std::array<int, 2> kGradOf{0, 1};
  using Options = losskit::BinaryCrossEntropyWithLogitsOptions;
  static Options options(Reduction r, const py::kwargs&) { return {r}; }
  LOSSKIT_OUT_SHAPE_2
  LOSSKIT_FORWARDERS(binary_cross_entropy_with_logits, (in[0], in[1], in[2], in[3], out, o),
                     (go, in[0], in[1], in[2], in[3], g[0], g[1], o),
                     (in[0], in[1], in[2], in[3], go, out, g[0], g[1], o))
};

struct PoissonNll {
  static constexpr const char* kName = "poisson_nll_loss";
  static constexpr int kInputs = 2;
  static constexpr std::array<int, 2> kGradOf{0, 1};
  using Options = losskit::PoissonNllLossOptions;
  static Options options(Reduction r, const py::kwargs& kw) {
    return {r, kw["log_input"].cast<bool>(), kw["full"].cast<bool>(), kw["eps"].cast<double>()};
  }
  LOSSKIT_OUT_SHAPE_2
  LOSSKIT_FORWARDERS(poisson_nll_loss, (in[0], in[1], out, o), (go, in[0], in[1], g[0], g[1], o),
                     (in[0], in[1], go, out, g[0], g[1], o))
};

struct GaussianNll {
  static constexpr const char* kName = "gaussian_nll_loss";
  static constexpr int kInputs = 3;  // input, target, var
  static constexpr std::array<int, 3> kGradOf{0, 2, 1};  // grad_input, grad_var, grad_target
  using Options = losskit::GaussianNllLossOptions;
  static Options options(Reduction r, const py::kwargs& kw) {
    return {r, kw["full"].cast<bool>(), kw["eps"].cast<double>()};
  }
  template <class T>
  static Shape out_shape(const Inputs<T>& in) {
    return losskit::elementwise_output_shape(
        {in[0].shape, in[1].shape, losskit::gaussian_nll_var_shape(in[0].shape, in[2].shape)},
        kName);
  }
  LOSSKIT_FORWARDERS(gaussian_nll_loss, (in[0], in[1], in[2], out, o),
                     (go, in[0], in[1], in[2], g[0], g[1], g[2], o),
                     (in[0], in[1], in[2], go, out, g[0], g[1], g[2], o))
};

struct KlDiv {
  static constexpr const char* kName = "kl_div";
  static constexpr int kInputs = 2;
  static constexpr std::array<int, 2> kGradOf{0, 1};
  using Options = losskit::KlDivOptions;
  static Options options(Reduction r, const py::kwargs& kw) {
    return {r, kw["log_target"].cast<bool>()};
  }
  LOSSKIT_OUT_SHAPE_2
  LOSSKIT_FORWARDERS(kl_div, (in[0], in[1], out, o), (go, in[0], in[1], g[0], g[1], o),
                     (in[0], in[1], go, out, g[0], g[1], o))
};

struct MarginRanking {
  static constexpr const char* kName = "margin_ranking_loss";
  static constexpr int kInputs = 3;  // input1, input2, target
  static constexpr std::array<int, 2> kGradOf{0, 1};
  using Options = losskit::MarginRankingLossOptions;
  static Options options(Reduction r, const py::kwargs& kw) {
    return {r, kw["margin"].cast<double>()};
  }
  template <class T>
  static Shape out_shape(const Inputs<T>& in) {
    return losskit::elementwise_output_shape({in[0].shape, in[1].shape, in[2].shape}, kName);
  }
  LOSSKIT_FORWARDERS(margin_ranking_loss, (in[0], in[1], in[2], out, o),
                     (go, in[0], in[1], in[2], g[0], g[1], o),
                     (in[0], in[1], in[2], go, out, g[0], g[1], o))
};

struct HingeEmbedding {
  static constexpr const char* kName = "hinge_embedding_loss";
  static constexpr int kInputs = 2;
  static constexpr std::array<int, 1> kGradOf{0};
  using Options = losskit::HingeEmbeddingLossOptions;
  static Options options(Reduction r, const py::kwargs& kw) {
    return {r, kw["margin"].cast<double>()};
  }
  LOSSKIT_OUT_SHAPE_2
  LOSSKIT_FORWARDERS(hinge_embedding_loss, (in[0], in[1], out, o), (go, in[0], in[1], g[0], o),
                     (in[0], in[1], go, out, g[0], o))
};

// ---- the generic binder ----------------------------------------------------------------------
template <class A, class T>
Inputs<T> views(const py::tuple& arrays) {
  if (static_cast<int>(arrays.size()) != A::kInputs)
    throw losskit::ValueError(std::string(A::kName) + ": expected " +
                              std::to_string(A::kInputs) + " arrays");
  Inputs<T> in;
  for (int k = 0; k < A::kInputs; ++k) in.push_back(as_view<T>(arrays[k], A::kName, "input"));
  return in;
}

template <class A>
Reduction reduction_of(const std::string& name) {
  return losskit::parse_reduction(name, A::kName, std::string(A::kName) == "kl_div");
}

template <class A, class T>
py::object forward(const py::tuple& arrays, const std::string& reduction, const py::kwargs& kw) {
  const auto in = views<A, T>(arrays);
  const auto o = A::options(reduction_of<A>(reduction), kw);
  auto out = new_array<T>(o.reduction == Reduction::None ? A::out_shape(in) : Shape{});
  auto out_view = as_mut(out);
  {
    py::gil_scoped_release release;
    A::forward(in, out_view, o);
  }
  return std::move(out);
}

// Allocates the wanted gradients, shaped like their inputs.
template <class A, class T>
std::pair<Grads<T>, py::tuple> grad_arrays(const Inputs<T>& in, const py::tuple& want) {
  Grads<T> grads;
  py::tuple result(A::kGradOf.size());
  for (size_t j = 0; j < A::kGradOf.size(); ++j) {
    if (j < want.size() && want[j].cast<bool>() && in[A::kGradOf[j]].present()) {
      auto g = new_array<T>(in[A::kGradOf[j]].shape);
      grads.push_back(as_mut(g));
      result[j] = std::move(g);
    } else {
      grads.push_back({});
      result[j] = py::none();
    }
  }
  return {grads, result};
}

template <class A, class T>
py::tuple backward(const py::handle& grad_output, const py::tuple& arrays,
                   const std::string& reduction, const py::tuple& want, const py::kwargs& kw) {
  const auto in = views<A, T>(arrays);
  const auto o = A::options(reduction_of<A>(reduction), kw);
  const View<T> go = as_view<T>(grad_output, A::kName, "grad_output");
  auto [grads, result] = grad_arrays<A, T>(in, want);
  {
    py::gil_scoped_release release;
    A::backward(go, in, grads, o);
  }
  return result;
}

template <class A, class T>
py::tuple forward_backward(const py::tuple& arrays, const py::handle& grad_output,
                           const std::string& reduction, const py::tuple& want,
                           const py::kwargs& kw) {
  const auto in = views<A, T>(arrays);
  const auto o = A::options(reduction_of<A>(reduction), kw);
  const View<T> go = as_view<T>(grad_output, A::kName, "grad_output");
  auto out = new_array<T>(o.reduction == Reduction::None ? A::out_shape(in) : Shape{});
  auto out_view = as_mut(out);
  auto [grads, result] = grad_arrays<A, T>(in, want);
  {
    py::gil_scoped_release release;
    A::forward_backward(in, go, out_view, grads, o);
  }
  return py::make_tuple(out, result);
}

// The dtype is chosen by the first array (the Python layer made them all alike).
bool is_float32(const py::tuple& arrays) {
  return py::isinstance<py::array>(arrays[0]) &&
         py::reinterpret_borrow<py::array>(arrays[0]).dtype().is(py::dtype::of<float>());
}

template <class A>
void bind(py::module_& m) {
  const std::string name = A::kName;
  m.def(
      name.c_str(),
      [](const py::tuple& arrays, const std::string& reduction, const py::kwargs& kw) {
        return is_float32(arrays) ? forward<A, float>(arrays, reduction, kw)
                                  : forward<A, double>(arrays, reduction, kw);
      },
      py::arg("arrays"), py::arg("reduction"));
  m.def(
      (name + "_backward").c_str(),
      [](const py::object& grad_output, const py::tuple& arrays, const std::string& reduction,
         const py::tuple& want, const py::kwargs& kw) {
        return is_float32(arrays) ? backward<A, float>(grad_output, arrays, reduction, want, kw)
                                  : backward<A, double>(grad_output, arrays, reduction, want, kw);
      },
      py::arg("grad_output"), py::arg("arrays"), py::arg("reduction"), py::arg("want"));
  m.def(
      (name + "_forward_backward").c_str(),
      [](const py::tuple& arrays, const py::object& grad_output, const std::string& reduction,
         const py::tuple& want, const py::kwargs& kw) {
        return is_float32(arrays)
                   ? forward_backward<A, float>(arrays, grad_output, reduction, want, kw)
                   : forward_backward<A, double>(arrays, grad_output, reduction, want, kw);
      },
      py::arg("arrays"), py::arg("grad_output"), py::arg("reduction"), py::arg("want"));
}

// ---- classification bindings ----
// One binding per loss, whose first argument `mode` is 0 forward, 1 backward, 2 forward_backward;
// the result is (loss or None, grad_input or None, grad_target or None). Class-index targets arrive
// as C-contiguous int64 arrays (the Python layer converts any integer dtype).
View<int64_t> classification_index_view(const py::handle& obj, const char* function) {
  if (!py::array_t<int64_t, py::array::c_style>::check_(obj))
    throw losskit::TypeError(std::string(function) + ": target expected an int64 array");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!(a.flags() & py::array::c_style))
    throw losskit::ValueError(std::string(function) + ": target expected a C-contiguous array");
  return View<int64_t>(static_cast<const int64_t*>(a.data()), shape_of<int64_t>(a));
}

// Large gradients come from a one-slot cache: the buffer of the most recently freed large
// classification gradient is reused by the next call that fits it. A fresh N x C buffer costs a
// page fault and the kernel's zeroing per 4 KiB page on first touch, as much again as the kernel's
// own write of the gradient; in a training loop, where each step's gradient is dropped before the
// next step, the cache removes that cost. At most one buffer (the last freed) is kept; every kernel
// writes every element of its gradient, so a reused buffer is never read uninitialised.
struct ClassificationGradCache {  // std::mutex and std::malloc come with pybind11's headers
  std::mutex mutex;
  void* data = nullptr;
  size_t bytes = 0;
};
ClassificationGradCache& classification_grad_cache() {
  static auto* cache = new ClassificationGradCache;  // never destroyed: capsules may outlive exit
  return *cache;
}
constexpr size_t kClassificationCacheMin = size_t{4} << 20;

template <class T>
Array<T> classification_grad_array(const Shape& shape) {
  size_t bytes = sizeof(T);
  for (int64_t d : shape) bytes *= static_cast<size_t>(d);
  if (bytes < kClassificationCacheMin) return new_array<T>(shape);
  void* data = nullptr;
  size_t capacity = 0;
  {
    auto& cache = classification_grad_cache();
    std::lock_guard<std::mutex> lock(cache.mutex);
    if (cache.data && cache.bytes >= bytes && cache.bytes <= 2 * bytes) {
      data = cache.data;
      capacity = cache.bytes;
      cache.data = nullptr;
      cache.bytes = 0;
    }
  }
  if (!data) {
    data = std::malloc(bytes);
    if (!data) throw std::bad_alloc();
    capacity = bytes;
  }
  auto* record = new std::pair<void*, size_t>(data, capacity);
  py::capsule owner(record, [](void* p) {
    auto* rec = static_cast<std::pair<void*, size_t>*>(p);
    void* spill = rec->first;
    {
      auto& cache = classification_grad_cache();
      std::lock_guard<std::mutex> lock(cache.mutex);
      if (!cache.data || cache.bytes < rec->second) {
        std::swap(spill, cache.data);  // keep the larger buffer
        cache.bytes = rec->second;
      }
    }
    std::free(spill);
    delete rec;
  });
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  return Array<T>(dims, static_cast<T*>(data), owner);
}

template <class T, class Run>
py::tuple classification_call(int mode, const char* function, const py::handle& grad_output,
                              const Shape& loss_shape, const Shape& input_shape,
                              bool want_target_grad, Run&& run) {
  if (mode < 0 || mode > 2)
    throw losskit::ValueError(std::string(function) + ": mode expected 0, 1 or 2");
  const View<T> go = as_view<T>(grad_output, function, "grad_output");
  py::object out = py::none(), grad_input = py::none(), grad_target = py::none();
  MutView<T> out_v, gi_v, gt_v;
  if (mode != 1) {
    auto a = new_array<T>(loss_shape);
    out_v = as_mut(a);
    out = std::move(a);
  }
  if (mode != 0) {
    auto a = classification_grad_array<T>(input_shape);
    gi_v = as_mut(a);
    grad_input = std::move(a);
    if (want_target_grad) {
      auto b = classification_grad_array<T>(input_shape);
      gt_v = as_mut(b);
      grad_target = std::move(b);
    }
  }
  {
    py::gil_scoped_release release;
    run(go, out_v, gi_v, gt_v);
  }
  return py::make_tuple(out, grad_input, grad_target);
}

bool classification_is_float32(const py::handle& input) {
  return py::isinstance<py::array>(input) &&
         py::reinterpret_borrow<py::array>(input).dtype().is(py::dtype::of<float>());
}

Shape classification_shape(const py::handle& a) {
  auto arr = py::reinterpret_borrow<py::array>(a);
  return Shape(arr.shape(), arr.shape() + arr.ndim());
}

template <class T>
py::tuple classification_cross_entropy(int mode, const py::handle& input, const py::handle& target,
                                       const py::handle& weight, const py::handle& grad_output,
                                       const std::string& reduction, int64_t ignore_index,
                                       double label_smoothing, bool probabilities,
                                       bool want_target_grad) {
  const char* fn = "cross_entropy";
  const View<T> x = as_view<T>(input, fn, "input");
  const View<T> w = as_view<T>(weight, fn, "weight");
  const losskit::CrossEntropyOptions o{losskit::parse_reduction(reduction, fn), ignore_index,
                                       label_smoothing};
  const Shape loss_shape =
      o.reduction == Reduction::None ? losskit::classification_output_shape(x.shape) : Shape{};
  if (probabilities) {
    const View<T> y = as_view<T>(target, fn, "target");
    return classification_call<T>(
        mode, fn, grad_output, loss_shape, x.shape, want_target_grad,
        [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T> gt) {
          if (mode == 0) losskit::cross_entropy(x, y, w, out, o);
          else if (mode == 1) losskit::cross_entropy_backward(go, x, y, w, gi, gt, o);
          else losskit::cross_entropy_forward_backward(x, y, w, go, out, gi, gt, o);
        });
  }
  const View<int64_t> t = classification_index_view(target, fn);
  return classification_call<T>(
      mode, fn, grad_output, loss_shape, x.shape, false,
      [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T>) {
        if (mode == 0) losskit::cross_entropy(x, t, w, out, o);
        else if (mode == 1) losskit::cross_entropy_backward(go, x, t, w, gi, o);
        else losskit::cross_entropy_forward_backward(x, t, w, go, out, gi, o);
      });
}

template <class T>
py::tuple classification_nll_loss(int mode, const py::handle& input, const py::handle& target,
                                  const py::handle& weight, const py::handle& grad_output,
                                  const std::string& reduction, int64_t ignore_index) {
  const char* fn = "nll_loss";
  const View<T> x = as_view<T>(input, fn, "input");
  const View<T> w = as_view<T>(weight, fn, "weight");
  const View<int64_t> t = classification_index_view(target, fn);
  const losskit::NllLossOptions o{losskit::parse_reduction(reduction, fn), ignore_index};
  const Shape loss_shape =
      o.reduction == Reduction::None ? losskit::classification_output_shape(x.shape) : Shape{};
  return classification_call<T>(
      mode, fn, grad_output, loss_shape, x.shape, false,
      [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T>) {
        if (mode == 0) losskit::nll_loss(x, t, w, out, o);
        else if (mode == 1) losskit::nll_loss_backward(go, x, t, w, gi, o);
        else losskit::nll_loss_forward_backward(x, t, w, go, out, gi, o);
      });
}

template <class T>
py::tuple classification_multi_margin_loss(int mode, const py::handle& input,
                                           const py::handle& target, const py::handle& weight,
                                           const py::handle& grad_output,
                                           const std::string& reduction, int p, double margin) {
  const char* fn = "multi_margin_loss";
  const View<T> x = as_view<T>(input, fn, "input");
  const View<T> w = as_view<T>(weight, fn, "weight");
  const View<int64_t> t = classification_index_view(target, fn);
  const losskit::MultiMarginLossOptions o{losskit::parse_reduction(reduction, fn), p, margin};
  const Shape loss_shape = o.reduction == Reduction::None ? t.shape : Shape{};
  return classification_call<T>(
      mode, fn, grad_output, loss_shape, x.shape, false,
      [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T>) {
        if (mode == 0) losskit::multi_margin_loss(x, t, w, out, o);
        else if (mode == 1) losskit::multi_margin_loss_backward(go, x, t, w, gi, o);
        else losskit::multi_margin_loss_forward_backward(x, t, w, go, out, gi, o);
      });
}

template <class T>
py::tuple classification_multilabel_margin_loss(int mode, const py::handle& input,
                                                const py::handle& target,
                                                const py::handle& grad_output,
                                                const std::string& reduction) {
  const char* fn = "multilabel_margin_loss";
  const View<T> x = as_view<T>(input, fn, "input");
  const View<int64_t> t = classification_index_view(target, fn);
  const losskit::MultilabelMarginLossOptions o{losskit::parse_reduction(reduction, fn)};
  const Shape loss_shape =
      o.reduction == Reduction::None ? losskit::classification_output_shape(x.shape) : Shape{};
  return classification_call<T>(
      mode, fn, grad_output, loss_shape, x.shape, false,
      [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T>) {
        if (mode == 0) losskit::multilabel_margin_loss(x, t, out, o);
        else if (mode == 1) losskit::multilabel_margin_loss_backward(go, x, t, gi, o);
        else losskit::multilabel_margin_loss_forward_backward(x, t, go, out, gi, o);
      });
}

template <class T>
py::tuple classification_multilabel_soft_margin_loss(int mode, const py::handle& input,
                                                     const py::handle& target,
                                                     const py::handle& weight,
                                                     const py::handle& grad_output,
                                                     const std::string& reduction,
                                                     bool want_target_grad) {
  const char* fn = "multilabel_soft_margin_loss";
  const View<T> x = as_view<T>(input, fn, "input");
  const View<T> y = as_view<T>(target, fn, "target");
  const View<T> w = as_view<T>(weight, fn, "weight");
  const losskit::MultilabelSoftMarginLossOptions o{losskit::parse_reduction(reduction, fn)};
  const Shape loss_shape = o.reduction == Reduction::None
                               ? losskit::classification_output_shape(x.shape, true)
                               : Shape{};
  return classification_call<T>(
      mode, fn, grad_output, loss_shape, x.shape, want_target_grad,
      [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T> gt) {
        if (mode == 0) losskit::multilabel_soft_margin_loss(x, y, w, out, o);
        else if (mode == 1) losskit::multilabel_soft_margin_loss_backward(go, x, y, w, gi, gt, o);
        else losskit::multilabel_soft_margin_loss_forward_backward(x, y, w, go, out, gi, gt, o);
      });
}

void classification_bind(py::module_& m) {
  m.def(
      "cross_entropy",
      [](int mode, const py::object& input, const py::object& target, const py::object& weight,
         const py::object& grad_output, const std::string& reduction, int64_t ignore_index,
         double label_smoothing, bool probabilities, bool want_target_grad) {
        return classification_is_float32(input)
                   ? classification_cross_entropy<float>(mode, input, target, weight, grad_output,
                                                         reduction, ignore_index, label_smoothing,
                                                         probabilities, want_target_grad)
                   : classification_cross_entropy<double>(mode, input, target, weight,
                                                          grad_output, reduction, ignore_index,
                                                          label_smoothing, probabilities,
                                                          want_target_grad);
      },
      py::arg("mode"), py::arg("input"), py::arg("target"), py::arg("weight"),
      py::arg("grad_output"), py::arg("reduction"), py::arg("ignore_index"),
      py::arg("label_smoothing"), py::arg("probabilities"), py::arg("want_target_grad"));
  m.def(
      "nll_loss",
      [](int mode, const py::object& input, const py::object& target, const py::object& weight,
         const py::object& grad_output, const std::string& reduction, int64_t ignore_index) {
        return classification_is_float32(input)
                   ? classification_nll_loss<float>(mode, input, target, weight, grad_output,
                                                    reduction, ignore_index)
                   : classification_nll_loss<double>(mode, input, target, weight, grad_output,
                                                     reduction, ignore_index);
      },
      py::arg("mode"), py::arg("input"), py::arg("target"), py::arg("weight"),
      py::arg("grad_output"), py::arg("reduction"), py::arg("ignore_index"));
  m.def(
      "multi_margin_loss",
      [](int mode, const py::object& input, const py::object& target, const py::object& weight,
         const py::object& grad_output, const std::string& reduction, int p, double margin) {
        return classification_is_float32(input)
                   ? classification_multi_margin_loss<float>(mode, input, target, weight,
                                                             grad_output, reduction, p, margin)
                   : classification_multi_margin_loss<double>(mode, input, target, weight,
                                                              grad_output, reduction, p, margin);
      },
      py::arg("mode"), py::arg("input"), py::arg("target"), py::arg("weight"),
      py::arg("grad_output"), py::arg("reduction"), py::arg("p"), py::arg("margin"));
  m.def(
      "multilabel_margin_loss",
      [](int mode, const py::object& input, const py::object& target,
         const py::object& grad_output, const std::string& reduction) {
        return classification_is_float32(input)
                   ? classification_multilabel_margin_loss<float>(mode, input, target,
                                                                  grad_output, reduction)
                   : classification_multilabel_margin_loss<double>(mode, input, target,
                                                                   grad_output, reduction);
      },
      py::arg("mode"), py::arg("input"), py::arg("target"), py::arg("grad_output"),
      py::arg("reduction"));
  m.def(
      "multilabel_soft_margin_loss",
      [](int mode, const py::object& input, const py::object& target, const py::object& weight,
         const py::object& grad_output, const std::string& reduction, bool want_target_grad) {
        return classification_is_float32(input)
                   ? classification_multilabel_soft_margin_loss<float>(
                         mode, input, target, weight, grad_output, reduction, want_target_grad)
                   : classification_multilabel_soft_margin_loss<double>(
                         mode, input, target, weight, grad_output, reduction, want_target_grad);
      },
      py::arg("mode"), py::arg("input"), py::arg("target"), py::arg("weight"),
      py::arg("grad_output"), py::arg("reduction"), py::arg("want_target_grad"));
}
// ---- embedding bindings ----
// ---- ctc bindings ----
// ---- large_vocab bindings ----

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "losskit's C++ core (private; use losskit and losskit.functional)";
  m.attr("__version__") = LOSSKIT_VERSION;

  // ValueError for bad values; an IndexError that is also a ValueError for bad indices (as
  // NumPy's AxisError); TypeError for bad dtypes.
  static PyObject* index_error = PyErr_NewExceptionWithDoc(
      "losskit.IndexError",
      "A class index or label outside its valid range. It derives from both ValueError and "
      "IndexError (as NumPy's AxisError), so `except ValueError` catches every bad input.",
      py::make_tuple(py::handle(PyExc_ValueError), py::handle(PyExc_IndexError)).release().ptr(),
      nullptr);
  m.attr("IndexError") = py::handle(index_error);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const losskit::IndexError& e) {
      PyErr_SetString(index_error, e.what());
    } catch (const losskit::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const losskit::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });

  m.def("get_num_threads", &losskit::get_num_threads,
        "Number of OpenMP threads the kernels use (OMP_NUM_THREADS at import, else the cores).");
  m.def("set_num_threads", &losskit::set_num_threads, py::arg("n"),
        "Set the number of OpenMP threads the kernels use; n >= 1 (ValueError otherwise). "
        "Results are bitwise the same for any n.");
  m.def("cpu_target", &losskit::cpu_target,
        "Instruction set in use: 'avx512', 'avx2' or 'baseline' (LOSSKIT_CPU_TARGET forces a "
        "lower one).");
  m.def("available_cpu_targets", &losskit::available_cpu_targets,
        "Comma-separated targets this CPU can run, best first.");
  m.def("set_cpu_target", &losskit::set_cpu_target, py::arg("name"));
  // Test hook: the active target's vectorised exp (0), log (1) or log1p (2) of a float array.
  m.def("_vmath", [](int fn, const py::array& x) -> py::array {
    if (fn < 0 || fn > 2) throw losskit::ValueError("_vmath: fn expected 0, 1 or 2");
    auto run = [fn](auto* in, auto* out, int64_t n) {
      py::gil_scoped_release release;
      losskit::detail::vmath_apply(static_cast<losskit::detail::VmathFunction>(fn), in, out, n);
    };
    if (Array<float>::check_(x)) {
      auto in = py::reinterpret_borrow<Array<float>>(x);
      Array<float> out(in.size());
      run(in.data(), out.mutable_data(), in.size());
      return std::move(out);
    }
    auto in = Array<double>::ensure(x);
    if (!in) throw losskit::TypeError("_vmath: x expected a float32 or float64 array");
    Array<double> out(in.size());
    run(in.data(), out.mutable_data(), in.size());
    return std::move(out);
  });

  bind<L1>(m);
  bind<Mse>(m);
  bind<Huber>(m);
  bind<SmoothL1>(m);
  bind<SoftMargin>(m);
  bind<Bce>(m);
  bind<BceWithLogits>(m);
  bind<PoissonNll>(m);
  bind<GaussianNll>(m);
  bind<KlDiv>(m);
  bind<MarginRanking>(m);
  bind<HingeEmbedding>(m);
  // classification: register bindings here
  classification_bind(m);
  // embedding: register bindings here
  // ctc: register bindings here
  // large_vocab: register bindings here
}
