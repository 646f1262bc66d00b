// y = x @ w.T for a few rows of x and a bfloat16 weight, on CPUs without a bfloat16 matmul
// kernel in oneDNN (AVX2 only). torch's fallback there converts and multiplies row by row at
// about half the memory bandwidth; decode at batch 1 is one such product per weight. Here
// each weight row is read once for all rows of x, widened to float32 in registers (a
// bfloat16 is the top half of a float32) and accumulated in float32, so the product runs
// at the speed memory delivers the weight.
//
// Shapes: x (M, K) bfloat16 with M <= 64, w (N, K) bfloat16, both contiguous. Output (M, N)
// float32; the caller rounds it once. Work is split over output columns (weight rows), so
// a result never depends on the thread count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace {

constexpr int64_t kMaxRows = 64;

inline float bf16_to_float(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

#if defined(__AVX2__) && defined(__FMA__)
inline __m256 load_bf16x8(const uint16_t* p) {
  __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}
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
  for (int m = 0; m < M; ++m) out[m] = hsum(_mm256_add_ps(acc0[m], acc1[m]));
#else
  for (int m = 0; m < M; ++m) out[m] = 0.f;
#endif
  for (; k < K; ++k) {
    const float w = bf16_to_float(w_row[k]);
    for (int m = 0; m < M; ++m) out[m] += x[m * K + k] * w;
  }
}

// Rows of x in groups of up to 4 (the accumulators of a group fill the 16 AVX2 registers),
// every group against each weight row while that row is still in L1: the weight is read
// from memory once, whatever M is.
void small_gemm(const float* x, const uint16_t* w, int64_t M, int64_t N, int64_t K, float* y) {
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
        for (int64_t m = 0; m < g; ++m) y[(m0 + m) * N + n] = dots[m];
      }
    }
  });
}

at::Tensor bf16_small_gemm(const at::Tensor& x, const at::Tensor& w) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), "bf16_small_gemm: x (M, K), w (N, K)");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && w.scalar_type() == at::kBFloat16,
              "bf16_small_gemm: bfloat16 x and w");
  TORCH_CHECK(x.size(0) <= kMaxRows, "bf16_small_gemm: at most ", kMaxRows, " rows");
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  const at::Tensor wc = w.contiguous();
  const int64_t M = x.size(0), N = w.size(0), K = w.size(1);
  at::Tensor y = at::empty({M, N}, x.options().dtype(at::kFloat));
  const float* xp = xf.data_ptr<float>();
  const uint16_t* wp = reinterpret_cast<const uint16_t*>(wc.data_ptr<at::BFloat16>());
  float* yp = y.data_ptr<float>();
  small_gemm(xp, wp, M, N, K, yp);
  return y;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(laneway, m) { m.def("bf16_small_gemm(Tensor x, Tensor w) -> Tensor"); }

TORCH_LIBRARY_IMPL(laneway, CPU, m) { m.impl("bf16_small_gemm", &bf16_small_gemm); }
