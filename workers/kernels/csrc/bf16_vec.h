// bfloat16 <-> float32 on a register's worth of values at a time, in GCC vector types: 16
// where -march=native offers AVX-512, 8 (one AVX2 register) elsewhere. Vectors wider than
// the target's registers are not split cleanly: GCC turned the compares, selects and
// narrowing of 16-lane vectors on AVX2 into per-lane scalar code (silu_mul ran at 4 ns an
// element). The same rules as bf16.h's scalar conversions (round to nearest even, NaN stays
// NaN).
#pragma once

#include <cstdint>
#include <cstring>

namespace laneway_bf16 {

#ifdef __AVX512F__
constexpr int kLanes = 16;
#else
constexpr int kLanes = 8;
#endif
typedef float f32v __attribute__((vector_size(4 * kLanes)));
typedef int32_t i32v __attribute__((vector_size(4 * kLanes)));
typedef uint32_t u32v __attribute__((vector_size(4 * kLanes)));
typedef uint16_t u16v __attribute__((vector_size(2 * kLanes)));

inline u16v load(const uint16_t* p) {
  u16v h;
  std::memcpy(&h, p, sizeof h);
  return h;
}

inline void store(uint16_t* p, u16v h) { std::memcpy(p, &h, sizeof h); }

inline f32v widen(u16v h) {
  const u32v bits = __builtin_convertvector(h, u32v) << 16;  // a bfloat16 is a float32's top half
  f32v f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest even, as torch's float -> bfloat16 conversion does; NaN stays NaN.
inline u16v narrow(f32v f) {
  u32v bits;
  std::memcpy(&bits, &f, sizeof bits);
  const u32v rounded = bits + 0x7FFFu + ((bits >> 16) & 1u);
  const u32v is_nan = reinterpret_cast<u32v>(f != f);
  return __builtin_convertvector(((rounded & ~is_nan) | ((bits | 0x400000u) & is_nan)) >> 16, u16v);
}

inline f32v splat(float v) { return f32v{} + v; }

}  // namespace laneway_bf16
