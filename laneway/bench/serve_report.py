"""The `laneway bench serve` section of docs/benchmarks.md: table, gateway overhead, targets (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from laneway.bench.serve_stats import LevelResult

START, END = "<!-- bench:serve:start -->", "<!-- bench:serve:end -->"
LANEWAY, DIRECT = "Laneway (gateway + worker)", "Laneway worker, direct gRPC (no gateway)"
LANEWAY_NO_LANES = "Laneway gateway --no-lanes + worker"
# The gateway on the older wire: a Generate call per stream instead of the shared Session call.
LANEWAY_PER_STREAM = "Laneway gateway --worker-calls per-stream + worker"
GATEWAYS = (LANEWAY, LANEWAY_NO_LANES, LANEWAY_PER_STREAM)
# The same direct gRPC path a second time, in the overhead turns only: what two identical
# paths differ by is the noise floor, below which a gateway's overhead cannot be resolved.
DIRECT_AGAIN = "Laneway worker, direct gRPC again (A/A control)"
ENGINE = "Laneway engine in-process"
VLLM, LLAMACPP = "vLLM OpenAI server", "llama.cpp server (llama-cpp-python)"
PEERS = (LLAMACPP, VLLM)
# The worker's engine in a process of its own, in the overhead turns (engine_turns.py): the
# c=1 ceiling measured under the same noise as the served paths.
ENGINE_TURNS = "Laneway engine in-process, taking turns"


@dataclass(frozen=True)
class ServeReport:
    command: str
    machine: str
    versions: str
    shape: str
    results: Sequence[LevelResult]  # medians over repeats, one per system and level
    engine_rates: dict[str, float]  # label -> in-process batch-1 decode tok/s (median)
    num_repeats: int
    notes: Sequence[str] = ()
    overhead: Sequence[LevelResult] = ()  # the Laneway paths taking turns at c=1 (serve_overhead.py)
    overhead_requests: int = 0  # per path and round
    overhead_cpu_s: dict[str, float] = field(default_factory=dict)  # gateway -> its process's CPU s per request
    output_len: int = 0  # output tokens of every request
    # (gateway, concurrency) -> its process's CPU per output token in the table's levels, median of rounds
    level_cpu_s_per_token: dict[tuple[str, int], float] = field(default_factory=dict)


def _f(v: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "–" if v is None else f"{v * scale:.{digits}f}"


def find(results: Sequence[LevelResult], system: str, concurrency: int) -> LevelResult | None:
    return next((r for r in results if r.system == system and r.concurrency == concurrency), None)


def gateway_overhead(results: Sequence[LevelResult], gateway: str = LANEWAY) -> dict[str, float] | None:
    """What the gateway adds at one stream, against the same worker over direct gRPC: TTFT and
    per-token time (each request's mean time between tokens), p50 and p99 differences in ms, and
    the per-token p50 difference as a share of direct's per-token time."""
    gw, direct = find(results, gateway, 1), find(results, DIRECT, 1)
    if gw is None or direct is None:
        return None
    pairs = {"ttft_p50_ms": (gw.ttft_p50_s, direct.ttft_p50_s), "ttft_p99_ms": (gw.ttft_p99_s, direct.ttft_p99_s),
             "tpot_p50_ms": (gw.tpot_p50_s, direct.tpot_p50_s), "tpot_p99_ms": (gw.tpot_p99_s, direct.tpot_p99_s)}
    if any(a is None or b is None for a, b in pairs.values()):
        return None
    over = {k: (a - b) * 1e3 for k, (a, b) in pairs.items()}  # type: ignore[operator]
    over["per_token_pct"] = over["tpot_p50_ms"] / (direct.tpot_p50_s * 1e3) * 100.0  # type: ignore[operator]
    over["num_requests"] = min(gw.num_requests, direct.num_requests)
    return over


def against_engine(turns: Sequence[LevelResult]) -> list[tuple[str, float, float]]:
    """(path, its per-stream decode tok/s, that over the in-process engine's) for each served
    path of the turns; empty without the engine's turn."""
    engine = find(turns, ENGINE_TURNS, 1)
    if engine is None or not engine.per_stream_tok_s:
        return []
    return [(name, r.per_stream_tok_s, r.per_stream_tok_s / engine.per_stream_tok_s)
            for name in (*GATEWAYS, DIRECT)
            if (r := find(turns, name, 1)) is not None and r.per_stream_tok_s is not None]


def against_peers(turns: Sequence[LevelResult]) -> list[tuple[str, float, list[tuple[str, float]]]]:
    """(served path, its per-stream decode tok/s, [(peer, that over the peer's)]) for each
    served path of the turns; empty without a peer in the turns."""
    peers = [(name, r.per_stream_tok_s) for name in PEERS
             if (r := find(turns, name, 1)) is not None and r.per_stream_tok_s]
    if not peers:
        return []
    return [(name, r.per_stream_tok_s, [(peer, r.per_stream_tok_s / rate) for peer, rate in peers])
            for name in (*GATEWAYS, DIRECT)
            if (r := find(turns, name, 1)) is not None and r.per_stream_tok_s is not None]


def render(report: ServeReport) -> str:
    levels = sorted({r.concurrency for r in report.results})
    systems = list(dict.fromkeys(r.system for r in report.results))
    lines = [START, "## Serving: one stream to 32, Laneway against peers on the same weights", "",
             "Reproduce (every number below comes from this one command, on this machine):", "",
             "```bash", report.command, "```", "",
             f"- Machine: {report.machine}", f"- Versions: {report.versions}",
             f"- Requests: {report.shape}; closed loop (each of c streams sends its next request when its last "
             f"ended); every system run one after the other in each of {report.num_repeats} rounds, the others' "
             "processes paused (SIGSTOP) meanwhile; each cell is the median of the rounds.",
             "- per-stream tok/s: (tokens - 1) / (last token - first token), median over streams; aggregate: all "
             "output tokens / the level's wall time.", ""]
    head = "| system | " + " | ".join(f"c={c} tok/s per stream | c={c} aggregate tok/s | c={c} TTFT p50 / p95 ms"
                                      for c in levels) + " |"
    lines += [head, "|---|" + "---:|---:|---:|" * len(levels)]
    for label, rate in report.engine_rates.items():
        cells = [f"{rate:.1f}", "", ""] + ["", "", ""] * (len(levels) - 1)
        lines.append(f"| {ENGINE}, batch 1, {label} | " + " | ".join(cells) + " |")
    for system in systems:
        cells = []
        for c in levels:
            r = find(report.results, system, c)
            if r is None:
                cells += ["", "", ""]
                continue
            why = ", ".join(f"{n} {reason}" for reason, n in sorted(r.failures.items()))
            failed = f" ({r.num_failed} of {r.num_requests} failed: {why})" if r.num_failed else ""
            cells += [_f(r.per_stream_tok_s), _f(r.aggregate_tok_s) + failed,
                      f"{_f(r.ttft_p50_s, 1e3, 0)} / {_f(r.ttft_p95_s, 1e3, 0)}"]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    lines.append("")
    if report.overhead:
        source, how = report.overhead, (f"requests taking turns with it one at a time, {report.overhead_requests} "
                                         "per path and round, medians of rounds")
    else:
        source, how = report.results, "the table's c=1 rows, run one after the other"
    for gateway in (*GATEWAYS, DIRECT_AGAIN):
        over = gateway_overhead(source, gateway)
        if over is not None:
            what = ("Noise floor: the same direct path twice" if gateway == DIRECT_AGAIN
                    else f"Added at c=1 by `{gateway}`")
            lines.append(f"- {what} (minus the same worker over direct gRPC; {how}): TTFT "
                         f"p50 {over['ttft_p50_ms']:+.2f} ms, p99 "
                         f"{over['ttft_p99_ms']:+.2f} ms; per-token time p50 {over['tpot_p50_ms']:+.3f} ms "
                         f"({over['per_token_pct']:+.1f}%), p99 {over['tpot_p99_ms']:+.3f} ms.")
    engine = find(report.overhead, ENGINE_TURNS, 1)
    if engine is not None and (ratios := against_engine(report.overhead)):
        served = "; ".join(f"`{name}` {rate:.1f} ({ratio:.2f}x)" for name, rate, ratio in ratios)
        lines.append(f"- Served c=1 against the worker's engine driven in-process in a process of its own, taking "
                     f"the same turns ({how}): decode tok/s per stream, engine {_f(engine.per_stream_tok_s)}"
                     f"; {served}. The engine's TTFT p50 (from adding the request to its first token): "
                     f"{_f(engine.ttft_p50_s, 1e3, 2)} ms.")
    if served_vs_peers := against_peers(report.overhead):
        peer_rates = ", ".join(f"{peer} {_f(r.per_stream_tok_s)}" for peer in PEERS
                               if (r := find(report.overhead, peer, 1)) is not None and r.per_stream_tok_s)
        served = "; ".join(f"`{name}` {rate:.1f} (" + ", ".join(f"{ratio:.2f}x {peer}" for peer, ratio in ratios)
                           + ")" for name, rate, ratios in served_vs_peers)
        lines.append(f"- Served c=1 against the peers, taking the same turns, each system's processes running "
                     f"only for its own requests ({how}): decode tok/s per stream, {peer_rates}; {served}.")
    direct = find(source, DIRECT, 1)
    for gateway, cpu_s in report.overhead_cpu_s.items():
        per_token = cpu_s / report.output_len if report.output_len else None
        share = (f"; {per_token / direct.tpot_p50_s * 100:.1f}% of direct gRPC's per-token time p50"
                 if per_token is not None and direct is not None and direct.tpot_p50_s else "")
        lines.append(f"- CPU time of the `{gateway}` process per request, read around its own requests: "
                     f"{cpu_s * 1e3:.2f} ms"
                     + (f" ({per_token * 1e6:.0f} us per output token{share})" if per_token is not None else "")
                     + "; measured in CPU time, which a loaded machine stretches far less than latency.")
    if report.level_cpu_s_per_token:
        per_level = []
        for c in levels:
            cells = [f"`{gw}` {report.level_cpu_s_per_token[(gw, c)] * 1e6:.0f}" for gw in GATEWAYS
                     if (gw, c) in report.level_cpu_s_per_token]
            if cells:
                per_level.append(f"c={c}: " + ", ".join(cells))
        lines.append("- CPU time of each gateway's process per output token in the table's levels (us, medians of "
                     "rounds; the request set-up included): " + "; ".join(per_level) + ".")
    lines += [f"- {n}" for n in report.notes]
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace this report's section of `path`, or append it."""
    # Imported here: the gateway image builds the CLI's parser (and so imports this module)
    # without the worker's packages.
    from workers.bench import report as engine_report

    engine_report.write_section(path, section, START, END)
