// Interface between the 16-bit conversions (convert_kernels.cpp, compiled once per instruction
// set) and their callers (common/storage.hpp). Values travel as raw bits (uint16_t) so that the
// kernel files never call the public types' inline members (see half_bits in losskit/half.hpp).
#pragma once

#include <cstdint>

#include "common/target.hpp"

namespace losskit::kernels {
#define LOSSKIT_DECLARE_CONVERT(ns)                                                                \
  namespace ns {                                                                                   \
  void widen_bfloat16(const uint16_t* in, float* out, int64_t n);                                  \
  void widen_float16(const uint16_t* in, float* out, int64_t n);                                   \
  void narrow_bfloat16(const float* in, uint16_t* out, int64_t n);                                 \
  void narrow_float16(const float* in, uint16_t* out, int64_t n);                                  \
  }
LOSSKIT_FOR_EACH_TARGET(LOSSKIT_DECLARE_CONVERT)
#undef LOSSKIT_DECLARE_CONVERT
}  // namespace losskit::kernels
