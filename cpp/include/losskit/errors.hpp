// The error hierarchy of the core. Python sees ValueError, TypeError and an IndexError that is
// also a ValueError (as NumPy's AxisError is), so one `except ValueError` catches all bad input.
#pragma once

#include <stdexcept>
#include <string>

namespace losskit {

// Wrong shapes, out-of-range values, bad option values.
class ValueError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// An index (class index, label) outside its valid range.
class IndexError : public ValueError {
 public:
  using ValueError::ValueError;
};

// An unsupported element type.
class TypeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace losskit
