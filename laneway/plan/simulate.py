"""Run one worker's share of a workload through the virtual worker; summarise per endpoint.

Every request counts, from the first (a real run starts from an empty worker too), and
latencies are measured from the client's send time, so the gateway's batch window is
inside TTFT as a client sees it. Throughput is over the arrival window. Requests still
running when the simulation stops are counted as `unfinished`: they missed every budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from lanes.policy import Policy
from laneway.load.stats import percentile
from laneway.load.workload import Workload
from laneway.plan.traffic import sim_requests
from workers.engine.config import SchedulerConfig
from workers.sim.presets import SimPreset
from workers.sim.virtual_worker import OpenSource, SimRun, VirtualWorker, VirtualWorkerConfig


@dataclass(frozen=True)
class EngineShape:
    """The worker settings a plan assumes (the same flags as `laneway worker`)."""

    max_num_seqs: int = 64
    max_num_batched_tokens: int = 512
    max_model_len: int = 2048
    block_size: int = 16
    kv_memory_bytes: int | None = None  # None: the preset's free memory
    enable_prefix_caching: bool = True

    def config(self, preset: SimPreset) -> VirtualWorkerConfig:
        sched = SchedulerConfig(self.max_num_seqs, self.max_num_batched_tokens,
                                min(self.max_model_len, preset.max_model_len))
        return VirtualWorkerConfig(sched, preset.num_kv_blocks(self.block_size, self.kv_memory_bytes), self.block_size,
                                   self.enable_prefix_caching)


@dataclass(frozen=True)
class SimEndpoint:
    name: str
    num_requests: int
    completed: int
    unfinished: int
    rejected: int
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None
    tbt_p50_ms: float | None
    tbt_p95_ms: float | None
    e2e_p95_ms: float | None
    output_tps: float
    num_preemptions: int


@dataclass(frozen=True)
class SimSummary:
    endpoints: tuple[SimEndpoint, ...]
    output_tps: float
    processed_tps: float
    mean_batch_size: float
    busy_share: float  # of simulated time spent in steps
    peak_kv_usage: float
    num_preemptions: int
    num_steps: int
    stopped_early: bool

    def endpoint(self, name: str) -> SimEndpoint:
        return next(e for e in self.endpoints if e.name == name)


def simulate(preset: SimPreset, shape: EngineShape, workload: Workload, policy: Policy | None, num_workers: int = 1,
             drain_s: float | None = None) -> SimSummary:
    requests = sim_requests(workload, policy, num_workers)
    worker = VirtualWorker(preset.engine_step_cost, shape.config(preset))
    horizon = workload.duration_s + (drain_s if drain_s is not None else max(60.0, workload.duration_s))
    run = worker.run(OpenSource(requests), horizon_s=horizon)
    return summarize(run, workload)


def summarize(run: SimRun, workload: Workload) -> SimSummary:
    window = workload.duration_s
    eps = []
    total_out = total_proc = 0.0
    for e in workload.endpoints:
        mine = [o for o in run.outcomes if o.request.endpoint == e.name]
        done = [o for o in mine if o.finish_s is not None]
        ttfts = [o.ttft_s * 1e3 for o in done if o.ttft_s is not None]
        e2es = [(o.finish_s - o.request.at_s) * 1e3 for o in done if o.finish_s is not None]
        tbts = list(run.tbt_s.get(e.name, ()))
        out_tokens = sum(o.num_output_tokens for o in done)
        total_out += out_tokens
        total_proc += sum(o.num_output_tokens + o.request.prompt_tokens for o in done)
        eps.append(SimEndpoint(
            e.name, len(mine), len(done), sum(1 for o in mine if o.finish_s is None and o.rejected is None),
            sum(1 for o in mine if o.rejected is not None), percentile(ttfts, 50), percentile(ttfts, 95),
            percentile(ttfts, 99), _ms(percentile(tbts, 50)), _ms(percentile(tbts, 95)), percentile(e2es, 95),
            out_tokens / window, sum(o.num_preemptions for o in mine)))
    return SimSummary(tuple(eps), total_out / window, total_proc / window, run.mean_batch_size,
                      run.busy_s / run.end_s if run.end_s else 0.0, run.peak_kv_usage, run.num_preemptions,
                      run.num_steps, run.stopped_early)


def _ms(s: float | None) -> float | None:
    return None if s is None else s * 1e3
