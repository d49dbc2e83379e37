// Checks of the C++-only surface of the classification family, built and run by
// tests/test_classification.py::test_cpp_internal_entry_points against the static core
// library:
//  1. detail::cross_entropy_rows (the row kernel the large-vocabulary family reuses) writes the
//     same gradient and losses in place (grad == logits) as into a separate buffer, on the serial
//     row path, the in-row parallel path and the long-row path, with bits independent of threads;
//  2. cross_entropy_backward with probability targets gives the same target gradient whether or
//     not the input gradient is requested.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.hpp"
#include "classification/classification_kernels.hpp"
#include "losskit/classification.hpp"
#include "losskit/threads.hpp"

using namespace losskit;

int main() {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (int64_t C : {1000, 40000, 600000}) {
    const int64_t N = 3;
    std::vector<float> x(static_cast<size_t>(N * C));
    for (auto& v : x) v = 3 * normal(rng);
    std::vector<int64_t> t = {0, C - 1, -100};
    for (double eps : {0.0, 0.1}) {
      double ref_sum = 0;
      std::vector<float> ref_grad, ref_out;
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        detail::CeArgs<float> a;
        a.target = t.data();
        a.N = N;
        a.C = C;
        a.smoothing = eps;
        a.weight_sum = static_cast<double>(C);
        std::vector<float> g(x.size()), out(N), inplace = x, out2(N);
        a.input = x.data();
        a.grad = g.data();
        a.out = out.data();
        const double s1 = detail::cross_entropy_rows(a);
        a.input = inplace.data();
        a.grad = inplace.data();
        a.out = out2.data();
        const double s2 = detail::cross_entropy_rows(a);
        CHECK(s1 == s2, "C=%ld eps=%g threads=%d: in-place sum %.17g != %.17g", (long)C, eps,
              threads, s2, s1);
        CHECK(g == inplace && out == out2, "C=%ld eps=%g threads=%d: in-place gradient differs",
              (long)C, eps, threads);
        CHECK(std::isfinite(s1) && out[2] == 0.0f, "C=%ld: bad losses", (long)C);
        if (threads == 1) {
          ref_sum = s1;
          ref_grad = g;
          ref_out = out;
        } else {
          CHECK(s1 == ref_sum && g == ref_grad && out == ref_out,
                "C=%ld eps=%g: threads=%d differs from 1 thread", (long)C, eps, threads);
        }
      }
    }
  }
  {
    set_num_threads(2);
    const int64_t N = 4, C = 5000;
    std::vector<double> x(N * C), y(N * C);
    for (auto& v : x) v = normal(rng);
    for (auto& v : y) v = std::fabs(normal(rng)) / C;
    std::vector<double> gi(N * C), gt1(N * C), gt2(N * C);
    const double go = 0.5;
    CrossEntropyOptions o;
    o.label_smoothing = 0.2;
    View<double> xv(x.data(), {N, C}), yv(y.data(), {N, C}), gov(&go, {});
    cross_entropy_backward<double>(gov, xv, yv, {}, MutView<double>(gi.data(), {N, C}),
                                   MutView<double>(gt1.data(), {N, C}), o);
    cross_entropy_backward<double>(gov, xv, yv, {}, {}, MutView<double>(gt2.data(), {N, C}), o);
    CHECK(gt1 == gt2, "probability target gradient depends on whether grad_input is requested");
  }
  std::printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
  return failures ? 1 : 0;
}
