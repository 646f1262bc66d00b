"""A per-pass time fitted from measurements (`laneway calibrate`):

    step = fixed + per_token * num_tokens + per_kv_token * kv_tokens_read
         + per_pair * attention_pairs + per_seq * num_seqs

The seed's empirical fit `5.2 ms + 1.65 ms * B` is this with per_token = 1.65 ms at a
fixed context (decode: num_tokens = B). Coefficients are kept as fitted, negative or not:
a negative one says the fit is extrapolating, and clamping it would hide that.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from workers.engine.step_shape import StepShape


@dataclass(frozen=True)
class LinearCost:
    fixed_s: float
    per_token_s: float = 0.0
    per_kv_token_s: float = 0.0
    per_pair_s: float = 0.0  # causal attention: prefill chunks grow with their length squared
    per_seq_s: float = 0.0
    source: str = ""  # how it was obtained (command, machine), carried into reports

    def step_time(self, shape: StepShape) -> float:
        if shape.num_tokens == 0:
            return 0.0
        t = (self.fixed_s + self.per_token_s * shape.num_tokens + self.per_kv_token_s * shape.kv_tokens_read
             + self.per_pair_s * shape.attention_pairs + self.per_seq_s * shape.num_seqs)
        return max(t, 0.0)  # a fit may dip below zero far outside its data; time cannot

    def describe(self) -> str:
        return (f"linear fit: {self.fixed_s * 1e3:.3f} ms + {self.per_token_s * 1e3:.4f} ms/token "
                f"+ {self.per_kv_token_s * 1e6:.4f} us/KV token + {self.per_pair_s * 1e9:.3f} ns/attention pair "
                f"+ {self.per_seq_s * 1e3:.4f} ms/seq")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> LinearCost:
        keys = ("fixed_s", "per_token_s", "per_kv_token_s", "per_pair_s", "per_seq_s")
        return cls(**{k: data[k] for k in keys if k in data},
                   source=str(data.get("source", "")))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
