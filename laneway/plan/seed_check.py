"""Seed 003's worked example (TP8 Kimi-style MoE on 8x B200, B=16), recomputed.

Every input is the seed's; every output is compared with the number the seed states.
`laneway plan --seed-check` prints the table; tests/sim/test_seed_example.py holds it to
the seed's rounding; docs/capacity.md discusses where the chain and the seed part ways.
"""

from __future__ import annotations

from dataclasses import dataclass

from laneway.plan.chain import cost_per_million, e2e_s, littles_law_rps, napkin_ttft_s, per_stream_tps
from workers.engine.linear_cost import LinearCost
from workers.engine.step_shape import StepShape
from workers.sim.presets import PRESETS

# The seed's inputs.
FIT = LinearCost(fixed_s=5.2e-3, per_token_s=1.65e-3, source="seed 003 linear fit: 5.2 ms + 1.65 ms x B")
BATCH = 16
MEASURED_PASS_S = 36.8e-3
CONTEXT_TOKENS = 80_000
TTFT_S = 1.6
OUTPUT_TOKENS = 1_056
MEASURED_E2E_S = 41.8
LIFECYCLE_AGGREGATE_TPS = 390.0  # measured output tok/s of the node (48.7 per GPU x 8)
TOKENS_PER_REQUEST = 85_000  # ~13K fresh + ~71K cached + ~1K output
NODE_PRICE_PER_HOUR = 48.0
FRESH_TOKENS_MEDIAN = 9_400
PREFILL_RATE = 78_000.0


@dataclass(frozen=True)
class Check:
    step: str
    computed: float
    seed_says: float
    unit: str

    @property
    def rel_error(self) -> float:
        return (self.computed - self.seed_says) / self.seed_says


def seed_checks() -> list[Check]:
    fit_pass = FIT.step_time(StepShape.decode(BATCH, 0))
    preset_pass = PRESETS["8xb200-moe"].cost.step_time(StepShape.decode(BATCH, CONTEXT_TOKENS))
    lifecycle_tps = LIFECYCLE_AGGREGATE_TPS / BATCH
    rps = littles_law_rps(BATCH, MEASURED_E2E_S)
    proc = rps * TOKENS_PER_REQUEST
    return [
        Check("per_pass_time(16) from the linear fit 5.2 + 1.65 B", fit_pass * 1e3, 31.6, "ms"),
        Check("per_pass_time(16), 8xb200-moe roofline preset at 80K context", preset_pass * 1e3, 36.8, "ms"),
        Check("per-stream TPS = 1 / measured per_pass", per_stream_tps(MEASURED_PASS_S), 27.0, "tok/s"),
        Check("decode time = 1,056 x 36.8 ms", OUTPUT_TOKENS * MEASURED_PASS_S, 38.9, "s"),
        Check("e2e = TTFT + output x per_pass", e2e_s(TTFT_S, OUTPUT_TOKENS, MEASURED_PASS_S), 40.5, "s"),
        Check("e2e vs the measured 41.84 s", e2e_s(TTFT_S, OUTPUT_TOKENS, MEASURED_PASS_S), 41.84, "s"),
        Check("lifecycle per-stream TPS = 390 / 16", lifecycle_tps, 24.0, "tok/s"),
        Check("e2e from lifecycle TPS = 1,000 / 24", 1_000 / lifecycle_tps, 41.8, "s"),
        Check("naive aggregate B x per-stream (overcounts)", BATCH * per_stream_tps(MEASURED_PASS_S), 432.0, "tok/s"),
        Check("sustained req/s = 16 / 41.8 (Little)", rps, 0.38, "req/s"),
        Check("processed tok/s = req/s x 85K", proc, 32_000.0, "tok/s"),
        Check("$ per M processed tokens at $48/h", cost_per_million(NODE_PRICE_PER_HOUR, proc), 0.42, "$"),
        Check("napkin TTFT = 9,400 x 16 / 78,000", napkin_ttft_s(FRESH_TOKENS_MEDIAN, BATCH, PREFILL_RATE), 1.9, "s"),
    ]


def render_seed_checks() -> str:
    lines = ["## seed 003 worked example, recomputed (SIMULATED: napkin and cost model, no hardware)", "",
             "| step | computed | seed says | off by |", "|---|---:|---:|---:|"]
    for c in seed_checks():
        lines.append(f"| {c.step} | {_num(c.computed)} {c.unit} | {_num(c.seed_says)} {c.unit} | {c.rel_error:+.1%} |")
    return "\n".join(lines)


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
