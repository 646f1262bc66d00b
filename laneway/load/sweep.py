"""`--sweep rate=0.5,1,2,4` or `--sweep concurrency=1,4,16`: the throughput-latency curve.

Each point is one full run; rate points multiply every endpoint's arrival rate (open
loop), concurrency points hold that many users (closed loop). Per endpoint, the curve
is output tokens/s against TTFT and TBT p95, and the budget *breaks* at the first point
whose verdict is not "holds" (budgets.verdict): past it more load buys throughput only
by breaking a promise.
"""

from __future__ import annotations

from dataclasses import dataclass

from laneway.load.stats import EndpointSummary

KINDS = ("rate", "concurrency")


@dataclass(frozen=True)
class SweepSpec:
    kind: str  # rate | concurrency
    values: tuple[float, ...]

    def label(self, value: float) -> str:
        return f"rate x{value:g}" if self.kind == "rate" else f"concurrency {value:g}"


def parse_sweep(text: str) -> SweepSpec:
    kind, _, values = text.partition("=")
    kind = kind.strip()
    if kind not in KINDS or not values:
        raise ValueError(f"--sweep {text!r}: expected rate=V1,V2,... or concurrency=N1,N2,...")
    try:
        nums = tuple(float(v) for v in values.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--sweep {text!r}: values must be numbers") from None
    if not nums or any(v <= 0 for v in nums):
        raise ValueError(f"--sweep {text!r}: values must be positive")
    if kind == "concurrency" and any(v != int(v) for v in nums):
        raise ValueError(f"--sweep {text!r}: concurrency values must be whole numbers")
    return SweepSpec(kind, tuple(sorted(nums)))


@dataclass(frozen=True)
class SweepPoint:
    value: float
    summary: EndpointSummary
    verdict: str


@dataclass(frozen=True)
class EndpointCurve:
    endpoint: str
    points: tuple[SweepPoint, ...]  # in sweep order

    @property
    def break_index(self) -> int | None:
        """Index of the first point where the budget breaks; None if it holds throughout
        (or there is no budget)."""
        for i, p in enumerate(self.points):
            if p.verdict.startswith("BREAKS"):
                return i
        return None

    @property
    def last_holding(self) -> SweepPoint | None:
        """The highest-load point before the first break: this endpoint's usable capacity."""
        i = self.break_index
        if i is None:
            return self.points[-1] if self.points and self.points[-1].verdict == "holds" else None
        return self.points[i - 1] if i > 0 else None


def curves(values: list[float], per_point: list[list[EndpointSummary]], verdicts: list[list[str]]
           ) -> list[EndpointCurve]:
    names = sorted({s.endpoint for rows in per_point for s in rows})
    out = []
    for name in names:
        pts = []
        for v, rows, vs in zip(values, per_point, verdicts):
            for s, verdict in zip(rows, vs):
                if s.endpoint == name:
                    pts.append(SweepPoint(v, s, verdict))
        out.append(EndpointCurve(name, tuple(pts)))
    return out


def render_curves(spec: SweepSpec, cs: list[EndpointCurve]) -> str:
    lines = [f"## sweep {spec.kind}: throughput vs latency per endpoint", ""]
    for c in cs:
        i = c.break_index
        lines.append(f"### {c.endpoint}")
        lines.append(f"| {spec.kind} | out tok/s | req/s | TTFT p95 ms | TBT p95 ms | verdict |")
        lines.append("|---:|---:|---:|---:|---:|---|")
        for k, p in enumerate(c.points):
            mark = " <- budget breaks here" if k == i else ""
            s = p.summary
            lines.append(f"| {p.value:g} | {s.output_tokens_per_s:.1f} | {s.completed_rps:.2f} | "
                         f"{_ms(s.ttft_p95_ms)} | {_ms(s.tbt_p95_ms)} | {p.verdict}{mark} |")
        last = c.last_holding
        if last is not None:
            lines.append(f"capacity within budget: {spec.kind} {last.value:g}, "
                         f"{last.summary.output_tokens_per_s:.1f} out tok/s")
        elif i == 0:
            lines.append("budget broken at every point")
        lines.append("")
    return "\n".join(lines)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"
