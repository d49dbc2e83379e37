// Per-instruction-set compilation of kernel sources. CMake compiles every *_kernels.cpp once per
// target with LOSSKIT_TARGET_NS set to `baseline`, `avx2` or `avx512`; everything those files and
// the headers they include define lives in losskit::kernels::LOSSKIT_TARGET_NS, so the three
// copies of an inline function never collide at link time (an AVX-512 copy of a helper must never
// be picked for the baseline kernels).
#pragma once

#ifndef LOSSKIT_TARGET_NS
#define LOSSKIT_TARGET_NS generic
#endif

#if defined(__GNUC__)
#define LOSSKIT_INLINE inline __attribute__((always_inline))
#define LOSSKIT_NOINLINE __attribute__((noinline))
#define LOSSKIT_RESTRICT __restrict__
#else
#define LOSSKIT_INLINE inline
#define LOSSKIT_NOINLINE
#define LOSSKIT_RESTRICT
#endif

// The highest target this build compiles, 0 baseline, 1 avx2, 2 avx512 (CMake's
// LOSSKIT_CPU_TARGETS; every target of the processor by default).
#ifndef LOSSKIT_HIGHEST_TARGET
#define LOSSKIT_HIGHEST_TARGET 0
#endif

// Declares `decl` once in each target namespace this build compiles.
#if LOSSKIT_HIGHEST_TARGET >= 2
#define LOSSKIT_FOR_EACH_TARGET(X) X(baseline) X(avx2) X(avx512)
#elif LOSSKIT_HIGHEST_TARGET == 1
#define LOSSKIT_FOR_EACH_TARGET(X) X(baseline) X(avx2)
#else
#define LOSSKIT_FOR_EACH_TARGET(X) X(baseline)
#endif
