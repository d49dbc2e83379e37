// The accuracy of vmath's float32 log and log1p (common/vmath.hpp) over float32 inputs, on every
// CPU target this machine has, through the dispatch (losskit::set_cpu_target and the vmath_apply
// test hook, so it measures the compiled kernels that the losses run). Built and run by
// tests/test_vmath.py::test_float_log_exhaustive.
//
// Which inputs: with LOSSKIT_EXHAUSTIVE=1 every one of the 2^32 bit patterns; otherwise every
// 509th pattern (8.4 million, all exponents and signs) and, in full, windows of 2^14 patterns
// around the values where the reduction changes (1, 2/3 and 4/3, log1p's +-1/3 and -1), at the
// subnormal boundary, near FLT_MAX and around 0.
//
// The reference is glibc's double-precision log of the float input converted to double (exact),
// rounded correctly or nearly so in double: 2^-29 of a float ulp. log1p(x) is log(1 + x) in double,
// where 1 + x is exact for 2^-29 <= |x| < 2^29 (x has 24 significant bits); below, x - x^2/2 + x^3/3
// (truncation relative 2^-87); above, 1 + x rounds by 2^-53 relatively, which moves the log by
// less than 2^-53 absolutely while the log is >= 20. (glibc's double log is about twice as fast as
// its log1p, which matters for 2^32 evaluations per target.)
//
// Reported per function and target: the largest error in float ulps (|y - exact| / ulp(exact), ulp
// of exact's binade, of the subnormal spacing below FLT_MIN) with its input, the largest distance
// in ulps from the correctly rounded float (an integer: 0 or 1 is "faithful or better"), and the
// number of special results (NaN, +-inf, +-0: log's 0, negative, -inf..., log1p's -1, x < -1, +-0,
// and the results that are +-0) that differ from std::log / std::log1p in bits (any NaN matches
// any NaN). The check fails if a special result differs or the integer distance exceeds
// kBoundUlps.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "check.hpp"
#include "common/vmath_kernels.hpp"
#include "losskit/threads.hpp"

using losskit::detail::VmathFunction;

namespace {

constexpr int64_t kBoundUlps = 1;  // docs/performance.md states the measured figures

float from_bits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}
uint32_t to_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

// NaN where the result is special (NaN, +-inf or +-0: compared with libm's float function instead).
double reference(VmathFunction fn, float xf) {
  const double x = xf;
  if (fn == VmathFunction::Log) return x > 0 && x < INFINITY && x != 1 ? std::log(x) : NAN;
  if (!(x > -1 && x < INFINITY) || x == 0) return NAN;
  if (std::fabs(x) < 0x1p-29) return x - x * x / 2 + x * x * x / 3;
  return std::log(1.0 + x);
}

// Ordered integer image of a float: adjacent floats differ by 1, -0 and +0 coincide.
int64_t ordered(float x) {
  const int64_t b = to_bits(x);
  return b & 0x80000000 ? -(b & 0x7fffffff) : b;
}

struct Stats {
  double max_ulp = 0;
  float worst_x = 0;
  int64_t max_distance = 0;
  float worst_distance_x = 0;
  int64_t specials = 0;
  int64_t special_mismatches = 0;
  float first_mismatch = 0;
  int64_t evaluated = 0;

  void merge(const Stats& o) {
    if (o.max_ulp > max_ulp) max_ulp = o.max_ulp, worst_x = o.worst_x;
    if (o.max_distance > max_distance)
      max_distance = o.max_distance, worst_distance_x = o.worst_distance_x;
    if (special_mismatches == 0 && o.special_mismatches > 0) first_mismatch = o.first_mismatch;
    specials += o.specials;
    special_mismatches += o.special_mismatches;
    evaluated += o.evaluated;
  }
};

// 1 / (the float32 ulp of |r|'s binade), the subnormal spacing 2^-149 below FLT_MIN; r finite, != 0.
double inverse_ulp(double r) {
  uint64_t bits;
  std::memcpy(&bits, &r, sizeof bits);
  const int64_t e = std::max<int64_t>(static_cast<int64_t>((bits >> 52) & 0x7ff) - 1023, -126);
  const uint64_t inverse = static_cast<uint64_t>(1023 + 23 - e) << 52;
  double out;
  std::memcpy(&out, &inverse, sizeof out);
  return out;
}

bool same_bits_or_both_nan(float a, float b) {
  return (a != a && b != b) || to_bits(a) == to_bits(b);
}

// ref: the reference, or NaN where the result is special; special: then libm's float result.
void compare(const float* x, const float* y, const double* ref, const float* special, int64_t n,
             Stats& s) {
  for (int64_t i = 0; i < n; ++i) {
    const double r = ref[i];
    ++s.evaluated;
    if (r != r) {
      ++s.specials;
      if (!same_bits_or_both_nan(y[i], special[i]) && s.special_mismatches++ == 0)
        s.first_mismatch = x[i];
      continue;
    }
    const double err = std::fabs(static_cast<double>(y[i]) - r) * inverse_ulp(r);
    const bool nan = y[i] != y[i];  // counts as the worst
    if (nan || err > s.max_ulp) s.max_ulp = nan ? INFINITY : err, s.worst_x = x[i];
    const int64_t d = nan ? INT64_MAX : std::llabs(ordered(y[i]) - ordered(static_cast<float>(r)));
    if (d > s.max_distance) s.max_distance = d, s.worst_distance_x = x[i];
  }
}

// Bit patterns, as ranges [first, first + count) with a step.
struct Range {
  uint64_t first, count, step;
};

// x[0, n) := the floats of the range's patterns done, done + 1, ..., each capped at `last`.
void fill_block(const Range& range, uint64_t done, int64_t n, uint32_t last, float* x) {
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t bits = range.first + (done + static_cast<uint64_t>(i)) * range.step;
    x[i] = from_bits(static_cast<uint32_t>(std::min<uint64_t>(bits, last)));
  }
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(',', start), s.size());
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

int main() {
  const bool exhaustive = [] {
    const char* e = std::getenv("LOSSKIT_EXHAUSTIVE");
    return e && std::string(e) == "1";
  }();
  std::vector<Range> ranges;
  if (exhaustive) {
    ranges.push_back({0, uint64_t{1} << 32, 1});
  } else {
    ranges.push_back({0, (uint64_t{1} << 32) / 509 + 1, 509});
    const uint32_t centres[] = {0x3f800000u, 0x3f2aaaabu, 0x3faaaaabu, 0x3eaaaaabu, 0xbeaaaaabu,
                                0xbf800000u, 0xbf7fffffu, 0x00800000u, 0x80800000u, 0x7f7fffffu,
                                0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x33800000u,
                                0xb3800000u, 0x3f3504f3u, 0x3fb504f3u};
    for (uint32_t c : centres)
      ranges.push_back({uint64_t{c} - std::min<uint64_t>(c, 8192), 16384, 1});
  }
  const auto targets = split(losskit::available_cpu_targets());
  const VmathFunction fns[] = {VmathFunction::Log, VmathFunction::Log1p};
  const char* fn_names[] = {"log", "log1p"};
  std::vector<Stats> stats(2 * targets.size());

  constexpr int64_t kBlock = int64_t{1} << 22;
  std::vector<float> x(kBlock), y(kBlock);
  std::vector<double> ref(kBlock);
  std::vector<float> special(kBlock);
  for (const Range& range : ranges) {
    for (uint64_t done = 0; done < range.count; done += kBlock) {
      const int64_t n = static_cast<int64_t>(std::min<uint64_t>(kBlock, range.count - done));
      fill_block(range, done, n, 0xffffffffu, x.data());
      for (int f = 0; f < 2; ++f) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) {
          ref[i] = reference(fns[f], x[i]);
          if (ref[i] != ref[i]) special[i] = f == 0 ? std::log(x[i]) : std::log1p(x[i]);
        }
        for (size_t t = 0; t < targets.size(); ++t) {
          losskit::set_cpu_target(targets[t]);
          constexpr int64_t kChunk = 1 << 14;
#pragma omp parallel
          {
            Stats local;
#pragma omp for schedule(static)
            for (int64_t c = 0; c < n; c += kChunk) {
              const int64_t m = std::min(kChunk, n - c);
              losskit::detail::vmath_apply(fns[f], &x[c], &y[c], m);
              compare(&x[c], &y[c], &ref[c], &special[c], m, local);
            }
#pragma omp critical
            stats[f * targets.size() + t].merge(local);
          }
        }
      }
    }
  }
  losskit::set_cpu_target(targets.front());

  std::printf("%s sweep\n", exhaustive ? "exhaustive" : "strided");
  for (int f = 0; f < 2; ++f) {
    for (size_t t = 0; t < targets.size(); ++t) {
      const Stats& s = stats[f * targets.size() + t];
      std::printf(
          "%-5s %-8s max %.4f ulp at %a, max distance from the rounded result %lld ulp at %a, "
          "special results %lld, differing %lld, evaluated %lld\n",
          fn_names[f], targets[t].c_str(), s.max_ulp, static_cast<double>(s.worst_x),
          static_cast<long long>(s.max_distance), static_cast<double>(s.worst_distance_x),
          static_cast<long long>(s.specials), static_cast<long long>(s.special_mismatches),
          static_cast<long long>(s.evaluated));
      CHECK(s.special_mismatches == 0,
            "%s %s: %lld special results differ from std::%s, first at %a", fn_names[f],
            targets[t].c_str(), static_cast<long long>(s.special_mismatches), fn_names[f],
            static_cast<double>(s.first_mismatch));
      CHECK(s.max_distance <= kBoundUlps,
            "%s %s: %lld ulp from the rounded result at %a (bound %lld)", fn_names[f],
            targets[t].c_str(), static_cast<long long>(s.max_distance),
            static_cast<double>(s.worst_distance_x), static_cast<long long>(kBoundUlps));
    }
  }

  // log1p_unit (the sigmoid losses' log1p of e = exp(-|x|)) equals log1p in bits on its domain
  // [0, 1]: every float there with LOSSKIT_EXHAUSTIVE=1 (0x3f800001 patterns), otherwise every 61st
  // and, in full, windows around 0, 1/3 (where log1p's k changes) and 1; and on NaNs.
  std::vector<Range> unit_ranges;
  constexpr uint32_t kOne = 0x3f800000u;
  if (exhaustive) {
    unit_ranges.push_back({0, uint64_t{kOne} + 1, 1});
  } else {
    unit_ranges.push_back({0, uint64_t{kOne} / 61 + 1, 61});
    unit_ranges.push_back({0, 16384, 1});
    unit_ranges.push_back({0x3eaaaaabu - 8192, 16384, 1});
    unit_ranges.push_back({kOne - 16383, 16384, 1});
  }
  const uint32_t nan_bits[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xffffffffu};
  std::vector<float> other(kBlock);
  for (size_t t = 0; t < targets.size(); ++t) {
    losskit::set_cpu_target(targets[t]);
    int64_t evaluated = 0, differing = 0;
    float first_difference = 0;
    // Compares in[0, n); y and other are scratch of n floats.
    auto compare_unit = [&](const float* in, int64_t n) {
      constexpr int64_t kChunk = 1 << 14;
#pragma omp parallel for schedule(static)
      for (int64_t c = 0; c < n; c += kChunk) {
        const int64_t m = std::min(kChunk, n - c);
        losskit::detail::vmath_apply(VmathFunction::Log1pUnit, in + c, &y[c], m);
        losskit::detail::vmath_apply(VmathFunction::Log1p, in + c, &other[c], m);
      }
      for (int64_t i = 0; i < n; ++i)
        if (!same_bits_or_both_nan(y[i], other[i]) && differing++ == 0) first_difference = in[i];
      evaluated += n;
    };
    for (const Range& range : unit_ranges) {
      for (uint64_t done = 0; done < range.count; done += kBlock) {
        const int64_t n = static_cast<int64_t>(std::min<uint64_t>(kBlock, range.count - done));
        fill_block(range, done, n, kOne, x.data());
        compare_unit(x.data(), n);
      }
    }
    for (int i = 0; i < 4; ++i) x[i] = from_bits(nan_bits[i]);
    compare_unit(x.data(), 4);
    std::printf("log1p_unit %-8s equal to log1p in bits: evaluated %lld, differing %lld\n",
                targets[t].c_str(), static_cast<long long>(evaluated),
                static_cast<long long>(differing));
    CHECK(differing == 0, "log1p_unit %s: %lld results differ from log1p, first at %a",
          targets[t].c_str(), static_cast<long long>(differing),
          static_cast<double>(first_difference));
  }
  losskit::set_cpu_target(targets.front());
  return failures != 0;
}
