"""`laneway plan` output: every header says SIMULATED, chain and simulation side by side.

The chain gives means, the simulation gives percentiles; a row where the two differ by
more than DISAGREE says so, because that is where a napkin alone would have misled.
"""

from __future__ import annotations

from laneway.load.workload import Budget, Workload
from laneway.plan.capacity import Curve, RegionPoint, WorkersAnswer
from laneway.plan.chain import ChainResult, cost_per_million
from laneway.plan.simulate import EngineShape, SimSummary
from workers.sim.presets import SimPreset

DISAGREE = 0.3  # relative gap between chain mean and simulated median worth pointing out


def header(preset: SimPreset, shape: EngineShape, workload: Workload, policy_name: str | None) -> str:
    blocks = preset.num_kv_blocks(shape.block_size, shape.kv_memory_bytes)
    return "\n".join([
        f"# laneway plan: SIMULATED ({preset.name}: {preset.description})",
        "",
        f"- cost model: {preset.engine_step_cost.describe()}",
        f"- KV pool: {blocks} blocks of {shape.block_size} tokens = {blocks * shape.block_size:,} tokens "
        f"({blocks * shape.block_size * preset.kv_bytes_per_token / 1e9:.2f} GB at "
        f"{preset.kv_bytes_per_token:,} B/token)",
        f"- worker: max_num_seqs {shape.max_num_seqs}, max_num_batched_tokens {shape.max_num_batched_tokens}, "
        f"prefix caching {'on' if shape.enable_prefix_caching else 'off'}",
        f"- workload: {workload.source}, {workload.duration_s:.0f}s of arrivals (seed {workload.seed}); "
        f"policy: {policy_name or 'none (default lane, no batch window)'}",
        "- numbers are predictions from a cost model, not measurements",
    ])


def endpoint_table(workload: Workload, budgets: dict[str, Budget], chain: ChainResult, sim: SimSummary,
                   verdicts: dict[str, str], num_workers: int) -> str:
    lines = [f"## per endpoint, {num_workers} worker(s): chain (mean) vs simulation (p50 / p95)", "",
             "| endpoint | req/s per worker | budget TTFT / TBT ms | TTFT chain | TTFT sim p50 / p95 | TBT chain "
             "| TBT sim p50 / p95 | out tok/s sim | verdict (sim) |",
             "|---|---:|---|---:|---|---:|---|---:|---|"]
    notes = []
    for e in workload.endpoints:
        c = next(x for x in chain.endpoints if x.name == e.name)
        s = sim.endpoint(e.name)
        b = budgets.get(e.name, Budget())
        lines.append(
            f"| {e.name} | {e.arrival.mean_rate / num_workers:.3g} | {_ms(b.ttft_p95_ms)} / {_ms(b.tbt_p95_ms)} | "
            f"{_ms(c.ttft_s * 1e3)} | {_ms(s.ttft_p50_ms)} / {_ms(s.ttft_p95_ms)} | {_ms(c.tbt_s * 1e3)} | "
            f"{_ms(s.tbt_p50_ms)} / {_ms(s.tbt_p95_ms)} | {s.output_tps:.1f} | {verdicts.get(e.name, '-')} |")
        for what, mean, median in (("TTFT", c.ttft_s * 1e3, s.ttft_p50_ms), ("TBT", c.tbt_s * 1e3, s.tbt_p50_ms)):
            if median and mean != float("inf") and abs(mean - median) / median > DISAGREE:
                notes.append(f"- {e.name} {what}: chain {mean:.0f} ms vs simulated median {median:.0f} ms "
                             f"({(mean - median) / median:+.0%})")
        if s.unfinished or s.rejected:
            notes.append(f"- {e.name}: {s.unfinished} unfinished and {s.rejected} rejected of {s.num_requests} in the "
                         f"simulation")
    if not chain.is_stable:
        notes.append(f"- the chain finds no steady state: {chain.reason}")
    if notes:
        lines += ["", f"where chain and simulation disagree (>{DISAGREE:.0%}) or requests were lost:", *notes]
    return "\n".join(lines)


def throughput_table(chain: ChainResult, sim: SimSummary, preset: SimPreset, num_workers: int,
                     gpu_hour_price: float | None) -> str:
    lines = ["## throughput per worker", "",
             "| | chain | simulation |", "|---|---:|---:|",
             f"| output tok/s | {chain.output_tps:.1f} | {sim.output_tps:.1f} |",
             f"| processed tok/s (prompt + output) | {chain.processed_tps:.1f} | {sim.processed_tps:.1f} |",
             f"| mean batch (sequences per pass) | {chain.concurrency:.2f} | {sim.mean_batch_size:.2f} |",
             f"| mean pass ms | {chain.per_pass_s * 1e3:.1f} | - |",
             f"| prefill share of time / busy share | {chain.prefill_share:.0%} | {sim.busy_share:.0%} busy |",
             f"| preemptions, peak KV use | - | {sim.num_preemptions}, {sim.peak_kv_usage:.0%} |"]
    if gpu_hour_price is not None and sim.output_tps > 0:
        hourly = gpu_hour_price * preset.num_devices
        lines += ["", f"cost at ${gpu_hour_price:g}/GPU-hour x {preset.num_devices} GPU(s) = ${hourly:g}/h per worker, "
                      f"{num_workers} worker(s): ${cost_per_million(hourly, sim.output_tps):.3f} per M output tokens, "
                      f"${cost_per_million(hourly, sim.processed_tps):.3f} per M processed tokens (at this load; "
                      f"idle time is paid for too)"]
    return "\n".join(lines)


def curve_table(curve: Curve, context: float, preset: SimPreset, gpu_hour_price: float | None) -> str:
    lines = [f"## the curve at the workload's mean decode context ({context:.0f} tokens), cost model only", "",
             "| batch | pass ms | aggregate tok/s | per-stream tok/s | note |", "|---:|---:|---:|---:|---|"]
    for p in curve.points:
        note = []
        if p.batch_size == curve.plateau_batch:
            note.append("plateau starts")
        if p.batch_size >= curve.cliff_batch:
            note.append("past the KV cliff")
        lines.append(f"| {p.batch_size} | {p.pass_s * 1e3:.1f} | {p.aggregate_tps:.0f} | {p.per_stream_tps:.1f} | "
                     f"{', '.join(note)} |")
    plateau = curve.plateau
    lines.append("")
    lines.append(f"plateau: batch {curve.plateau_batch} ({plateau.aggregate_tps:.0f} tok/s aggregate, "
                 f"{plateau.per_stream_tps:.1f} per stream); KV cliff: {curve.cliff_batch} sequences of the mean "
                 f"final length no longer fit")
    if gpu_hour_price is not None:
        hourly = gpu_hour_price * preset.num_devices
        lines.append(f"at the plateau, flat out: ${cost_per_million(hourly, plateau.aggregate_tps):.3f} per M "
                     f"decode tokens")
    return "\n".join(lines)


def regions_table(points: list[RegionPoint], prompt: int, output: int, cached: float) -> str:
    lines = [f"## closed-loop regions on the virtual worker ({prompt}-token prompts, {cached:.0%} of each the user's "
             f"cacheable context; {output} out; real scheduler)", "",
             "| concurrency | aggregate out tok/s | per stream | TTFT p50 s | preemptions | mean batch |",
             "|---:|---:|---:|---:|---:|---:|"]
    for p in points:
        ttft = "-" if p.ttft_p50_s is None else f"{p.ttft_p50_s:.2f}"
        lines.append(f"| {p.concurrency} | {p.aggregate_tps:.1f} | {p.per_stream_tps:.2f} | {ttft} | "
                     f"{p.num_preemptions} | {p.mean_batch_size:.1f} |")
    return "\n".join(lines)


def workers_text(answer: WorkersAnswer) -> str:
    chain = "none up to the limit" if answer.chain_workers is None else str(answer.chain_workers)
    sim = "none up to the limit" if answer.sim_workers is None else str(answer.sim_workers)
    return "\n".join(["## workers needed to hold every endpoint's budget", "",
                      f"- chain (means against p95 budgets; a lower bound): {chain}",
                      f"- simulation (p95s, tried {', '.join(map(str, answer.tried))}): {sim}"])


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    if v == float("inf"):
        return "inf"
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}"
