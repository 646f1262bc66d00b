// y = x @ w.T for bfloat16 x (M, K) and weight (N, K) on Intel AMX: tiles of bfloat16 pairs
// multiplied into float32 sums (TDPBF16PS).
//
// Decode of a batch of streams is a few rows against every weight, and a prefill chunk a few
// hundred. oneDNN's AMX kernel on its packed weights streamed a `small` decode step's
// weights at 13-16 GB/s from 1 to 32 rows on the 2-core test machine, and slowed to 2 GB/s
// of weights at 512 rows (workers/bench/matmul_paths.py --cold-step). Here each block of 32
// weight rows is read from memory once, as tiles that `amx_pack` (kernels/packed_linear.py)
// lays out contiguously, and every 32-row chunk of x multiplies against it while it sits in
// L1/L2: the weights stream once whatever M is.
//
// Layout of a packed weight (N, K), N and K multiples of 32: [N/32][K/32][16][32][2], element
// (n, k) at the pair k/2 % 16 of column n % 32, k % 2 within the pair: VNNI order, what
// TDPBF16PS takes as its B operand, two tiles of 16 columns side by side (stride 128 bytes).
//
// Sums are float32 in the tile unit's order, rounded to bfloat16 once (bf16_out) like
// oneDNN's, so the last bit may differ from F.linear's, as with bf16_small_gemm. Work is
// split over blocks of 32 weight rows and each row of x is summed in the same order whatever
// rows share its tiles, so a result depends neither on the thread count nor on M.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

#include "bf16.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define LANEWAY_AMX 1
#endif

namespace {

constexpr int64_t kBlock = 32;  // weight rows (output columns) a block, and k a tile row
constexpr int64_t kMaxRows = 32;  // rows of x the tiles take at once (two 16-row halves)
// Weight tiles fetched ahead of the one being multiplied (8 KB): the tile loads alone left
// memory idle between requests. 2 to 4 tiles ahead measured best on the 2-core test machine
// (matmul_paths --cold-step 12: 9.7-11.3 ms against 12.2 without, at 32 rows), 16 no better
// than none.
constexpr int64_t kPrefetchTiles = 4;

#ifdef LANEWAY_AMX
// Linux hands a process the AMX register state only once it asks (arch_prctl); oneDNN asks
// too, but this kernel may run first.
bool amx_permitted() {
  static const bool ok = [] {
    constexpr int kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}

struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles: 0-1 sums of rows 0-15 (columns 0-15, 16-31 of the block), 2-3 of rows 16-31,
// 4-5 those rows of x, 6-7 the weight's two 16-column halves. Each thread configures its own.
void configure(int rows_lo, int rows_hi) {
  TileConfig cfg;
  auto set = [&](int tile, int rows) {
    cfg.rows[tile] = static_cast<uint8_t>(rows);
    cfg.colsb[tile] = 64;
  };
  set(0, rows_lo), set(1, rows_lo), set(4, rows_lo);
  if (rows_hi > 0) set(2, rows_hi), set(3, rows_hi), set(5, rows_hi);
  set(6, 16), set(7, 16);
  _tile_loadconfig(&cfg);
}

using laneway_bf16::store;

// One block of 32 output columns for rows [0, rows) of x (rows <= 32), tiles configured
// for that many rows: sums into the block's columns of y.
template <typename Out>
void block_rows(const uint16_t* x, const uint16_t* w_block, int64_t rows, int64_t N, int64_t K, int64_t n0, Out* y) {
  const int64_t rows_hi = rows - std::min<int64_t>(rows, 16);
  const int64_t x_stride = K * 2;  // bytes
  alignas(64) float sums[kMaxRows][kBlock];
  _tile_zero(0);
  _tile_zero(1);
  if (rows_hi > 0) {
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t kb = 0; kb < K / kBlock; ++kb) {
    const uint16_t* w_tile = w_block + kb * kBlock * kBlock;
    // Past the last block this names bytes beyond the weight: a prefetch never faults.
    const uintptr_t ahead = reinterpret_cast<uintptr_t>(w_tile) + kPrefetchTiles * kBlock * kBlock * 2;
    for (uintptr_t line = 0; line < kBlock * kBlock * 2; line += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead + line), _MM_HINT_T0);
    }
    _tile_loadd(6, w_tile, 128);
    _tile_loadd(7, w_tile + 32, 128);
    _tile_loadd(4, x + kb * kBlock, x_stride);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if (rows_hi > 0) {
      _tile_loadd(5, x + 16 * K + kb * kBlock, x_stride);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, &sums[0][0], 128);
  _tile_stored(1, &sums[0][16], 128);
  if (rows_hi > 0) {
    _tile_stored(2, &sums[16][0], 128);
    _tile_stored(3, &sums[16][16], 128);
  }
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t n = 0; n < kBlock; ++n) store(y, m * N + n0 + n, sums[m][n]);
  }
}

// Each block of 32 weight rows is read from memory once: every 32-row chunk of x multiplies
// against it while it sits in L2, so the weights stream once whatever M is.
template <typename Out>
void amx_gemm_rows(const uint16_t* x, const uint16_t* wp, int64_t M, int64_t N, int64_t K, Out* y) {
  const int64_t full_chunks = M / kMaxRows, tail = M % kMaxRows;
  at::parallel_for(0, N / kBlock, 1, [&](int64_t begin, int64_t end) {
    int configured = -1;  // rows the tiles are set up for
    auto rows_of = [&](int64_t rows) {
      if (configured != rows) {
        configure(static_cast<int>(std::min<int64_t>(rows, 16)), static_cast<int>(rows - std::min<int64_t>(rows, 16)));
        configured = static_cast<int>(rows);
      }
    };
    for (int64_t nb = begin; nb < end; ++nb) {
      const uint16_t* w_block = wp + nb * K * kBlock;
      for (int64_t c = 0; c < full_chunks; ++c) {
        rows_of(kMaxRows);
        block_rows(x + c * kMaxRows * K, w_block, kMaxRows, N, K, nb * kBlock, y + c * kMaxRows * N);
      }
      if (tail > 0) {
        rows_of(tail);
        block_rows(x + full_chunks * kMaxRows * K, w_block, tail, N, K, nb * kBlock, y + full_chunks * kMaxRows * N);
      }
    }
    _tile_release();
  });
}
#endif

bool amx_gemm_available() {
#ifdef LANEWAY_AMX
  return amx_permitted();
#else
  return false;
#endif
}

at::Tensor amx_gemm(const at::Tensor& x, const at::Tensor& packed, int64_t N, bool bf16_out) {
  TORCH_CHECK(amx_gemm_available(), "amx_gemm: this build or CPU has no AMX");
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kBFloat16, "amx_gemm: x is (M, K) bfloat16");
  const int64_t M = x.size(0), K = x.size(1);
  TORCH_CHECK(M >= 1, "amx_gemm: at least one row");
  TORCH_CHECK(N % kBlock == 0 && K % kBlock == 0, "amx_gemm: N and K multiples of ", kBlock);
  TORCH_CHECK(packed.scalar_type() == at::kBFloat16 && packed.is_contiguous() && packed.numel() == N * K,
              "amx_gemm: a weight packed by amx_pack for (", N, ", ", K, ")");
  at::Tensor y = at::empty({M, N}, x.options().dtype(bf16_out ? at::kBFloat16 : at::kFloat));
#ifdef LANEWAY_AMX
  const at::Tensor xc = x.contiguous();
  const auto* xp = reinterpret_cast<const uint16_t*>(xc.data_ptr<at::BFloat16>());
  const auto* wp = reinterpret_cast<const uint16_t*>(packed.data_ptr<at::BFloat16>());
  if (bf16_out) {
    amx_gemm_rows(xp, wp, M, N, K, reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>()));
  } else {
    amx_gemm_rows(xp, wp, M, N, K, y.data_ptr<float>());
  }
#endif
  return y;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(laneway, m) {
  m.def("amx_gemm(Tensor x, Tensor packed, int N, bool bf16_out=True) -> Tensor");
  m.def("amx_gemm_available() -> bool", &amx_gemm_available);
}

TORCH_LIBRARY_IMPL(laneway, CPU, m) { m.impl("amx_gemm", &amx_gemm); }
