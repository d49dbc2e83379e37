// 16-bit floating-point storage types: losskit::bfloat16 (1 sign, 8 exponent, 7 mantissa bits:
// the upper half of a float32, as ml_dtypes.bfloat16 and torch.bfloat16) and losskit::float16
// (IEEE 754 binary16, as numpy.float16 and torch.float16).
//
// They are storage only: every loss instantiated for them reads its 16-bit inputs where they
// lie, computes in float (reductions in double) and rounds its outputs once to the storage type.
// An embedding program passes its raw buffers: both types are trivially copyable 2-byte structs
// holding the bits, so a `const uint16_t*` buffer of bfloat16 values can be viewed as
// `const losskit::bfloat16*` (reinterpret_cast, alignment 2).
//
// Conversions are exact: 16-bit to float loses nothing; float to 16-bit rounds to nearest, ties
// to even, overflowing to infinity; a NaN stays a NaN of the same sign (quiet). The float16
// conversions here are plain integer and float arithmetic, correct on every CPU; the kernels of
// the AVX2 and AVX-512 targets use the F16C instructions instead, which give the same bits.
#pragma once

#include <cstdint>
#include <cstring>

namespace losskit {

// The bit-level conversions. `Tag` exists for the kernels compiled once per instruction set
// (common/target.hpp): each passes a type of its own target namespace, so each target gets its
// own copy of these inline functions and the linker can never give baseline code an AVX-512 copy.
// Everything else uses the default.
namespace half_bits {

template <class Tag = void>
inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

template <class Tag = void>
inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// bfloat16 is the upper half of a float: widening appends 16 zero bits.
template <class Tag = void>
inline float bfloat16_to_float(uint16_t h) {
  return bits_to_float<Tag>(static_cast<uint32_t>(h) << 16);
}

// Round to nearest even on the 16 dropped bits: adding 0x7fff plus the kept lowest bit carries
// into the kept half exactly when the dropped half is above the midpoint, or at it with an odd
// kept half; a carry out of the mantissa steps the exponent (to infinity past the largest
// finite value). NaN becomes the quiet NaN of its sign (0x7fc0, as ml_dtypes).
template <class Tag = void>
inline uint16_t float_to_bfloat16(float f) {
  const uint32_t u = float_to_bits<Tag>(f);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = ((u >> 16) & 0x8000u) | 0x7fc0u;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

// binary16 -> float, exactly. Normal numbers rebias the exponent (15 -> 127); subnormals
// (exponent 0) are mantissa * 2^-24, computed in float, where it is exact and normal (so a
// flush-to-zero mode cannot touch it); infinity and NaN keep their mantissa, a NaN made quiet
// as the F16C instruction does.
template <class Tag = void>
inline float float16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  const uint32_t normal = ((exponent + 112u) << 23) | (mantissa << 13);
  const uint32_t subnormal = float_to_bits<Tag>(static_cast<float>(mantissa) * 0x1p-24f);
  const uint32_t special = 0x7f800000u | (mantissa << 13) | (mantissa != 0 ? 0x00400000u : 0u);
  const uint32_t magnitude = exponent == 0 ? subnormal : (exponent == 31 ? special : normal);
  return bits_to_float<Tag>(sign | magnitude);
}

// float -> binary16, round to nearest even.
// - |f| >= 2^-14 (normal results): rebias the exponent (127 -> 15) and round the 13 dropped
//   mantissa bits as float_to_bfloat16 does; a carry past 65504 gives infinity (0x7c00).
// - |f| < 2^-14 (subnormal results or zero): adding 0.5f aligns f's bits so that the float
//   addition itself rounds f to a multiple of 2^-24 (nearest even, the FPU's default mode), and
//   the low bits of the sum are then the half's mantissa. Float subnormals round to 0 either way.
// - |f| >= 65536 and infinity: infinity; NaN: a quiet NaN of its sign with the upper 9 payload
//   bits kept (as the F16C instruction does).
template <class Tag = void>
inline uint16_t float_to_float16(float f) {
  const uint32_t u = float_to_bits<Tag>(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  const uint32_t normal = (a - (112u << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
  const uint32_t subnormal = float_to_bits<Tag>(bits_to_float<Tag>(a) + 0.5f) - 0x3f000000u;
  const uint32_t special = a > 0x7f800000u ? (0x7e00u | ((a >> 13) & 0x3ffu)) : 0x7c00u;
  const uint32_t magnitude = a >= 0x47800000u ? special : (a < 0x38800000u ? subnormal : normal);
  return static_cast<uint16_t>(sign | magnitude);
}

}  // namespace half_bits

struct bfloat16 {
  uint16_t bits = 0;

  bfloat16() = default;
  explicit bfloat16(float f) : bits(half_bits::float_to_bfloat16(f)) {}
  static bfloat16 from_bits(uint16_t b) {
    bfloat16 h;
    h.bits = b;
    return h;
  }
  operator float() const { return half_bits::bfloat16_to_float(bits); }
};

struct float16 {
  uint16_t bits = 0;

  float16() = default;
  explicit float16(float f) : bits(half_bits::float_to_float16(f)) {}
  static float16 from_bits(uint16_t b) {
    float16 h;
    h.bits = b;
    return h;
  }
  operator float() const { return half_bits::float16_to_float(bits); }
};

static_assert(sizeof(bfloat16) == 2 && alignof(bfloat16) == 2, "bfloat16 is 2 bytes");
static_assert(sizeof(float16) == 2 && alignof(float16) == 2, "float16 is 2 bytes");

}  // namespace losskit
