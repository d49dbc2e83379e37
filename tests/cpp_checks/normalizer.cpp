// Gradient accumulation from C++ (the Normalizer of reduction.hpp): a batch split into uneven
// parts, each part's loss called with normalizer = the sum of the parts' NAME_mean_normalizer,
// must add up to the whole batch's 'mean' loss and gradients; NAME_mean_normalizer must be the
// divisor computed independently here; a bad normalizer must raise ValueError naming it; and
// brace initialisation written before the member existed must keep its meaning.
// Built and run by tests/test_normalizer.py::test_cpp_gradient_accumulation.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "check.hpp"
#include "losskit/classification.hpp"
#include "losskit/ctc.hpp"
#include "losskit/errors.hpp"
#include "losskit/pointwise.hpp"

using namespace losskit;

namespace {

bool close(double a, double b) { return std::fabs(a - b) <= 1e-12 * std::max(1.0, std::fabs(b)); }

bool all_close(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!close(a[i], b[i])) return false;
  return true;
}

// Rows [r0, r1) of a row-major (rows, width) array.
template <class T>
std::vector<T> rows(const std::vector<T>& v, int64_t width, int64_t r0, int64_t r1) {
  return std::vector<T>(v.begin() + r0 * width, v.begin() + r1 * width);
}

void cross_entropy_accumulates() {
  const int64_t N = 11, C = 5, cut = 3;  // parts of 3 and 8 rows
  std::vector<double> x(N * C), w = {0.5, 2.0, 1.0, 0.25, 3.0};
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.7 * double(i)) * 2.0;
  std::vector<int64_t> t = {1, -100, 4, 0, 3, -100, 2, 2, 4, 1, 0};
  const View<double> vw(w.data(), {C});
  CrossEntropyOptions o;
  o.label_smoothing = 0.1;

  double expected_w = 0;
  for (int64_t v : t)
    if (v != -100) expected_w += w[static_cast<size_t>(v)];
  const double whole_w = cross_entropy_mean_normalizer<double>(View<double>(x.data(), {N, C}),
                                                               View<int64_t>(t.data(), {N}), vw, o);
  CHECK(close(whole_w, expected_w), "cross_entropy_mean_normalizer %.17g, expected %.17g", whole_w,
        expected_w);

  double full = 0;
  std::vector<double> g_full(N * C);
  cross_entropy_forward_backward<double>(View<double>(x.data(), {N, C}),
                                         View<int64_t>(t.data(), {N}), vw, {},
                                         MutView<double>(&full, {}),
                                         MutView<double>(g_full.data(), {N, C}), o);

  const int64_t bounds[3] = {0, cut, N};
  std::vector<std::vector<double>> xs(2);
  std::vector<std::vector<int64_t>> ts(2);
  double total_w = 0;
  for (int k = 0; k < 2; ++k) {
    xs[k] = rows(x, C, bounds[k], bounds[k + 1]);
    ts[k] = rows(t, 1, bounds[k], bounds[k + 1]);
    const int64_t n = bounds[k + 1] - bounds[k];
    total_w += cross_entropy_mean_normalizer<double>(View<double>(xs[k].data(), {n, C}),
                                                     View<int64_t>(ts[k].data(), {n}), vw, o);
  }
  CHECK(close(total_w, whole_w), "the parts' normalizers add to %.17g, not %.17g", total_w,
        whole_w);
  o.normalizer = total_w;
  double acc = 0;
  std::vector<double> g_acc;
  for (int k = 0; k < 2; ++k) {
    const int64_t n = bounds[k + 1] - bounds[k];
    double part = 0;
    std::vector<double> g(n * C);
    cross_entropy_forward_backward<double>(View<double>(xs[k].data(), {n, C}),
                                           View<int64_t>(ts[k].data(), {n}), vw, {},
                                           MutView<double>(&part, {}),
                                           MutView<double>(g.data(), {n, C}), o);
    acc += part;
    g_acc.insert(g_acc.end(), g.begin(), g.end());
  }
  CHECK(close(acc, full), "cross_entropy: accumulated %.17g, whole batch %.17g", acc, full);
  CHECK(all_close(g_acc, g_full), "cross_entropy: accumulated gradients differ from the batch's");
}

void ctc_accumulates() {
  const int64_t T = 6, N = 3, C = 4, S = 3;
  std::vector<double> lp(T * N * C);
  for (int64_t i = 0; i < T * N; ++i) {  // log-softmax rows
    double z = 0;
    for (int64_t c = 0; c < C; ++c) z += std::exp(std::cos(double(i * C + c)));
    for (int64_t c = 0; c < C; ++c) lp[i * C + c] = std::cos(double(i * C + c)) - std::log(z);
  }
  std::vector<int64_t> tg = {1, 2, 3, 2, 0, 0, 3, 3, 1}, il = {6, 5, 6}, tl = {3, 1, 2};
  CtcLossOptions o;
  double full = 0;
  std::vector<double> g_full(lp.size());
  ctc_loss_forward_backward<double>(View<double>(lp.data(), {T, N, C}),
                                    View<int64_t>(tg.data(), {N, S}), View<int64_t>(il.data(), {N}),
                                    View<int64_t>(tl.data(), {N}), {}, MutView<double>(&full, {}),
                                    MutView<double>(g_full.data(), {T, N, C}), o);
  CHECK(ctc_loss_mean_normalizer<double>(View<double>(lp.data(), {T, N, C}),
                                         View<int64_t>(tg.data(), {N, S}),
                                         View<int64_t>(il.data(), {N}),
                                         View<int64_t>(tl.data(), {N}), o) == double(N),
        "ctc_loss_mean_normalizer is not the batch size");
  // Each sample alone, unbatched (T, C), with normalizer N: the per-sample losses add up.
  o.normalizer = double(N);
  double acc = 0;
  for (int64_t b = 0; b < N; ++b) {
    std::vector<double> lpb(T * C), g(T * C);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) lpb[t * C + c] = lp[(t * N + b) * C + c];
    double part = 0;
    ctc_loss_forward_backward<double>(View<double>(lpb.data(), {T, C}),
                                      View<int64_t>(tg.data() + b * S, {1, S}),
                                      View<int64_t>(il.data() + b, {1}),
                                      View<int64_t>(tl.data() + b, {1}), {},
                                      MutView<double>(&part, {}), MutView<double>(g.data(), {T, C}),
                                      o);
    acc += part;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c)
        CHECK(close(g[t * C + c], g_full[(t * N + b) * C + c]), "ctc_loss: gradient of sample %lld",
              static_cast<long long>(b));
  }
  CHECK(close(acc, full), "ctc_loss: accumulated %.17g, whole batch %.17g", acc, full);
}

void weighted_mse_and_batchmean() {
  std::vector<double> x = {0.5, -1.0, 2.0, 3.0, 0.25, -2.0}, y = {0.0, 1.0, 1.5, 2.0, 0.0, -1.0},
                      w = {1.0, 0.5, 2.0, 0.0, 3.0, 1.5};
  double wsum = 0;
  for (double v : w) wsum += v;
  const double got =
      mse_loss_mean_normalizer<double>(View<double>(x.data(), {6}), View<double>(y.data(), {6}),
                                       View<double>(w.data(), {6}));
  CHECK(got == wsum, "mse_loss_mean_normalizer with a weight: %.17g, expected the weight sum %.17g",
        got, wsum);
  KlDivOptions kl{Reduction::BatchMean};
  CHECK(kl_div_mean_normalizer<double>(View<double>(x.data(), {3, 2}),
                                       View<double>(y.data(), {3, 2}), kl) == 3.0,
        "kl_div_mean_normalizer for batchmean is not the batch size");
  CHECK(l1_loss_mean_normalizer<double>(View<double>(x.data(), {3, 1}),
                                        View<double>(y.data(), {1, 2}), {}) == 6.0,
        "l1_loss_mean_normalizer is not the broadcast element count");
}

// Runs f, which must throw ValueError mentioning `what`.
template <class F>
void raises(F&& f, const char* what, const char* label) {
  try {
    f();
  } catch (const ValueError& e) {
    CHECK(std::string(e.what()).find(what) != std::string::npos, "%s: message '%s' lacks '%s'",
          label, e.what(), what);
    return;
  }
  CHECK(false, "%s: no ValueError", label);
}

void bad_normalizers() {
  std::vector<double> x = {1.0, 2.0}, y = {0.0, 0.0};
  double out = 0;
  auto call = [&](MseLossOptions o) {
    mse_loss<double>(View<double>(x.data(), {2}), View<double>(y.data(), {2}), {},
                     MutView<double>(&out, {}), o);
  };
  MseLossOptions o;
  o.normalizer = 0.0;
  raises([&] { call(o); }, "normalizer expected a finite number > 0", "normalizer 0");
  o.normalizer = std::nan("");
  raises([&] { call(o); }, "normalizer expected a finite number > 0", "normalizer NaN");
  o.normalizer = 2.0;
  o.reduction = Reduction::Sum;
  raises([&] { call(o); }, "normalizer expected None with reduction 'sum'",
         "normalizer with 'sum'");
  o.reduction = Reduction::Mean;
  call(o);
  CHECK(out == 2.5, "mse_loss with normalizer 2: %.17g, expected (1 + 4) / 2", out);
  raises(
      [&] {
        mse_loss_mean_normalizer<double>(View<double>(x.data(), {2}), View<double>(y.data(), {2}),
                                         {}, MseLossOptions{Reduction::Sum});
      },
      "reduction expected 'mean' or 'batchmean'", "mean_normalizer with 'sum'");
}

}  // namespace

int main() {
  // Brace initialisation from before the normalizer keeps its meaning (it is the last member).
  const HuberLossOptions h{Reduction::Sum, 0.5};
  CHECK(h.delta == 0.5 && !h.normalizer, "HuberLossOptions{Reduction::Sum, 0.5} changed meaning");
  const CtcLossOptions c{0, Reduction::None, true};
  CHECK(c.zero_infinity && !c.normalizer, "CtcLossOptions{0, None, true} changed meaning");
  cross_entropy_accumulates();
  ctc_accumulates();
  weighted_mse_and_batchmean();
  bad_normalizers();
  if (failures == 0) std::printf("ok\n");
  return failures != 0;
}
