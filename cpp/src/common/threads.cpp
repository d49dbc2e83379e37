#include <atomic>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "losskit/errors.hpp"
#include "losskit/threads.hpp"

namespace losskit {
namespace {

int default_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();  // honours OMP_NUM_THREADS
#else
  return 1;
#endif
}

std::atomic<int>& thread_slot() {
  static std::atomic<int> slot{default_threads()};
  return slot;
}

}  // namespace

int get_num_threads() { return thread_slot().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  if (n < 1)
    throw ValueError("set_num_threads: n expected an integer >= 1, got " + std::to_string(n));
  thread_slot().store(n, std::memory_order_relaxed);
}

}  // namespace losskit
