// Paged decode attention for CPU: one query token per sequence, K/V read in place from the
// paged pool (no gather copy), online softmax over the context in float32.
//
// Shapes: q (B, Hq, D); k_cache, v_cache (num_blocks, block_size, Hkv, D), contiguous;
// block_tables (B, max_blocks) int32; seq_lens (B,) int32. Output (B, Hq, D) in q's dtype.
// The G = Hq / Hkv query heads of a KV head share every K/V row read, so each row of the
// pool is loaded once per step. A sequence's result never depends on the rest of the batch
// or on the thread count (work is split by sequence and head, never inside one).
//
// Three paths: AVX-512 with bf16 dot products for bfloat16 with head_dim 64 or 128 and up to
// 8 query heads per KV head (Llama-family shapes); AVX2 for bfloat16 on CPUs without those
// (head_dim a multiple of 8 up to 256, up to 16 query heads per KV head, blocks up to 256
// rows); plain loops for everything else, written so the compiler vectorizes the bfloat16
// widening and the dots.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>
#if (defined(__AVX2__) && defined(__FMA__)) || (defined(__AVX512F__) && defined(__AVX512BF16__))
#include <immintrin.h>
#endif

#include "bf16_avx2.h"

namespace {

template <typename scalar_t>
inline void to_float(const scalar_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
}

// A bfloat16 is the top half of a float32: a shift the compiler vectorizes (the generic
// conversion above goes one value at a time through c10's rounding helpers).
template <>
inline void to_float<c10::BFloat16>(const c10::BFloat16* src, float* dst, int64_t n) {
  const uint16_t* bits = reinterpret_cast<const uint16_t*>(src);
  uint32_t* out = reinterpret_cast<uint32_t*>(dst);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<uint32_t>(bits[i]) << 16;
}

// A dot product in kLanes partial sums, which the compiler maps onto one vector register
// (a single running sum is a chain it may not reorder without -ffast-math).
constexpr int64_t kLanes = 8;
inline float dot(const float* a, const float* b, int64_t n) {
  float part[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= n; d += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) part[j] += a[d + j] * b[d + j];
  float s = 0.f;
  for (int64_t j = 0; j < kLanes; ++j) s += part[j];
  for (; d < n; ++d) s += a[d] * b[d];
  return s;
}

// The scalar path: any dtype, any head_dim. Same algorithm as the AVX-512 one below.
template <typename scalar_t>
void attend_one(const scalar_t* q, const scalar_t* k_cache, const scalar_t* v_cache, const int32_t* table,
                int64_t len, int64_t h, int64_t group, int64_t head_dim, int64_t block_size, int64_t row_stride,
                float scale, scalar_t* out) {
  std::vector<float> qf(group * head_dim), acc(group * head_dim, 0.f), row(head_dim);
  std::vector<float> probs(group * block_size), run_max(group, -std::numeric_limits<float>::infinity());
  std::vector<float> run_sum(group, 0.f);
  to_float(q, qf.data(), group * head_dim);
  for (int64_t start = 0; start < len; start += block_size) {
    const int64_t n = std::min(block_size, len - start);
    const int64_t base = (table[start / block_size] * block_size * row_stride) + h * head_dim;
    for (int64_t t = 0; t < n; ++t) {
      to_float(k_cache + base + t * row_stride, row.data(), head_dim);
      for (int64_t g = 0; g < group; ++g) probs[g * block_size + t] = dot(qf.data() + g * head_dim, row.data(), head_dim) * scale;
    }
    for (int64_t g = 0; g < group; ++g) {  // online softmax: rescale to this block's new maximum
      float* p = probs.data() + g * block_size;
      const float new_max = std::max(run_max[g], *std::max_element(p, p + n));
      const float correction = std::exp(run_max[g] - new_max);  // exp(-inf) = 0 on the first block
      float sum = 0.f;
      for (int64_t t = 0; t < n; ++t) sum += (p[t] = std::exp(p[t] - new_max));
      run_sum[g] = run_sum[g] * correction + sum;
      run_max[g] = new_max;
      for (int64_t d = 0; d < head_dim; ++d) acc[g * head_dim + d] *= correction;
    }
    for (int64_t t = 0; t < n; ++t) {
      to_float(v_cache + base + t * row_stride, row.data(), head_dim);
      for (int64_t g = 0; g < group; ++g)
        for (int64_t d = 0; d < head_dim; ++d) acc[g * head_dim + d] += probs[g * block_size + t] * row[d];
    }
  }
  for (int64_t g = 0; g < group; ++g)
    for (int64_t d = 0; d < head_dim; ++d) out[g * head_dim + d] = static_cast<scalar_t>(acc[g * head_dim + d] / run_sum[g]);
}


#if defined(__AVX2__) && defined(__FMA__) && !(defined(__AVX512F__) && defined(__AVX512BF16__))
#define LANEWAY_ATTN_AVX2 1
constexpr int64_t kAvx2MaxDim = 256, kAvx2MaxGroup = 16, kAvx2MaxBlock = 256;

using laneway_bf16::hsum8;
using laneway_bf16::load_bf16x8;
// exp(x) for x <= 0, 8 lanes: the AVX-512 path's polynomial, 2^n built in the exponent
// bits. Inputs are clamped at -87 so 2^n stays a normal float; exp(-87) ~ 2e-38 is zero
// beside the running max's 1.
inline __m256 exp_nonpositive8(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.f));
  const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(pow2n));
}

// The plain path's algorithm for one sequence and KV head, vectorized: q, the block's
// scores and the output accumulators stay in L1 (stack arrays), K and V rows are widened
// 8 values at a time, exp runs on 8 scores at once.
void attend_one_avx2(const c10::BFloat16* q, const c10::BFloat16* k_cache, const c10::BFloat16* v_cache,
                     const int32_t* table, int64_t len, int64_t h, int64_t group, int64_t head_dim,
                     int64_t block_size, int64_t row_stride, float scale, c10::BFloat16* out) {
  alignas(32) float qf[kAvx2MaxGroup * kAvx2MaxDim], acc[kAvx2MaxGroup * kAvx2MaxDim];
  alignas(32) float probs[kAvx2MaxGroup][kAvx2MaxBlock + 8];
  float run_max[kAvx2MaxGroup], run_sum[kAvx2MaxGroup];
  const int64_t chunks = head_dim / 8;
  for (int64_t g = 0; g < group; ++g) {
    for (int64_t c = 0; c < chunks; ++c) {
      _mm256_store_ps(qf + g * head_dim + 8 * c, load_bf16x8(q + g * head_dim + 8 * c));
      _mm256_store_ps(acc + g * head_dim + 8 * c, _mm256_setzero_ps());
    }
    run_max[g] = -std::numeric_limits<float>::infinity();
    run_sum[g] = 0.f;
  }
  for (int64_t start = 0; start < len; start += block_size) {
    const int64_t n = std::min(block_size, len - start);
    const int64_t base = (table[start / block_size] * block_size * row_stride) + h * head_dim;
    if (start + block_size < len) {  // the next block sits anywhere in the pool: ask for this head's rows now
      const int64_t next = (table[start / block_size + 1] * block_size * row_stride) + h * head_dim;
      const int64_t rows = std::min(block_size, len - start - block_size);
      for (int64_t t = 0; t < rows; ++t)
        for (int64_t byte = 0; byte < head_dim * 2; byte += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(k_cache + next + t * row_stride) + byte, _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(v_cache + next + t * row_stride) + byte, _MM_HINT_T0);
        }
    }
    for (int64_t t = 0; t < n; ++t) {
      const c10::BFloat16* k = k_cache + base + t * row_stride;
      for (int64_t g = 0; g < group; ++g) {
        const float* qg = qf + g * head_dim;
        __m256 d0 = _mm256_setzero_ps(), d1 = _mm256_setzero_ps();
        int64_t c = 0;
        for (; c + 2 <= chunks; c += 2) {
          d0 = _mm256_fmadd_ps(_mm256_load_ps(qg + 8 * c), load_bf16x8(k + 8 * c), d0);
          d1 = _mm256_fmadd_ps(_mm256_load_ps(qg + 8 * c + 8), load_bf16x8(k + 8 * c + 8), d1);
        }
        if (c < chunks) d0 = _mm256_fmadd_ps(_mm256_load_ps(qg + 8 * c), load_bf16x8(k + 8 * c), d0);
        probs[g][t] = hsum8(_mm256_add_ps(d0, d1)) * scale;
      }
    }
    for (int64_t g = 0; g < group; ++g) {  // online softmax: rescale to this block's new maximum
      float* p = probs[g];
      const float new_max = std::max(run_max[g], *std::max_element(p, p + n));
      const float correction = std::exp(run_max[g] - new_max);  // exp(-inf) = 0 on the first block
      for (int64_t t = n; t < (n + 7) / 8 * 8; ++t) p[t] = -std::numeric_limits<float>::infinity();
      __m256 sum = _mm256_setzero_ps();
      const __m256 vmax = _mm256_set1_ps(new_max);
      for (int64_t t = 0; t < n; t += 8) {
        const __m256 scores = _mm256_load_ps(p + t);
        const __m256 e = exp_nonpositive8(_mm256_sub_ps(scores, vmax));
        const __m256 live = _mm256_cmp_ps(scores, _mm256_set1_ps(-std::numeric_limits<float>::infinity()), _CMP_NEQ_OQ);
        const __m256 kept = _mm256_and_ps(e, live);  // the tail past n counts for nothing
        _mm256_store_ps(p + t, kept);
        sum = _mm256_add_ps(sum, kept);
      }
      run_sum[g] = run_sum[g] * correction + hsum8(sum);
      run_max[g] = new_max;
      if (correction != 1.f) {
        const __m256 corr = _mm256_set1_ps(correction);
        for (int64_t c = 0; c < chunks; ++c)
          _mm256_store_ps(acc + g * head_dim + 8 * c, _mm256_mul_ps(_mm256_load_ps(acc + g * head_dim + 8 * c), corr));
      }
    }
    for (int64_t t = 0; t < n; ++t) {
      const c10::BFloat16* v = v_cache + base + t * row_stride;
      for (int64_t c = 0; c < chunks; ++c) {
        const __m256 vc = load_bf16x8(v + 8 * c);
        for (int64_t g = 0; g < group; ++g) {
          float* a = acc + g * head_dim + 8 * c;
          _mm256_store_ps(a, _mm256_fmadd_ps(_mm256_set1_ps(probs[g][t]), vc, _mm256_load_ps(a)));
        }
      }
    }
  }
  for (int64_t g = 0; g < group; ++g) {
    const float inv = 1.f / run_sum[g];
    for (int64_t d = 0; d < head_dim; ++d) out[g * head_dim + d] = static_cast<c10::BFloat16>(acc[g * head_dim + d] * inv);
  }
}
#endif

#if defined(__AVX512F__) && defined(__AVX512BF16__)
constexpr int64_t kMaxGroup = 8;
constexpr int64_t kTile = 16;  // tokens scored together: one register of scores

inline __m512bh load_bf16_pairs(const c10::BFloat16* p) {  // 32 bfloat16, as dpbf16 takes them
  return (__m512bh)_mm512_loadu_si512(p);
}

// Lane i of the result = the sum of the 16 lanes of v[i]: a transpose folded into adds,
// about 3 instructions per vector where one horizontal reduction each would take 8.
inline __m512 transpose_sum16(const __m512 v[16]) {
  __m512 w[8], x[4];
  for (int i = 0; i < 8; ++i)  // per 128-bit lane: [v0 + v2, u0 + u2, v1 + v3, u1 + u3]
    w[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {  // per 128-bit lane: partial sums of vectors 4i .. 4i + 3 (pairs moved as doubles)
    const __m512d a = _mm512_castps_pd(w[2 * i]), b = _mm512_castps_pd(w[2 * i + 1]);
    x[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  // Fold the four 128-bit lanes: 0x88 picks lanes (0, 2) of each input, 0xDD lanes (1, 3).
  const __m512 y0 = _mm512_add_ps(_mm512_shuffle_f32x4(x[0], x[1], 0x88), _mm512_shuffle_f32x4(x[0], x[1], 0xDD));
  const __m512 y1 = _mm512_add_ps(_mm512_shuffle_f32x4(x[2], x[3], 0x88), _mm512_shuffle_f32x4(x[2], x[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(y0, y1, 0x88), _mm512_shuffle_f32x4(y0, y1, 0xDD));
}

// exp(x) for x <= 0 (softmax after subtracting the max): Cephes' expf polynomial after
// x = n ln2 + r, |r| <= ln2 / 2; within 2 ulp of std::exp, and 16 lanes at a time
// where std::exp would cost more than the dot products.
inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-100.f));  // exp(-100) ~ 4e-44: zero next to the max's 1
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(y, n);  // y * 2^n
}

// Running softmax state of one KV head's G query heads, kept between tiles: output
// accumulators, running max (all lanes equal) and per-lane partial sums of exp. acc[g][2c] / acc[g][2c + 1] hold
// dims 32c + 8L + j / 32c + 8L + 4 + j in lane 4L + j, the order unpacklo/unpackhi_epi16
// leave pairs in; the output restores it.
template <int kPairs>
struct alignas(64) HeadState {
  __m512 acc[kMaxGroup][2 * kPairs];
  __m512 run_max[kMaxGroup], run_sum[kMaxGroup];
  __m512bh q[kMaxGroup][kPairs];
};

// One tile (n <= 16 consecutive rows of one block) for one KV head and its G query heads.
// Everything lives in registers for the tile; the G softmax chains are independent, so
// the core overlaps them.
template <int kPairs>
inline void attend_tile(HeadState<kPairs>& st, const c10::BFloat16* k, const c10::BFloat16* v, int64_t n,
                        int64_t group, int64_t row_stride, __m512 vscale, const c10::BFloat16* k_ahead,
                        const c10::BFloat16* v_ahead, int64_t n_ahead) {
  const __mmask16 valid = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  alignas(64) uint32_t prob_pairs[kMaxGroup][kTile / 2];  // (p_2k, p_2k+1) as two bfloat16
  __m512 acc[kMaxGroup][2 * kPairs];
  for (int64_t g = 0; g < group; ++g) {
    __m512 dots[kTile];
    for (int64_t t = 0; t < kTile; ++t) {
      dots[t] = _mm512_setzero_ps();
      if (t < n)
        for (int c = 0; c < kPairs; ++c)
          dots[t] = _mm512_dpbf16_ps(dots[t], st.q[g][c], load_bf16_pairs(k + t * row_stride + 32 * c));
    }
    const __m512 scores = _mm512_mask_mov_ps(_mm512_set1_ps(-std::numeric_limits<float>::infinity()), valid,
                                             _mm512_mul_ps(transpose_sum16(dots), vscale));
    // Online softmax. Past the first tiles the running max rarely moves; when no score
    // exceeds it the rescale factor is exactly 1, so the reduction and rescale are skipped.
    if (_mm512_cmp_ps_mask(scores, st.run_max[g], _CMP_GT_OQ) != 0) {
      const __m512 new_max = _mm512_max_ps(st.run_max[g], _mm512_set1_ps(_mm512_reduce_max_ps(scores)));
      const __m512 correction = exp_nonpositive(_mm512_sub_ps(st.run_max[g], new_max));  // ~0 on the first tile
      st.run_sum[g] = _mm512_mul_ps(st.run_sum[g], correction);
      for (int c = 0; c < 2 * kPairs; ++c) st.acc[g][c] = _mm512_mul_ps(st.acc[g][c], correction);
      st.run_max[g] = new_max;
    }
    const __m512 e = _mm512_maskz_mov_ps(valid, exp_nonpositive(_mm512_sub_ps(scores, st.run_max[g])));
    _mm256_store_si256(reinterpret_cast<__m256i*>(prob_pairs[g]), (__m256i)_mm512_cvtneps_pbh(e));
    st.run_sum[g] = _mm512_add_ps(st.run_sum[g], e);  // per-lane partial sums, added up at the end
    for (int c = 0; c < 2 * kPairs; ++c) acc[g][c] = st.acc[g][c];
  }
  for (int64_t t = 0; t < n; t += 2) {  // two tokens per dpbf16: their V rows interleaved
    // This head's rows of a later tile, two at a time between the dot products: asked for
    // all at once at the tile's start, they filled the core's miss buffers and stalled the
    // loads behind them (decode attention at batch 32 from memory: about 5.0 -> 3.2 ms a
    // step, docs/benchmarks.md). Into L1: a tile of every head is 16 KB. Written out here
    // and below rather than as a lambda: with a lambda, GCC no longer kept them spread
    // through this loop, and the step took 8.2 ms.
    for (int64_t u = t; u < t + 2 && u < n_ahead; ++u)
      for (int c = 0; c < 4 * kPairs; c += 2) {  // 64-byte lines
        _mm_prefetch(reinterpret_cast<const char*>(k_ahead + u * row_stride) + 32 * c, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(v_ahead + u * row_stride) + 32 * c, _MM_HINT_T0);
      }
    __m512i lo[kPairs], hi[kPairs];
    for (int c = 0; c < kPairs; ++c) {
      const __m512i a = _mm512_loadu_si512(v + t * row_stride + 32 * c);
      const __m512i b = t + 1 < n ? _mm512_loadu_si512(v + (t + 1) * row_stride + 32 * c) : _mm512_setzero_si512();
      lo[c] = _mm512_unpacklo_epi16(a, b);
      hi[c] = _mm512_unpackhi_epi16(a, b);
    }
    for (int64_t g = 0; g < group; ++g) {
      const __m512bh p = (__m512bh)_mm512_set1_epi32(static_cast<int>(prob_pairs[g][t / 2]));
      for (int c = 0; c < kPairs; ++c) {
        acc[g][2 * c] = _mm512_dpbf16_ps(acc[g][2 * c], (__m512bh)lo[c], p);
        acc[g][2 * c + 1] = _mm512_dpbf16_ps(acc[g][2 * c + 1], (__m512bh)hi[c], p);
      }
    }
  }
  for (int64_t u = (n + 1) / 2 * 2; u < n_ahead; ++u)  // a short tile (a sequence's last) left rows unasked
    for (int c = 0; c < 4 * kPairs; c += 2) {
      _mm_prefetch(reinterpret_cast<const char*>(k_ahead + u * row_stride) + 32 * c, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(v_ahead + u * row_stride) + 32 * c, _MM_HINT_T0);
    }
  for (int64_t g = 0; g < group; ++g)
    for (int c = 0; c < 2 * kPairs; ++c) st.acc[g][c] = acc[g][c];
}

// One sequence, KV heads [h_begin, h_end), bfloat16, head_dim = 32 * kPairs. Tokens go in
// tiles of up to 16 rows of one block; every head of the range is done before the next
// tile, so a tile's rows (contiguous in the pool) are read in order, once. q . k and p . v
// run on dpbf16 (bf16 products, float32 sums); P enters p . v as bfloat16, as in torch's
// flash attention for bf16.
template <int kPairs>
void attend_seq_avx512(const c10::BFloat16* q, const c10::BFloat16* k_cache, const c10::BFloat16* v_cache,
                       const int32_t* table, int64_t len, int64_t h_begin, int64_t h_end, int64_t group,
                       int64_t block_size, int64_t row_stride, float scale, c10::BFloat16* out,
                       std::vector<HeadState<kPairs>>& states, const int32_t* next_table, int64_t next_len) {
  constexpr int64_t head_dim = 32 * kPairs;
  const int64_t tile = std::min(kTile, block_size);
  states.resize(h_end - h_begin);
  for (int64_t h = h_begin; h < h_end; ++h) {
    HeadState<kPairs>& st = states[h - h_begin];
    for (int64_t g = 0; g < group; ++g) {
      for (int c = 0; c < kPairs; ++c) st.q[g][c] = load_bf16_pairs(q + (h * group + g) * head_dim + 32 * c);
      for (int c = 0; c < 2 * kPairs; ++c) st.acc[g][c] = _mm512_setzero_ps();
      st.run_max[g] = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
      st.run_sum[g] = _mm512_setzero_ps();
    }
  }
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int64_t start = 0; start < len; start += tile) {
    const int64_t n = std::min(tile, len - start);
    const int64_t row0 = (table[start / block_size] * block_size + start % block_size) * row_stride;
    // Tiles sit in arbitrary blocks, out of the hardware prefetcher's sight: each head asks
    // for its rows of the tile two ahead while it works on this one; near the end of the
    // sequence, that is a tile at the start of the next sequence this thread will do.
    int64_t ahead = start + 2 * tile, n_ahead = 0;
    const int32_t* ahead_table = table;
    if (ahead < len) {
      n_ahead = std::min(tile, len - ahead);
    } else if (next_table != nullptr) {
      ahead = (ahead / tile - (len + tile - 1) / tile) * tile;  // tile index past our last, in the next
      ahead_table = next_table;
      n_ahead = ahead < next_len ? std::min(tile, next_len - ahead) : 0;
    }
    const int64_t ahead_row0 =
        n_ahead > 0 ? (ahead_table[ahead / block_size] * block_size + ahead % block_size) * row_stride : row0;
    for (int64_t h = h_begin; h < h_end; ++h)
      attend_tile<kPairs>(states[h - h_begin], k_cache + row0 + h * head_dim, v_cache + row0 + h * head_dim, n,
                          group, row_stride, vscale, k_cache + ahead_row0 + h * head_dim,
                          v_cache + ahead_row0 + h * head_dim, n_ahead);
  }
  for (int64_t h = h_begin; h < h_end; ++h) {
    const HeadState<kPairs>& st = states[h - h_begin];
    for (int64_t g = 0; g < group; ++g) {
      alignas(64) float tmp[head_dim];
      const __m512 inv = _mm512_set1_ps(1.f / _mm512_reduce_add_ps(st.run_sum[g]));
      for (int c = 0; c < 2 * kPairs; ++c) _mm512_store_ps(tmp + 16 * c, _mm512_mul_ps(st.acc[g][c], inv));
      c10::BFloat16* o = out + (h * group + g) * head_dim;
      for (int c = 0; c < kPairs; ++c)
        for (int half = 0; half < 2; ++half)
          for (int lane = 0; lane < 16; ++lane)
            o[32 * c + 8 * (lane / 4) + 4 * half + lane % 4] = static_cast<c10::BFloat16>(tmp[16 * (2 * c + half) + lane]);
    }
  }
}
#endif

template <typename scalar_t>
void decode_attention_impl(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                           const at::Tensor& block_tables, const at::Tensor& seq_lens, double scale,
                           at::Tensor& out) {
  const int64_t num_seqs = q.size(0), num_heads = q.size(1), head_dim = q.size(2);
  const int64_t block_size = k_cache.size(1), num_kv_heads = k_cache.size(2);
  const int64_t group = num_heads / num_kv_heads;
  const int64_t table_stride = block_tables.stride(0);
  const int64_t row_stride = num_kv_heads * head_dim;  // between consecutive tokens of a block
  const scalar_t* q_ptr = q.data_ptr<scalar_t>();
  const scalar_t* k_ptr = k_cache.data_ptr<scalar_t>();
  const scalar_t* v_ptr = v_cache.data_ptr<scalar_t>();
  const int32_t* tables = block_tables.data_ptr<int32_t>();
  const int32_t* lens = seq_lens.data_ptr<int32_t>();
  scalar_t* out_ptr = out.data_ptr<scalar_t>();
  const float fscale = static_cast<float>(scale);

#if defined(__AVX512F__) && defined(__AVX512BF16__)
  if constexpr (std::is_same_v<scalar_t, c10::BFloat16>) {
    if (group <= kMaxGroup && (block_size % kTile == 0 || block_size < kTile) &&
        (head_dim == 64 || head_dim == 128)) {
      // A work item is one sequence with all its KV heads (the pool is then read in order),
      // or with one head when there are too few sequences to keep every thread busy.
      const int64_t heads_per_item = num_seqs >= at::get_num_threads() ? num_kv_heads : 1;
      const int64_t items_per_seq = num_kv_heads / heads_per_item;
      at::parallel_for(0, num_seqs * items_per_seq, 1, [&](int64_t begin, int64_t end) {
        std::vector<HeadState<2>> states64;
        std::vector<HeadState<4>> states128;
        for (int64_t item = begin; item < end; ++item) {
          const int64_t b = item / items_per_seq, h0 = (item % items_per_seq) * heads_per_item;
          const scalar_t* q_seq = q_ptr + b * num_heads * head_dim;
          scalar_t* out_seq = out_ptr + b * num_heads * head_dim;
          const int32_t* table = tables + b * table_stride;
          // The thread's next sequence, when it covers the same heads: its first tiles are
          // prefetched while this one ends.
          const bool next = item + 1 < end && heads_per_item == num_kv_heads;
          const int32_t* next_table = next ? table + table_stride : nullptr;
          const int64_t next_len = next ? lens[b + 1] : 0;
          if (head_dim == 64)
            attend_seq_avx512<2>(q_seq, k_ptr, v_ptr, table, lens[b], h0, h0 + heads_per_item, group, block_size,
                                 row_stride, fscale, out_seq, states64, next_table, next_len);
          else
            attend_seq_avx512<4>(q_seq, k_ptr, v_ptr, table, lens[b], h0, h0 + heads_per_item, group, block_size,
                                 row_stride, fscale, out_seq, states128, next_table, next_len);
        }
      });
      return;
    }
  }
#endif
#ifdef LANEWAY_ATTN_AVX2
  constexpr bool is_bf16 = std::is_same_v<scalar_t, c10::BFloat16>;
  const bool avx2 = is_bf16 && head_dim % 8 == 0 && head_dim <= kAvx2MaxDim && group <= kAvx2MaxGroup &&
                    block_size <= kAvx2MaxBlock;
#endif
  at::parallel_for(0, num_seqs * num_kv_heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / num_kv_heads, h = item % num_kv_heads;
      const int64_t offset = (b * num_heads + h * group) * head_dim;  // this KV head's G query rows
#ifdef LANEWAY_ATTN_AVX2
      if constexpr (is_bf16) {
        if (avx2) {
          attend_one_avx2(q_ptr + offset, k_ptr, v_ptr, tables + b * table_stride, lens[b], h, group, head_dim,
                          block_size, row_stride, fscale, out_ptr + offset);
          continue;
        }
      }
#endif
      attend_one<scalar_t>(q_ptr + offset, k_ptr, v_ptr, tables + b * table_stride, lens[b], h, group, head_dim,
                           block_size, row_stride, fscale, out_ptr + offset);
    }
  });
}

}  // namespace

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& block_tables, const at::Tensor& seq_lens, double scale) {
  TORCH_CHECK(q.dim() == 3 && k_cache.dim() == 4, "q (B, Hq, D) and k_cache (N, bs, Hkv, D) expected");
  TORCH_CHECK(q.is_contiguous() && k_cache.is_contiguous() && v_cache.is_contiguous(), "contiguous inputs expected");
  TORCH_CHECK(k_cache.scalar_type() == q.scalar_type() && v_cache.scalar_type() == q.scalar_type(), "dtype mismatch");
  TORCH_CHECK(block_tables.scalar_type() == at::kInt && seq_lens.scalar_type() == at::kInt, "int32 tables expected");
  TORCH_CHECK(block_tables.stride(1) == 1 && seq_lens.is_contiguous(), "tables must be row-contiguous");
  TORCH_CHECK(q.size(1) % k_cache.size(2) == 0 && q.size(2) == k_cache.size(3), "head shapes disagree");
  at::Tensor out = at::empty_like(q);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, q.scalar_type(), "decode_attention", [&] {
    decode_attention_impl<scalar_t>(q, k_cache, v_cache, block_tables, seq_lens, scale, out);
  });
  return out;
}

TORCH_LIBRARY(laneway, m) {
  m.def("decode_attention(Tensor q, Tensor k_cache, Tensor v_cache, Tensor block_tables, Tensor seq_lens, "
        "float scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(laneway, CPU, m) { m.impl("decode_attention", &decode_attention); }
