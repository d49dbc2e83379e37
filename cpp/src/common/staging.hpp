// Staged 16-bit blocks: how a loss whose kernels are written for float reads bfloat16/float16
// storage in place. Its driver cuts the work into the float path's own blocks (a few rows, or a
// tile of positions); for each block, on the thread that runs it, a BlockStage widens the block's
// operands into that thread's float scratch, the float kernel runs on the scratch (per-position
// class indices and boolean outputs simply rebased), and finish() rounds the float outputs once
// into the 16-bit buffers where they lie. Every input is read once, where it lies; scratch is a
// few cache-sized blocks per thread (StageScratch), never input-sized.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/storage.hpp"
#include "losskit/threads.hpp"

namespace losskit::detail {

// Values per operand in one staged block of the embedding rows: a few float blocks of this size
// stay in L1.
constexpr int64_t kStageBlock = 1024;

// The elements of one block of an array: `segments` runs of `length` values, `stride` values
// apart (a block of rows is one run; a tile of positions of a class-dimension-second input is one
// run per class, S apart).
struct Strided {
  int64_t segments = 1, length = 0, stride = 0;
  int64_t size() const { return segments * length; }
};
inline Strided contiguous(int64_t n) { return Strided{1, n, n}; }

// Per-thread float scratch for the blocks of one call: thread t (as parallel_for numbers them)
// owns floats [t * per_thread, (t + 1) * per_thread) (the modulo only matters if another thread
// raised the thread count during this call).
class StageScratch {
 public:
  explicit StageScratch(int64_t floats_per_thread)
      : per_thread_(floats_per_thread),
        threads_(std::max(1, get_num_threads())),
        data_(static_cast<size_t>(threads_) * static_cast<size_t>(floats_per_thread)) {}
  float* thread(int t) {
    return data_.data() + static_cast<size_t>(t % threads_) * static_cast<size_t>(per_thread_);
  }

 private:
  int64_t per_thread_;
  int threads_;
  std::vector<float> data_;
};

// A whole small operand (class weights) widened once for every block.
template <class S>
std::vector<float> widened(const S* data, int64_t n) {
  std::vector<float> out(data ? static_cast<size_t>(n) : 0);
  if (data) widen(data, out.data(), n);
  return out;
}

// One block's operands, carved in order from the thread's scratch (the driver sizes the scratch
// as the sum of the blocks it stages). An absent operand (nullptr) stays absent and takes no
// scratch. `base + offset` is the block's first element.
template <class S>
class BlockStage {
 public:
  explicit BlockStage(float* scratch) : next_(scratch) {}

  const float* in(const S* base, int64_t offset, Strided g) {
    if (!base) return nullptr;
    float* f = take(g.size());
    for (int64_t k = 0; k < g.segments; ++k)
      widen(base + offset + k * g.stride, f + k * g.length, g.length);
    return f;
  }
  // Float room for an output, rounded into `base + offset` by finish().
  float* out(S* base, int64_t offset, Strided g) {
    if (!base) return nullptr;
    float* f = take(g.size());
    pending_[npending_++] = Pending{f, base + offset, g};
    return f;
  }
  // Float room the kernel uses for itself (multilabel_margin's target mask).
  float* scratch(int64_t n) { return take(n); }

  void finish() {
    for (int i = 0; i < npending_; ++i) {
      const Pending& p = pending_[i];
      for (int64_t k = 0; k < p.g.segments; ++k)
        narrow(p.from + k * p.g.length, p.to + k * p.g.stride, p.g.length);
    }
    npending_ = 0;
  }

 private:
  struct Pending {
    const float* from;
    S* to;
    Strided g;
  };
  static constexpr int kMaxOutputs = 8;
  float* take(int64_t n) {
    float* p = next_;
    next_ += n;
    return p;
  }
  float* next_;
  Pending pending_[kMaxOutputs];
  int npending_ = 0;
};

}  // namespace losskit::detail
