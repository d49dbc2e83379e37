#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(_OPENMP) && (defined(__unix__) || defined(__APPLE__))
#include <pthread.h>
#define LOSSKIT_FORK_HANDLER 1
#endif

#include "common/parallel.hpp"
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

namespace detail {
namespace {

// Fork safety. GNU libgomp keeps the team of threads that a thread leads in that thread's TLS and
// has no fork handler: in a child forked after the parent's thread led a parallel region, that
// thread (the only one the child has) still holds a team whose threads do not exist, and its next
// parallel region waits for them forever. A thread created in the child starts with no team, and
// libgomp gives it a working one. So the thread that forked hands its parallel regions to one such
// thread, the team host, made on first need and kept (a team made per call costs milliseconds).
// Threads started in the child lead their own regions as usual.
//
// The handler marks the forking thread whether or not its parent led a team through losskit: a
// program may share libgomp with other OpenMP code. At most one thread per process is marked (the
// one that forked; marks are thread-local and not inherited by new threads), so the host serves one
// caller at a time.
thread_local bool t_forked_thread = false;

class TeamHost {
 public:
  TeamHost() {
    std::thread([this] { serve(); }).detach();
  }

  void run(void (*region)(void*), void* context) {
    std::unique_lock<std::mutex> lock(mutex_);
    region_ = region;
    context_ = context;
    pending_ = true;
    changed_.notify_all();
    changed_.wait(lock, [this] { return !pending_; });
  }

 private:
  void serve() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      changed_.wait(lock, [this] { return pending_; });
      lock.unlock();
      region_(context_);
      lock.lock();
      pending_ = false;
      changed_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  void (*region_)(void*) = nullptr;
  void* context_ = nullptr;
  bool pending_ = false;
};

// Never deleted: the host thread runs until the process ends. A child forked from a process with a
// host drops it (its thread is gone, its mutex may be held) and makes its own when needed.
TeamHost* g_team_host = nullptr;

#ifdef LOSSKIT_FORK_HANDLER
void on_fork_child() {
  t_forked_thread = true;
  g_team_host = nullptr;
}
const bool g_fork_handler_registered = [] {
  return pthread_atfork(nullptr, nullptr, &on_fork_child) == 0;
}();
#endif

}  // namespace

bool must_host_parallel_regions() { return t_forked_thread; }

void run_on_team_host(void (*region)(void*), void* context) {
  if (g_team_host == nullptr) g_team_host = new TeamHost();
  g_team_host->run(region, context);
}

}  // namespace detail
}  // namespace losskit
