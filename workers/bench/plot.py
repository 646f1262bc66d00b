"""The decode curve as a PNG: aggregate tokens/s and MBU against batch size."""

from __future__ import annotations

from pathlib import Path

from workers.bench.result import EngineBenchResult


def plot_decode_curve(r: EngineBenchResult, path: Path) -> None:
    import matplotlib  # the plot extra: only needed to draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [p.batch_size for p in r.decode]
    tps = [p.tokens_per_s for p in r.decode]
    fig, (ax_tps, ax_mbu) = plt.subplots(1, 2, figsize=(10, 4))
    # Log-log: a linear climb is a straight line of slope 1, the bend and plateau fall off it.
    ax_tps.plot(sizes, tps, "o-", label="Laneway engine step")
    ax_tps.plot(sizes, [tps[0] * b for b in sizes], ":", color="grey", label="linear in batch (from batch 1)")
    ax_tps.set_xscale("log", base=2)
    ax_tps.set_yscale("log")
    ax_tps.set_xticks(sizes, [str(b) for b in sizes])
    ax_tps.set_xlabel("batch size (sequences decoding)")
    ax_tps.set_ylabel("aggregate decode tokens/s")
    ax_tps.set_title(f"{r.model} {r.dtype}, ~{r.context} tokens of context")
    ax_tps.legend(loc="upper left")

    ax_mbu.plot(sizes, [100 * r.mbu(p) for p in r.decode], "o-", label="Laneway engine step")
    if r.hf_mbu is not None:
        ax_mbu.plot([1], [100 * r.hf_mbu], "s", color="tab:red", label="HF generate, batch 1")
    ax_mbu.axhline(100, color="grey", linestyle=":")
    ax_mbu.set_xscale("log", base=2)
    ax_mbu.set_xticks(sizes, [str(b) for b in sizes])
    ax_mbu.set_ylim(0, 110)
    ax_mbu.set_xlabel("batch size (sequences decoding)")
    ax_mbu.set_ylabel(f"MBU, % of {r.bandwidth_gbps:.0f} GB/s measured")
    ax_mbu.set_title("(weights + K/V read) / step time / bandwidth")
    ax_mbu.legend(loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
