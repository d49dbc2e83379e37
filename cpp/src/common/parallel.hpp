// parallel_for over an index range with an explicit grain: ranges shorter than two grains run on
// the calling thread, so small inputs never pay for a parallel region.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "losskit/threads.hpp"

namespace losskit::detail {

// True on the thread that forked this process (see threads.cpp): its OpenMP team is the parent's
// and is dead, so its parallel regions run on the team host instead.
bool must_host_parallel_regions();
void run_on_team_host(void (*region)(void*), void* context);

// Runs `region`, which opens an OpenMP parallel region, where libgomp can run it.
template <class Region>
void run_parallel_region(Region& region) {
  if (!must_host_parallel_regions()) {
    region();
    return;
  }
  run_on_team_host([](void* r) { (*static_cast<Region*>(r))(); }, &region);
}

// Threads worth using for `n` items of which each thread should get at least `grain`.
inline int threads_for(int64_t n, int64_t grain) {
  const int64_t wanted = grain > 0 ? n / grain : n;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), wanted)));
}

// Calls fn(chunk_begin, chunk_end, thread) on contiguous chunks covering [begin, end). Chunk
// boundaries depend on the thread count, so callers that reduce must reduce per fixed block, not
// per chunk. fn must not throw (OpenMP would terminate the process).
template <class Fn>
void parallel_for(int64_t begin, int64_t end, int64_t grain, Fn&& fn) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int nthreads = threads_for(n, grain);
  if (nthreads <= 1) {
    fn(begin, end, 0);
    return;
  }
#ifdef _OPENMP
  auto region = [&] {
#pragma omp parallel num_threads(nthreads)
    {
      const int t = omp_get_thread_num();
      const int nt = omp_get_num_threads();
      const int64_t chunk = (n + nt - 1) / nt;
      const int64_t b = begin + std::min<int64_t>(n, chunk * t);
      const int64_t e = begin + std::min<int64_t>(n, chunk * (t + 1));
      if (b < e) fn(b, e, t);
    }
  };
  run_parallel_region(region);
#else
  fn(begin, end, 0);
#endif
}

// Like parallel_for, but hands out items one at a time dynamically (for items of uneven cost,
// such as CTC samples of different lengths).
template <class Fn>
void parallel_for_dynamic(int64_t begin, int64_t end, int64_t grain, Fn&& fn) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int nthreads = threads_for(n, grain);
  if (nthreads <= 1) {
    for (int64_t i = begin; i < end; ++i) fn(i, 0);
    return;
  }
#ifdef _OPENMP
  auto region = [&] {
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
    for (int64_t i = begin; i < end; ++i) fn(i, omp_get_thread_num());
  };
  run_parallel_region(region);
#else
  for (int64_t i = begin; i < end; ++i) fn(i, 0);
#endif
}

// Whether found(i) holds for some i in [0, n): the data checks that scan a whole input before a
// loss computes (gaussian_nll_loss's var, dice_loss's labels). Each thread ORs an int flag over
// its part without branching, on the threads for n items of at least `grain` each. GCC vectorises
// that loop for float and double var (it did not with a bool flag); for int64 labels the baseline
// target has no 64-bit unsigned compare, and the loop stays scalar but branch-free.
template <class Found>
bool parallel_any(int64_t n, int64_t grain, Found&& found) {
  std::vector<int> any(static_cast<size_t>(get_num_threads()), 0);
  parallel_for(0, n, grain, [&](int64_t b, int64_t e, int t) {
    int a = 0;
    for (int64_t i = b; i < e; ++i) a |= found(i) ? 1 : 0;
    any[static_cast<size_t>(t)] = a;
  });
  return std::find(any.begin(), any.end(), 1) != any.end();
}

}  // namespace losskit::detail
