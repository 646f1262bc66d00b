"""`laneway load --self-test 50,100,200`: how fast can this generator send, accurately?

Starts the fake server (fake_server.py) as its own process, so its work does not run on
the generator's event loop, and drives it open loop at each rate with streamed requests.
Per rate it reports the send lag (actual minus scheduled send time) p50 / p99 / max, the
achieved send rate, and the client-measured TTFT against the server's fixed one (the
client's own overhead inside every TTFT it reports). The generator is fit for a rate
when its send lag p99 stays under a few ms there; on a shared 2-core machine the server
and generator compete for the same cores, so the limit found is a lower bound.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from laneway.load.arrivals import Poisson
from laneway.load.lengths import Fixed
from laneway.load.open_loop import Target, run_open_loop
from laneway.load.stats import percentile
from laneway.load.workload import EndpointWorkload, Workload
from laneway.procs import Proc, free_port

LAG_OK_MS = 10.0  # p99 send lag under which a rate counts as accurately driven


@dataclass(frozen=True)
class SelfTestRow:
    rate: float
    num_requests: int
    num_ok: int
    achieved_rate: float  # requests actually sent per second
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    ttft_p50_ms: float | None  # client-side; the server's own is fixed (render's header)
    load_average: float  # 1-minute load average after the rate's run: what else ran on the cores

    @property
    def is_accurate(self) -> bool:
        return self.lag_p99_ms <= LAG_OK_MS and self.num_ok == self.num_requests


def run_self_test(rates: list[float], duration_s: float = 5.0, output_tokens: int = 8, ttft_ms: float = 20.0,
                  tbt_ms: float = 10.0) -> list[SelfTestRow]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="laneway-selftest-") as tmp:
        port = free_port()
        server = Proc("fake-openai", _server_cmd(port, ttft_ms, tbt_ms), port, Path(tmp) / "fake.log").start()
        try:
            server.wait_port(30)
            for rate in rates:
                rows.append(_one_rate(f"http://127.0.0.1:{port}", rate, duration_s, output_tokens))
        finally:
            server.stop()
    return rows


def _server_cmd(port: int, ttft_ms: float, tbt_ms: float) -> list[str]:
    import sys

    return [sys.executable, "-m", "laneway.load.fake_server", "--port", str(port), "--ttft-ms", str(ttft_ms),
            "--tbt-ms", str(tbt_ms)]


def _one_rate(url: str, rate: float, duration_s: float, output_tokens: int) -> SelfTestRow:
    endpoint = EndpointWorkload("/v1/completions", Poisson(rate), Fixed(16), Fixed(output_tokens))
    workload = Workload((endpoint,), duration_s=duration_s, seed=1, api="completions", model="fake")
    plan = workload.requests()
    run = asyncio.run(run_open_loop(Target(url), workload, plan, label=f"self-test {rate:g}/s", drain_timeout_s=30))
    lags = [(r.sent_at - r.scheduled_at) * 1e3 for r in run.results]
    sent = sorted(r.sent_at for r in run.results)
    span = sent[-1] - sent[0] if len(sent) > 1 else 0.0
    ttfts = [r.ttft_s * 1e3 for r in run.results if r.ttft_s is not None]
    return SelfTestRow(rate, len(run.results), sum(1 for r in run.results if r.ok),
                       (len(sent) - 1) / span if span > 0 else 0.0, percentile(lags, 50) or 0.0,
                       percentile(lags, 99) or 0.0, max(lags, default=0.0), percentile(ttfts, 50),
                       run.load_after[0])


def render(rows: list[SelfTestRow], ttft_ms: float, tbt_ms: float, output_tokens: int) -> str:
    lines = [f"## generator self-test: fake server (separate process) with TTFT {ttft_ms:g} ms, "
             f"{output_tokens} tokens {tbt_ms:g} ms apart, streamed",
             "", "| rate req/s | sent | ok | achieved req/s | send lag p50 / p99 / max ms | client TTFT p50 ms "
                 "| load avg |",
             "|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        ttft = "-" if r.ttft_p50_ms is None else f"{r.ttft_p50_ms:.1f}"
        lines.append(f"| {r.rate:g} | {r.num_requests} | {r.num_ok} | {r.achieved_rate:.1f} | "
                     f"{r.lag_p50_ms:.2f} / {r.lag_p99_ms:.2f} / {r.lag_max_ms:.1f} | {ttft} | {r.load_average:.1f} |")
    ordered = sorted(rows, key=lambda r: r.rate)
    held = 0.0
    for r in ordered:
        if not r.is_accurate:
            break
        held = r.rate
    lines.append(f"\naccurate (send lag p99 <= {LAG_OK_MS:g} ms, every request served) at every rate up to "
                 f"{held:g} req/s" if held else f"\nthe lowest rate already missed send lag p99 <= {LAG_OK_MS:g} ms")
    later = [r.rate for r in ordered if r.is_accurate and r.rate > held]
    if later:
        lines.append(f"(also accurate at {', '.join(f'{x:g}' for x in later)} req/s: a miss below them came from the "
                     f"machine, e.g. another process taking the cores, not from the rate; see the load average)")
    return "\n".join(lines)
