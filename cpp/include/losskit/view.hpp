// Non-owning, C-contiguous views of caller memory: the core reads inputs and writes outputs in
// place and never owns user data. `data` must be aligned to alignof(T) (C++ makes a misaligned
// `const T*` undefined behaviour to read): every entry point throws losskit::ValueError
// ("<function>: <argument> expected an array aligned to N bytes, ...") for a view that is not,
// before any work. Copy data found at an arbitrary byte offset into aligned memory first.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace losskit {

using Shape = std::vector<int64_t>;

// Number of elements of a shape (1 for the 0-d shape {}).
int64_t numel(const Shape& shape);

// "(2, 3)" for messages.
std::string shape_to_string(const Shape& shape);

// torch.broadcast_shapes for two shapes; throws ValueError naming `function`, `what_a`, `what_b`.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* function = "broadcast_shapes",
                       const char* what_a = "a", const char* what_b = "b");

// A read-only C-contiguous array. A default-constructed View (data == nullptr, shape {}) means
// "absent" for optional arguments such as weights.
template <class T>
struct View {
  const T* data = nullptr;
  Shape shape;

  View() = default;
  View(const T* data_, Shape shape_) : data(data_), shape(std::move(shape_)) {}
  int64_t numel() const { return losskit::numel(shape); }
  int64_t dim() const { return static_cast<int64_t>(shape.size()); }
  bool present() const { return data != nullptr; }
};

// A writable C-contiguous array, allocated by the caller. Default-constructed means "not wanted"
// (for example a gradient the caller does not need).
template <class T>
struct MutView {
  T* data = nullptr;
  Shape shape;

  MutView() = default;
  MutView(T* data_, Shape shape_) : data(data_), shape(std::move(shape_)) {}
  int64_t numel() const { return losskit::numel(shape); }
  bool present() const { return data != nullptr; }
  View<T> view() const { return View<T>(data, shape); }
};

}  // namespace losskit
