// Thread control and the instruction-set choice. Kernels read the thread count in their
// `num_threads` clause; nothing calls omp_set_num_threads, so embedding programs keep their own.
#pragma once

#include <string>

namespace losskit {

// Number of OpenMP threads the kernels use (defaults to OMP_NUM_THREADS or the core count).
int get_num_threads();
// Sets it; n must be >= 1 (ValueError otherwise).
void set_num_threads(int n);

// Instruction set chosen once at start-up: "avx512", "avx2" or "baseline" on x86-64, always
// "baseline" elsewhere. The environment variable LOSSKIT_CPU_TARGET may force a lower target than
// the CPU supports.
std::string cpu_target();
// Targets this CPU can run, best first (for tests that run every target).
std::string available_cpu_targets();
// Forces a target (must be available); ValueError otherwise. For tests and benchmarks.
void set_cpu_target(const std::string& name);

}  // namespace losskit
