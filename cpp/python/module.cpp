// The only pybind11 file: argument conversion between NumPy arrays and the core's views.
//
// Every array arriving here is C-contiguous, aligned and of the kernel's dtype (the Python layer
// made it so, copying only non-contiguous, misaligned or non-float input); the casters use
// noconvert, so nothing here ever copies silently. A misaligned array that bypasses that layer is
// refused by the core's checks (ValueError), never read. Outputs are allocated while holding the GIL, then the core runs with the
// GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "common/checks.hpp"
#include "common/storage.hpp"
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

// ---- 16-bit storage ----
// numpy.float16 is NumPy's own; bfloat16 is ml_dtypes' (what JAX uses), which losskit never
// imports: it is recognised by its name, size and kind (a 2-byte 'V' dtype named "bfloat16").
// Outputs of a bfloat16 call take the dtype object of its input (remembered by as_view, under
// the GIL, just before the outputs are allocated), so they are that library's bfloat16 arrays.
template <class T>
constexpr bool kHalf = losskit::detail::is_half_v<T>;

bool is_float16_dtype(const py::dtype& dt) { return dt.kind() == 'f' && dt.itemsize() == 2; }
bool is_bfloat16_dtype(const py::dtype& dt) {
  return dt.itemsize() == 2 && dt.kind() == 'V' &&
         py::str(dt.attr("name")).cast<std::string>() == "bfloat16";
}

py::object& bfloat16_dtype() {
  static auto* dt = new py::object();  // never destroyed: it may outlive the interpreter's teardown
  return *dt;
}

template <class T>
const char* dtype_name() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  else if constexpr (std::is_same_v<T, double>) return "float64";
  else if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_same_v<T, losskit::bfloat16>) return "bfloat16";
  else return "float16";
}

// Whether obj is an array of dtype T. Dtypes are compared by equivalence, never by identity:
// an unpickled array, or one whose dtype carries metadata, has a descriptor object of its own that
// equals NumPy's float32 without being it.
template <class T>
bool has_dtype(const py::handle& obj) {
  if constexpr (kHalf<T>) {
    if (!py::isinstance<py::array>(obj)) return false;
    const py::dtype dt = py::reinterpret_borrow<py::array>(obj).dtype();
    return std::is_same_v<T, losskit::float16> ? is_float16_dtype(dt) : is_bfloat16_dtype(dt);
  } else {
    return py::isinstance<py::array_t<T>>(obj);
  }
}

// A py::object that is None or an array of exactly dtype T, C-contiguous.
template <class T>
View<T> as_view(const py::handle& obj, const char* function, const char* argument) {
  if (obj.is_none()) return {};
  bool ok;
  if constexpr (kHalf<T>) ok = has_dtype<T>(obj);
  else ok = Array<T>::check_(obj);
  if (!ok)
    throw losskit::TypeError(std::string(function) + ": " + argument + " expected a " +
                             dtype_name<T>() + " array");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!(a.flags() & py::array::c_style))
    throw losskit::ValueError(std::string(function) + ": " + argument +
                              " expected a C-contiguous array");
  if constexpr (std::is_same_v<T, losskit::bfloat16>) bfloat16_dtype() = a.dtype();
  return View<T>(static_cast<const T*>(a.data()), shape_of<T>(a));
}

// A py::object that is None or a writable C-contiguous array of exactly dtype T (a buffer the
// caller passes for the core to fill).
template <class T>
MutView<T> as_mut_view(const py::handle& obj, const char* function, const char* argument) {
  if (obj.is_none()) return {};
  if (!has_dtype<T>(obj))
    throw losskit::TypeError(std::string(function) + ": " + argument + " expected a " +
                             dtype_name<T>() + " array");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!(a.flags() & py::array::c_style) || !a.writeable())
    throw losskit::ValueError(std::string(function) + ": " + argument +
                              " expected a writable C-contiguous array");
  return MutView<T>(static_cast<T*>(a.mutable_data()), shape_of<T>(a));
}

// Every output array comes from here. Large ones (>= 4 MiB) are recycled: when the NumPy array
// owning such a buffer is freed, the buffer goes into a small cache, and the next large output
// that fits reuses it. A fresh buffer costs a page fault and the kernel's zeroing per 4 KiB page on
// first touch, as much again as the kernel's own write of a gradient; in a training loop, where
// each step's gradients are dropped before the next step, recycling removes that cost. Every
// kernel writes every element of its outputs, so a recycled buffer is never read uninitialised;
// arrays alive at the same time never share a buffer. At most kSlots buffers and kMaxCachedBytes
// are kept.
class OutputCache {
 public:
  static constexpr size_t kMinBytes = size_t{4} << 20;
  static constexpr size_t kMaxCachedBytes = size_t{1} << 30;
  static constexpr int kSlots = 4;

  static OutputCache& instance() {
    static auto* cache = new OutputCache;  // never destroyed: arrays may outlive the module
    return *cache;
  }

  // A buffer of at least `bytes` (at most twice that), from the cache or malloc.
  std::pair<void*, size_t> take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& slot : slots_)
        if (slot.first && slot.second >= bytes && slot.second <= 2 * bytes) {
          auto found = slot;
          slot = {nullptr, 0};
          cached_ -= found.second;
          return found;
        }
    }
    void* data = std::malloc(bytes);
    if (!data) throw std::bad_alloc();
    return {data, bytes};
  }

  // Keeps a freed buffer in place of the smallest kept one (an empty slot counts as size 0) when
  // it is larger and the total stays under kMaxCachedBytes; frees whatever is not kept.
  void give_back(void* data, size_t bytes) {
    void* spill = data;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto smallest =
          std::min_element(slots_.begin(), slots_.end(),
                           [](const auto& a, const auto& b) { return a.second < b.second; });
      if (smallest->second < bytes && cached_ - smallest->second + bytes <= kMaxCachedBytes) {
        spill = smallest->first;
        cached_ += bytes - smallest->second;
        *smallest = {data, bytes};
      }
    }
    std::free(spill);
  }

 private:
  std::mutex mutex_;
  std::array<std::pair<void*, size_t>, kSlots> slots_{};
  size_t cached_ = 0;
};

// The array type of an output: py::array_t for float and double, a plain py::array of the
// input's 16-bit dtype otherwise.
template <class T>
using OutArray = std::conditional_t<kHalf<T>, py::array, Array<T>>;

template <class T>
py::dtype out_dtype() {
  if constexpr (std::is_same_v<T, losskit::bfloat16>) return py::dtype::from_args(bfloat16_dtype());
  else if constexpr (std::is_same_v<T, losskit::float16>) return py::dtype("float16");
  else return py::dtype::of<T>();
}

template <class T>
OutArray<T> new_array(const Shape& shape) {
  size_t bytes = sizeof(T);
  for (int64_t d : shape) bytes *= static_cast<size_t>(d);
  const std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  if (bytes < OutputCache::kMinBytes) {
    if constexpr (kHalf<T>) return py::array(out_dtype<T>(), dims);
    else return Array<T>(dims);
  }
  auto* record = new std::pair<void*, size_t>(OutputCache::instance().take(bytes));
  py::capsule owner(record, [](void* p) {
    auto* rec = static_cast<std::pair<void*, size_t>*>(p);
    OutputCache::instance().give_back(rec->first, rec->second);
    delete rec;
  });
  if constexpr (kHalf<T>) return py::array(out_dtype<T>(), dims, {}, record->first, owner);
  else return Array<T>(dims, static_cast<T*>(record->first), owner);
}

template <class T>
MutView<T> as_mut(py::array& a) {
  return MutView<T>(static_cast<T*>(a.mutable_data()), shape_of<T>(a));
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
#define LOSSKIT_FORWARDERS(FN, FWD_ARGS, BWD_ARGS, FB_ARGS)                                        \
  template <class T>                                                                               \
  static void forward(const Inputs<T>& in, MutView<T> out, const Options& o) {                     \
    losskit::FN FWD_ARGS;                                                                          \
  }                                                                                                \
  template <class T>                                                                               \
  static void backward(View<T> go, const Inputs<T>& in, Grads<T>& g, const Options& o) {           \
    losskit::FN##_backward BWD_ARGS;                                                               \
  }                                                                                                \
  template <class T>                                                                               \
  static void forward_backward(const Inputs<T>& in, View<T> go, MutView<T> out, Grads<T>& g,       \
                               const Options& o) {                                                 \
    losskit::FN##_forward_backward FB_ARGS;                                                        \
  }

// NAME_mean_normalizer with the forward's arguments less the output.
#define LOSSKIT_MEAN_NORMALIZER(FN, ARGS)                                                          \
  template <class T>                                                                               \
  static double mean_normalizer(const Inputs<T>& in, const Options& o) {                           \
    return losskit::FN##_mean_normalizer ARGS;                                                     \
  }

// input, target[, weight]: the output is their broadcast.
#define LOSSKIT_OUT_SHAPE_2                                                                        \
  template <class T>                                                                               \
  static Shape out_shape(const Inputs<T>& in, const Options&) {                                    \
    return losskit::elementwise_output_shape({in[0].shape, in[1].shape}, kName);                   \
  }

struct L1 {
  static constexpr const char* kName = "l1_loss";
  static constexpr int kInputs = 3;                   // input, target, weight
  static constexpr std::array<int, 2> kGradOf{0, 1};  // grad_input, grad_target
  using Options = losskit::L1LossOptions;
  static Options options(Reduction r, const py::kwargs&) { return {r}; }
  LOSSKIT_OUT_SHAPE_2
  LOSSKIT_FORWARDERS(l1_loss, (in[0], in[1], in[2], out, o),
                     (go, in[0], in[1], in[2], g[0], g[1], o),
                     (in[0], in[1], in[2], go, out, g[0], g[1], o))

  LOSSKIT_MEAN_NORMALIZER(l1_loss, (in[0], in[1], in[2], o))
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

  LOSSKIT_MEAN_NORMALIZER(mse_loss, (in[0], in[1], in[2], o))
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

  LOSSKIT_MEAN_NORMALIZER(huber_loss, (in[0], in[1], in[2], o))
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
  LOSSKIT_MEAN_NORMALIZER(smooth_l1_loss, (in[0], in[1], o))
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
  LOSSKIT_MEAN_NORMALIZER(soft_margin_loss, (in[0], in[1], o))
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

  LOSSKIT_MEAN_NORMALIZER(binary_cross_entropy, (in[0], in[1], in[2], o))
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

  LOSSKIT_MEAN_NORMALIZER(binary_cross_entropy_with_logits, (in[0], in[1], in[2], in[3], o))
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
  LOSSKIT_MEAN_NORMALIZER(poisson_nll_loss, (in[0], in[1], o))
};

struct GaussianNll {
  static constexpr const char* kName = "gaussian_nll_loss";
  static constexpr int kInputs = 3;                      // input, target, var
  static constexpr std::array<int, 3> kGradOf{0, 2, 1};  // grad_input, grad_var, grad_target
  using Options = losskit::GaussianNllLossOptions;
  static Options options(Reduction r, const py::kwargs& kw) {
    // scalar_var: the Python layer's var was a Python or NumPy scalar (torch's float var).
    return {r, kw["full"].cast<bool>(), kw["eps"].cast<double>(),
            kw.contains("scalar_var") && kw["scalar_var"].cast<bool>()};
  }
  template <class T>
  static Shape out_shape(const Inputs<T>& in, const Options& o) {
    return losskit::gaussian_nll_output_shape(in[0].shape, in[1].shape, in[2].shape, o.scalar_var);
  }
  LOSSKIT_FORWARDERS(gaussian_nll_loss, (in[0], in[1], in[2], out, o),
                     (go, in[0], in[1], in[2], g[0], g[1], g[2], o),
                     (in[0], in[1], in[2], go, out, g[0], g[1], g[2], o))

  LOSSKIT_MEAN_NORMALIZER(gaussian_nll_loss, (in[0], in[1], in[2], o))
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
  LOSSKIT_MEAN_NORMALIZER(kl_div, (in[0], in[1], o))
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
  static Shape out_shape(const Inputs<T>& in, const Options&) {
    return losskit::elementwise_output_shape({in[0].shape, in[1].shape, in[2].shape}, kName);
  }
  LOSSKIT_FORWARDERS(margin_ranking_loss, (in[0], in[1], in[2], out, o),
                     (go, in[0], in[1], in[2], g[0], g[1], o),
                     (in[0], in[1], in[2], go, out, g[0], g[1], o))

  LOSSKIT_MEAN_NORMALIZER(margin_ranking_loss, (in[0], in[1], in[2], o))
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
  LOSSKIT_MEAN_NORMALIZER(hinge_embedding_loss, (in[0], in[1], o))
};

// The registered element-wise losses (LOSSKIT_REGISTERED_POINTWISE): input, target; their
// options' fields come from the keywords of the same names.
#define LOSSKIT_PARAM(field, ...) o.field = kw[#field].cast<double>();
#define LOSSKIT_ADAPTER(NAME, OPTIONS, OPS, REDUCTION, INPUT, TARGET, PARAMS)                      \
  struct Registered_##NAME {                                                                       \
    static constexpr const char* kName = #NAME;                                                    \
    static constexpr int kInputs = 2;                                                              \
    static constexpr std::array<int, 2> kGradOf{0, 1};                                             \
    using Options = losskit::OPTIONS;                                                              \
    static Options options(Reduction r, [[maybe_unused]] const py::kwargs& kw) {                   \
      Options o;                                                                                   \
      o.reduction = r;                                                                             \
      PARAMS                                                                                       \
      return o;                                                                                    \
    }                                                                                              \
    template <class T>                                                                             \
    static Shape out_shape(const Inputs<T>& in, const Options&) {                                  \
      return losskit::broadcast_shapes(in[0].shape, in[1].shape, kName, INPUT, TARGET);            \
    }                                                                                              \
    LOSSKIT_FORWARDERS(NAME, (in[0], in[1], out, o), (go, in[0], in[1], g[0], g[1], o),            \
                       (in[0], in[1], go, out, g[0], g[1], o))                                     \
    LOSSKIT_MEAN_NORMALIZER(NAME, (in[0], in[1], o))                                               \
  };
LOSSKIT_REGISTERED_POINTWISE(LOSSKIT_ADAPTER)
#undef LOSSKIT_ADAPTER
#undef LOSSKIT_PARAM

// ---- the generic binder ----------------------------------------------------------------------
template <class A, class T>
Inputs<T> views(const py::tuple& arrays) {
  if (static_cast<int>(arrays.size()) != A::kInputs)
    throw losskit::ValueError(std::string(A::kName) + ": expected " + std::to_string(A::kInputs) +
                              " arrays");
  Inputs<T> in;
  for (int k = 0; k < A::kInputs; ++k) in.push_back(as_view<T>(arrays[k], A::kName, "input"));
  return in;
}

template <class A>
Reduction reduction_of(const std::string& name) {
  return losskit::parse_reduction(name, A::kName, std::string(A::kName) == "kl_div");
}

// The `normalizer` keyword (a float, or None / absent for the loss's own divisor).
losskit::Normalizer normalizer_of(const py::handle& obj) {
  if (obj.is_none()) return std::nullopt;
  return obj.cast<double>();
}
losskit::Normalizer kwargs_normalizer(const py::kwargs& kw) {
  return kw.contains("normalizer") ? normalizer_of(py::object(kw["normalizer"])) : std::nullopt;
}

template <class A>
typename A::Options options_of(const std::string& reduction, const py::kwargs& kw) {
  auto o = A::options(reduction_of<A>(reduction), kw);
  o.normalizer = kwargs_normalizer(kw);
  return o;
}

template <class A, class T>
double mean_normalizer(const py::tuple& arrays, const std::string& reduction,
                       const py::kwargs& kw) {
  const auto in = views<A, T>(arrays);
  const auto o = options_of<A>(reduction, kw);
  py::gil_scoped_release release;
  return A::mean_normalizer(in, o);
}

template <class A, class T>
py::object forward(const py::tuple& arrays, const std::string& reduction, const py::kwargs& kw) {
  const auto in = views<A, T>(arrays);
  const auto o = options_of<A>(reduction, kw);
  auto out = new_array<T>(o.reduction == Reduction::None ? A::out_shape(in, o) : Shape{});
  auto out_view = as_mut<T>(out);
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
      grads.push_back(as_mut<T>(g));
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
  const auto o = options_of<A>(reduction, kw);
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
  const auto o = options_of<A>(reduction, kw);
  const View<T> go = as_view<T>(grad_output, A::kName, "grad_output");
  auto out = new_array<T>(o.reduction == Reduction::None ? A::out_shape(in, o) : Shape{});
  auto out_view = as_mut<T>(out);
  auto [grads, result] = grad_arrays<A, T>(in, want);
  {
    py::gil_scoped_release release;
    A::forward_backward(in, go, out_view, grads, o);
  }
  return py::make_tuple(out, result);
}

// Calls fn(StorageTag<T>{}) for the storage type T of `first` (the Python layer made every float
// array of a call alike): float32, float64, bfloat16 or float16 (a loss that does not read 16-bit
// storage in place is handed float32 by the Python layer).
template <class T>
struct StorageTag {
  using type = T;
};

template <class Fn>
auto with_storage(const py::handle& first, Fn&& fn) {
  if (has_dtype<float>(first)) return fn(StorageTag<float>{});
  if (has_dtype<losskit::bfloat16>(first)) return fn(StorageTag<losskit::bfloat16>{});
  if (has_dtype<losskit::float16>(first)) return fn(StorageTag<losskit::float16>{});
  return fn(StorageTag<double>{});
}

template <class A>
void bind(py::module_& m) {
  const std::string name = A::kName;
  m.def(
      name.c_str(),
      [](const py::tuple& arrays, const std::string& reduction, const py::kwargs& kw) {
        return with_storage(arrays[0], [&](auto tag) {
          return forward<A, typename decltype(tag)::type>(arrays, reduction, kw);
        });
      },
      py::arg("arrays"), py::arg("reduction"));
  m.def((name + "_backward").c_str(),
        [](const py::object& grad_output, const py::tuple& arrays, const std::string& reduction,
           const py::tuple& want, const py::kwargs& kw) {
          return with_storage(arrays[0], [&](auto tag) {
            return backward<A, typename decltype(tag)::type>(grad_output, arrays, reduction, want,
                                                             kw);
          });
        },
        py::arg("grad_output"), py::arg("arrays"), py::arg("reduction"), py::arg("want"));
  m.def((name + "_forward_backward").c_str(),
        [](const py::tuple& arrays, const py::object& grad_output, const std::string& reduction,
           const py::tuple& want, const py::kwargs& kw) {
          return with_storage(arrays[0], [&](auto tag) {
            return forward_backward<A, typename decltype(tag)::type>(arrays, grad_output, reduction,
                                                                     want, kw);
          });
        },
        py::arg("arrays"), py::arg("grad_output"), py::arg("reduction"), py::arg("want"));
  m.def((name + "_mean_normalizer").c_str(),
        [](const py::tuple& arrays, const std::string& reduction, const py::kwargs& kw) {
          return with_storage(arrays[0], [&](auto tag) {
            return mean_normalizer<A, typename decltype(tag)::type>(arrays, reduction, kw);
          });
        },
        py::arg("arrays"), py::arg("reduction"));
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

template <class T, class Run>
py::tuple classification_call(int mode, const char* function, const py::handle& grad_output,
                              const Shape& loss_shape, const Shape& input_shape,
                              bool want_target_grad, Run&& run) {
  if (mode < 0 || mode > 2)
    throw losskit::ValueError(std::string(function) + ": mode expected 0, 1, 2 or 3");
  const View<T> go = as_view<T>(grad_output, function, "grad_output");
  py::object out = py::none(), grad_input = py::none(), grad_target = py::none();
  MutView<T> out_v, gi_v, gt_v;
  if (mode != 1) {
    auto a = new_array<T>(loss_shape);
    out_v = as_mut<T>(a);
    out = std::move(a);
  }
  if (mode != 0) {
    auto a = new_array<T>(input_shape);
    gi_v = as_mut<T>(a);
    grad_input = std::move(a);
    if (want_target_grad) {
      auto b = new_array<T>(input_shape);
      gt_v = as_mut<T>(b);
      grad_target = std::move(b);
    }
  }
  {
    py::gil_scoped_release release;
    run(go, out_v, gi_v, gt_v);
  }
  return py::make_tuple(out, grad_input, grad_target);
}

// Mode 3: the loss's own divisor of 'mean' (NAME_mean_normalizer), as (value, None, None).
template <class Fn>
py::tuple normalizer_result(Fn&& mean_normalizer) {
  double value;
  {
    py::gil_scoped_release release;
    value = mean_normalizer();
  }
  return py::make_tuple(value, py::none(), py::none());
}

Shape classification_shape(const py::handle& a) {
  auto arr = py::reinterpret_borrow<py::array>(a);
  return Shape(arr.shape(), arr.shape() + arr.ndim());
}

// The extras' per-position statistics, allocated (with the GIL) for the loss's unreduced shape:
// the C++ views and the dict {"lse", "entropy", "correct"} of the arrays returned.
template <class T>
struct StatsArrays {
  losskit::CrossEntropyStats<T> views;
  py::dict arrays;
  explicit StatsArrays(const Shape& shape) {
    std::vector<py::ssize_t> dims(shape.begin(), shape.end());
    py::array lse(out_dtype<T>(), dims), entropy(out_dtype<T>(), dims);
    py::array_t<bool> correct(dims);
    views.lse = MutView<T>(static_cast<T*>(lse.mutable_data()), shape);
    views.entropy = MutView<T>(static_cast<T*>(entropy.mutable_data()), shape);
    views.correct = MutView<bool>(correct.mutable_data(), shape);
    arrays["lse"] = lse;
    arrays["entropy"] = entropy;
    arrays["correct"] = correct;
  }
};

// Appends the statistics dict to a result tuple.
py::tuple with_stats(const py::tuple& result, const py::dict& stats) {
  py::list items(result);
  items.append(stats);
  return py::tuple(items);
}

template <class T>
py::tuple classification_cross_entropy(int mode, const py::handle& input, const py::handle& target,
                                       const py::handle& weight, const py::handle& grad_output,
                                       const std::string& reduction, int64_t ignore_index,
                                       double label_smoothing, bool probabilities,
                                       bool want_target_grad, const py::handle& normalizer,
                                       double z_loss, std::optional<double> softcap,
                                       bool return_stats) {
  const char* fn = "cross_entropy";
  const View<T> x = as_view<T>(input, fn, "input");
  const View<T> w = as_view<T>(weight, fn, "weight");
  losskit::CrossEntropyOptions o{losskit::parse_reduction(reduction, fn), ignore_index,
                                 label_smoothing};
  o.z_loss = z_loss;
  o.softcap = softcap;
  o.normalizer = normalizer_of(normalizer);
  const Shape loss_shape =
      o.reduction == Reduction::None ? losskit::classification_output_shape(x.shape) : Shape{};
  if (probabilities) {
    if (return_stats)
      throw losskit::ValueError(
          "cross_entropy: return_stats expected False with "
          "class-probability targets (class indices only), got True");
    const View<T> y = as_view<T>(target, fn, "target");
    if (mode == 3)
      return normalizer_result([&] { return losskit::cross_entropy_mean_normalizer(x, y, w, o); });
    return classification_call<T>(mode, fn, grad_output, loss_shape, x.shape, want_target_grad,
                                  [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T> gt) {
                                    if (mode == 0) losskit::cross_entropy(x, y, w, out, o);
                                    else if (mode == 1)
                                      losskit::cross_entropy_backward(go, x, y, w, gi, gt, o);
                                    else
                                      losskit::cross_entropy_forward_backward(x, y, w, go, out, gi,
                                                                              gt, o);
                                  });
  }
  const View<int64_t> t = classification_index_view(target, fn);
  if (mode == 3)
    return normalizer_result([&] { return losskit::cross_entropy_mean_normalizer(x, t, w, o); });
  std::optional<StatsArrays<T>> stats;
  if (return_stats) stats.emplace(losskit::classification_output_shape(x.shape));
  const losskit::CrossEntropyStats<T> sv = stats ? stats->views : losskit::CrossEntropyStats<T>{};
  // The gradient with statistics is forward_backward without an output.
  const py::tuple result =
      classification_call<T>(mode, fn, grad_output, loss_shape, x.shape, false,
                             [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T>) {
                               if (mode == 0) losskit::cross_entropy(x, t, w, out, o, sv);
                               else if (mode == 1 && !stats)
                                 losskit::cross_entropy_backward(go, x, t, w, gi, o);
                               else
                                 losskit::cross_entropy_forward_backward(x, t, w, go,
                                                                         mode == 1 ? MutView<T>()
                                                                                   : out,
                                                                         gi, o, sv);
                             });
  return stats ? with_stats(result, stats->arrays) : result;
}

template <class T>
py::tuple classification_nll_loss(int mode, const py::handle& input, const py::handle& target,
                                  const py::handle& weight, const py::handle& grad_output,
                                  const std::string& reduction, int64_t ignore_index,
                                  const py::handle& normalizer) {
  const char* fn = "nll_loss";
  const View<T> x = as_view<T>(input, fn, "input");
  const View<T> w = as_view<T>(weight, fn, "weight");
  const View<int64_t> t = classification_index_view(target, fn);
  const losskit::NllLossOptions o{losskit::parse_reduction(reduction, fn), ignore_index,
                                  normalizer_of(normalizer)};
  const Shape loss_shape =
      o.reduction == Reduction::None ? losskit::classification_output_shape(x.shape) : Shape{};
  if (mode == 3)
    return normalizer_result([&] { return losskit::nll_loss_mean_normalizer(x, t, w, o); });
  return classification_call<T>(mode, fn, grad_output, loss_shape, x.shape, false,
                                [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T>) {
                                  if (mode == 0) losskit::nll_loss(x, t, w, out, o);
                                  else if (mode == 1)
                                    losskit::nll_loss_backward(go, x, t, w, gi, o);
                                  else losskit::nll_loss_forward_backward(x, t, w, go, out, gi, o);
                                });
}

template <class T>
py::tuple classification_multi_margin_loss(int mode, const py::handle& input,
                                           const py::handle& target, const py::handle& weight,
                                           const py::handle& grad_output,
                                           const std::string& reduction, int p, double margin,
                                           const py::handle& normalizer) {
  const char* fn = "multi_margin_loss";
  const View<T> x = as_view<T>(input, fn, "input");
  const View<T> w = as_view<T>(weight, fn, "weight");
  const View<int64_t> t = classification_index_view(target, fn);
  const losskit::MultiMarginLossOptions o{losskit::parse_reduction(reduction, fn), p, margin,
                                          normalizer_of(normalizer)};
  const Shape loss_shape = o.reduction == Reduction::None ? t.shape : Shape{};
  if (mode == 3)
    return normalizer_result(
        [&] { return losskit::multi_margin_loss_mean_normalizer(x, t, w, o); });
  return classification_call<T>(mode, fn, grad_output, loss_shape, x.shape, false,
                                [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T>) {
                                  if (mode == 0) losskit::multi_margin_loss(x, t, w, out, o);
                                  else if (mode == 1)
                                    losskit::multi_margin_loss_backward(go, x, t, w, gi, o);
                                  else
                                    losskit::multi_margin_loss_forward_backward(x, t, w, go, out,
                                                                                gi, o);
                                });
}

template <class T>
py::tuple classification_multilabel_margin_loss(int mode, const py::handle& input,
                                                const py::handle& target,
                                                const py::handle& grad_output,
                                                const std::string& reduction,
                                                const py::handle& normalizer) {
  const char* fn = "multilabel_margin_loss";
  const View<T> x = as_view<T>(input, fn, "input");
  const View<int64_t> t = classification_index_view(target, fn);
  const losskit::MultilabelMarginLossOptions o{losskit::parse_reduction(reduction, fn),
                                               normalizer_of(normalizer)};
  const Shape loss_shape =
      o.reduction == Reduction::None ? losskit::classification_output_shape(x.shape) : Shape{};
  if (mode == 3)
    return normalizer_result(
        [&] { return losskit::multilabel_margin_loss_mean_normalizer(x, t, o); });
  return classification_call<T>(mode, fn, grad_output, loss_shape, x.shape, false,
                                [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T>) {
                                  if (mode == 0) losskit::multilabel_margin_loss(x, t, out, o);
                                  else if (mode == 1)
                                    losskit::multilabel_margin_loss_backward(go, x, t, gi, o);
                                  else
                                    losskit::multilabel_margin_loss_forward_backward(x, t, go, out,
                                                                                     gi, o);
                                });
}

template <class T>
py::tuple classification_multilabel_soft_margin_loss(
    int mode, const py::handle& input, const py::handle& target, const py::handle& weight,
    const py::handle& grad_output, const std::string& reduction, bool want_target_grad,
    const py::handle& normalizer) {
  const char* fn = "multilabel_soft_margin_loss";
  const View<T> x = as_view<T>(input, fn, "input");
  const View<T> y = as_view<T>(target, fn, "target");
  const View<T> w = as_view<T>(weight, fn, "weight");
  const losskit::MultilabelSoftMarginLossOptions o{losskit::parse_reduction(reduction, fn),
                                                   normalizer_of(normalizer)};
  const Shape loss_shape = o.reduction == Reduction::None
                               ? losskit::classification_output_shape(x.shape, true)
                               : Shape{};
  if (mode == 3)
    return normalizer_result(
        [&] { return losskit::multilabel_soft_margin_loss_mean_normalizer(x, y, w, o); });
  return classification_call<T>(
      mode, fn, grad_output, loss_shape, x.shape, want_target_grad,
      [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T> gt) {
        if (mode == 0) losskit::multilabel_soft_margin_loss(x, y, w, out, o);
        else if (mode == 1) losskit::multilabel_soft_margin_loss_backward(go, x, y, w, gi, gt, o);
        else losskit::multilabel_soft_margin_loss_forward_backward(x, y, w, go, out, gi, gt, o);
      });
}

// Beyond torch.nn: softmax_focal_loss (class indices) and poly1_cross_entropy (class indices or
// probabilities), as cross_entropy's binding.
template <class T>
py::tuple classification_softmax_focal_loss(int mode, const py::handle& input,
                                            const py::handle& target, const py::handle& alpha,
                                            const py::handle& grad_output,
                                            const std::string& reduction, double gamma,
                                            int64_t ignore_index, const py::handle& normalizer) {
  const char* fn = "softmax_focal_loss";
  const View<T> x = as_view<T>(input, fn, "input");
  const View<T> a = as_view<T>(alpha, fn, "alpha");
  const View<int64_t> t = classification_index_view(target, fn);
  losskit::SoftmaxFocalLossOptions o;
  o.gamma = gamma;
  o.reduction = losskit::parse_reduction(reduction, fn);
  o.ignore_index = ignore_index;
  o.normalizer = normalizer_of(normalizer);
  const Shape loss_shape =
      o.reduction == Reduction::None ? losskit::classification_output_shape(x.shape) : Shape{};
  if (mode == 3)
    return normalizer_result(
        [&] { return losskit::softmax_focal_loss_mean_normalizer(x, t, a, o); });
  return classification_call<T>(mode, fn, grad_output, loss_shape, x.shape, false,
                                [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T>) {
                                  if (mode == 0) losskit::softmax_focal_loss(x, t, a, out, o);
                                  else if (mode == 1)
                                    losskit::softmax_focal_loss_backward(go, x, t, a, gi, o);
                                  else
                                    losskit::softmax_focal_loss_forward_backward(x, t, a, go, out,
                                                                                 gi, o);
                                });
}

template <class T>
py::tuple classification_poly1_cross_entropy(int mode, const py::handle& input,
                                             const py::handle& target, const py::handle& weight,
                                             const py::handle& grad_output,
                                             const std::string& reduction, double epsilon,
                                             int64_t ignore_index, double label_smoothing,
                                             bool probabilities, bool want_target_grad,
                                             const py::handle& normalizer) {
  const char* fn = "poly1_cross_entropy";
  const View<T> x = as_view<T>(input, fn, "input");
  const View<T> w = as_view<T>(weight, fn, "weight");
  losskit::Poly1CrossEntropyOptions o;
  o.epsilon = epsilon;
  o.reduction = losskit::parse_reduction(reduction, fn);
  o.ignore_index = ignore_index;
  o.label_smoothing = label_smoothing;
  o.normalizer = normalizer_of(normalizer);
  const Shape loss_shape =
      o.reduction == Reduction::None ? losskit::classification_output_shape(x.shape) : Shape{};
  if (probabilities) {
    const View<T> y = as_view<T>(target, fn, "target");
    if (mode == 3)
      return normalizer_result(
          [&] { return losskit::poly1_cross_entropy_mean_normalizer(x, y, w, o); });
    return classification_call<T>(mode, fn, grad_output, loss_shape, x.shape, want_target_grad,
                                  [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T> gt) {
                                    if (mode == 0) losskit::poly1_cross_entropy(x, y, w, out, o);
                                    else if (mode == 1)
                                      losskit::poly1_cross_entropy_backward(go, x, y, w, gi, gt, o);
                                    else
                                      losskit::poly1_cross_entropy_forward_backward(x, y, w, go,
                                                                                    out, gi, gt, o);
                                  });
  }
  const View<int64_t> t = classification_index_view(target, fn);
  if (mode == 3)
    return normalizer_result(
        [&] { return losskit::poly1_cross_entropy_mean_normalizer(x, t, w, o); });
  return classification_call<T>(mode, fn, grad_output, loss_shape, x.shape, false,
                                [&](View<T> go, MutView<T> out, MutView<T> gi, MutView<T>) {
                                  if (mode == 0) losskit::poly1_cross_entropy(x, t, w, out, o);
                                  else if (mode == 1)
                                    losskit::poly1_cross_entropy_backward(go, x, t, w, gi, o);
                                  else
                                    losskit::poly1_cross_entropy_forward_backward(x, t, w, go, out,
                                                                                  gi, o);
                                });
}

void classification_bind(py::module_& m) {
  m.def(
      "cross_entropy",
      [](int mode, const py::object& input, const py::object& target, const py::object& weight,
         const py::object& grad_output, const std::string& reduction, int64_t ignore_index,
         double label_smoothing, bool probabilities, bool want_target_grad,
         const py::object& normalizer, double z_loss, std::optional<double> softcap,
         bool return_stats) {
        return with_storage(input, [&](auto tag) {
          return classification_cross_entropy<typename decltype(tag)::type>(
              mode, input, target, weight, grad_output, reduction, ignore_index, label_smoothing,
              probabilities, want_target_grad, normalizer, z_loss, softcap, return_stats);
        });
      },
      py::arg("mode"), py::arg("input"), py::arg("target"), py::arg("weight"),
      py::arg("grad_output"), py::arg("reduction"), py::arg("ignore_index"),
      py::arg("label_smoothing"), py::arg("probabilities"), py::arg("want_target_grad"),
      py::arg("normalizer") = py::none(), py::arg("z_loss") = 0.0, py::arg("softcap") = py::none(),
      py::arg("return_stats") = false);
  m.def(
      "nll_loss",
      [](int mode, const py::object& input, const py::object& target, const py::object& weight,
         const py::object& grad_output, const std::string& reduction, int64_t ignore_index,
         const py::object& normalizer) {
        return with_storage(input, [&](auto tag) {
          return classification_nll_loss<typename decltype(tag)::type>(mode, input, target, weight,
                                                                       grad_output, reduction,
                                                                       ignore_index, normalizer);
        });
      },
      py::arg("mode"), py::arg("input"), py::arg("target"), py::arg("weight"),
      py::arg("grad_output"), py::arg("reduction"), py::arg("ignore_index"),
      py::arg("normalizer") = py::none());
  m.def(
      "multi_margin_loss",
      [](int mode, const py::object& input, const py::object& target, const py::object& weight,
         const py::object& grad_output, const std::string& reduction, int p, double margin,
         const py::object& normalizer) {
        return with_storage(input, [&](auto tag) {
          return classification_multi_margin_loss<typename decltype(tag)::type>(mode, input, target,
                                                                                weight, grad_output,
                                                                                reduction, p,
                                                                                margin, normalizer);
        });
      },
      py::arg("mode"), py::arg("input"), py::arg("target"), py::arg("weight"),
      py::arg("grad_output"), py::arg("reduction"), py::arg("p"), py::arg("margin"),
      py::arg("normalizer") = py::none());
  m.def(
      "multilabel_margin_loss",
      [](int mode, const py::object& input, const py::object& target, const py::object& grad_output,
         const std::string& reduction, const py::object& normalizer) {
        return with_storage(input, [&](auto tag) {
          return classification_multilabel_margin_loss<typename decltype(tag)::type>(
              mode, input, target, grad_output, reduction, normalizer);
        });
      },
      py::arg("mode"), py::arg("input"), py::arg("target"), py::arg("grad_output"),
      py::arg("reduction"), py::arg("normalizer") = py::none());
  m.def(
      "multilabel_soft_margin_loss",
      [](int mode, const py::object& input, const py::object& target, const py::object& weight,
         const py::object& grad_output, const std::string& reduction, bool want_target_grad,
         const py::object& normalizer) {
        return with_storage(input, [&](auto tag) {
          return classification_multilabel_soft_margin_loss<typename decltype(tag)::type>(
              mode, input, target, weight, grad_output, reduction, want_target_grad, normalizer);
        });
      },
      py::arg("mode"), py::arg("input"), py::arg("target"), py::arg("weight"),
      py::arg("grad_output"), py::arg("reduction"), py::arg("want_target_grad"),
      py::arg("normalizer") = py::none());
  // Beyond torch.nn (float and double).
  m.def(
      "softmax_focal_loss",
      [](int mode, const py::object& input, const py::object& target, const py::object& alpha,
         const py::object& grad_output, const std::string& reduction, double gamma,
         int64_t ignore_index, const py::object& normalizer) {
        return with_storage(input, [&](auto tag) {
          return classification_softmax_focal_loss<typename decltype(tag)::type>(
              mode, input, target, alpha, grad_output, reduction, gamma, ignore_index, normalizer);
        });
      },
      py::arg("mode"), py::arg("input"), py::arg("target"), py::arg("alpha"),
      py::arg("grad_output"), py::arg("reduction"), py::arg("gamma"), py::arg("ignore_index"),
      py::arg("normalizer") = py::none());
  m.def(
      "poly1_cross_entropy",
      [](int mode, const py::object& input, const py::object& target, const py::object& weight,
         const py::object& grad_output, const std::string& reduction, double epsilon,
         int64_t ignore_index, double label_smoothing, bool probabilities, bool want_target_grad,
         const py::object& normalizer) {
        return with_storage(input, [&](auto tag) {
          return classification_poly1_cross_entropy<typename decltype(tag)::type>(
              mode, input, target, weight, grad_output, reduction, epsilon, ignore_index,
              label_smoothing, probabilities, want_target_grad, normalizer);
        });
      },
      py::arg("mode"), py::arg("input"), py::arg("target"), py::arg("weight"),
      py::arg("grad_output"), py::arg("reduction"), py::arg("epsilon"), py::arg("ignore_index"),
      py::arg("label_smoothing"), py::arg("probabilities"), py::arg("want_target_grad"),
      py::arg("normalizer") = py::none());
}
// ---- embedding bindings ----
// Inputs (N, D) or (D,); the unreduced output drops the last dimension (rows broadcast).
struct CosineEmbedding {
  static constexpr const char* kName = "cosine_embedding_loss";
  static constexpr int kInputs = 3;  // input1, input2, target
  static constexpr std::array<int, 2> kGradOf{0, 1};
  using Options = losskit::CosineEmbeddingLossOptions;
  static Options options(Reduction r, const py::kwargs& kw) {
    return {r, kw["margin"].cast<double>()};
  }
  template <class T>
  static Shape out_shape(const Inputs<T>& in, const Options&) {
    return losskit::cosine_embedding_output_shape(in[0].shape, in[1].shape, in[2].shape);
  }
  LOSSKIT_FORWARDERS(cosine_embedding_loss, (in[0], in[1], in[2], out, o),
                     (go, in[0], in[1], in[2], g[0], g[1], o),
                     (in[0], in[1], in[2], go, out, g[0], g[1], o))

  LOSSKIT_MEAN_NORMALIZER(cosine_embedding_loss, (in[0], in[1], in[2], o))
};

struct TripletMargin {
  static constexpr const char* kName = "triplet_margin_loss";
  static constexpr int kInputs = 3;  // anchor, positive, negative
  static constexpr std::array<int, 3> kGradOf{0, 1, 2};
  using Options = losskit::TripletMarginLossOptions;
  static Options options(Reduction r, const py::kwargs& kw) {
    return {r, kw["margin"].cast<double>(), kw["p"].cast<double>(), kw["eps"].cast<double>(),
            kw["swap"].cast<bool>()};
  }
  template <class T>
  static Shape out_shape(const Inputs<T>& in, const Options&) {
    return losskit::triplet_output_shape(in[0].shape, in[1].shape, in[2].shape);
  }
  LOSSKIT_FORWARDERS(triplet_margin_loss, (in[0], in[1], in[2], out, o),
                     (go, in[0], in[1], in[2], g[0], g[1], g[2], o),
                     (in[0], in[1], in[2], go, out, g[0], g[1], g[2], o))

  LOSSKIT_MEAN_NORMALIZER(triplet_margin_loss, (in[0], in[1], in[2], o))
};

struct TripletMarginWithDistance {
  static constexpr const char* kName = "triplet_margin_with_distance_loss";
  static constexpr int kInputs = 3;
  static constexpr std::array<int, 3> kGradOf{0, 1, 2};
  using Options = losskit::TripletMarginWithDistanceLossOptions;
  static Options options(Reduction r, const py::kwargs& kw) {
    const auto name = kw["distance"].cast<std::string>();
    return {r, losskit::parse_triplet_distance(name.c_str(), kName), kw["margin"].cast<double>(),
            kw["swap"].cast<bool>()};
  }
  template <class T>
  static Shape out_shape(const Inputs<T>& in, const Options&) {
    return losskit::triplet_output_shape(in[0].shape, in[1].shape, in[2].shape);
  }
  LOSSKIT_FORWARDERS(triplet_margin_with_distance_loss, (in[0], in[1], in[2], out, o),
                     (go, in[0], in[1], in[2], g[0], g[1], g[2], o),
                     (in[0], in[1], in[2], go, out, g[0], g[1], g[2], o))

  LOSSKIT_MEAN_NORMALIZER(triplet_margin_with_distance_loss, (in[0], in[1], in[2], o))
};

// The triplet loss on distances a Python callable computed: (loss, (grad_dist_pos,
// grad_dist_neg, grad_dist_swap or None)), the gradients only when `backward`.
template <class T>
py::tuple embedding_triplet_from_distances(const py::handle& dist_pos, const py::handle& dist_neg,
                                           const py::handle& dist_swap,
                                           const py::handle& grad_output, Reduction reduction,
                                           double margin, bool swap, bool backward,
                                           losskit::Normalizer normalizer) {
  const char* fn = "triplet_margin_with_distance_loss";
  const View<T> dp = as_view<T>(dist_pos, fn, "distance_function(anchor, positive)");
  const View<T> dn = as_view<T>(dist_neg, fn, "distance_function(anchor, negative)");
  const View<T> ds = as_view<T>(dist_swap, fn, "distance_function(positive, negative)");
  const View<T> go = as_view<T>(grad_output, fn, "grad_output");
  losskit::TripletMarginWithDistanceLossOptions o;
  o.reduction = reduction;
  o.margin = margin;
  o.swap = swap;
  o.normalizer = normalizer;
  auto out = new_array<T>(reduction == Reduction::None ? dp.shape : Shape{});
  auto out_view = as_mut<T>(out);
  py::object grads[3] = {py::none(), py::none(), py::none()};
  MutView<T> gviews[3];
  if (backward)
    for (int k = 0; k < (swap ? 3 : 2); ++k) {
      auto g = new_array<T>(dp.shape);
      gviews[k] = as_mut<T>(g);
      grads[k] = std::move(g);
    }
  {
    py::gil_scoped_release release;
    losskit::triplet_margin_loss_from_distances(dp, dn, ds, go, out_view, gviews[0], gviews[1],
                                                gviews[2], o);
  }
  return py::make_tuple(out, py::make_tuple(grads[0], grads[1], grads[2]));
}

void embedding_bind_from_distances(py::module_& m) {
  m.def(
      "triplet_margin_loss_from_distances",
      [](const py::object& dist_pos, const py::object& dist_neg, const py::object& dist_swap,
         const py::object& grad_output, const std::string& reduction, double margin, bool swap,
         bool backward, const py::object& normalizer) {
        const Reduction r =
            losskit::parse_reduction(reduction, "triplet_margin_with_distance_loss");
        const bool f32 = has_dtype<float>(dist_pos);
        return f32 ? embedding_triplet_from_distances<float>(dist_pos, dist_neg, dist_swap,
                                                             grad_output, r, margin, swap, backward,
                                                             normalizer_of(normalizer))
                   : embedding_triplet_from_distances<double>(dist_pos, dist_neg, dist_swap,
                                                              grad_output, r, margin, swap,
                                                              backward, normalizer_of(normalizer));
      },
      py::arg("dist_pos"), py::arg("dist_neg"), py::arg("dist_swap"), py::arg("grad_output"),
      py::arg("reduction"), py::arg("margin"), py::arg("swap"), py::arg("backward"),
      py::arg("normalizer") = py::none());
  m.def(
      "triplet_margin_check_inputs",
      [](const py::tuple& arrays, const std::string& reduction, double margin) {
        const char* fn = "triplet_margin_with_distance_loss";
        if (arrays.size() != 3) throw losskit::ValueError(std::string(fn) + ": expected 3 arrays");
        Shape shapes[3];
        for (int k = 0; k < 3; ++k) {
          if (!py::isinstance<py::array>(arrays[k]))
            throw losskit::TypeError(std::string(fn) + ": input expected an array");
          auto a = py::reinterpret_borrow<py::array>(arrays[k]);
          shapes[k] = Shape(a.shape(), a.shape() + a.ndim());
        }
        losskit::TripletMarginWithDistanceLossOptions o;
        o.reduction = losskit::parse_reduction(reduction, fn);
        o.margin = margin;
        losskit::triplet_margin_with_distance_loss_check(shapes[0], shapes[1], shapes[2], o);
      },
      py::arg("arrays"), py::arg("reduction"), py::arg("margin"));
}
// ---- ctc bindings ----
// Integer arguments (targets, lengths) arrive as C-contiguous int64 arrays (the Python layer
// converted any integer dtype, list or tuple); the core checks their values.
View<int64_t> ctc_int_view(const py::handle& obj, const char* argument) {
  if (!Array<int64_t>::check_(obj))
    throw losskit::TypeError(std::string("ctc_loss: ") + argument +
                             " expected a C-contiguous int64 array");
  auto a = py::reinterpret_borrow<py::array>(obj);
  return View<int64_t>(static_cast<const int64_t*>(a.data()), shape_of<int64_t>(a));
}

struct CtcArgs {
  View<int64_t> targets, input_lengths, target_lengths;
  losskit::CtcLossOptions options;
};

CtcArgs ctc_args(const py::handle& targets, const py::handle& input_lengths,
                 const py::handle& target_lengths, int64_t blank, const std::string& reduction,
                 bool zero_infinity, const py::handle& normalizer) {
  CtcArgs a;
  a.targets = ctc_int_view(targets, "targets");
  a.input_lengths = ctc_int_view(input_lengths, "input_lengths");
  a.target_lengths = ctc_int_view(target_lengths, "target_lengths");
  a.options = {blank, losskit::parse_reduction(reduction, "ctc_loss"), zero_infinity,
               normalizer_of(normalizer)};
  return a;
}

template <class T>
py::object ctc_forward(const py::handle& log_probs, const CtcArgs& a) {
  const View<T> lp = as_view<T>(log_probs, "ctc_loss", "log_probs");
  auto out = new_array<T>(losskit::ctc_loss_output_shape(lp.shape, a.options.reduction));
  auto out_view = as_mut<T>(out);
  {
    py::gil_scoped_release release;
    losskit::ctc_loss<T>(lp, a.targets, a.input_lengths, a.target_lengths, out_view, a.options);
  }
  return std::move(out);
}

template <class T>
py::object ctc_backward(const py::handle& grad_output, const py::handle& log_probs,
                        const CtcArgs& a) {
  const View<T> lp = as_view<T>(log_probs, "ctc_loss", "log_probs");
  const View<T> go = as_view<T>(grad_output, "ctc_loss", "grad_output");
  auto grad = new_array<T>(lp.shape);
  auto grad_view = as_mut<T>(grad);
  {
    py::gil_scoped_release release;
    losskit::ctc_loss_backward<T>(go, lp, a.targets, a.input_lengths, a.target_lengths, grad_view,
                                  a.options);
  }
  return std::move(grad);
}

template <class T>
py::tuple ctc_forward_backward(const py::handle& log_probs, const py::handle& grad_output,
                               const CtcArgs& a) {
  const View<T> lp = as_view<T>(log_probs, "ctc_loss", "log_probs");
  const View<T> go = as_view<T>(grad_output, "ctc_loss", "grad_output");
  auto out = new_array<T>(losskit::ctc_loss_output_shape(lp.shape, a.options.reduction));
  auto grad = new_array<T>(lp.shape);
  auto out_view = as_mut<T>(out);
  auto grad_view = as_mut<T>(grad);
  {
    py::gil_scoped_release release;
    losskit::ctc_loss_forward_backward<T>(lp, a.targets, a.input_lengths, a.target_lengths, go,
                                          out_view, grad_view, a.options);
  }
  return py::make_tuple(out, grad);
}

void ctc_bind(py::module_& m) {
  m.def(
      "ctc_loss",
      [](const py::object& log_probs, const py::object& targets, const py::object& input_lengths,
         const py::object& target_lengths, int64_t blank, const std::string& reduction,
         bool zero_infinity, const py::object& normalizer) {
        const CtcArgs a = ctc_args(targets, input_lengths, target_lengths, blank, reduction,
                                   zero_infinity, normalizer);
        return with_storage(log_probs, [&](auto tag) {
          return ctc_forward<typename decltype(tag)::type>(log_probs, a);
        });
      },
      py::arg("log_probs"), py::arg("targets"), py::arg("input_lengths"), py::arg("target_lengths"),
      py::arg("blank"), py::arg("reduction"), py::arg("zero_infinity"),
      py::arg("normalizer") = py::none());
  m.def(
      "ctc_loss_backward",
      [](const py::object& grad_output, const py::object& log_probs, const py::object& targets,
         const py::object& input_lengths, const py::object& target_lengths, int64_t blank,
         const std::string& reduction, bool zero_infinity, const py::object& normalizer) {
        const CtcArgs a = ctc_args(targets, input_lengths, target_lengths, blank, reduction,
                                   zero_infinity, normalizer);
        return with_storage(log_probs, [&](auto tag) {
          return ctc_backward<typename decltype(tag)::type>(grad_output, log_probs, a);
        });
      },
      py::arg("grad_output"), py::arg("log_probs"), py::arg("targets"), py::arg("input_lengths"),
      py::arg("target_lengths"), py::arg("blank"), py::arg("reduction"), py::arg("zero_infinity"),
      py::arg("normalizer") = py::none());
  m.def(
      "ctc_loss_forward_backward",
      [](const py::object& log_probs, const py::object& targets, const py::object& input_lengths,
         const py::object& target_lengths, const py::object& grad_output, int64_t blank,
         const std::string& reduction, bool zero_infinity, const py::object& normalizer) {
        const CtcArgs a = ctc_args(targets, input_lengths, target_lengths, blank, reduction,
                                   zero_infinity, normalizer);
        return with_storage(log_probs, [&](auto tag) {
          return ctc_forward_backward<typename decltype(tag)::type>(log_probs, grad_output, a);
        });
      },
      py::arg("log_probs"), py::arg("targets"), py::arg("input_lengths"), py::arg("target_lengths"),
      py::arg("grad_output"), py::arg("blank"), py::arg("reduction"), py::arg("zero_infinity"),
      py::arg("normalizer") = py::none());
  m.def(
      "ctc_loss_mean_normalizer",
      [](const py::object& log_probs, const py::object& targets, const py::object& input_lengths,
         const py::object& target_lengths, int64_t blank, const std::string& reduction,
         bool zero_infinity) {
        const CtcArgs a = ctc_args(targets, input_lengths, target_lengths, blank, reduction,
                                   zero_infinity, py::none());
        return with_storage(log_probs, [&](auto tag) {
          using T = typename decltype(tag)::type;
          const View<T> lp = as_view<T>(log_probs, "ctc_loss", "log_probs");
          py::gil_scoped_release release;
          return losskit::ctc_loss_mean_normalizer<T>(lp, a.targets, a.input_lengths,
                                                      a.target_lengths, a.options);
        });
      },
      py::arg("log_probs"), py::arg("targets"), py::arg("input_lengths"), py::arg("target_lengths"),
      py::arg("blank"), py::arg("reduction"), py::arg("zero_infinity"));
}
// ---- large_vocab bindings ----
// linear_cross_entropy's chunk loop lives in python/losskit/_large_vocab.py (NumPy's BLAS does the
// matrix products); these two calls are its softmax / cross-entropy arithmetic.
//   large_vocab_target_weight(target, weight, num_classes, ignore_index, label_smoothing, reduction,
//                             normalizer=None)
//     -> what 'mean' divides by (the normalizer when given, else the weight of the counted
//        targets), after checking every class index.
//   large_vocab_mean_normalizer(target, weight, num_classes, ignore_index, label_smoothing,
//                               reduction) -> linear_cross_entropy_mean_normalizer's value.
//   large_vocab_ce_chunk(logits, target, bias, weight, grad_output, out, grad_bias_acc, want_grad,
//                        grad_scale, ignore_index, label_smoothing, reduction) -> chunk loss sum;
//     runs in place on `logits` (a writable C-contiguous (n, V) array).
View<int64_t> large_vocab_index_view(const py::handle& obj) {
  if (!py::array_t<int64_t, py::array::c_style>::check_(obj))
    throw losskit::TypeError("linear_cross_entropy: target expected an int64 array");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!(a.flags() & py::array::c_style))
    throw losskit::ValueError("linear_cross_entropy: target expected a C-contiguous array");
  return View<int64_t>(static_cast<const int64_t*>(a.data()), shape_of<int64_t>(a));
}

losskit::LinearCrossEntropyOptions large_vocab_options(const std::string& reduction,
                                                       int64_t ignore_index, double smoothing,
                                                       double z_loss = 0.0,
                                                       std::optional<double> softcap = {}) {
  losskit::LinearCrossEntropyOptions o{losskit::parse_reduction(reduction, "linear_cross_entropy"),
                                       ignore_index, smoothing};
  o.z_loss = z_loss;
  o.softcap = softcap;
  return o;
}

template <class T>
double large_vocab_ce_chunk(const py::handle& logits, const py::handle& target,
                            const py::handle& bias, const py::handle& weight,
                            const py::handle& grad_output, const py::handle& out,
                            const py::handle& grad_bias_acc, bool want_grad, double grad_scale,
                            const losskit::LinearCrossEntropyOptions& o, const py::handle& lse,
                            const py::handle& entropy, const py::handle& correct) {
  const char* fn = "linear_cross_entropy";
  const MutView<T> x = as_mut_view<T>(logits, fn, "logits");
  const View<int64_t> t = large_vocab_index_view(target);
  const View<T> b = as_view<T>(bias, fn, "linear_bias");
  const View<T> w = as_view<T>(weight, fn, "weight");
  const View<T> go = as_view<T>(grad_output, fn, "grad_output");
  const MutView<T> o_v = as_mut_view<T>(out, fn, "output");
  const MutView<double> gb = as_mut_view<double>(grad_bias_acc, fn, "grad_bias_acc");
  const losskit::CrossEntropyStats<T> stats{as_mut_view<T>(lse, fn, "lse"),
                                            as_mut_view<T>(entropy, fn, "entropy"),
                                            as_mut_view<bool>(correct, fn, "correct")};
  py::gil_scoped_release release;
  return losskit::linear_cross_entropy_chunk<T>(x, t, b, w, go, o_v, gb, want_grad, grad_scale, o,
                                                stats);
}

bool large_vocab_is_float32(const py::handle& a) { return has_dtype<float>(a); }

void large_vocab_bind(py::module_& m) {
  m.def(
      "large_vocab_target_weight",
      [](const py::object& target, const py::object& weight, int64_t num_classes,
         int64_t ignore_index, double label_smoothing, const std::string& reduction,
         const py::object& normalizer, double z_loss, std::optional<double> softcap) {
        auto o = large_vocab_options(reduction, ignore_index, label_smoothing, z_loss, softcap);
        o.normalizer = normalizer_of(normalizer);
        const View<int64_t> t = large_vocab_index_view(target);
        const double own =
            !weight.is_none() && large_vocab_is_float32(weight)
                ? losskit::linear_cross_entropy_target_weight<float>(
                      t, as_view<float>(weight, "linear_cross_entropy", "weight"), num_classes, o)
                : losskit::linear_cross_entropy_target_weight<double>(
                      t, as_view<double>(weight, "linear_cross_entropy", "weight"), num_classes, o);
        return losskit::detail::mean_divisor(o.normalizer, own);
      },
      py::arg("target"), py::arg("weight"), py::arg("num_classes"), py::arg("ignore_index"),
      py::arg("label_smoothing"), py::arg("reduction"), py::arg("normalizer") = py::none(),
      py::arg("z_loss") = 0.0, py::arg("softcap") = py::none());
  m.def(
      "large_vocab_mean_normalizer",
      [](const py::object& target, const py::object& weight, int64_t num_classes,
         int64_t ignore_index, double label_smoothing, const std::string& reduction, double z_loss,
         std::optional<double> softcap) {
        const auto o =
            large_vocab_options(reduction, ignore_index, label_smoothing, z_loss, softcap);
        const View<int64_t> t = large_vocab_index_view(target);
        if (!weight.is_none() && large_vocab_is_float32(weight))
          return losskit::linear_cross_entropy_mean_normalizer<float>(
              t, as_view<float>(weight, "linear_cross_entropy", "weight"), num_classes, o);
        return losskit::linear_cross_entropy_mean_normalizer<double>(
            t, as_view<double>(weight, "linear_cross_entropy", "weight"), num_classes, o);
      },
      py::arg("target"), py::arg("weight"), py::arg("num_classes"), py::arg("ignore_index"),
      py::arg("label_smoothing"), py::arg("reduction"), py::arg("z_loss") = 0.0,
      py::arg("softcap") = py::none());
  m.def(
      "large_vocab_ce_chunk",
      [](const py::object& logits, const py::object& target, const py::object& bias,
         const py::object& weight, const py::object& grad_output, const py::object& out,
         const py::object& grad_bias_acc, bool want_grad, double grad_scale, int64_t ignore_index,
         double label_smoothing, const std::string& reduction, double z_loss,
         std::optional<double> softcap, const py::object& lse, const py::object& entropy,
         const py::object& correct) {
        const auto o =
            large_vocab_options(reduction, ignore_index, label_smoothing, z_loss, softcap);
        return large_vocab_is_float32(logits)
                   ? large_vocab_ce_chunk<float>(logits, target, bias, weight, grad_output, out,
                                                 grad_bias_acc, want_grad, grad_scale, o, lse,
                                                 entropy, correct)
                   : large_vocab_ce_chunk<double>(logits, target, bias, weight, grad_output, out,
                                                  grad_bias_acc, want_grad, grad_scale, o, lse,
                                                  entropy, correct);
      },
      py::arg("logits"), py::arg("target"), py::arg("bias"), py::arg("weight"),
      py::arg("grad_output"), py::arg("out"), py::arg("grad_bias_acc"), py::arg("want_grad"),
      py::arg("grad_scale"), py::arg("ignore_index"), py::arg("label_smoothing"),
      py::arg("reduction"), py::arg("z_loss") = 0.0, py::arg("softcap") = py::none(),
      py::arg("lse") = py::none(), py::arg("entropy") = py::none(),
      py::arg("correct") = py::none());
  m.def(
      "large_vocab_chunk_rows",
      [](int64_t num_rows, int64_t num_classes, int64_t itemsize, int64_t budget_bytes,
         int64_t min_rows) {
        return losskit::linear_cross_entropy_chunk_rows(num_rows, num_classes, itemsize,
                                                        budget_bytes, min_rows);
      },
      py::arg("num_rows"), py::arg("num_classes"), py::arg("itemsize"), py::arg("budget_bytes"),
      py::arg("min_rows"));
}

// ---- contrastive bindings ----
// info_nce_loss's block loop runs in the C++ core (losskit::info_nce_loss_forward_backward); its
// matrix products call back into Python (python/losskit/_contrastive.py's GEMM: SciPy's or
// NumPy's BLAS), re-taking the GIL only for them.
//   contrastive_info_nce(z1, z2, grad_output, output, grad_z1, grad_z2, workspace, block_rows,
//                        temperature, symmetric, normalize, reduction, normalizer, gemm)
//     gemm(trans_a, trans_b, alpha, a, b, beta, c): c = alpha op(a) op(b) + beta c in place, on
//     NumPy views of the core's row-major buffers (a, b as stored, before op).
//     z1, z2 (and grad_output, output, the gradients) float32, float64, bfloat16 or float16
//     alike; workspace and gemm of the compute type (float32 for 16-bit storage).
//   contrastive_mean_normalizer(num_rows, reduction) -> N.
template <class T>
void contrastive_py_gemm(void* context, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                         T alpha, const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c,
                         int64_t ldc) {
  py::gil_scoped_acquire gil;
  const py::capsule keep(a, [](void*) {});  // the core owns the memory; the views only borrow it
  const auto view = [&](const T* p, int64_t rows, int64_t cols, int64_t ld) {
    return py::array_t<T>({rows, cols},
                          {static_cast<py::ssize_t>(ld * sizeof(T)),
                           static_cast<py::ssize_t>(sizeof(T))},
                          p, keep);
  };
  const py::function& fn = *static_cast<py::function*>(context);
  fn(trans_a, trans_b, static_cast<double>(alpha),
     trans_a ? view(a, k, m, lda) : view(a, m, k, lda),
     trans_b ? view(b, n, k, ldb) : view(b, k, n, ldb), static_cast<double>(beta),
     view(c, m, n, ldc));
}

// S: the storage type of z1 and z2 (float, double, or 16-bit read in place); the workspace and
// the GEMM are of its compute type.
template <class S>
void contrastive_info_nce(const py::handle& z1, const py::handle& z2, const py::handle& grad_output,
                          const py::handle& output, const py::handle& grad_z1,
                          const py::handle& grad_z2, const py::handle& workspace,
                          int64_t block_rows, const losskit::InfoNceOptions& o, py::function gemm) {
  using T = losskit::detail::compute_t<S>;
  const char* fn = "info_nce_loss";
  const View<S> a = as_view<S>(z1, fn, "z1"), b = as_view<S>(z2, fn, "z2");
  const View<S> go = as_view<S>(grad_output, fn, "grad_output");
  const MutView<S> out = as_mut_view<S>(output, fn, "output"),
                   g1 = as_mut_view<S>(grad_z1, fn, "grad_z1"),
                   g2 = as_mut_view<S>(grad_z2, fn, "grad_z2");
  const MutView<T> ws = as_mut_view<T>(workspace, fn, "workspace");
  const losskit::LinearCrossEntropyGemm<T> callback{&contrastive_py_gemm<T>, &gemm};
  py::gil_scoped_release release;
  losskit::info_nce_loss_forward_backward(a, b, go, out, g1, g2, ws, block_rows, o, callback);
}

void contrastive_bind(py::module_& m) {
  m.def(
      "contrastive_info_nce",
      [](const py::handle& z1, const py::handle& z2, const py::handle& grad_output,
         const py::handle& output, const py::handle& grad_z1, const py::handle& grad_z2,
         const py::handle& workspace, int64_t block_rows, double temperature, bool symmetric,
         bool normalize, const std::string& reduction, std::optional<double> normalizer,
         py::function gemm) {
        losskit::InfoNceOptions o;
        o.temperature = temperature;
        o.symmetric = symmetric;
        o.normalize = normalize;
        o.reduction = losskit::parse_reduction(reduction, "info_nce_loss");
        o.normalizer = normalizer;
        with_storage(z1, [&](auto tag) {
          contrastive_info_nce<typename decltype(tag)::type>(z1, z2, grad_output, output, grad_z1,
                                                             grad_z2, workspace, block_rows, o,
                                                             gemm);
        });
      },
      py::arg("z1"), py::arg("z2"), py::arg("grad_output"), py::arg("output"), py::arg("grad_z1"),
      py::arg("grad_z2"), py::arg("workspace"), py::arg("block_rows"), py::arg("temperature"),
      py::arg("symmetric"), py::arg("normalize"), py::arg("reduction"), py::arg("normalizer"),
      py::arg("gemm"));
  m.def(
      "contrastive_mean_normalizer",
      [](int64_t num_rows, double temperature, const std::string& reduction) {
        losskit::InfoNceOptions o;
        o.temperature = temperature;
        o.reduction = losskit::parse_reduction(reduction, "info_nce_loss");
        return losskit::info_nce_mean_normalizer(num_rows, o);
      },
      py::arg("num_rows"), py::arg("temperature"), py::arg("reduction"));
  m.def(
      "contrastive_block_rows",
      [](int64_t num_rows, int64_t itemsize, int64_t budget_bytes, int64_t min_rows) {
        return losskit::info_nce_block_rows(num_rows, itemsize, budget_bytes, min_rows);
      },
      py::arg("num_rows"), py::arg("itemsize"), py::arg("budget_bytes"), py::arg("min_rows"));
  m.def(
      "contrastive_workspace_size",
      [](int64_t num_rows, int64_t dim, int64_t block_rows, bool half_storage) {
        return losskit::info_nce_workspace_size(num_rows, dim, block_rows, half_storage);
      },
      py::arg("num_rows"), py::arg("dim"), py::arg("block_rows"), py::arg("half_storage") = false);
}
// ---- segmentation bindings ----
// _core.dice_loss / _core.tversky_loss(mode, input, target, weight, grad_output, options...):
// mode 0 the loss, 1 the gradient, 2 both, 3 the divisor of 'mean' (_spec's modes). The target
// is an int64 array of class indices (to_onehot_y) or an array of the input's dtype (dense).
// The entry points of one segmentation loss, for segmentation_dispatch; `gt` is the dense
// target's gradient (absent when not wanted; class indices have none).
#define LOSSKIT_SEGMENTATION_ENTRY(STRUCT, FN, OPTIONS)                                            \
  struct STRUCT {                                                                                  \
    using Options = losskit::OPTIONS;                                                              \
    static constexpr const char* kName = #FN;                                                      \
    template <class T, class Y>                                                                    \
    static void forward(View<T> x, View<Y> y, View<T> w, MutView<T> out, const Options& o) {       \
      losskit::FN<T>(x, y, w, out, o);                                                             \
    }                                                                                              \
    template <class T, class Y>                                                                    \
    static void backward(View<T> go, View<T> x, View<Y> y, View<T> w, MutView<T> g, MutView<T> gt, \
                         const Options& o) {                                                       \
      if constexpr (std::is_same_v<Y, int64_t>) losskit::FN##_backward<T>(go, x, y, w, g, o);      \
      else losskit::FN##_backward<T>(go, x, y, w, g, gt, o);                                       \
    }                                                                                              \
    template <class T, class Y>                                                                    \
    static void forward_backward(View<T> x, View<Y> y, View<T> w, View<T> go, MutView<T> out,      \
                                 MutView<T> g, MutView<T> gt, const Options& o) {                  \
      if constexpr (std::is_same_v<Y, int64_t>)                                                    \
        losskit::FN##_forward_backward<T>(x, y, w, go, out, g, o);                                 \
      else losskit::FN##_forward_backward<T>(x, y, w, go, out, g, gt, o);                          \
    }                                                                                              \
    template <class T, class Y>                                                                    \
    static double mean_normalizer(View<T> x, View<Y> y, View<T> w, const Options& o) {             \
      return losskit::FN##_mean_normalizer<T>(x, y, w, o);                                         \
    }                                                                                              \
  };
LOSSKIT_SEGMENTATION_ENTRY(DiceEntry, dice_loss, DiceLossOptions)
LOSSKIT_SEGMENTATION_ENTRY(TverskyEntry, tversky_loss, TverskyLossOptions)
#undef LOSSKIT_SEGMENTATION_ENTRY

template <class E, class T, class Y>
py::object segmentation_run(int mode, const py::handle& input, const py::handle& target,
                            const py::handle& weight, const py::handle& grad_output,
                            bool target_grad, const typename E::Options& o) {
  const View<T> x = as_view<T>(input, E::kName, "input");
  View<Y> y;
  if constexpr (std::is_same_v<Y, int64_t>) {
    if (!Array<int64_t>::check_(target))
      throw losskit::TypeError(std::string(E::kName) + ": target expected an int64 array");
    auto a = py::reinterpret_borrow<py::array>(target);
    if (!(a.flags() & py::array::c_style))
      throw losskit::ValueError(std::string(E::kName) + ": target expected a C-contiguous array");
    y = View<int64_t>(static_cast<const int64_t*>(a.data()), shape_of<int64_t>(a));
  } else {
    y = as_view<T>(target, E::kName, "target");
  }
  const View<T> w = as_view<T>(weight, E::kName, "weight");
  const View<T> go = as_view<T>(grad_output, E::kName, "grad_output");
  if (mode == 3) {
    double divisor;
    {
      py::gil_scoped_release release;
      divisor = E::mean_normalizer(x, y, w, o);
    }
    return py::float_(divisor);
  }
  // A shape the core refuses gets a 0-d output here; the core's check names the input first.
  const Shape out_shape =
      x.dim() >= 3
          ? losskit::segmentation_output_shape(x.shape, o.include_background, o.batch, o.reduction)
          : Shape{};
  if (mode == 0) {
    auto out = new_array<T>(out_shape);
    auto ov = as_mut<T>(out);
    py::gil_scoped_release release;
    E::forward(x, y, w, ov, o);
    return std::move(out);
  }
  auto grad = new_array<T>(x.shape);
  auto gv = as_mut<T>(grad);
  // The target's gradient (dense targets; the Python layer refuses target_grad for class indices)
  py::object grad_target = py::none();
  MutView<T> gtv;
  if (target_grad && !std::is_same_v<Y, int64_t>) {
    auto a = new_array<T>(y.shape);
    gtv = as_mut<T>(a);
    grad_target = std::move(a);
  }
  // One gradient is returned bare, with the target's a (grad_input, grad_target) pair.
  const auto grads = [&]() -> py::object {
    if (grad_target.is_none()) return grad;
    return py::make_tuple(grad, grad_target);
  };
  if (mode == 1) {
    {
      py::gil_scoped_release release;
      E::backward(go, x, y, w, gv, gtv, o);
    }
    return grads();
  }
  auto out = new_array<T>(out_shape);
  auto ov = as_mut<T>(out);
  {
    py::gil_scoped_release release;
    E::forward_backward(x, y, w, go, ov, gv, gtv, o);
  }
  return py::make_tuple(out, grads());
}

template <class E>
py::object segmentation_dispatch(int mode, const py::handle& input, const py::handle& target,
                                 const py::handle& weight, const py::handle& grad_output,
                                 bool target_grad, const typename E::Options& o) {
  if (mode < 0 || mode > 3)
    throw losskit::ValueError(std::string(E::kName) + ": mode expected 0, 1, 2 or 3");
  const bool labels = py::isinstance<py::array>(target) &&
                      py::reinterpret_borrow<py::array>(target).dtype().kind() == 'i';
  return with_storage(input, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return labels ? segmentation_run<E, T, int64_t>(mode, input, target, weight, grad_output,
                                                    target_grad, o)
                  : segmentation_run<E, T, T>(mode, input, target, weight, grad_output, target_grad,
                                              o);
  });
}

void segmentation_bind(py::module_& m) {
  m.def(
      "dice_loss",
      [](int mode, const py::object& input, const py::object& target, const py::object& weight,
         const py::object& grad_output, bool include_background, bool sigmoid, bool softmax,
         bool squared_pred, bool jaccard, const std::string& reduction, double smooth_nr,
         double smooth_dr, bool batch, bool soft_label, const py::object& normalizer,
         bool target_grad) {
        losskit::DiceLossOptions o;
        o.include_background = include_background;
        o.sigmoid = sigmoid;
        o.softmax = softmax;
        o.squared_pred = squared_pred;
        o.jaccard = jaccard;
        o.soft_label = soft_label;
        o.reduction = losskit::parse_reduction(reduction, "dice_loss");
        o.smooth_nr = smooth_nr;
        o.smooth_dr = smooth_dr;
        o.batch = batch;
        o.normalizer = normalizer_of(normalizer);
        return segmentation_dispatch<DiceEntry>(mode, input, target, weight, grad_output,
                                                target_grad, o);
      },
      py::arg("mode"), py::arg("input"), py::arg("target"), py::arg("weight"),
      py::arg("grad_output"), py::arg("include_background"), py::arg("sigmoid"), py::arg("softmax"),
      py::arg("squared_pred"), py::arg("jaccard"), py::arg("reduction"), py::arg("smooth_nr"),
      py::arg("smooth_dr"), py::arg("batch"), py::arg("soft_label"),
      py::arg("normalizer") = py::none(), py::arg("target_grad") = false);
  m.def(
      "tversky_loss",
      [](int mode, const py::object& input, const py::object& target, const py::object& grad_output,
         bool include_background, bool sigmoid, bool softmax, double alpha, double beta,
         const std::string& reduction, double smooth_nr, double smooth_dr, bool batch,
         bool soft_label, const py::object& normalizer, bool target_grad) {
        losskit::TverskyLossOptions o;
        o.include_background = include_background;
        o.sigmoid = sigmoid;
        o.softmax = softmax;
        o.alpha = alpha;
        o.beta = beta;
        o.soft_label = soft_label;
        o.reduction = losskit::parse_reduction(reduction, "tversky_loss");
        o.smooth_nr = smooth_nr;
        o.smooth_dr = smooth_dr;
        o.batch = batch;
        o.normalizer = normalizer_of(normalizer);
        return segmentation_dispatch<TverskyEntry>(mode, input, target, py::none(), grad_output,
                                                   target_grad, o);
      },
      py::arg("mode"), py::arg("input"), py::arg("target"), py::arg("grad_output"),
      py::arg("include_background"), py::arg("sigmoid"), py::arg("softmax"), py::arg("alpha"),
      py::arg("beta"), py::arg("reduction"), py::arg("smooth_nr"), py::arg("smooth_dr"),
      py::arg("batch"), py::arg("soft_label"), py::arg("normalizer") = py::none(),
      py::arg("target_grad") = false);
}
// ---- detection bindings ----
// boxes1, boxes2 (..., 4); the unreduced output is their leading dimensions, broadcast.
#define LOSSKIT_BOX_LOSS_ADAPTER(STRUCT, FN)                                                       \
  struct STRUCT {                                                                                  \
    static constexpr const char* kName = #FN;                                                      \
    static constexpr int kInputs = 2;                                                              \
    static constexpr std::array<int, 2> kGradOf{0, 1};                                             \
    using Options = losskit::BoxIouLossOptions;                                                    \
    static Options options(Reduction r, const py::kwargs& kw) {                                    \
      return {r, kw["eps"].cast<double>()};                                                        \
    }                                                                                              \
    template <class T>                                                                             \
    static Shape out_shape(const Inputs<T>& in, const Options&) {                                  \
      return losskit::box_loss_output_shape(in[0].shape, in[1].shape);                             \
    }                                                                                              \
    LOSSKIT_FORWARDERS(FN, (in[0], in[1], out, o), (go, in[0], in[1], g[0], g[1], o),              \
                       (in[0], in[1], go, out, g[0], g[1], o))                                     \
    LOSSKIT_MEAN_NORMALIZER(FN, (in[0], in[1], o))                                                 \
  };
LOSSKIT_BOX_LOSS_ADAPTER(GeneralizedBoxIou, generalized_box_iou_loss)
LOSSKIT_BOX_LOSS_ADAPTER(DistanceBoxIou, distance_box_iou_loss)
LOSSKIT_BOX_LOSS_ADAPTER(CompleteBoxIou, complete_box_iou_loss)
#undef LOSSKIT_BOX_LOSS_ADAPTER

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
  // Test hook: the active target's vectorised exp (0), log (1), log1p (2), exp of a
  // non-positive argument (3), tanh (4), atan (5, in double) or log1p_unit (6, defined on [0, 1])
  // of a float array.
  m.def("_vmath", [](int fn, const py::array& x) -> py::array {
    if (fn < 0 || fn > 6) throw losskit::ValueError("_vmath: fn expected 0 to 6");
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

  // Test hook: the active target's 16-bit conversions of a uint16 array of bits (widen, to
  // float32) or a float32 array (narrow, to the bits of `kind`: "bfloat16" or "float16").
  m.def("_convert16", [](const std::string& kind, bool to_float, const py::array& x) -> py::array {
    if (kind != "bfloat16" && kind != "float16")
      throw losskit::ValueError("_convert16: kind expected 'bfloat16' or 'float16'");
    const bool bf = kind == "bfloat16";
    if (to_float) {
      auto in = py::array_t<uint16_t, py::array::c_style>::ensure(x);
      if (!in) throw losskit::TypeError("_convert16: x expected a uint16 array");
      Array<float> out(in.size());
      const auto* bits = in.data();
      if (bf)
        losskit::detail::widen(reinterpret_cast<const losskit::bfloat16*>(bits), out.mutable_data(),
                               in.size());
      else
        losskit::detail::widen(reinterpret_cast<const losskit::float16*>(bits), out.mutable_data(),
                               in.size());
      return std::move(out);
    }
    auto in = py::array_t<float, py::array::c_style>::ensure(x);
    if (!in) throw losskit::TypeError("_convert16: x expected a float32 array");
    py::array_t<uint16_t> out(in.size());
    auto* bits = out.mutable_data();
    if (bf)
      losskit::detail::narrow(in.data(), reinterpret_cast<losskit::bfloat16*>(bits), in.size());
    else losskit::detail::narrow(in.data(), reinterpret_cast<losskit::float16*>(bits), in.size());
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
#define LOSSKIT_BIND_REGISTERED(NAME, ...) bind<Registered_##NAME>(m);
  LOSSKIT_REGISTERED_POINTWISE(LOSSKIT_BIND_REGISTERED)
#undef LOSSKIT_BIND_REGISTERED
  // classification: register bindings here
  classification_bind(m);
  // embedding: register bindings here
  bind<CosineEmbedding>(m);
  bind<TripletMargin>(m);
  bind<TripletMarginWithDistance>(m);
  embedding_bind_from_distances(m);
  // ctc: register bindings here
  ctc_bind(m);
  // large_vocab: register bindings here
  large_vocab_bind(m);
  // contrastive: register bindings here
  contrastive_bind(m);
  // segmentation: register bindings here
  segmentation_bind(m);
  // detection: register bindings here
  bind<GeneralizedBoxIou>(m);
  bind<DistanceBoxIou>(m);
  bind<CompleteBoxIou>(m);
}
