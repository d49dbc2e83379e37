#include "common/checks.hpp"

#include <cmath>
#include <cstdint>
#include <sstream>
#include <utility>

#include "losskit/reduction.hpp"

namespace losskit {

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::string shape_to_string(const Shape& shape) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) os << ",";
  os << ")";
  return os.str();
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* function, const char* what_a,
                       const char* what_b) {
  const size_t nd = std::max(a.size(), b.size());
  Shape out(nd);
  for (size_t i = 0; i < nd; ++i) {
    const int64_t da = i < nd - a.size() ? 1 : a[i - (nd - a.size())];
    const int64_t db = i < nd - b.size() ? 1 : b[i - (nd - b.size())];
    if (da != db && da != 1 && db != 1)
      throw ValueError(std::string(function) + ": " + what_b +
                       " expected a shape broadcastable to " + what_a + "'s " + shape_to_string(a) +
                       ", got " + shape_to_string(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Reduction parse_reduction(std::string_view name, std::string_view function, bool allow_batchmean) {
  if (name == "none") return Reduction::None;
  if (name == "mean") return Reduction::Mean;
  if (name == "sum") return Reduction::Sum;
  if (name == "batchmean" && allow_batchmean) return Reduction::BatchMean;
  throw ValueError(std::string(function) + ": reduction expected one of 'none', 'mean', 'sum'" +
                   (allow_batchmean ? ", 'batchmean'" : "") + ", got '" + std::string(name) + "'");
}

std::string_view reduction_name(Reduction reduction) {
  switch (reduction) {
    case Reduction::None: return "none";
    case Reduction::Mean: return "mean";
    case Reduction::Sum: return "sum";
    case Reduction::BatchMean: return "batchmean";
  }
  return "?";
}

namespace detail {

void fail_value(const char* function, const char* argument, const std::string& what,
                const std::string& got) {
  throw ValueError(std::string(function) + ": " + argument + " expected " + what + ", got " + got);
}

void fail_index(const char* function, const char* argument, const std::string& what,
                const std::string& got) {
  throw IndexError(std::string(function) + ": " + argument + " expected " + what + ", got " + got);
}

void check_aligned(const char* function, const char* argument, const void* data, size_t alignment) {
  const auto address = reinterpret_cast<std::uintptr_t>(data);
  if (address % alignment == 0) return;
  std::ostringstream got;
  got << "address " << data << " (address % " << alignment << " == " << address % alignment << ")";
  fail_value(function, argument, "an array aligned to " + std::to_string(alignment) + " bytes",
             got.str());
}

void check_shape_equal(const char* function, const char* argument, const Shape& got,
                       const Shape& expected, const char* expected_what) {
  if (got != expected)
    fail_value(function, argument, std::string(expected_what) + " " + shape_to_string(expected),
               shape_to_string(got));
}

namespace {
std::string number(double value) {
  std::ostringstream os;
  os << value;
  return os.str();
}
}  // namespace

void check_reduction(const char* function, Reduction reduction, bool allow_batchmean) {
  if (reduction == Reduction::BatchMean && !allow_batchmean)
    fail_value(function, "reduction", "one of 'none', 'mean', 'sum'", "'batchmean'");
}

void check_normalizer(const char* function, Reduction reduction, const Normalizer& normalizer) {
  if (!normalizer) return;
  if (reduction != Reduction::Mean && reduction != Reduction::BatchMean)
    fail_value(function, "normalizer",
               "None with reduction '" + std::string(reduction_name(reduction)) +
                   "' (it replaces the divisor of 'mean' or 'batchmean')",
               number(*normalizer));
  if (!(std::isfinite(*normalizer) && *normalizer > 0))
    fail_value(function, "normalizer", "a finite number > 0", number(*normalizer));
}

void check_dividing_reduction(const char* function, Reduction reduction) {
  if (reduction != Reduction::Mean && reduction != Reduction::BatchMean)
    fail_value(function, "reduction", "'mean' or 'batchmean' (the reductions that divide)",
               "'" + std::string(reduction_name(reduction)) + "'");
}

DisjointArrays& DisjointArrays::add(std::string name, const void* data, uint64_t bytes,
                                    bool written) {
  if (data == nullptr || bytes == 0) return *this;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data);
  // A shape whose bytes pass the end of the address space claims everything above its start.
  const uintptr_t end = bytes > UINTPTR_MAX - begin ? UINTPTR_MAX : begin + bytes;
  extents_.push_back({std::move(name), begin, end, written});
  return *this;
}

void DisjointArrays::check() const {
  for (size_t i = 0; i < extents_.size(); ++i)
    for (size_t j = 0; j < extents_.size(); ++j) {
      const Extent &a = extents_[i], &b = extents_[j];
      if (i == j || !a.written || (b.written && j < i)) continue;  // each written pair once
      if (a.begin < b.end && b.begin < a.end) {
        std::ostringstream got;
        got << "bytes [0x" << std::hex << a.begin << ", 0x" << a.end << ") and [0x" << b.begin
            << ", 0x" << b.end << ")";
        fail_value(function_, a.name.c_str(), "an array that shares no memory with " + b.name,
                   got.str());
      }
    }
}

}  // namespace detail
}  // namespace losskit
