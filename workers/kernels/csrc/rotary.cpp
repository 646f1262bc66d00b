// Rotary position embedding of bfloat16 heads in place, in one op.
//
// workers/layers/rotary.py spells it as torch does it in the reference model: rotated =
// cat(-x2, x1); x * cos + rotated * sin, each product and the sum rounded to bfloat16. That
// is about ten dispatched ops a layer (slices, neg, cat, two muls, add) and two temporaries
// for a few hundred numbers at decode. Here it is one op over the rows as they lie in the
// qkv projection's output, with the same roundings, so the result is bitwise torch's.
//
// Shapes: x (T, H, D) bfloat16, its last dim contiguous (a view into the qkv output is fine);
// cos and sin (T, 1, D) bfloat16 contiguous, broadcast over the heads. D is even.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstdint>

#include "bf16.h"

namespace {

using laneway_bf16::from_float;
using laneway_bf16::to_float;

// bfloat16 ops as torch does them: widen, compute in float32, round once.
inline float mul(float a, float b) { return to_float(from_float(a * b)); }

// One head of one token: x[i] and x[i + half] are read before either is written.
inline void rotate_head(uint16_t* x, const uint16_t* c, const uint16_t* s, int64_t half) {
  for (int64_t i = 0; i < half; ++i) {
    const float lo = to_float(x[i]), hi = to_float(x[i + half]);
    x[i] = from_float(mul(lo, to_float(c[i])) + mul(-hi, to_float(s[i])));
    x[i + half] = from_float(mul(hi, to_float(c[i + half])) + mul(lo, to_float(s[i + half])));
  }
}

void rotary_embedding_(at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  TORCH_CHECK(x.dim() == 3 && x.stride(2) == 1 && x.size(2) % 2 == 0,
              "rotary_embedding_: x (T, H, D) with D even and contiguous");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && cos.scalar_type() == at::kBFloat16 &&
                  sin.scalar_type() == at::kBFloat16,
              "rotary_embedding_: bfloat16 x, cos and sin");
  const int64_t T = x.size(0), H = x.size(1), D = x.size(2);
  TORCH_CHECK(cos.dim() == 3 && cos.size(0) == T && cos.size(1) == 1 && cos.size(2) == D && cos.is_contiguous() &&
                  sin.sizes() == cos.sizes() && sin.is_contiguous(),
              "rotary_embedding_: cos and sin (T, 1, D), contiguous");
  uint16_t* xp = reinterpret_cast<uint16_t*>(x.data_ptr<at::BFloat16>());
  const uint16_t* cp = reinterpret_cast<const uint16_t*>(cos.data_ptr<at::BFloat16>());
  const uint16_t* sp = reinterpret_cast<const uint16_t*>(sin.data_ptr<at::BFloat16>());
  const int64_t st = x.stride(0), sh = x.stride(1);
  // Parallel only over many heads (a prefill chunk): a decode token's heads take less than
  // waking a thread team.
  at::parallel_for(0, T * H, 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = i / H, h = i % H;
      rotate_head(xp + t * st + h * sh, cp + t * D, sp + t * D, D / 2);
    }
  });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(laneway, m) { m.def("rotary_embedding_(Tensor(a!) x, Tensor cos, Tensor sin) -> ()"); }

TORCH_LIBRARY_IMPL(laneway, CPU, m) { m.impl("rotary_embedding_", &rotary_embedding_); }
