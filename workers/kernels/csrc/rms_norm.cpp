// RMSNorm of bfloat16 rows in one op, optionally after the residual add that precedes it.
//
// The model's RMSNorm (workers/layers/norm.py) spells out the reference Llama's arithmetic:
// widen to float32, scale by 1 / sqrt(mean(x^2) + eps), round to bfloat16, multiply by the
// bfloat16 weight (a product rounded once). In torch that is about six dispatched ops per
// norm, plus one for the residual add; at batch 1 a decode step runs 25 norms and 24 adds,
// each op costing more in dispatch than in arithmetic. Here each is one op with the same
// roundings; only the sum of squares may be added in another order than torch's (16 partial
// sums, then the lanes).
//
// Shapes: x and residual (T, D) bfloat16, weight (D) bfloat16, all contiguous.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <tuple>

#include "bf16.h"
#include "bf16_vec.h"

namespace {

using laneway_bf16::f32v;
using laneway_bf16::from_float;
using laneway_bf16::kLanes;
using laneway_bf16::load;
using laneway_bf16::narrow;
using laneway_bf16::to_float;
using laneway_bf16::widen;

// One row: out = bf16(w * bf16(x * rsqrt(mean(x^2) + eps))), 16 values at a time (bf16_vec.h)
// and the tail one by one, with the same roundings.
inline void norm_row(const uint16_t* x, const uint16_t* w, int64_t D, float eps, uint16_t* out) {
  f32v squares = {};
  int64_t i = 0;
  for (; i + kLanes <= D; i += kLanes) {
    const f32v v = widen(load(x + i));
    squares += v * v;
  }
  float sum = 0.f;
  for (int j = 0; j < kLanes; ++j) sum += squares[j];
  for (; i < D; ++i) sum += to_float(x[i]) * to_float(x[i]);
  const float inv = 1.f / std::sqrt(sum / static_cast<float>(D) + eps);
  for (i = 0; i + kLanes <= D; i += kLanes) {
    const f32v normed = widen(narrow(widen(load(x + i)) * inv));
    laneway_bf16::store(out + i, narrow(widen(load(w + i)) * normed));
  }
  for (; i < D; ++i) {
    const float normed = to_float(from_float(to_float(x[i]) * inv));
    out[i] = from_float(to_float(w[i]) * normed);
  }
}

// sum = bf16(x + residual), the bfloat16 add's rounding.
inline void add_row(const uint16_t* x, const uint16_t* residual, int64_t D, uint16_t* sum) {
  int64_t i = 0;
  for (; i + kLanes <= D; i += kLanes) {
    laneway_bf16::store(sum + i, narrow(widen(load(x + i)) + widen(load(residual + i))));
  }
  for (; i < D; ++i) sum[i] = from_float(to_float(x[i]) + to_float(residual[i]));
}

void check(const at::Tensor& x, const at::Tensor& weight, const char* op) {
  TORCH_CHECK(x.dim() == 2 && weight.dim() == 1 && x.size(1) == weight.size(0), op, ": x (T, D), weight (D)");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && weight.scalar_type() == at::kBFloat16, op,
              ": bfloat16 x and weight");
}

const uint16_t* u16(const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()); }
uint16_t* u16_mut(at::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>()); }

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check(x, weight, "rms_norm");
  const at::Tensor xc = x.contiguous(), wc = weight.contiguous();
  at::Tensor out = at::empty_like(xc);
  const int64_t T = xc.size(0), D = xc.size(1);
  const uint16_t *xp = u16(xc), *wp = u16(wc);
  uint16_t* op = u16_mut(out);
  // Rows in parallel only when there are many (a prefill chunk): one decode row is a few
  // hundred nanoseconds, less than waking a thread team.
  at::parallel_for(0, T, 64, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) norm_row(xp + t * D, wp, D, static_cast<float>(eps), op + t * D);
  });
  return out;
}

// (x + residual, rms_norm(x + residual)): the sum rounded to bfloat16 first, as a bfloat16 add is.
std::tuple<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& residual,
                                                const at::Tensor& weight, double eps) {
  check(x, weight, "add_rms_norm");
  TORCH_CHECK(residual.sizes() == x.sizes() && residual.scalar_type() == at::kBFloat16,
              "add_rms_norm: residual like x");
  const at::Tensor xc = x.contiguous(), rc = residual.contiguous(), wc = weight.contiguous();
  at::Tensor sum = at::empty_like(xc), out = at::empty_like(xc);
  const int64_t T = xc.size(0), D = xc.size(1);
  const uint16_t *xp = u16(xc), *rp = u16(rc), *wp = u16(wc);
  uint16_t *sp = u16_mut(sum), *op = u16_mut(out);
  at::parallel_for(0, T, 64, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      add_row(xp + t * D, rp + t * D, D, sp + t * D);
      norm_row(sp + t * D, wp, D, static_cast<float>(eps), op + t * D);
    }
  });
  return {sum, out};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(laneway, m) {
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor");
  m.def("add_rms_norm(Tensor x, Tensor residual, Tensor weight, float eps) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(laneway, CPU, m) {
  m.impl("rms_norm", &rms_norm);
  m.impl("add_rms_norm", &add_rms_norm);
}
