// y = x @ w.T for a few rows of x and a bfloat16 weight, on CPUs without a bfloat16 matmul
// kernel in oneDNN (AVX2 only). torch's fallback there converts and multiplies row by row at
// about half the memory bandwidth; decode at batch 1 is one such product per weight. Here
// each weight row is read once for all rows of x, widened to float32 in registers (a
// bfloat16 is the top half of a float32) and accumulated in float32, so the product runs
// at the speed memory delivers the weight.
//
// On CPUs with AVX512_BF16 the product is vdpbf16ps on the bfloat16 values as they are:
// one instruction multiplies 32 pairs exactly (a bfloat16 product fits in a float32) and
// adds them into float32 accumulators, against the five instructions per 16 pairs that
// widening takes on AVX2. With the arithmetic that cheap, up to 8 rows of x share each
// pass over a weight row and the kernel stays at memory speed for more rows.
//
// Shapes: x (M, K) bfloat16 with M <= 64, w (N, K) bfloat16, both contiguous. Output (M, N)
// float32, or with bf16_out bfloat16 rounded once here (what a float32 result's `.to()`
// gives, without the second tensor and op). Work is split over output columns (weight rows), so
// a result never depends on the thread count, and each row of x is reduced in the same
// order whichever rows share its group, so a row's result never depends on M.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

#include "bf16.h"
#include "bf16_avx2.h"
#if (defined(__AVX2__) && defined(__FMA__)) || defined(__AVX512BF16__)
#include <immintrin.h>
#endif
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__)
#define LANEWAY_AVX512_BF16 1
#endif

namespace {

constexpr int64_t kMaxRows = 64;

using laneway_bf16::to_float;

using laneway_bf16::store;

#if defined(__AVX2__) && defined(__FMA__)
using laneway_bf16::hsum8;
using laneway_bf16::load_bf16x8;
#endif

// One weight row against M rows of x (float32): out[m] = dot(x[m], w_row).
template <int M>
inline void row_dots(const float* x, const uint16_t* w_row, int64_t K, float* out) {
  int64_t k = 0;
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc0[M], acc1[M];
  for (int m = 0; m < M; ++m) acc0[m] = acc1[m] = _mm256_setzero_ps();
  for (; k + 16 <= K; k += 16) {
    const __m256 w0 = load_bf16x8(w_row + k), w1 = load_bf16x8(w_row + k + 8);
    for (int m = 0; m < M; ++m) {
      acc0[m] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + m * K + k), acc0[m]);
      acc1[m] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + m * K + k + 8), acc1[m]);
    }
  }
  for (int m = 0; m < M; ++m) out[m] = hsum8(_mm256_add_ps(acc0[m], acc1[m]));
#else
  for (int m = 0; m < M; ++m) out[m] = 0.f;
#endif
  for (; k < K; ++k) {
    const float w = to_float(w_row[k]);
    for (int m = 0; m < M; ++m) out[m] += x[m * K + k] * w;
  }
}

#ifdef LANEWAY_AVX512_BF16
inline __m512bh load_bf16x32(const uint16_t* p, __mmask32 mask) {
  return reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(mask, p));
}

// One weight row against M rows of x (bfloat16): out[m] = dot(x[m], w_row), 64 pairs per
// pass in two accumulators per row; a tail under 64 goes 32 at a time under a mask.
template <int M>
inline void row_dots_bf16(const uint16_t* x, const uint16_t* w_row, int64_t K, float* out) {
  __m512 acc0[M], acc1[M];
  for (int m = 0; m < M; ++m) acc0[m] = acc1[m] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) {
    const __m512bh w0 = load_bf16x32(w_row + k, ~0u), w1 = load_bf16x32(w_row + k + 32, ~0u);
    for (int m = 0; m < M; ++m) {
      acc0[m] = _mm512_dpbf16_ps(acc0[m], w0, load_bf16x32(x + m * K + k, ~0u));
      acc1[m] = _mm512_dpbf16_ps(acc1[m], w1, load_bf16x32(x + m * K + k + 32, ~0u));
    }
  }
  for (; k < K; k += 32) {
    const int64_t left = std::min<int64_t>(32, K - k);
    const __mmask32 mask = left == 32 ? ~0u : (1u << left) - 1u;
    const __m512bh w0 = load_bf16x32(w_row + k, mask);
    for (int m = 0; m < M; ++m) acc0[m] = _mm512_dpbf16_ps(acc0[m], w0, load_bf16x32(x + m * K + k, mask));
  }
  for (int m = 0; m < M; ++m) out[m] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[m], acc1[m]));
}

template <typename Out>
void small_gemm_bf16(const uint16_t* x, const uint16_t* w, int64_t M, int64_t N, int64_t K, Out* y) {
  at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
    float dots[8];
    for (int64_t n = begin; n < end; ++n) {
      const uint16_t* w_row = w + n * K;
      for (int64_t m0 = 0; m0 < M; m0 += 8) {
        const int64_t g = std::min<int64_t>(8, M - m0);
        const uint16_t* xg = x + m0 * K;
        switch (g) {
          case 1: row_dots_bf16<1>(xg, w_row, K, dots); break;
          case 2: row_dots_bf16<2>(xg, w_row, K, dots); break;
          case 3: row_dots_bf16<3>(xg, w_row, K, dots); break;
          case 4: row_dots_bf16<4>(xg, w_row, K, dots); break;
          case 5: row_dots_bf16<5>(xg, w_row, K, dots); break;
          case 6: row_dots_bf16<6>(xg, w_row, K, dots); break;
          case 7: row_dots_bf16<7>(xg, w_row, K, dots); break;
          default: row_dots_bf16<8>(xg, w_row, K, dots); break;
        }
        for (int64_t m = 0; m < g; ++m) store(y, (m0 + m) * N + n, dots[m]);
      }
    }
  });
}
#endif

// Rows of x in groups of up to 4 (the accumulators of a group fill the 16 AVX2 registers),
// every group against each weight row while that row is still in L1: the weight is read
// from memory once, whatever M is.
template <typename Out>
void small_gemm(const float* x, const uint16_t* w, int64_t M, int64_t N, int64_t K, Out* y) {
  at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
    float dots[4];
    for (int64_t n = begin; n < end; ++n) {
      const uint16_t* w_row = w + n * K;
      for (int64_t m0 = 0; m0 < M; m0 += 4) {
        const int64_t g = std::min<int64_t>(4, M - m0);
        const float* xg = x + m0 * K;
        switch (g) {
          case 1: row_dots<1>(xg, w_row, K, dots); break;
          case 2: row_dots<2>(xg, w_row, K, dots); break;
          case 3: row_dots<3>(xg, w_row, K, dots); break;
          default: row_dots<4>(xg, w_row, K, dots); break;
        }
        for (int64_t m = 0; m < g; ++m) store(y, (m0 + m) * N + n, dots[m]);
      }
    }
  });
}

uint16_t* bf16_ptr(at::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>()); }

at::Tensor bf16_small_gemm(const at::Tensor& x, const at::Tensor& w, bool bf16_out) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), "bf16_small_gemm: x (M, K), w (N, K)");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && w.scalar_type() == at::kBFloat16,
              "bf16_small_gemm: bfloat16 x and w");
  TORCH_CHECK(x.size(0) <= kMaxRows, "bf16_small_gemm: at most ", kMaxRows, " rows");
  const at::Tensor wc = w.contiguous();
  const int64_t M = x.size(0), N = w.size(0), K = w.size(1);
  const uint16_t* wp = reinterpret_cast<const uint16_t*>(wc.data_ptr<at::BFloat16>());
  at::Tensor y = at::empty({M, N}, x.options().dtype(bf16_out ? at::kBFloat16 : at::kFloat));
#ifdef LANEWAY_AVX512_BF16
  const at::Tensor xc = x.contiguous();
  const uint16_t* xp = reinterpret_cast<const uint16_t*>(xc.data_ptr<at::BFloat16>());
  if (bf16_out) {
    small_gemm_bf16(xp, wp, M, N, K, bf16_ptr(y));
  } else {
    small_gemm_bf16(xp, wp, M, N, K, y.data_ptr<float>());
  }
#else
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  if (bf16_out) {
    small_gemm(xf.data_ptr<float>(), wp, M, N, K, bf16_ptr(y));
  } else {
    small_gemm(xf.data_ptr<float>(), wp, M, N, K, y.data_ptr<float>());
  }
#endif
  return y;
}

// Whether this build multiplies with vdpbf16ps (packed_linear.py routes 1-2 rows here then).
bool bf16_small_gemm_uses_bf16_dot() {
#ifdef LANEWAY_AVX512_BF16
  return true;
#else
  return false;
#endif
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(laneway, m) {
  m.def("bf16_small_gemm(Tensor x, Tensor w, bool bf16_out=False) -> Tensor");
  m.def("bf16_small_gemm_uses_bf16_dot() -> bool", &bf16_small_gemm_uses_bf16_dot);
}

TORCH_LIBRARY_IMPL(laneway, CPU, m) { m.impl("bf16_small_gemm", &bf16_small_gemm); }
