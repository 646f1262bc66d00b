// SwiGLU's activation, silu(gate) * up, of bfloat16 rows in one op.
//
// workers/layers/mlp.py takes gate and up as the two halves of one projection's output.
// torch does it as split, silu and mul: three dispatched ops a layer, and a temporary, for a
// few thousand numbers at decode. Here it is one op with torch's roundings: silu computed in
// float32 and rounded to bfloat16, then the product rounded once. exp is a polynomial of
// about an ulp in float32 (Cephes' expf), where torch uses Sleef's; the two can land on
// either side of a bfloat16 rounding boundary, so a rare element differs by one step
// (tests/workers/layers/test_mlp.py bounds it).
//
// The arithmetic is written in GCC vector types of 16 floats (bf16_vec.h).
//
// Shapes: gate_up (T, 2I) bfloat16 contiguous, gate in the first I columns; output (T, I).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "bf16_vec.h"

namespace {

using laneway_bf16::f32v;
using laneway_bf16::i32v;
using laneway_bf16::kLanes;
using laneway_bf16::load;
using laneway_bf16::narrow;
using laneway_bf16::splat;
using laneway_bf16::u16v;
using laneway_bf16::widen;

// exp(x), Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-6 polynomial.
// Past float32's range it is inf, as torch's exp is (so silu of a large negative is -0).
inline f32v exp_v(f32v x) {
  const f32v overflows = reinterpret_cast<f32v>(x > splat(88.72283935546875f));
  x = x < splat(88.3762626647949f) ? x : splat(88.3762626647949f);
  x = x > splat(-88.3762626647949f) ? x : splat(-88.3762626647949f);
  f32v fx = x * 1.44269504088896341f + 0.5f;
  i32v n = __builtin_convertvector(fx, i32v);  // toward zero, then down to the floor
  n -= reinterpret_cast<i32v>(__builtin_convertvector(n, f32v) > fx) & 1;
  const f32v nf = __builtin_convertvector(n, f32v);
  x = x - nf * 0.693359375f + nf * 2.12194440e-4f;
  f32v y = splat(1.9875691500E-4f);
  y = y * x + 1.3981999507E-3f;
  y = y * x + 8.3334519073E-3f;
  y = y * x + 4.1665795894E-2f;
  y = y * x + 1.6666665459E-1f;
  y = y * x + 5.0000001201E-1f;
  y = y * x * x + x + 1.f;
  const i32v scale_bits = (n + 127) << 23;
  f32v scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  y *= scale;
  return reinterpret_cast<i32v>(overflows) ? splat(__builtin_inff()) : y;
}

// kLanes elements: out = bf16(bf16(silu(gate)) * up).
inline u16v silu_mul_v(const uint16_t* gate, const uint16_t* up) {
  const f32v g = widen(load(gate));
  const u16v silu = narrow(g / (1.f + exp_v(-g)));
  return narrow(widen(silu) * widen(load(up)));
}

void silu_mul_row(const uint16_t* gate, const uint16_t* up, int64_t I, uint16_t* out) {
  int64_t i = 0;
  for (; i + kLanes <= I; i += kLanes) {
    const u16v r = silu_mul_v(gate + i, up + i);
    std::memcpy(out + i, &r, sizeof r);
  }
  if (i < I) {  // the tail through the same arithmetic, padded with zeros
    uint16_t g[kLanes] = {}, u[kLanes] = {};
    std::copy(gate + i, gate + I, g);
    std::copy(up + i, up + I, u);
    const u16v r = silu_mul_v(g, u);
    std::memcpy(out + i, &r, (I - i) * sizeof(uint16_t));
  }
}

at::Tensor silu_mul(const at::Tensor& gate_up) {
  TORCH_CHECK(gate_up.dim() == 2 && gate_up.size(1) % 2 == 0, "silu_mul: gate_up (T, 2I)");
  TORCH_CHECK(gate_up.scalar_type() == at::kBFloat16, "silu_mul: bfloat16 gate_up");
  const at::Tensor x = gate_up.contiguous();
  const int64_t T = x.size(0), I = x.size(1) / 2;
  at::Tensor out = at::empty({T, I}, x.options());
  const uint16_t* xp = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  uint16_t* op = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  // Rows in parallel only when there are several (a prefill chunk): a decode row is a couple
  // of microseconds, less than waking a thread team.
  at::parallel_for(0, T, 4, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) silu_mul_row(xp + t * 2 * I, xp + t * 2 * I + I, I, op + t * I);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(laneway, m) { m.def("silu_mul(Tensor gate_up) -> Tensor"); }

TORCH_LIBRARY_IMPL(laneway, CPU, m) { m.impl("silu_mul", &silu_mul); }
