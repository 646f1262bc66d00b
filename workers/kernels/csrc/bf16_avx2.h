// AVX2 helpers shared by the kernels' AVX2 paths (bf16_small_gemm.cpp, decode_attention.cpp):
// widening 8 bfloat16 to float32 and summing a register's 8 lanes.
#pragma once

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include <cstdint>

namespace laneway_bf16 {

// 8 bfloat16 (raw bits) -> float32: a bfloat16 is the top half of a float32.
inline __m256 load_bf16x8(const void* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

inline float hsum8(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  return _mm_cvtss_f32(_mm_add_ss(lo, _mm_movehdup_ps(lo)));
}

}  // namespace laneway_bf16
#endif
