// The instruction set chosen at start-up for every kernel family, and the one way to pick a
// kernel compiled for it.
//
// THE RULE: code compiled for a target (every function of losskit::kernels::<target>, i.e. all
// that a *_kernels.cpp object of that target holds, inline helpers included) runs only on a CPU
// that passed the check for that target (best_supported() in cpu_dispatch.cpp). The compiler may
// use that target's instructions anywhere in those objects, so:
//   - a family's entry is a kernel's address or the address of a constexpr table of kernel
//     addresses defined in the kernel file; never a function that fills a table (it would run on
//     every CPU, as the AVX-512 classification table once did: SIGILL on AVX2 machines);
//   - kernel files have no dynamic initialisation (a static initialiser runs at load, on any CPU);
//   - entries are picked only through LOSSKIT_DISPATCH, which takes every target's address (that
//     executes nothing) and returns the active target's.
// tests/test_isa_audit.py checks the built binary for this, and tests/test_emulated_cpus.py runs
// every loss under qemu on CPUs without AVX-512 and without AVX2.
#pragma once

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <string>

#include "common/target.hpp"

namespace losskit::detail {

enum class CpuTarget { Baseline = 0, Avx2 = 1, Avx512 = 2 };

// The target kernels run on now (best supported, or LOSSKIT_CPU_TARGET, or set_cpu_target); never
// above what this CPU supports.
CpuTarget active_cpu_target();

// The entry of the active target among one entry per compiled target (in CpuTarget order).
template <class Entry>
Entry select_kernel(std::initializer_list<Entry> per_target) {
  const std::size_t wanted = static_cast<std::size_t>(active_cpu_target());
  return per_target.begin()[std::min(wanted, per_target.size() - 1)];
}

}  // namespace losskit::detail

#define LOSSKIT_TARGET_ADDRESS_(ns, Type, name) static_cast<Type>(&::losskit::kernels::ns::name)
#if LOSSKIT_HIGHEST_TARGET >= 2
#define LOSSKIT_DISPATCH(Type, name)                                                               \
  ::losskit::detail::select_kernel<Type>({LOSSKIT_TARGET_ADDRESS_(baseline, Type, name),           \
                                          LOSSKIT_TARGET_ADDRESS_(avx2, Type, name),               \
                                          LOSSKIT_TARGET_ADDRESS_(avx512, Type, name)})
#elif LOSSKIT_HIGHEST_TARGET == 1
#define LOSSKIT_DISPATCH(Type, name)                                                               \
  ::losskit::detail::select_kernel<Type>(                                                          \
      {LOSSKIT_TARGET_ADDRESS_(baseline, Type, name), LOSSKIT_TARGET_ADDRESS_(avx2, Type, name)})
#else
#define LOSSKIT_DISPATCH(Type, name)                                                               \
  ::losskit::detail::select_kernel<Type>({LOSSKIT_TARGET_ADDRESS_(baseline, Type, name)})
#endif
