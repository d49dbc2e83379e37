// Every public entry point of every family refuses a misaligned pointer (docs/cpp.md): reading a
// float through a `const float*` that is not 4-byte aligned is undefined behaviour in C++, however
// x86 forgives it, and caller memory from packed records or a memory-mapped file at an odd offset
// is exactly that. For each call below the aligned call must succeed first (so a refusal is about
// the address, not the data); then each array argument in turn (inputs, int64 targets and lengths,
// weights, grad_output, outputs, gradients, workspaces) is moved one byte off its alignment, and
// the call must throw losskit::ValueError
//     "<function>: <argument> expected an array aligned to <alignof(element)> bytes, got ..."
// having written nothing: every byte of every array (outputs and workspaces included) is compared
// before and after.
// The same calls then check that no written array (output, gradient, workspace) may share memory
// with another array of the call: each written argument and each other array argument in turn are
// pointed at one fresh block (holding the other's values, so the call would otherwise run), and
// the call must throw losskit::ValueError
//     "<function>: <one of the two> expected an array that shares no memory with <the other>, ..."
// again having written nothing. Both float and double. Built and run by
// tests/test_alignment.py::test_cpp_core_refuses_misaligned_pointers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "check.hpp"
#include "losskit/losskit.hpp"

using namespace losskit;

namespace {

// The arrays of one family's calls, each in its own block with slack after it, so that a view
// moved one byte still lies in memory this program owns (a core without the check reads and
// writes there; the check then fails instead of crashing).
class Arena {
 public:
  void* take(size_t bytes) {
    bytes += 16;
    blocks_.emplace_back(new unsigned char[bytes]());  // aligned for any fundamental type
    sizes_.push_back(bytes);
    return blocks_.back().get();
  }
  template <class T>
  View<T> in(Shape shape, const std::vector<double>& values) {
    T* p = static_cast<T*>(take(values.size() * sizeof(T)));
    for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<T>(values[i]);
    CHECK(numel(shape) == static_cast<int64_t>(values.size()), "test data of the wrong size");
    return View<T>(p, std::move(shape));
  }
  template <class T>
  MutView<T> out(Shape shape) {
    const int64_t n = numel(shape);
    T* p = static_cast<T*>(take(static_cast<size_t>(n) * sizeof(T)));
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(-7);  // a sentinel
    return MutView<T>(p, std::move(shape));
  }
  std::vector<std::vector<unsigned char>> snapshot() const {
    std::vector<std::vector<unsigned char>> s;
    for (size_t i = 0; i < blocks_.size(); ++i)
      s.emplace_back(blocks_[i].get(), blocks_[i].get() + sizes_[i]);
    return s;
  }

 private:
  std::vector<std::unique_ptr<unsigned char[]>> blocks_;
  std::vector<size_t> sizes_;
};

// One byte past the address: misaligned for every element type wider than a byte.
template <class P>
P* one_byte_on(P* p) {
  using Byte = std::conditional_t<std::is_const_v<P>, const unsigned char, unsigned char>;
  return reinterpret_cast<P*>(reinterpret_cast<Byte*>(p) + 1);
}

// Moves an array argument off its alignment (returns its element alignment), leaves every other
// argument (options, flags, callbacks) alone (returns 0).
template <class T>
size_t misalign(View<T>& v) {
  if (!v.data) return 0;
  v.data = one_byte_on(v.data);
  return alignof(T);
}
template <class T>
size_t misalign(MutView<T>& v) {
  if (!v.data) return 0;
  v.data = one_byte_on(v.data);
  return alignof(T);
}
size_t misalign(CtcWorkspace& w) {
  w.data = one_byte_on(static_cast<unsigned char*>(w.data));
  return alignof(double);
}
template <class X>
size_t misalign(X&) {
  return 0;
}

// Where an array argument's memory is (null for arguments that are not arrays, and for absent
// arrays), how many bytes it claims, and whether the call writes it.
struct Extent {
  const void* data = nullptr;
  size_t bytes = 0;
  bool written = false;
};
template <class T>
Extent extent(const View<T>& v) {
  return {v.data, static_cast<size_t>(v.numel()) * sizeof(T), false};
}
template <class T>
Extent extent(const MutView<T>& v) {
  return {v.data, static_cast<size_t>(v.numel()) * sizeof(T), true};
}
Extent extent(const CtcWorkspace& w) { return {w.data, w.bytes, true}; }
template <class X>
Extent extent(const X&) {
  return {};
}

// Points an array argument at `p` (the caller made it large enough).
template <class T>
void place(View<T>& v, void* p) {
  v.data = static_cast<const T*>(p);
}
template <class T>
void place(MutView<T>& v, void* p) {
  v.data = static_cast<T*>(p);
}
void place(CtcWorkspace& w, void* p) { w.data = p; }
template <class X>
void place(X&, void*) {}

std::vector<std::string> split(const char* names) {
  std::istringstream is(names);
  std::vector<std::string> out;
  for (std::string w; is >> w;) out.push_back(w);
  return out;
}

template <class F, size_t... I>
void for_each_index(std::index_sequence<I...>, F&& f) {
  (f(std::integral_constant<size_t, I>{}), ...);
}

struct Family {
  const char* name;
  int calls = 0;
  int refused = 0;
  int overlaps_refused = 0;
};

// `names` gives each argument's name in the messages, "-" for arguments that are not arrays.
template <class Call, class... Args>
void expect_refusals(Family& family, Arena& arena, const char* function, const char* names,
                     Call call, Args... args) {
  const std::vector<std::string> argnames = split(names);
  if (argnames.size() != sizeof...(Args)) {
    CHECK(false, "%s: %zu names for %zu arguments", function, argnames.size(), sizeof...(Args));
    return;
  }
  const std::tuple<Args...> aligned(args...);
  try {
    std::apply(call, aligned);
  } catch (const std::exception& e) {
    CHECK(false, "%s (%s): the aligned call threw: %s", function, names, e.what());
    return;
  }
  ++family.calls;
  for_each_index(std::index_sequence_for<Args...>{}, [&](auto index) {
    constexpr size_t k = decltype(index)::value;
    auto moved = aligned;
    const size_t alignment = misalign(std::get<k>(moved));
    const std::string& argument = argnames[k];
    if (alignment == 0) {
      CHECK(argument == "-", "%s: argument %zu (%s) is not an array", function, k,
            argument.c_str());
      return;
    }
    CHECK(argument != "-", "%s: argument %zu is an array; name it", function, k);
    const std::string expected = std::string(function) + ": " + argument +
                                 " expected an array aligned to " + std::to_string(alignment) +
                                 " bytes, got address ";
    const auto before = arena.snapshot();
    std::string got = "no exception";
    bool refused = false;
    try {
      std::apply(call, moved);
    } catch (const IndexError& e) {
      got = std::string("IndexError: ") + e.what();
    } catch (const ValueError& e) {
      got = e.what();
      refused = got.compare(0, expected.size(), expected) == 0;
    } catch (const std::exception& e) {
      got = std::string("another exception: ") + e.what();
    }
    CHECK(refused, "%s (%s) with %s misaligned: expected \"%s...\", got \"%s\"", function, names,
          argument.c_str(), expected.c_str(), got.c_str());
    CHECK(arena.snapshot() == before,
          "%s with %s misaligned: memory was written before the refusal", function,
          argument.c_str());
    family.refused += refused;
  });

  // Each written array with each other array: both at one block holding the other's values. The
  // pairs run in a loop over per-argument accessors (instantiating the call once per pair would
  // make this file take minutes to compile).
  using Tuple = std::tuple<Args...>;
  constexpr size_t n = sizeof...(Args);
  Extent extents[n];
  void (*placers[n])(Tuple&, void*);
  for_each_index(std::index_sequence_for<Args...>{}, [&](auto index) {
    extents[decltype(index)::value] = extent(std::get<decltype(index)::value>(aligned));
    placers[decltype(index)::value] = [](Tuple& t, void* p) {
      place(std::get<decltype(index)::value>(t), p);
    };
  });
  for (size_t w = 0; w < n; ++w) {
    if (!extents[w].written || !extents[w].data) continue;
    for (size_t k = 0; k < n; ++k) {
      if (k == w || !extents[k].data) continue;
      void* block = arena.take(std::max(extents[w].bytes, extents[k].bytes));
      std::memcpy(block, extents[k].data, extents[k].bytes);
      Tuple moved = aligned;
      placers[w](moved, block);
      placers[k](moved, block);
      const std::string& a = argnames[w];
      const std::string& b = argnames[k];
      const std::string what = " expected an array that shares no memory with ";
      const auto before = arena.snapshot();
      std::string got = "no exception";
      bool refused = false;
      try {
        std::apply(call, moved);
      } catch (const ValueError& e) {
        got = e.what();
        const std::string head = std::string(function) + ": ";
        refused = got.rfind(head + a + what + b + ",", 0) == 0 ||
                  (extents[k].written && got.rfind(head + b + what + a + ",", 0) == 0);
      } catch (const std::exception& e) {
        got = std::string("another exception: ") + e.what();
      }
      CHECK(refused, "%s (%s) with %s and %s in the same memory: got \"%s\"", function, names,
            a.c_str(), b.c_str(), got.c_str());
      CHECK(arena.snapshot() == before,
            "%s with %s and %s in the same memory: memory was written before the refusal", function,
            a.c_str(), b.c_str());
      family.overlaps_refused += refused;
    }
  }
}

// Call wrappers: a generic lambda forwarding to one entry point (overloads resolve by argument).
#define LOSSKIT_CALL(FN) [](auto... a) { (void)FN<T>(a...); }

// ---- pointwise -------------------------------------------------------------------------------
template <class T>
void pointwise(Family& f) {
  Arena m;
  const Shape s{4};
  const auto x = m.in<T>(s, {0.2, 0.4, 0.6, 0.8});  // probabilities, for binary_cross_entropy
  const auto y = m.in<T>(s, {0.1, 0.9, 0.3, 0.7});
  const auto z = m.in<T>(s, {1.0, -1.0, 1.0, -1.0});
  const auto w = m.in<T>(s, {1.0, 2.0, 0.5, 1.5});
  const auto pw = m.in<T>(s, {2.0, 1.0, 1.0, 0.5});
  const auto var = m.in<T>(s, {0.5, 1.0, 2.0, 0.25});
  const auto go = m.in<T>(s, {1.0, -1.0, 0.5, 2.0});
  const auto out = m.out<T>(s), g1 = m.out<T>(s), g2 = m.out<T>(s), g3 = m.out<T>(s);
  const Reduction r = Reduction::None;

#define LOSSKIT_WEIGHTED(FN, OPTIONS)                                                              \
  expect_refusals(f, m, #FN, "input target weight output -", LOSSKIT_CALL(FN), x, y, w, out,       \
                  OPTIONS);                                                                        \
  expect_refusals(f, m, #FN, "grad_output input target weight grad_input grad_target -",           \
                  LOSSKIT_CALL(FN##_backward), go, x, y, w, g1, g2, OPTIONS);                      \
  expect_refusals(f, m, #FN, "input target weight grad_output output grad_input grad_target -",    \
                  LOSSKIT_CALL(FN##_forward_backward), x, y, w, go, out, g1, g2, OPTIONS);
  LOSSKIT_WEIGHTED(l1_loss, L1LossOptions{r})
  LOSSKIT_WEIGHTED(mse_loss, MseLossOptions{r})
  LOSSKIT_WEIGHTED(huber_loss, (HuberLossOptions{r, 0.5}))
  LOSSKIT_WEIGHTED(binary_cross_entropy, BinaryCrossEntropyOptions{r})
#undef LOSSKIT_WEIGHTED

#define LOSSKIT_TWO_GRADS(FN, OPTIONS)                                                             \
  expect_refusals(f, m, #FN, "input target output -", LOSSKIT_CALL(FN), x, y, out, OPTIONS);       \
  expect_refusals(f, m, #FN, "grad_output input target grad_input grad_target -",                  \
                  LOSSKIT_CALL(FN##_backward), go, x, y, g1, g2, OPTIONS);                         \
  expect_refusals(f, m, #FN, "input target grad_output output grad_input grad_target -",           \
                  LOSSKIT_CALL(FN##_forward_backward), x, y, go, out, g1, g2, OPTIONS);
  LOSSKIT_TWO_GRADS(smooth_l1_loss, (SmoothL1LossOptions{r, 0.5}))
  LOSSKIT_TWO_GRADS(poisson_nll_loss, PoissonNllLossOptions{r})
  LOSSKIT_TWO_GRADS(kl_div, KlDivOptions{r})
#undef LOSSKIT_TWO_GRADS

#define LOSSKIT_ONE_GRAD(FN, OPTIONS)                                                              \
  expect_refusals(f, m, #FN, "input target output -", LOSSKIT_CALL(FN), x, z, out, OPTIONS);       \
  expect_refusals(f, m, #FN, "grad_output input target grad_input -", LOSSKIT_CALL(FN##_backward), \
                  go, x, z, g1, OPTIONS);                                                          \
  expect_refusals(f, m, #FN, "input target grad_output output grad_input -",                       \
                  LOSSKIT_CALL(FN##_forward_backward), x, z, go, out, g1, OPTIONS);
  LOSSKIT_ONE_GRAD(soft_margin_loss, SoftMarginLossOptions{r})
  LOSSKIT_ONE_GRAD(hinge_embedding_loss, (HingeEmbeddingLossOptions{r, 1.0}))
#undef LOSSKIT_ONE_GRAD

  const char* fn = "binary_cross_entropy_with_logits";
  const BinaryCrossEntropyWithLogitsOptions bo{r};
  expect_refusals(f, m, fn, "input target weight pos_weight output -",
                  LOSSKIT_CALL(binary_cross_entropy_with_logits), x, y, w, pw, out, bo);
  expect_refusals(f, m, fn, "grad_output input target weight pos_weight grad_input grad_target -",
                  LOSSKIT_CALL(binary_cross_entropy_with_logits_backward), go, x, y, w, pw, g1, g2,
                  bo);
  expect_refusals(f, m, fn,
                  "input target weight pos_weight grad_output output grad_input grad_target -",
                  LOSSKIT_CALL(binary_cross_entropy_with_logits_forward_backward), x, y, w, pw, go,
                  out, g1, g2, bo);

  fn = "gaussian_nll_loss";
  const GaussianNllLossOptions gn{r};
  expect_refusals(f, m, fn, "input target var output -", LOSSKIT_CALL(gaussian_nll_loss), x, y, var,
                  out, gn);
  expect_refusals(f, m, fn, "grad_output input target var grad_input grad_var grad_target -",
                  LOSSKIT_CALL(gaussian_nll_loss_backward), go, x, y, var, g1, g3, g2, gn);
  expect_refusals(f, m, fn, "input target var grad_output output grad_input grad_var grad_target -",
                  LOSSKIT_CALL(gaussian_nll_loss_forward_backward), x, y, var, go, out, g1, g3, g2,
                  gn);

  fn = "margin_ranking_loss";
  const MarginRankingLossOptions mr{r, 0.1};
  expect_refusals(f, m, fn, "input1 input2 target output -", LOSSKIT_CALL(margin_ranking_loss), x,
                  y, z, out, mr);
  expect_refusals(f, m, fn, "grad_output input1 input2 target grad_input1 grad_input2 -",
                  LOSSKIT_CALL(margin_ranking_loss_backward), go, x, y, z, g1, g2, mr);
  expect_refusals(f, m, fn, "input1 input2 target grad_output output grad_input1 grad_input2 -",
                  LOSSKIT_CALL(margin_ranking_loss_forward_backward), x, y, z, go, out, g1, g2, mr);
}

// ---- classification --------------------------------------------------------------------------
template <class T>
void classification(Family& f) {
  Arena m;
  const auto x = m.in<T>({2, 3}, {0.5, -1.0, 2.0, 0.25, 0.75, -0.5});
  const auto t = m.in<int64_t>({2}, {0, 2});
  const auto tm = m.in<int64_t>({2, 3}, {2, -1, 0, 1, 0, -1});  // multilabel_margin: -1 ends a row
  const auto p = m.in<T>({2, 3}, {0.2, 0.3, 0.5, 0.6, 0.0, 0.4});  // probabilities / labels
  const auto w = m.in<T>({3}, {1.0, 2.0, 0.5});
  const auto go = m.in<T>({2}, {1.0, -0.5});
  const auto out = m.out<T>({2}), gi = m.out<T>({2, 3}), gt = m.out<T>({2, 3});
  const Reduction r = Reduction::None;

#define LOSSKIT_INDEX_TARGET(FN, OPTIONS)                                                          \
  expect_refusals(f, m, #FN, "input target weight output -", LOSSKIT_CALL(FN), x, t, w, out,       \
                  OPTIONS);                                                                        \
  expect_refusals(f, m, #FN, "grad_output input target weight grad_input -",                       \
                  LOSSKIT_CALL(FN##_backward), go, x, t, w, gi, OPTIONS);                          \
  expect_refusals(f, m, #FN, "input target weight grad_output output grad_input -",                \
                  LOSSKIT_CALL(FN##_forward_backward), x, t, w, go, out, gi, OPTIONS);
  LOSSKIT_INDEX_TARGET(cross_entropy, (CrossEntropyOptions{r, -100, 0.1}))
  LOSSKIT_INDEX_TARGET(nll_loss, (NllLossOptions{r, -100}))
  LOSSKIT_INDEX_TARGET(multi_margin_loss, (MultiMarginLossOptions{r, 2, 1.0}))
#undef LOSSKIT_INDEX_TARGET

#define LOSSKIT_FLOAT_TARGET(FN, OPTIONS)                                                          \
  expect_refusals(f, m, #FN, "input target weight output -", LOSSKIT_CALL(FN), x, p, w, out,       \
                  OPTIONS);                                                                        \
  expect_refusals(f, m, #FN, "grad_output input target weight grad_input grad_target -",           \
                  LOSSKIT_CALL(FN##_backward), go, x, p, w, gi, gt, OPTIONS);                      \
  expect_refusals(f, m, #FN, "input target weight grad_output output grad_input grad_target -",    \
                  LOSSKIT_CALL(FN##_forward_backward), x, p, w, go, out, gi, gt, OPTIONS);
  LOSSKIT_FLOAT_TARGET(cross_entropy, (CrossEntropyOptions{r, -100, 0.1}))  // probabilities
  LOSSKIT_FLOAT_TARGET(multilabel_soft_margin_loss, MultilabelSoftMarginLossOptions{r})
#undef LOSSKIT_FLOAT_TARGET

  const char* fn = "multilabel_margin_loss";
  const MultilabelMarginLossOptions mm{r};
  expect_refusals(f, m, fn, "input target output -", LOSSKIT_CALL(multilabel_margin_loss), x, tm,
                  out, mm);
  expect_refusals(f, m, fn, "grad_output input target grad_input -",
                  LOSSKIT_CALL(multilabel_margin_loss_backward), go, x, tm, gi, mm);
  expect_refusals(f, m, fn, "input target grad_output output grad_input -",
                  LOSSKIT_CALL(multilabel_margin_loss_forward_backward), x, tm, go, out, gi, mm);
}

// ---- embedding -------------------------------------------------------------------------------
template <class T>
void embedding(Family& f) {
  Arena m;
  const auto a = m.in<T>({2, 3}, {0.5, -1.0, 2.0, 0.25, 0.75, -0.5});
  const auto b = m.in<T>({2, 3}, {1.0, 0.5, -0.5, -0.25, 1.5, 0.5});
  const auto c = m.in<T>({2, 3}, {-1.0, 0.0, 1.0, 2.0, -0.5, 0.25});
  const auto row = m.in<T>({1, 3}, {0.3, -0.2, 0.9});  // broadcast over the rows (copy path)
  const auto y = m.in<T>({2}, {1.0, -1.0});
  const auto go = m.in<T>({2}, {1.0, -0.5});
  const auto d1 = m.in<T>({2}, {0.5, 2.0}), d2 = m.in<T>({2}, {1.0, 0.25}),
             d3 = m.in<T>({2}, {0.75, 1.5});
  const auto out = m.out<T>({2});
  const auto g1 = m.out<T>({2, 3}), g2 = m.out<T>({2, 3}), g3 = m.out<T>({2, 3});
  const auto gr = m.out<T>({1, 3});
  const auto h1 = m.out<T>({2}), h2 = m.out<T>({2}), h3 = m.out<T>({2});
  const Reduction r = Reduction::None;

  const char* fn = "cosine_embedding_loss";
  const CosineEmbeddingLossOptions co{r, 0.1};
  expect_refusals(f, m, fn, "input1 input2 target output -", LOSSKIT_CALL(cosine_embedding_loss), a,
                  b, y, out, co);
  expect_refusals(f, m, fn, "grad_output input1 input2 target grad_input1 grad_input2 -",
                  LOSSKIT_CALL(cosine_embedding_loss_backward), go, a, b, y, g1, g2, co);
  expect_refusals(f, m, fn, "input1 input2 target grad_output output grad_input1 grad_input2 -",
                  LOSSKIT_CALL(cosine_embedding_loss_forward_backward), a, b, y, go, out, g1, g2,
                  co);
  expect_refusals(f, m, fn, "input1 input2 target grad_output output grad_input1 grad_input2 -",
                  LOSSKIT_CALL(cosine_embedding_loss_forward_backward), a, row, y, go, out, g1, gr,
                  co);

#define LOSSKIT_TRIPLET(FN, OPTIONS)                                                               \
  expect_refusals(f, m, #FN, "anchor positive negative output -", LOSSKIT_CALL(FN), a, b, c, out,  \
                  OPTIONS);                                                                        \
  expect_refusals(                                                                                 \
      f, m, #FN, "grad_output anchor positive negative grad_anchor grad_positive grad_negative -", \
      LOSSKIT_CALL(FN##_backward), go, a, b, c, g1, g2, g3, OPTIONS);                              \
  expect_refusals(f, m, #FN,                                                                       \
                  "anchor positive negative grad_output output grad_anchor grad_positive "         \
                  "grad_negative -",                                                               \
                  LOSSKIT_CALL(FN##_forward_backward), a, b, c, go, out, g1, g2, g3, OPTIONS);
  LOSSKIT_TRIPLET(triplet_margin_loss, (TripletMarginLossOptions{r, 1.0, 2.0, 1e-6, true}))
  LOSSKIT_TRIPLET(triplet_margin_with_distance_loss,
                  (TripletMarginWithDistanceLossOptions{r, TripletDistance::Cosine, 1.0, true}))
#undef LOSSKIT_TRIPLET
  expect_refusals(f, m, "triplet_margin_loss",
                  "anchor positive negative grad_output output grad_anchor grad_positive "
                  "grad_negative -",
                  LOSSKIT_CALL(triplet_margin_loss_forward_backward), a, row, c, go, out, g1, gr,
                  g3, TripletMarginLossOptions{r});

  expect_refusals(f, m, "triplet_margin_with_distance_loss",
                  "dist_pos dist_neg dist_swap grad_output output grad_dist_pos grad_dist_neg "
                  "grad_dist_swap -",
                  LOSSKIT_CALL(triplet_margin_loss_from_distances), d1, d2, d3, go, out, h1, h2, h3,
                  TripletMarginWithDistanceLossOptions{r, TripletDistance::Euclidean, 1.0, true});
}

// ---- ctc -------------------------------------------------------------------------------------
template <class T>
void ctc(Family& f) {
  Arena m;
  const int64_t Tn = 4, N = 2, C = 3;
  std::vector<double> lp(static_cast<size_t>(Tn * N * C));
  for (size_t i = 0; i < lp.size(); ++i) lp[i] = std::log(1.0 / C) + 0.01 * std::sin(double(i));
  const auto log_probs = m.in<T>({Tn, N, C}, lp);
  const auto targets = m.in<int64_t>({N, 2}, {1, 2, 2, 0});  // sample 1 uses one label
  const auto input_lengths = m.in<int64_t>({N}, {4, 3});
  const auto target_lengths = m.in<int64_t>({N}, {2, 1});
  const auto go = m.in<T>({N}, {1.0, -0.5});
  const auto out = m.out<T>({N}), grad = m.out<T>({Tn, N, C});
  const size_t bytes = ctc_loss_workspace_size({Tn, N, C}, 2, true, 1);
  const CtcWorkspace ws{m.take(bytes), bytes};
  const CtcLossOptions o{0, Reduction::None, false};
  const char* fn = "ctc_loss";
  expect_refusals(f, m, fn, "log_probs targets input_lengths target_lengths output - workspace",
                  LOSSKIT_CALL(ctc_loss), log_probs, targets, input_lengths, target_lengths, out, o,
                  ws);
  expect_refusals(f, m, fn,
                  "grad_output log_probs targets input_lengths target_lengths grad_log_probs - "
                  "workspace",
                  LOSSKIT_CALL(ctc_loss_backward), go, log_probs, targets, input_lengths,
                  target_lengths, grad, o, ws);
  expect_refusals(f, m, fn,
                  "log_probs targets input_lengths target_lengths grad_output output "
                  "grad_log_probs - workspace",
                  LOSSKIT_CALL(ctc_loss_forward_backward), log_probs, targets, input_lengths,
                  target_lengths, go, out, grad, o, ws);
}

// ---- large_vocab -----------------------------------------------------------------------------
// A plain reference GEMM (row-major, cblas semantics) for the callback: test code only.
template <class T>
void reference_gemm(void*, bool ta, bool tb, int64_t rows, int64_t cols, int64_t k, T alpha,
                    const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      T s = 0;
      for (int64_t p = 0; p < k; ++p)
        s += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = alpha * s + (beta == T(0) ? T(0) : beta * c[i * ldc + j]);
    }
}

template <class T>
void large_vocab(Family& f) {
  Arena m;
  const int64_t N = 2, V = 3, H = 4;
  const auto x = m.in<T>({N, H}, {0.5, -1.0, 2.0, 0.25, 0.75, -0.5, 1.0, 0.0});
  const auto lw = m.in<T>({V, H}, {0.1, 0.2, -0.3, 0.4, -0.5, 0.6, 0.7, -0.8, 0.9, 1.0, 0.0, -0.1});
  const auto t = m.in<int64_t>({N}, {2, 0});
  const auto lb = m.in<T>({V}, {0.1, -0.2, 0.3});
  const auto w = m.in<T>({V}, {1.0, 2.0, 0.5});
  const auto go = m.in<T>({N}, {1.0, -0.5});
  const auto out = m.out<T>({N});
  const auto logits = m.out<T>({N, V});
  const auto gb_acc = m.out<double>({V});
  const auto gx = m.out<T>({N, H}), gw = m.out<T>({V, H}), gb = m.out<T>({V});
  const auto workspace = m.out<T>({1, V});  // one row per chunk: two chunks
  const LinearCrossEntropyOptions o{Reduction::None, -100, 0.1};
  const char* fn = "linear_cross_entropy";
  expect_refusals(f, m, fn, "target weight - -", LOSSKIT_CALL(linear_cross_entropy_target_weight),
                  t, w, V, o);
  expect_refusals(f, m, fn,
                  "logits target linear_bias weight grad_output output grad_bias_acc - - -",
                  LOSSKIT_CALL(linear_cross_entropy_chunk), logits, t, lb, w, go, out, gb_acc, true,
                  1.0, o);
  expect_refusals(f, m, fn,
                  "input linear_weight target linear_bias weight grad_output output grad_input "
                  "grad_linear_weight grad_linear_bias workspace - -",
                  LOSSKIT_CALL(linear_cross_entropy_forward_backward), x, lw, t, lb, w, go, out, gx,
                  gw, gb, workspace, o, LinearCrossEntropyGemm<T>{&reference_gemm<T>, nullptr});
}

// ---- contrastive -----------------------------------------------------------------------------
template <class T>
void contrastive(Family& f) {
  Arena m;
  const int64_t N = 2, D = 3, rows = 1;  // one similarity row per block: two blocks
  const auto z1 = m.in<T>({N, D}, {0.5, -1.0, 2.0, 0.25, 0.75, -0.5});
  const auto z2 = m.in<T>({N, D}, {1.0, 0.5, -0.5, -0.25, 1.5, 0.5});
  const auto go = m.in<T>({N}, {1.0, -0.5});
  const auto out = m.out<T>({N}), g1 = m.out<T>({N, D}), g2 = m.out<T>({N, D});
  const auto workspace = m.out<T>({info_nce_workspace_size(N, D, rows)});
  InfoNceOptions o;
  o.reduction = Reduction::None;
  expect_refusals(f, m, "info_nce_loss", "z1 z2 grad_output output grad_z1 grad_z2 workspace - - -",
                  LOSSKIT_CALL(info_nce_loss_forward_backward), z1, z2, go, out, g1, g2, workspace,
                  rows, o, LinearCrossEntropyGemm<T>{&reference_gemm<T>, nullptr});
}

}  // namespace

// ---- segmentation ----------------------------------------------------------------------------
template <class T>
void segmentation(Family& f) {
  Arena m;
  const int64_t N = 2, C = 3, S = 2;
  const auto x =
      m.in<T>({N, C, S}, {0.5, -1.0, 2.0, 0.25, 0.75, -0.5, 1.0, 0.0, -2.0, 1.5, 0.3, 0.1});
  const auto labels = m.in<int64_t>({N, S}, {0, 2, 1, 1});
  const auto dense = m.in<T>({N, C, S}, {1, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0});
  const auto w = m.in<T>({C}, {1.0, 2.0, 0.5});
  const auto go = m.in<T>({N, C}, {1.0, -0.5, 0.25, 2.0, 1.0, 0.5});
  const auto out = m.out<T>({N, C}), grad = m.out<T>({N, C, S}), grad_target = m.out<T>({N, C, S});
  DiceLossOptions d;
  d.softmax = true;
  d.reduction = Reduction::None;
  TverskyLossOptions t;
  t.sigmoid = true;
  t.reduction = Reduction::None;
  const View<T> none;
  expect_refusals(f, m, "dice_loss", "input target weight output -", LOSSKIT_CALL(dice_loss), x,
                  labels, w, out, d);
  expect_refusals(f, m, "dice_loss", "grad_output input target weight grad_input -",
                  LOSSKIT_CALL(dice_loss_backward), go, x, labels, w, grad, d);
  expect_refusals(f, m, "dice_loss", "input target weight grad_output output grad_input -",
                  LOSSKIT_CALL(dice_loss_forward_backward), x, labels, w, go, out, grad, d);
  expect_refusals(f, m, "tversky_loss",
                  "input target - grad_output output grad_input grad_target -",
                  LOSSKIT_CALL(tversky_loss_forward_backward), x, dense, none, go, out, grad,
                  grad_target, t);
}

// ---- detection -------------------------------------------------------------------------------
template <class T>
void detection(Family& f) {
  Arena m;
  const auto b1 = m.in<T>({2, 4}, {0.0, 0.0, 2.0, 2.0, 1.0, 1.0, 3.0, 4.0});
  const auto b2 = m.in<T>({2, 4}, {1.0, 1.0, 3.0, 3.0, 0.0, 2.0, 2.0, 5.0});
  const auto go = m.in<T>({2}, {1.0, -0.5});
  const auto out = m.out<T>({2});
  const auto g1 = m.out<T>({2, 4}), g2 = m.out<T>({2, 4});
  const BoxIouLossOptions o{Reduction::None};
#define LOSSKIT_BOX_LOSS(FN)                                                                       \
  expect_refusals(f, m, #FN, "boxes1 boxes2 output -", LOSSKIT_CALL(FN), b1, b2, out, o);          \
  expect_refusals(f, m, #FN, "grad_output boxes1 boxes2 grad_boxes1 grad_boxes2 -",                \
                  LOSSKIT_CALL(FN##_backward), go, b1, b2, g1, g2, o);                             \
  expect_refusals(f, m, #FN, "boxes1 boxes2 grad_output output grad_boxes1 grad_boxes2 -",         \
                  LOSSKIT_CALL(FN##_forward_backward), b1, b2, go, out, g1, g2, o);
  LOSSKIT_BOX_LOSS(generalized_box_iou_loss)
  LOSSKIT_BOX_LOSS(distance_box_iou_loss)
  LOSSKIT_BOX_LOSS(complete_box_iou_loss)
#undef LOSSKIT_BOX_LOSS
}

int main() {
  Family families[] = {{"pointwise"},   {"classification"}, {"embedding"}, {"ctc"},
                       {"large_vocab"}, {"segmentation"},   {"detection"}, {"contrastive"}};
  pointwise<float>(families[0]);
  pointwise<double>(families[0]);
  classification<float>(families[1]);
  classification<double>(families[1]);
  embedding<float>(families[2]);
  embedding<double>(families[2]);
  ctc<float>(families[3]);
  ctc<double>(families[3]);
  large_vocab<float>(families[4]);
  large_vocab<double>(families[4]);
  segmentation<float>(families[5]);
  segmentation<double>(families[5]);
  detection<float>(families[6]);
  detection<double>(families[6]);
  contrastive<float>(families[7]);
  contrastive<double>(families[7]);
  for (const Family& family : families)
    std::printf("%s: %d calls, %d misaligned arguments and %d overlapping pairs refused\n",
                family.name, family.calls, family.refused, family.overlaps_refused);
  return failures != 0;
}
