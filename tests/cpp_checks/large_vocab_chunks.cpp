// Checks of the C++ surface of the large-vocabulary family (losskit/large_vocab.hpp), built and run
// by tests/test_large_vocab.py::test_cpp_chunk_api against the static core library. No GEMM
// is needed: the logits are given, as a C++ caller's BLAS would have produced them.
//  1. linear_cross_entropy_chunk over row chunks that divide neither N nor V's kernel chunks, with
//     the global scale from linear_cross_entropy_target_weight, gives the loss and d logits of
//     cross_entropy_forward_backward on the whole (N, V) logits (bias added), for 'mean', 'sum'
//     and 'none' (per-row grad_output), with weights, ignore_index and label smoothing;
//  2. grad_bias_acc is the column sum of that gradient, and the chunk sums are bitwise the same
//     on 1, 2 and 3 threads;
//  3. an out-of-range class index throws losskit::IndexError before anything is written;
//  4. linear_cross_entropy_forward_backward (the whole loop, GEMMs through a callback) equals the
//     chunk API driven by hand. The callback here is a plain reference loop, test code only: the
//     library never multiplies matrices itself, a caller plugs in its BLAS.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.hpp"
#include "losskit/losskit.hpp"

using namespace losskit;

static bool close(double a, double b, double tol) {
  return std::fabs(a - b) <= tol * (1.0 + std::fabs(b));
}

// Test-only reference GEMM (row-major, cblas semantics) for the callback.
static void reference_gemm(void* calls, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                           double alpha, const double* a, int64_t lda, const double* b, int64_t ldb,
                           double beta, double* c, int64_t ldc) {
  ++*static_cast<int*>(calls);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t p = 0; p < k; ++p)
        s += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = alpha * s + (beta == 0.0 ? 0.0 : beta * c[i * ldc + j]);
    }
}

static void check_driver() {
  std::mt19937 rng(5);
  std::normal_distribution<double> normal;
  const int64_t N = 10, H = 6, V = 13, rows = 4;
  std::vector<double> x(N * H), W(V * H), b(V), w(V, 1.0), go(N);
  for (auto& v : x) v = normal(rng);
  for (auto& v : W) v = normal(rng);
  for (auto& v : b) v = normal(rng);
  for (auto& v : go) v = normal(rng);
  std::vector<int64_t> t = {0, 12, 5, -100, 7, 7, 1, 2, 3, 11};
  for (Reduction red : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
    const bool none = red == Reduction::None;
    LinearCrossEntropyOptions o{red, -100, 0.05};
    const double g0 = 0.5;
    View<double> gov = none ? View<double>(go.data(), {N}) : View<double>(&g0, {});
    std::vector<double> out(N), gx(N * H), gW(V * H, 123.0), gb(V), ws(rows * V);
    int calls = 0;
    LinearCrossEntropyGemm<double> gemm{reference_gemm, &calls};
    linear_cross_entropy_forward_backward<double>(
        View<double>(x.data(), {N, H}), View<double>(W.data(), {V, H}),
        View<int64_t>(t.data(), {N}), View<double>(b.data(), {V}), View<double>(w.data(), {V}), gov,
        MutView<double>(out.data(), none ? Shape{N} : Shape{}), MutView<double>(gx.data(), {N, H}),
        MutView<double>(gW.data(), {V, H}), MutView<double>(gb.data(), {V}),
        MutView<double>(ws.data(), {rows, V}), o, gemm);
    CHECK(calls == 9, "expected 3 GEMMs per chunk, got %d calls", calls);
    // By hand: whole logits, the chunk API on all rows at once, then the products.
    std::vector<double> L(N * V), ref_gx(N * H, 0.0), ref_gW(V * H, 0.0), ref_gb(V, 0.0),
        ref_out(N);
    int unused = 0;
    reference_gemm(&unused, false, true, N, V, H, 1.0, x.data(), H, W.data(), H, 0.0, L.data(), V);
    const double tw = linear_cross_entropy_target_weight<double>(View<int64_t>(t.data(), {N}),
                                                                 View<double>(w.data(), {V}), V, o);
    const double scale = red == Reduction::Mean ? g0 / tw : none ? 1.0 : g0;
    const double total =
        linear_cross_entropy_chunk<double>(MutView<double>(L.data(), {N, V}),
                                           View<int64_t>(t.data(), {N}),
                                           View<double>(b.data(), {V}), View<double>(w.data(), {V}),
                                           none ? View<double>(go.data(), {N}) : View<double>(),
                                           none ? MutView<double>(ref_out.data(), {N})
                                                : MutView<double>(),
                                           MutView<double>(ref_gb.data(), {V}), true, scale, o);
    reference_gemm(&unused, false, false, N, H, V, 1.0, L.data(), V, W.data(), H, 0.0,
                   ref_gx.data(), H);
    reference_gemm(&unused, true, false, V, H, N, 1.0, L.data(), V, x.data(), H, 0.0, ref_gW.data(),
                   H);
    if (!none) {
      const double loss = red == Reduction::Mean ? total / tw : total;
      CHECK(close(out[0], loss, 1e-13), "driver loss %.17g vs %.17g", out[0], loss);
    }
    for (int64_t r = 0; none && r < N; ++r)
      CHECK(close(out[r], ref_out[r], 1e-13), "driver row loss");
    for (int64_t i = 0; i < N * H; ++i)
      CHECK(close(gx[i], ref_gx[i], 1e-12), "driver grad_input %lld", (long long)i);
    for (int64_t i = 0; i < V * H; ++i)
      CHECK(close(gW[i], ref_gW[i], 1e-12), "driver grad_W %lld", (long long)i);
    for (int64_t i = 0; i < V; ++i)
      CHECK(close(gb[i], ref_gb[i], 1e-12), "driver grad_b %lld", (long long)i);
  }
  // A bad index throws before any GEMM.
  std::vector<int64_t> bad(t);
  bad[2] = V;
  int calls = 0;
  std::vector<double> out(1), ws(rows * V);
  bool threw = false;
  try {
    linear_cross_entropy_forward_backward<double>(
        View<double>(x.data(), {N, H}), View<double>(W.data(), {V, H}),
        View<int64_t>(bad.data(), {N}), {}, {}, {}, MutView<double>(out.data(), {}), {}, {}, {},
        MutView<double>(ws.data(), {rows, V}), LinearCrossEntropyOptions{},
        LinearCrossEntropyGemm<double>{reference_gemm, &calls});
  } catch (const IndexError&) {
    threw = true;
  }
  CHECK(threw && calls == 0, "driver: bad index must throw before any GEMM");
}

int main() {
  std::mt19937 rng(11);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform(0.2, 1.5);
  const int64_t N = 23, V = 5003, rows = 7;
  std::vector<double> logits(N * V), bias(V), weight(V), go_rows(N);
  for (auto& v : logits) v = 2 * normal(rng);
  for (auto& v : bias) v = normal(rng);
  for (auto& v : weight) v = uniform(rng);
  for (auto& v : go_rows) v = normal(rng) + 0.5;
  std::vector<int64_t> target(N);
  std::uniform_int_distribution<int64_t> cls(0, V - 1);
  for (auto& t : target) t = cls(rng);
  target[4] = target[17] = -100;

  // Reference: cross_entropy_forward_backward on the whole biased logits.
  std::vector<double> biased = logits;
  for (int64_t r = 0; r < N; ++r)
    for (int64_t c = 0; c < V; ++c) biased[r * V + c] += bias[c];

  for (Reduction red : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
    const bool none = red == Reduction::None;
    LinearCrossEntropyOptions o{red, -100, 0.1};
    CrossEntropyOptions co{red, -100, 0.1};
    const double go = 0.75;
    std::vector<double> ref_out(none ? N : 1), ref_grad(N * V);
    View<double> go_view = none ? View<double>(go_rows.data(), {N}) : View<double>(&go, {});
    cross_entropy_forward_backward<double>(View<double>(biased.data(), {N, V}),
                                           View<int64_t>(target.data(), {N}),
                                           View<double>(weight.data(), {V}), go_view,
                                           MutView<double>(ref_out.data(),
                                                           none ? Shape{N} : Shape{}),
                                           MutView<double>(ref_grad.data(), {N, V}), co);

    std::vector<double> first_bits;
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      const double W =
          linear_cross_entropy_target_weight<double>(View<int64_t>(target.data(), {N}),
                                                     View<double>(weight.data(), {V}), V, o);
      const double scale = red == Reduction::Mean ? go / W : none ? 1.0 : go;
      std::vector<double> buf(rows * V), out(N), gb(V, 0.0), grad(N * V);
      double total = 0.0;
      std::vector<double> bits;
      for (int64_t r0 = 0; r0 < N; r0 += rows) {
        const int64_t n = std::min(rows, N - r0);
        std::copy(logits.begin() + r0 * V, logits.begin() + (r0 + n) * V, buf.begin());
        const double s = linear_cross_entropy_chunk<double>(
            MutView<double>(buf.data(), {n, V}), View<int64_t>(target.data() + r0, {n}),
            View<double>(bias.data(), {V}), View<double>(weight.data(), {V}),
            none ? View<double>(go_rows.data() + r0, {n}) : View<double>(),
            none ? MutView<double>(out.data() + r0, {n}) : MutView<double>(),
            MutView<double>(gb.data(), {V}), true, scale, o);
        total += s;
        bits.push_back(s);
        std::copy(buf.begin(), buf.begin() + n * V, grad.begin() + r0 * V);
      }
      if (first_bits.empty()) first_bits = bits;
      CHECK(bits == first_bits, "chunk sums differ at %d threads", threads);
      const double loss = red == Reduction::Mean ? total / W : total;
      if (!none) CHECK(close(loss, ref_out[0], 1e-13), "loss %.17g vs %.17g", loss, ref_out[0]);
      for (int64_t r = 0; none && r < N; ++r)
        CHECK(close(out[r], ref_out[r], 1e-13), "row %lld loss", static_cast<long long>(r));
      double worst = 0.0;
      for (int64_t i = 0; i < N * V; ++i) worst = std::max(worst, std::fabs(grad[i] - ref_grad[i]));
      CHECK(worst < 1e-15, "gradient differs by %g", worst);
      for (int64_t c = 0; c < V; ++c) {
        double col = 0.0;
        for (int64_t r = 0; r < N; ++r) col += ref_grad[r * V + c];
        if (!close(gb[c], col, 1e-12)) {
          CHECK(false, "bias gradient column %lld: %g vs %g", static_cast<long long>(c), gb[c],
                col);
          break;
        }
      }
    }
  }

  // An out-of-range index: IndexError, and the logits untouched.
  std::vector<double> buf(logits.begin(), logits.begin() + 3 * V);
  std::vector<int64_t> bad = {0, V, 1};
  bool threw = false;
  try {
    linear_cross_entropy_chunk<double>(MutView<double>(buf.data(), {3, V}),
                                       View<int64_t>(bad.data(), {3}),
                                       View<double>(bias.data(), {V}), {}, {}, {}, {}, true, 1.0,
                                       LinearCrossEntropyOptions{});
  } catch (const IndexError&) {
    threw = true;
  }
  CHECK(threw, "no IndexError for class index V");
  CHECK(std::equal(buf.begin(), buf.end(), logits.begin()), "logits written before the check");
  CHECK(linear_cross_entropy_chunk_rows(4096, 128000, 4) == 512, "default chunk rows");
  CHECK(linear_cross_entropy_chunk_rows(4096, 128000, 4, int64_t{64} << 20, 1) == 131,
        "64 MiB rows");

  check_driver();
  if (failures == 0) std::printf("ok\n");
  return failures == 0 ? 0 : 1;
}
