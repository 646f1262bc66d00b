// bfloat16 <-> float32 on raw bits, shared by the CPU kernels (a bfloat16 is the top half of
// a float32).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace laneway_bf16 {

inline float to_float(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest even, as torch's float -> bfloat16 conversion does (NaN stays NaN).
inline uint16_t from_float(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if (std::isnan(f)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

// Where a float32 result lands: as it is, or rounded to bfloat16 (the matmul kernels' output).
inline void store(float* y, int64_t i, float v) { y[i] = v; }
inline void store(uint16_t* y, int64_t i, float v) { y[i] = from_float(v); }

}  // namespace laneway_bf16
