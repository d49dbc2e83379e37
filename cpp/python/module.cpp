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
  m.def("set_cpu_target", &losskit::set_cpu_target, py::arg("name"),
        "Force one of available_cpu_targets() (tests and benchmarks); ValueError otherwise.");
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
  // embedding: register bindings here
  // ctc: register bindings here
  // large_vocab: register bindings here
}
