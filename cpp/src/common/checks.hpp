// Shape and value checks with one message format:
//   "<function>: <argument> expected <what>, got <value/shape>"
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "losskit/errors.hpp"
#include "losskit/reduction.hpp"
#include "losskit/view.hpp"

namespace losskit::detail {

[[noreturn]] void fail_value(const char* function, const char* argument, const std::string& what,
                             const std::string& got);
[[noreturn]] void fail_index(const char* function, const char* argument, const std::string& what,
                             const std::string& got);

// Every pointer the public API takes is aligned to its element type, or refused here before any
// work. Reading a float through a `const float*` that is not 4-byte aligned is undefined behaviour
// in C++ whatever x86 forgives (a vectoriser may peel a loop for alignment and assume it), and
// caller memory can be misaligned: packed records, a memory-mapped file read at an odd offset.
// Every view reaches the kernels through check_required, check_optional or check_output, which
// call this; the family drivers call those for every argument (tests/cpp_checks/alignment.cpp
// misaligns each argument of each entry point in turn). A null pointer is aligned (absent views).
// The Python layer copies a misaligned array once (python/losskit/_convert.py), so only C++
// callers meet this error.
void check_aligned(const char* function, const char* argument, const void* data, size_t alignment);
template <class T>
void check_aligned(const char* function, const char* argument, const T* data) {
  check_aligned(function, argument, static_cast<const void*>(data), alignof(T));
}

// A required array: non-null unless empty, and aligned.
template <class T>
void check_required(const char* function, const char* argument, const View<T>& v) {
  if (v.data == nullptr && v.numel() != 0)
    fail_value(function, argument, "an array",
               "a null pointer with shape " + shape_to_string(v.shape));
  check_aligned(function, argument, v.data);
}

// An optional array (a weight, grad_output): absent (null), or aligned. Its shape is the caller's
// to check.
template <class T>
void check_optional(const char* function, const char* argument, const View<T>& v) {
  check_aligned(function, argument, v.data);
}

void check_shape_equal(const char* function, const char* argument, const Shape& got,
                       const Shape& expected, const char* expected_what);

// Shape a output/gradient view must have; also rejects a null pointer for a non-empty shape and a
// misaligned one.
template <class T>
void check_output(const char* function, const char* argument, const MutView<T>& v,
                  const Shape& expected) {
  check_shape_equal(function, argument, v.shape, expected, "shape");
  if (v.data == nullptr && numel(expected) != 0)
    fail_value(function, argument, "an output array", "a null pointer");
  check_aligned(function, argument, v.data);
}

// No array a call writes (an output, a gradient, a workspace) shares memory with any other array
// of the call, read or written: the kernels read through restrict pointers and write in blocks
// while other blocks are still being read, so an overlap is undefined behaviour and, in practice,
// wrong values (a gradient written over the input it is computed from). Each family's driver lists
// its arrays here, after its shape checks (an array's extent is its shape's bytes from its data
// pointer) and before any work, and call check(), which names the first overlapping pair:
//   "<function>: <written> expected an array that shares no memory with <other>, got ..."
// Absent and empty arrays occupy no memory. tests/cpp_checks/alignment.cpp points each written
// array of each entry point at the memory of each other array in turn.
class DisjointArrays {
 public:
  explicit DisjointArrays(const char* function) : function_(function) {}
  template <class T>
  DisjointArrays& read(std::string name, const View<T>& v) {
    return add(name, v.data, static_cast<uint64_t>(v.numel()) * sizeof(T), false);
  }
  template <class T>
  DisjointArrays& write(std::string name, const MutView<T>& v) {
    return add(name, v.data, static_cast<uint64_t>(v.numel()) * sizeof(T), true);
  }
  DisjointArrays& write_bytes(std::string name, const void* data, uint64_t bytes) {
    return add(name, data, bytes, true);
  }
  void check() const;

 private:
  struct Extent {
    std::string name;
    uintptr_t begin, end;  // [begin, end)
    bool written;
  };
  DisjointArrays& add(std::string name, const void* data, uint64_t bytes, bool written);
  const char* function_;
  std::vector<Extent> extents_;
};

// 'batchmean' exists for kl_div only; every other loss rejects it with the same message.
void check_reduction(const char* function, Reduction reduction, bool allow_batchmean = false);

// A normalizer (reduction.hpp) is finite and > 0, and goes only with 'mean' or 'batchmean'.
void check_normalizer(const char* function, Reduction reduction, const Normalizer& normalizer);

// The reduction and the normalizer of a loss's options, checked together.
template <class Options>
void check_reduction(const char* function, const Options& options, bool allow_batchmean = false) {
  check_reduction(function, options.reduction, allow_batchmean);
  check_normalizer(function, options.reduction, options.normalizer);
}

// What 'mean' (or 'batchmean') divides by: the caller's normalizer when given, else `own`, the
// divisor the loss computes for itself. Every family's driver divides through this one function.
inline double mean_divisor(const Normalizer& normalizer, double own) {
  return normalizer ? *normalizer : own;
}

// The reductions a divisor exists for ('mean', 'batchmean'): NAME_mean_normalizer refuses others.
void check_dividing_reduction(const char* function, Reduction reduction);

}  // namespace losskit::detail
