#include "common/cpu_dispatch.hpp"

#include <atomic>
#include <cstdlib>
#include <string>

#include "losskit/errors.hpp"
#include "losskit/threads.hpp"

namespace losskit {
namespace detail {
namespace {

const char* const kTargetNames[] = {"baseline", "avx2", "avx512"};

// The highest target both this CPU and this build (LOSSKIT_HIGHEST_TARGET) have.
CpuTarget best_supported() {
#if LOSSKIT_HIGHEST_TARGET >= 1 && defined(__GNUC__)
  __builtin_cpu_init();
#if LOSSKIT_HIGHEST_TARGET >= 2
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return CpuTarget::Avx512;
#endif
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    return CpuTarget::Avx2;
#endif
  return CpuTarget::Baseline;
}

int parse_target(const std::string& name) {
  for (int i = 0; i < 3; ++i)
    if (name == kTargetNames[i]) return i;
  return -1;
}

// Chosen once; LOSSKIT_CPU_TARGET can only lower the choice (a higher one would crash).
int initial_target() {
  int best = static_cast<int>(best_supported());
  if (const char* env = std::getenv("LOSSKIT_CPU_TARGET")) {
    int forced = parse_target(env);
    if (forced >= 0 && forced < best) return forced;
  }
  return best;
}

std::atomic<int>& target_slot() {
  static std::atomic<int> slot{initial_target()};
  return slot;
}

}  // namespace

CpuTarget active_cpu_target() {
  return static_cast<CpuTarget>(target_slot().load(std::memory_order_relaxed));
}

}  // namespace detail

std::string cpu_target() {
  return detail::kTargetNames[static_cast<int>(detail::active_cpu_target())];
}

std::string available_cpu_targets() {
  std::string out;
  for (int i = static_cast<int>(detail::best_supported()); i >= 0; --i) {
    if (!out.empty()) out += ",";
    out += detail::kTargetNames[i];
  }
  return out;
}

void set_cpu_target(const std::string& name) {
  int wanted = detail::parse_target(name);
  if (wanted < 0)
    throw ValueError("set_cpu_target: name expected one of 'baseline', 'avx2', 'avx512', got '" +
                     name + "'");
  if (wanted > static_cast<int>(detail::best_supported()))
    throw ValueError("set_cpu_target: name expected a target this CPU and build support (" +
                     available_cpu_targets() + "), got '" + name + "'");
  detail::target_slot().store(wanted, std::memory_order_relaxed);
}

}  // namespace losskit
