// The instruction set chosen once, at start-up, for every kernel family.
#pragma once

#include <string>

namespace losskit::detail {

enum class CpuTarget { Baseline = 0, Avx2 = 1, Avx512 = 2 };

// The target kernels run on now (best supported, or LOSSKIT_CPU_TARGET, or set_cpu_target).
CpuTarget active_cpu_target();

// Picks the entry of `table` (indexed by CpuTarget) for the active target.
template <class Fn>
Fn select_kernel(const Fn (&table)[3]) {
  return table[static_cast<int>(active_cpu_target())];
}

}  // namespace losskit::detail
