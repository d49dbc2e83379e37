// Embedding losskit's C++ core: MSE, BCE-with-logits and cross-entropy losses and their gradients on caller-owned arrays, checked against
// values derived by hand (the derivations are in the comments) and against finite differences.
//
// Exit status 0 when every check passes; the program prints what it computed.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <losskit/losskit.hpp>

namespace {

int failures = 0;

void expect_near(const char* what, double got, double want, double tol = 1e-12) {
  const bool ok = std::fabs(got - want) <= tol * (1.0 + std::fabs(want));
  std::printf("  %-34s %.15g (expected %.15g)%s\n", what, got, want, ok ? "" : "  <-- MISMATCH");
  if (!ok) ++failures;
}

// Central difference of a scalar loss f at x[i].
template <class F>
double numeric_derivative(F f, std::vector<double> x, std::size_t i, double h = 1e-6) {
  const double xi = x[i];
  x[i] = xi + h;
  const double up = f(x);
  x[i] = xi - h;
  const double down = f(x);
  return (up - down) / (2 * h);
}

// mse_loss, reduction 'mean': L = (1/N) sum_n (x_n - y_n)^2, dL/dx_n = 2 (x_n - y_n) / N.
// x = (0.5, -1, 2, 3), y = (0, 1, 2, 1): differences (0.5, -2, 0, 2), squares (0.25, 4, 0, 4),
// so L = 8.25 / 4 = 2.0625 and dL/dx = (0.25, -1, 0, 1).
void mse_example() {
  std::puts("mse_loss (mean)");
  const std::vector<double> x = {0.5, -1.0, 2.0, 3.0};
  const std::vector<double> y = {0.0, 1.0, 2.0, 1.0};
  const losskit::Shape shape = {4};
  double loss = 0;
  std::vector<double> grad(4);
  // Forward and backward in one pass; the reduced loss is a 0-d view ({} shape). An absent
  // grad_output ({}) means 1, an absent weight ({}) means unweighted.
  losskit::mse_loss_forward_backward<double>({x.data(), shape}, {y.data(), shape}, /*weight=*/{},
                                             /*grad_output=*/{}, {&loss, {}}, {grad.data(), shape},
                                             /*grad_target=*/{}, losskit::MseLossOptions{});
  expect_near("loss", loss, 2.0625);
  const double want[] = {0.25, -1.0, 0.0, 1.0};
  for (int n = 0; n < 4; ++n) expect_near("d loss / d x", grad[n], want[n]);

  // The same gradient from the separate backward entry point, with grad_output = 3.
  const double three = 3.0;
  std::vector<double> grad3(4);
  losskit::mse_loss_backward<double>({&three, {}}, {x.data(), shape}, {y.data(), shape}, {},
                                     {grad3.data(), shape}, {});
  for (int n = 0; n < 4; ++n) expect_near("3 * d loss / d x (backward)", grad3[n], 3 * want[n]);
}

// binary_cross_entropy_with_logits, reduction 'mean':
//   l_n = -[y_n log sigma(x_n) + (1 - y_n) log(1 - sigma(x_n))],  dl_n/dx_n = sigma(x_n) - y_n.
// x = (0, ln 3), y = (1, 0): sigma(0) = 1/2 gives l_1 = ln 2; sigma(ln 3) = 3/4 gives
// l_2 = -ln(1/4) = 2 ln 2. So L = (3/2) ln 2 and dL/dx = ((1/2 - 1)/2, (3/4 - 0)/2)
// = (-0.25, 0.375).
void bce_with_logits_example() {
  std::puts("binary_cross_entropy_with_logits (mean)");
  const std::vector<double> x = {0.0, std::log(3.0)};
  const std::vector<double> y = {1.0, 0.0};
  const losskit::Shape shape = {2};
  const losskit::BinaryCrossEntropyWithLogitsOptions options{losskit::Reduction::Mean};
  double loss = 0;
  std::vector<double> grad(2);
  losskit::binary_cross_entropy_with_logits_forward_backward<double>(
      {x.data(), shape}, {y.data(), shape}, /*weight=*/{}, /*pos_weight=*/{}, {}, {&loss, {}},
      {grad.data(), shape}, {}, options);
  expect_near("loss", loss, 1.5 * std::log(2.0));
  expect_near("d loss / d x_1", grad[0], -0.25);
  expect_near("d loss / d x_2", grad[1], 0.375);

  // The analytic gradient agrees with a finite difference of the forward.
  auto f = [&](const std::vector<double>& xs) {
    double out = 0;
    losskit::binary_cross_entropy_with_logits<double>({xs.data(), shape}, {y.data(), shape}, {}, {},
                                                      {&out, {}}, options);
    return out;
  };
  for (std::size_t i = 0; i < 2; ++i)
    expect_near("finite difference", numeric_derivative(f, x, i), grad[i], 1e-8);
}

// cross_entropy with class-index targets, reduction 'mean' over N = 2 rows of C = 3 logits:
//   l_n = logsumexp(x_n) - x_{n, y_n},  dl_n/dx_{n,c} = softmax(x_n)_c - [c = y_n],  L = mean_n l_n.
// Row 1: x = (0, 0, 0), y = 2: softmax = (1/3, 1/3, 1/3), l_1 = ln 3, gradient (1/3, 1/3, -2/3).
// Row 2: x = (0, ln 2, ln 5), y = 1: exp(x) = (1, 2, 5), softmax = (1/8, 1/4, 5/8),
//   l_2 = -ln(1/4) = 2 ln 2, gradient (1/8, -3/4, 5/8).
// So L = (ln 3 + 2 ln 2) / 2 = ln(12) / 2 and dL/dx = the row gradients / 2.
void cross_entropy_example() {
  std::puts("cross_entropy (mean, class indices)");
  const std::vector<double> x = {0.0, 0.0, 0.0, 0.0, std::log(2.0), std::log(5.0)};
  const std::vector<int64_t> y = {2, 1};
  const losskit::Shape shape = {2, 3};
  double loss = 0;
  std::vector<double> grad(6);
  losskit::cross_entropy_forward_backward<double>({x.data(), shape},
                                                  losskit::View<int64_t>{y.data(), {2}},
                                                  /*weight=*/{}, /*grad_output=*/{}, {&loss, {}},
                                                  {grad.data(), shape},
                                                  losskit::CrossEntropyOptions{});
  expect_near("loss", loss, std::log(12.0) / 2);
  const double want[] = {1.0 / 6, 1.0 / 6, -1.0 / 3, 1.0 / 16, -3.0 / 8, 5.0 / 16};
  for (int i = 0; i < 6; ++i) expect_near("d loss / d x", grad[i], want[i]);

  // Finite differences of the forward agree with the analytic gradient.
  auto f = [&](const std::vector<double>& xs) {
    double out = 0;
    losskit::cross_entropy<double>({xs.data(), shape}, losskit::View<int64_t>{y.data(), {2}}, {},
                                   {&out, {}});
    return out;
  };
  for (std::size_t i = 0; i < 6; ++i)
    expect_near("finite difference", numeric_derivative(f, x, i), grad[i], 1e-8);
}

// Bad input throws before any work, with a message naming the argument.
void error_example() {
  std::puts("errors");
  const std::vector<float> x(3), y(2);
  float loss = 0;
  try {
    losskit::mse_loss<float>({x.data(), {3}}, {y.data(), {2}}, {}, {&loss, {}});
    std::puts("  no error for mismatched shapes  <-- MISMATCH");
    ++failures;
  } catch (const losskit::ValueError& e) {
    std::printf("  ValueError: %s\n", e.what());
  }
}

}  // namespace

int main() {
  std::printf("losskit C++ example: cpu_target=%s, threads=%d\n", losskit::cpu_target().c_str(),
              losskit::get_num_threads());
  mse_example();
  bce_with_logits_example();
  cross_entropy_example();
  error_example();
  if (failures) {
    std::printf("%d check(s) failed\n", failures);
    return 1;
  }
  std::puts("all checks passed");
  return 0;
}
