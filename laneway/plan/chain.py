"""The closed-form capacity chain of seed 003, one small function per step.

    per_stream_TPS = 1 / per_pass_time
    e2e            = TTFT + output_tokens * per_pass_time
    sustained rps  = concurrency / e2e                      (Little's law)
    processed TPS  = rps * tokens per request (fresh + cached + output)
    $/M tokens     = price per hour / (tokens/s * 3600) * 1e6
    napkin TTFT    = fresh_tokens * concurrency / prefill_rate

plan_chain() applies the same steps to a whole workload on one worker: it finds the
concurrency B that Little's law and the cost model agree on (B = sum of rate x time in
the batch, where that time depends on B), with prefill tokens stretching every pass.
It gives means, not percentiles; the simulation (simulate.py) gives the tails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workers.engine.step_shape import StepCost, StepShape


def per_stream_tps(per_pass_s: float) -> float:
    return 1.0 / per_pass_s


def e2e_s(ttft_s: float, output_tokens: float, per_pass_s: float) -> float:
    return ttft_s + output_tokens * per_pass_s


def littles_law_rps(concurrency: float, e2e: float) -> float:
    return concurrency / e2e


def cost_per_million(price_per_hour: float, tokens_per_s: float) -> float:
    return price_per_hour / (tokens_per_s * 3600.0) * 1e6


def napkin_ttft_s(fresh_tokens: float, concurrency: float, prefill_rate: float) -> float:
    return fresh_tokens * concurrency / prefill_rate


@dataclass(frozen=True)
class EndpointMix:
    """One endpoint's traffic on one worker, as the chain sees it: means only."""

    name: str
    rate_per_s: float
    prompt_tokens: float
    cached_tokens: float  # expected prefix-cache hit per request
    output_tokens: float
    dispatch_delay_s: float = 0.0  # gateway batch window before the worker sees it

    @property
    def fresh_tokens(self) -> float:
        return self.prompt_tokens - self.cached_tokens


@dataclass(frozen=True)
class ChainEndpoint:
    name: str
    ttft_s: float
    tbt_s: float
    e2e_s: float


@dataclass(frozen=True)
class ChainResult:
    is_stable: bool  # False: the offered load exceeds what the worker can serve; no steady state
    concurrency: float  # mean sequences in the batch (Little's law)
    per_pass_s: float  # mean pass, prefill tax included (the TBT a stream sees)
    decode_pass_s: float  # a pure decode pass at this concurrency
    prefill_share: float  # of the worker's time spent on prefill tokens
    output_tps: float
    processed_tps: float  # prompt (fresh + cached) + output tokens per second
    endpoints: tuple[ChainEndpoint, ...]
    reason: str = ""


def decode_pass(cost: StepCost, batch: float, context: float) -> float:
    """Pass time at a fractional batch: interpolated between its neighbours."""
    lo = max(1, math.floor(batch))
    hi = max(1, math.ceil(batch))
    t_lo = cost.step_time(StepShape.decode(lo, round(context)))
    if hi == lo:
        return t_lo
    t_hi = cost.step_time(StepShape.decode(hi, round(context)))
    return t_lo + (t_hi - t_lo) * (batch - lo)


def plan_chain(cost: StepCost, mix: list[EndpointMix], *, max_num_seqs: int, max_num_batched_tokens: int,
               kv_capacity_tokens: int) -> ChainResult:
    load = [m for m in mix if m.rate_per_s > 0]
    out_rate = sum(m.rate_per_s * m.output_tokens for m in load)
    proc_rate = sum(m.rate_per_s * (m.prompt_tokens + m.output_tokens) for m in load)
    if not load:
        return ChainResult(True, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, tuple(ChainEndpoint(m.name, 0, 0, 0) for m in mix))
    # Mean context of a decoding sequence, weighted by how long each endpoint decodes.
    context = sum(m.rate_per_s * m.output_tokens * (m.prompt_tokens + m.output_tokens / 2) for m in load) / out_rate
    mean_len = sum(m.rate_per_s * (m.prompt_tokens + m.output_tokens) for m in load) / sum(m.rate_per_s for m in load)
    ceiling = min(max_num_seqs, kv_capacity_tokens / mean_len)
    batch = 1.0
    for _ in range(200):
        result = _at(cost, load, mix, batch, context, max_num_batched_tokens, out_rate, proc_rate)
        if result is None:
            return _unstable(mix, batch, out_rate, proc_rate, "prefill alone needs more than the whole worker")
        nxt = max(1.0, sum(m.rate_per_s * (e.e2e_s - m.dispatch_delay_s)
                           for m, e in zip(load, result.endpoints)))
        if nxt > ceiling:
            why = "max_num_seqs" if max_num_seqs <= kv_capacity_tokens / mean_len else "the KV cache"
            return _unstable(mix, nxt, out_rate, proc_rate, f"needs more concurrent sequences than {why} allows "
                             f"({ceiling:.0f})")
        if abs(nxt - batch) < 1e-3 * max(1.0, batch):
            result = _at(cost, load, mix, nxt, context, max_num_batched_tokens, out_rate, proc_rate)
            if result is None:
                return _unstable(mix, nxt, out_rate, proc_rate, "prefill alone needs more than the whole worker")
            return result
        batch = nxt
    return _unstable(mix, batch, out_rate, proc_rate, "no steady state (concurrency keeps growing)")


def _at(cost: StepCost, load: list[EndpointMix], mix: list[EndpointMix], batch: float, context: float, budget: int,
        out_rate: float, proc_rate: float) -> ChainResult | None:
    decode = decode_pass(cost, batch, context)
    b = max(1, round(batch))
    base = StepShape.decode(b, round(context))
    chunk_room = max(1, budget - b)
    # Marginal time of each request's prefill when its chunks ride along with the decodes.
    prefill_time = {}
    for m in load:
        fresh = max(1.0, m.fresh_tokens)
        chunks = math.ceil(fresh / chunk_room)
        per_chunk = StepShape.prefill(round(fresh / chunks), round(m.cached_tokens))
        prefill_time[m.name] = (chunks, cost.step_time(base + per_chunk), cost.step_time(base + per_chunk) - decode)
    share = sum(m.rate_per_s * prefill_time[m.name][0] * prefill_time[m.name][2] for m in load)
    if share >= 1.0:
        return None
    per_pass = decode / (1.0 - share)
    eps = []
    for m in mix:
        if m.name not in prefill_time:
            eps.append(ChainEndpoint(m.name, 0.0, per_pass, 0.0))
            continue
        chunks, chunk_pass, _ = prefill_time[m.name]
        ttft = m.dispatch_delay_s + per_pass / 2 + chunks * chunk_pass  # wait for the pass in flight, then prefill
        eps.append(ChainEndpoint(m.name, ttft, per_pass, e2e_s(ttft, max(0.0, m.output_tokens - 1), per_pass)))
    return ChainResult(True, batch, per_pass, decode, share, out_rate, proc_rate, tuple(eps))


def _unstable(mix: list[EndpointMix], batch: float, out_rate: float, proc_rate: float, reason: str) -> ChainResult:
    inf = float("inf")
    return ChainResult(False, batch, inf, inf, 1.0, out_rate, proc_rate,
                       tuple(ChainEndpoint(m.name, inf, inf, inf) for m in mix), reason)
