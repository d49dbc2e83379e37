// Shape and value checks with one message format:
//   "<function>: <argument> expected <what>, got <value/shape>"
#pragma once

#include <cstdint>
#include <string>

#include "losskit/errors.hpp"
#include "losskit/reduction.hpp"
#include "losskit/view.hpp"

namespace losskit::detail {

[[noreturn]] void fail_value(const char* function, const char* argument, const std::string& what,
                             const std::string& got);
[[noreturn]] void fail_index(const char* function, const char* argument, const std::string& what,
                             const std::string& got);

// A required array: non-null unless empty.
template <class T>
void check_required(const char* function, const char* argument, const View<T>& v) {
  if (v.data == nullptr && v.numel() != 0)
    fail_value(function, argument, "an array", "a null pointer with shape " +
                                                   shape_to_string(v.shape));
}

void check_shape_equal(const char* function, const char* argument, const Shape& got,
                       const Shape& expected, const char* expected_what);

// Shape a output/gradient view must have; also rejects a null pointer for a non-empty shape.
template <class T>
void check_output(const char* function, const char* argument, const MutView<T>& v,
                  const Shape& expected) {
  check_shape_equal(function, argument, v.shape, expected, "shape");
  if (v.data == nullptr && numel(expected) != 0)
    fail_value(function, argument, "an output array", "a null pointer");
}

void check_finite_option(const char* function, const char* argument, double value);

// 'batchmean' exists for kl_div only; every other loss rejects it with the same message.
void check_reduction(const char* function, Reduction reduction, bool allow_batchmean = false);

}  // namespace losskit::detail
