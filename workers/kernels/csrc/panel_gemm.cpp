// y = x @ w.T for a bfloat16 weight on AVX2 CPUs (no bfloat16 matmul in oneDNN there), with
// the weight packed once into panels of 16 output columns: panel p holds, for every k, the
// 16 weights w[16p .. 16p + 15][k] side by side (`panel_pack` in packed_linear.py), so one
// 32-byte load brings the weights of 16 outputs for one k.
//
// The inner loop broadcasts x[m][k] and multiplies it into the 16 columns: outer products
// into float32 accumulators held in registers, the way BLAS kernels work, where a row-dot
// kernel (bf16_small_gemm.cpp) re-reads every row of x from cache for each weight row and
// reduces each output horizontally. A block of up to 6 rows of x x 16 columns fills 12 of
// the 16 AVX2 registers; fewer rows take more panels at once, so every block keeps 8-12
// independent FMA chains in flight. The weight is read from memory once per call, whatever
// the row count.
//
// A bfloat16 is the top half of a float32: interleaving zeros below the 16-bit values
// (unpacklo/hi_epi16) widens them. Those unpacks work within 128-bit lanes, so the packing
// stores each k's 16 columns in the order 0-3, 8-11, 4-7, 12-15; the unpacks then give
// columns 0-7 and 8-15 in order.
//
// Every output is x[m] . w[n] summed over k in order, one FMA a step, in float32 (rounded to
// bfloat16 once at the end if asked): a row's result depends neither on the rows beside it
// nor on the thread count.
//
// Shapes: x (M, K) bfloat16 or float32; w_packed (ceil(N / 16) * K * 16,) bfloat16. Output
// (M, N) float32, or bfloat16 with bf16_out.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "bf16_vec.h"
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LANEWAY_PANEL_GEMM 1
#endif

namespace {

constexpr int64_t kPanel = 16;

#ifdef LANEWAY_PANEL_GEMM
constexpr int kMaxRowsPerBlock = 6;

// Columns [0, 16) of one output row, as float32 or rounded to bfloat16; `cols` < 16 only in
// the last panel of an N that is not a multiple of 16.
// The accumulators come by value: an array passed by address would make the compiler keep
// a copy in memory up to date on every step of the k loop.
inline void store_row(float* y, __m256 lo, __m256 hi, int64_t cols) {
  if (cols == kPanel) {
    _mm256_storeu_ps(y, lo);
    _mm256_storeu_ps(y + 8, hi);
    return;
  }
  alignas(32) float tmp[kPanel];
  _mm256_store_ps(tmp, lo);
  _mm256_store_ps(tmp + 8, hi);
  std::memcpy(y, tmp, cols * sizeof(float));
}

inline void store_row(uint16_t* y, __m256 lo, __m256 hi, int64_t cols) {
  alignas(32) float tmp[kPanel];  // columns 0-7, 8-15
  _mm256_store_ps(tmp, lo);
  _mm256_store_ps(tmp + 8, hi);
  uint16_t rounded[kPanel];
  for (int64_t c = 0; c < kPanel; c += laneway_bf16::kLanes) {
    laneway_bf16::f32v f;
    std::memcpy(&f, tmp + c, sizeof f);
    laneway_bf16::store(rounded + c, laneway_bf16::narrow(f));
  }
  std::memcpy(y, rounded, cols * sizeof(uint16_t));
}

// Rows [0, MR) of x against NP consecutive panels: y[m][16 p + j] for j < 16. The loops over
// m and p are unrolled before GCC decides what lives in registers: left rolled, it kept the
// accumulator array in memory and stored all 12 on every k step (half the speed).
template <int MR, int NP, typename Out>
inline void block(const float* x, int64_t K, const uint16_t* panels, Out* y, int64_t ldy, int64_t n0, int64_t N) {
  __m256 acc[MR][NP][2];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) acc[m][p][0] = acc[m][p][1] = _mm256_setzero_ps();
  const __m256i zero = _mm256_setzero_si256();
  for (int64_t k = 0; k < K; ++k) {
    __m256 w[NP][2];
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panels + (p * K + k) * kPanel));
      w[p][0] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, raw));
      w[p][1] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, raw));
    }
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const __m256 xb = _mm256_broadcast_ss(x + m * K + k);
#pragma GCC unroll 8
      for (int p = 0; p < NP; ++p) {
        acc[m][p][0] = _mm256_fmadd_ps(xb, w[p][0], acc[m][p][0]);
        acc[m][p][1] = _mm256_fmadd_ps(xb, w[p][1], acc[m][p][1]);
      }
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) {
      const int64_t col = n0 + p * kPanel;
      store_row(y + m * ldy + col, acc[m][p][0], acc[m][p][1], std::min<int64_t>(kPanel, N - col));
    }
}

// Panels [p_begin, p_end) for rows [0, MR), NP panels at a time, the rest one by one.
template <int MR, int NP, typename Out>
inline void rows_block(const float* x, int64_t K, const uint16_t* w, Out* y, int64_t N, int64_t p_begin,
                       int64_t p_end) {
  int64_t p = p_begin;
  for (; p + NP <= p_end; p += NP) block<MR, NP>(x, K, w + p * K * kPanel, y, N, p * kPanel, N);
  for (; p < p_end; ++p) block<MR, 1>(x, K, w + p * K * kPanel, y, N, p * kPanel, N);
}

template <typename Out>
void panel_gemm_impl(const float* x, const uint16_t* w, int64_t M, int64_t N, int64_t K, Out* y) {
  const int64_t num_panels = (N + kPanel - 1) / kPanel;
  // Split over panels: each thread streams its own stretch of the packed weight.
  at::parallel_for(0, num_panels, 4, [&](int64_t begin, int64_t end) {
    // Panels a few at a time, every row block against them while they are in cache.
    constexpr int64_t kPanelsPerPass = 8;
    for (int64_t p0 = begin; p0 < end; p0 += kPanelsPerPass) {
      const int64_t p1 = std::min(end, p0 + kPanelsPerPass);
      int64_t m = 0;
      for (; m + kMaxRowsPerBlock <= M; m += kMaxRowsPerBlock)
        rows_block<6, 1>(x + m * K, K, w, y + m * N, N, p0, p1);
      switch (M - m) {  // fewer rows, more panels at once: 8-10 accumulators
        case 1: rows_block<1, 4>(x + m * K, K, w, y + m * N, N, p0, p1); break;
        case 2: rows_block<2, 2>(x + m * K, K, w, y + m * N, N, p0, p1); break;
        case 3: rows_block<3, 2>(x + m * K, K, w, y + m * N, N, p0, p1); break;
        case 4: rows_block<4, 1>(x + m * K, K, w, y + m * N, N, p0, p1); break;
        case 5: rows_block<5, 1>(x + m * K, K, w, y + m * N, N, p0, p1); break;
        default: break;
      }
    }
  });
}
#endif

at::Tensor panel_gemm(const at::Tensor& x, const at::Tensor& w_packed, int64_t n, bool bf16_out) {
#ifdef LANEWAY_PANEL_GEMM
  TORCH_CHECK(x.dim() == 2, "panel_gemm: x (M, K)");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kFloat, "panel_gemm: bfloat16 or float32 x");
  TORCH_CHECK(w_packed.scalar_type() == at::kBFloat16 && w_packed.is_contiguous(), "panel_gemm: packed bfloat16 weight");
  const int64_t M = x.size(0), K = x.size(1);
  TORCH_CHECK(n > 0 && w_packed.numel() == (n + kPanel - 1) / kPanel * kPanel * K,
              "panel_gemm: packed weight does not hold ", n, " x ", K);
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  at::Tensor y = at::empty({M, n}, x.options().dtype(bf16_out ? at::kBFloat16 : at::kFloat));
  const uint16_t* wp = reinterpret_cast<const uint16_t*>(w_packed.data_ptr<at::BFloat16>());
  if (M == 0) return y;
  if (bf16_out) {
    panel_gemm_impl(xf.data_ptr<float>(), wp, M, n, K, reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>()));
  } else {
    panel_gemm_impl(xf.data_ptr<float>(), wp, M, n, K, y.data_ptr<float>());
  }
  return y;
#else
  TORCH_CHECK(false, "panel_gemm: built without AVX2 and FMA");
#endif
}

bool panel_gemm_available() {
#ifdef LANEWAY_PANEL_GEMM
  return true;
#else
  return false;
#endif
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(laneway, m) {
  m.def("panel_gemm(Tensor x, Tensor w_packed, int n, bool bf16_out=False) -> Tensor");
  m.def("panel_gemm_available() -> bool", &panel_gemm_available);
}

TORCH_LIBRARY_IMPL(laneway, CPU, m) { m.impl("panel_gemm", &panel_gemm); }
