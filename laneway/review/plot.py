"""`--plot out.png`: each endpoint's TTFT distribution against its budget.

One panel per endpoint: the cumulative share of requests with their first token by time
t, so p50/p95/p99 are read off the 0.5/0.95/0.99 lines and the budget is a vertical line;
a compared run is drawn over the first. Needs matplotlib (`pip install laneway[plot]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lanes.policy_model import Policy
from laneway.review.request_row import RequestRow


class PlotUnavailable(RuntimeError):
    pass


def plot_ttft(runs: Sequence[tuple[str, list[RequestRow]]], policy: Policy | None, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'laneway[plot]'") from exc
    endpoints = sorted({r.endpoint for _, rows in runs for r in rows if r.ttft_ms is not None})
    if not endpoints:
        raise PlotUnavailable("no request in these traces got a first token: nothing to plot")
    fig, axes = plt.subplots(len(endpoints), 1, figsize=(8, 2.6 * len(endpoints)), squeeze=False)
    for ax, endpoint in zip(axes[:, 0], endpoints):
        for label, rows in runs:
            ttfts = sorted(r.ttft_ms for r in rows if r.endpoint == endpoint and r.ttft_ms is not None)
            if ttfts:
                shares = [(i + 1) / len(ttfts) for i in range(len(ttfts))]
                ax.step(ttfts, shares, where="post", label=f"{label} (n={len(ttfts)})")
        spec = policy.endpoints.get(endpoint) if policy is not None else None
        if spec is not None and spec.slo.ttft_p95_ms is not None:
            ax.axvline(spec.slo.ttft_p95_ms, color="red", linestyle="--", label=f"budget {spec.slo.ttft_p95_ms:g} ms")
        ax.axhline(0.95, color="grey", linewidth=0.5)
        ax.set_title(endpoint)
        ax.set_xlabel("TTFT (ms)")
        ax.set_ylabel("share of requests")
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
