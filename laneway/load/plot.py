"""PNG plots for `laneway load --plot`: one run's distributions, or a sweep's curves.

matplotlib is imported here only, with the Agg backend (no display), so the rest of the
load tool works without it.
"""

from __future__ import annotations

from pathlib import Path

from laneway.load.open_loop import RunResult
from laneway.load.sweep import EndpointCurve, SweepSpec


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run(run: RunResult, path: Path) -> None:
    """TTFT and TBT distributions per endpoint, output tokens/s over time, send lag."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    endpoints = sorted({r.endpoint for r in run.results})
    for e in endpoints:
        ok = [r for r in run.results if r.endpoint == e and r.ok]
        ttft = sorted(r.ttft_s * 1e3 for r in ok if r.ttft_s is not None)
        if ttft:
            axes[0][0].plot(ttft, [(i + 1) / len(ttft) for i in range(len(ttft))], label=e)
        tbt = sorted(g * 1e3 for r in ok for g in r.tbt_s)
        if tbt:
            axes[0][1].plot(tbt, [(i + 1) / len(tbt) for i in range(len(tbt))], label=e)
        bins = [0] * (int(run.elapsed_s) + 1)
        for r in ok:
            for t in r.token_times:
                k = int(r.sent_at + t)
                if 0 <= k < len(bins):
                    bins[k] += 1
        axes[1][0].plot(range(len(bins)), bins, label=e)
    lags = sorted((r.sent_at - r.scheduled_at) * 1e3 for r in run.results)
    if lags:
        axes[1][1].plot(lags, [(i + 1) / len(lags) for i in range(len(lags))])
    titles = [("TTFT (client side)", "ms", "share of requests"), ("time between tokens", "ms", "share of gaps"),
              ("streamed tokens per second", "s since start", "tokens/s"),
              ("generator send lag (actual - scheduled)", "ms", "share of requests")]
    for ax, (title, xl, yl) in zip([a for row in axes for a in row], titles):
        ax.set_title(title)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    for ax in (axes[0][0], axes[0][1], axes[1][0]):
        if endpoints:
            ax.legend(fontsize=8)
    fig.suptitle(f"laneway load: {run.label}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_sweep(spec: SweepSpec, cs: list[EndpointCurve], path: Path, title: str = "laneway load sweep") -> None:
    """Per endpoint: TTFT p95 and TBT p95 against output tokens/s, budget lines, the break."""
    plt = _plt()
    n = max(1, len(cs))
    fig, axes = plt.subplots(2, n, figsize=(4.5 * n, 7), squeeze=False)
    for col, c in enumerate(cs):
        xs = [p.summary.output_tokens_per_s for p in c.points]
        for row, (attr, budget_attr, name) in enumerate((("ttft_p95_ms", "budget_ttft_ms", "TTFT p95 ms"),
                                                         ("tbt_p95_ms", "budget_tbt_ms", "TBT p95 ms"))):
            ax = axes[row][col]
            ys = [getattr(p.summary, attr) for p in c.points]
            pts = [(x, y, p.value) for x, y, p in zip(xs, ys, c.points) if y is not None]
            ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], "o-")
            for x, y, v in pts:
                ax.annotate(f"{v:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            budget = getattr(c.points[0].summary, budget_attr) if c.points else None
            if budget is not None:
                ax.axhline(budget, color="gray", linestyle="--", label=f"budget {budget:.0f} ms")
            i = c.break_index
            if i is not None and getattr(c.points[i].summary, attr) is not None:
                ax.plot([xs[i]], [getattr(c.points[i].summary, attr)], "rx", markersize=12, mew=2,
                        label=f"breaks at {spec.label(c.points[i].value)}")
            ax.set_title(f"{c.endpoint}: {name}", fontsize=9)
            ax.set_xlabel("output tokens/s (this endpoint)")
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.suptitle(f"{title} ({spec.kind}: {', '.join(f'{v:g}' for v in spec.values)})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
