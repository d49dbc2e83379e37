// Checks of the cross-entropy extras through the C++ API, built and run by
// tests/test_ce_extras.py::test_cpp_extras:
//  1. CrossEntropyOptions{z_loss, softcap} with CrossEntropyStats: the gradient agrees with a
//     central finite difference of the loss (double), lse with a direct log-sum-exp of the capped
//     logits, correct with a direct argmax;
//  2. detail::cross_entropy_rows with the extras writes the same gradient, losses and statistics
//     in place (grad == logits, as linear_cross_entropy runs it) as into a separate buffer, on the
//     row, in-row parallel and long-row paths, bitwise the same for 1, 2 and 3 threads;
//  3. bad options and statistics views of the wrong shape throw ValueError before any work.
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.hpp"
#include "classification/classification_kernels.hpp"
#include "losskit/classification.hpp"
#include "losskit/errors.hpp"
#include "losskit/threads.hpp"

using namespace losskit;

int main() {
  std::mt19937 rng(11);
  std::normal_distribution<double> normal;

  // 1. finite differences and direct statistics
  {
    const int64_t N = 3, C = 7;
    std::vector<double> x(N * C);
    for (auto& v : x) v = 2 * normal(rng);
    std::vector<int64_t> t = {2, -100, 5};
    x[2 * C + 5] = 9.0;  // row 2 predicts its target
    CrossEntropyOptions o;
    o.z_loss = 0.05;
    o.softcap = 3.0;
    o.label_smoothing = 0.1;
    const auto loss_of = [&](const std::vector<double>& xs) {
      double out = 0;
      cross_entropy<double>(View<double>(xs.data(), {N, C}), View<int64_t>(t.data(), {N}), {},
                            MutView<double>(&out, {}), o);
      return out;
    };
    std::vector<double> g(N * C), lse(N), ent(N);
    bool correct[N];
    double out = 0;
    CrossEntropyStats<double> st{MutView<double>(lse.data(), {N}), MutView<double>(ent.data(), {N}),
                                 MutView<bool>(correct, {N})};
    cross_entropy_forward_backward<double>(View<double>(x.data(), {N, C}),
                                           View<int64_t>(t.data(), {N}), {}, {},
                                           MutView<double>(&out, {}),
                                           MutView<double>(g.data(), {N, C}), o, st);
    CHECK(std::fabs(out - loss_of(x)) < 1e-14, "forward_backward loss %.17g != forward %.17g", out,
          loss_of(x));
    for (size_t i = 0; i < x.size(); ++i) {
      const double h = 1e-6;
      std::vector<double> xp = x, xm = x;
      xp[i] += h;
      xm[i] -= h;
      const double fd = (loss_of(xp) - loss_of(xm)) / (2 * h);
      CHECK(std::fabs(fd - g[i]) < 1e-7, "d loss / d x[%zu]: %.12g, finite difference %.12g", i,
            g[i], fd);
    }
    for (int64_t n = 0; n < N; ++n) {
      double m = -INFINITY, s = 0, sx = 0;
      int64_t arg = 0;
      for (int64_t c = 0; c < C; ++c) {
        if (x[n * C + c] > x[n * C + arg]) arg = c;
        m = std::max(m, 3.0 * std::tanh(x[n * C + c] / 3.0));
      }
      for (int64_t c = 0; c < C; ++c) {
        const double xc = 3.0 * std::tanh(x[n * C + c] / 3.0);
        s += std::exp(xc - m);
        sx += std::exp(xc - m) * xc;
      }
      const double l = m + std::log(s);
      CHECK(std::fabs(lse[n] - l) < 1e-13, "row %ld: lse %.17g != %.17g", (long)n, lse[n], l);
      CHECK(std::fabs(ent[n] - (l - sx / s)) < 1e-13, "row %ld: entropy %.17g != %.17g", (long)n,
            ent[n], l - sx / s);
      CHECK(correct[n] == (t[n] != -100 && arg == t[n]), "row %ld: correct %d", (long)n,
            (int)correct[n]);
    }
    CHECK(correct[2], "row 2 predicts its target");
  }

  // 2. in place, every path, thread-independent bits
  std::normal_distribution<float> normalf;
  for (int64_t C : {1000, 40000, 600000}) {
    const int64_t N = 3;
    std::vector<float> x(static_cast<size_t>(N * C));
    for (auto& v : x) v = 3 * normalf(rng);
    std::vector<int64_t> t = {0, C - 1, -100};
    std::vector<float> ref_grad, ref_lse;
    double ref_sum = 0;
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      detail::CeArgs<float> a;
      a.target = t.data();
      a.N = N;
      a.C = C;
      a.smoothing = 0.1;
      a.weight_sum = static_cast<double>(C);
      a.z_loss = 1e-3;
      a.softcap = 4.0;
      std::vector<float> g(x.size()), inplace = x, lse(N), lse2(N), ent(N), ent2(N);
      bool cor[3], cor2[3];
      a.input = x.data();
      a.grad = g.data();
      a.lse_out = lse.data();
      a.entropy_out = ent.data();
      a.correct_out = cor;
      const double s1 = detail::cross_entropy_rows(a);
      a.input = inplace.data();
      a.grad = inplace.data();
      a.lse_out = lse2.data();
      a.entropy_out = ent2.data();
      a.correct_out = cor2;
      const double s2 = detail::cross_entropy_rows(a);
      CHECK(s1 == s2 && g == inplace && lse == lse2 && ent == ent2 && cor[0] == cor2[0] &&
                cor[1] == cor2[1] && !cor[2] && !cor2[2],
            "C=%ld threads=%d: in place differs", (long)C, threads);
      CHECK(std::isfinite(s1), "C=%ld: loss %g", (long)C, s1);
      if (threads == 1) {
        ref_sum = s1;
        ref_grad = g;
        ref_lse = lse;
      } else {
        CHECK(s1 == ref_sum && g == ref_grad && lse == ref_lse,
              "C=%ld: threads=%d differs from 1 thread", (long)C, threads);
      }
    }
  }

  // 3. errors before any work
  {
    const int64_t N = 2, C = 3;
    std::vector<float> x(N * C, 0.0f), g(N * C, 7.0f), lse(N + 1);
    std::vector<int64_t> t = {0, 1};
    float out = 0;
    const auto throws = [&](CrossEntropyOptions o, CrossEntropyStats<float> st) {
      try {
        cross_entropy_forward_backward<float>(View<float>(x.data(), {N, C}),
                                              View<int64_t>(t.data(), {N}), {}, {},
                                              MutView<float>(&out, {}),
                                              MutView<float>(g.data(), {N, C}), o, st);
      } catch (const ValueError&) {
        return true;
      }
      return false;
    };
    CrossEntropyOptions o;
    o.softcap = 0.0;
    CHECK(throws(o, {}), "softcap 0 accepted");
    o.softcap = INFINITY;
    CHECK(throws(o, {}), "softcap inf accepted");
    o.softcap.reset();
    o.z_loss = -1.0;
    CHECK(throws(o, {}), "z_loss -1 accepted");
    o.z_loss = NAN;
    CHECK(throws(o, {}), "z_loss NaN accepted");
    o.z_loss = 0.0;
    CHECK(throws(o, {MutView<float>(lse.data(), {N + 1}), {}, {}}), "lse of shape (3,) accepted");
    CHECK(g[0] == 7.0f, "work done before a failed check");
  }
  std::printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
  return failures ? 1 : 0;
}
