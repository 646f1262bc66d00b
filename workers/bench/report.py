"""The engine benchmark as a Markdown section of docs/benchmarks.md.

Only the text between this benchmark's markers is ever rewritten, so other benchmarks'
sections of the same file are left as they are.
"""

from __future__ import annotations

from pathlib import Path

from workers.bench.result import EngineBenchResult

START, END = "<!-- bench:engine:start -->", "<!-- bench:engine:end -->"
TARGET_MBU_B1, TARGET_SPEEDUP_B32, TARGET_OFFLINE_RATIO = 0.50, 12.0, 5.0


def render_markdown(r: EngineBenchResult, plot_path: str | None, doc_dir: Path | None = None) -> str:
    m = r.machine
    lines = [
        START,
        "## Engine: decode batch curve and offline throughput",
        "",
        "Reproduce (one command, all numbers below come from the same run on the same machine):",
        "",
        "```bash",
        r.command,
        "```",
        "",
        f"- Machine: {m.cpu}, {m.num_cores} cores, {m.num_threads} torch threads, torch {m.torch_version}. "
        f"Load average before / after: {_load(m.load_before)} / {_load(m.load_after)} "
        "(the cores are shared; anything above 0 is other work competing for them).",
        *([f"- Accelerator: {m.accelerator} (the model, its KV pool and the transformers baseline run there; "
           "bandwidth below is the GPU memory's)."] if m.accelerator else []),
        f"- Memory bandwidth, measured in this run: **{r.bandwidth_gbps:.1f} GB/s** (best 1 GiB bfloat16 "
        f"`copy_`, bytes read + bytes written; samples {', '.join(f'{b:.1f}' for b in r.bandwidth_samples)}).",
        f"- Model `{r.model}` in {r.dtype}: {r.weight_bytes / 1e6:.1f} MB of weights; K/V "
        f"{r.kv_bytes_per_token} bytes per context token.",
        f"- MBU = (weight bytes + K/V bytes read) / step time / measured bandwidth. Decode steps run "
        f"through the real engine (scheduler, model runner, sampler, postprocess) at about {r.context} "
        "tokens of context per sequence; *forward* is the model alone inside those steps.",
        "",
        "| batch | context | step ms | forward ms | other ms | tokens/s | per-stream tok/s | vs batch 1 | MBU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = r.decode[0].tokens_per_s if r.decode else 1.0
    for p in r.decode:
        lines.append(
            f"| {p.batch_size} | {p.mean_context:.0f} | {p.step_ms:.1f} | {p.forward_ms:.1f} | "
            f"{p.step_ms - p.forward_ms:.1f} | {p.tokens_per_s:.0f} | {p.tokens_per_s / p.batch_size:.1f} | "
            f"{p.tokens_per_s / base:.1f}x | {r.mbu(p):.0%} |"
        )
    if r.hf_decode_step_ms is not None:
        lines.append(
            f"| 1 (HF generate) | {r.context} | {r.hf_decode_step_ms:.1f} | | | "
            f"{1e3 / r.hf_decode_step_ms:.0f} | {1e3 / r.hf_decode_step_ms:.1f} | | {r.hf_mbu:.0%} |"
        )
    if plot_path:
        rel = _relative(plot_path, doc_dir)
        lines += ["", f"![decode tokens/s and MBU against batch size]({rel})"]
    if r.offline is not None:
        o = r.offline
        lines += [
            "",
            f"Offline mixed workload: {o.num_requests} requests (seed {o.seed}), prompt lengths "
            f"{o.prompt_lens[0]}-{o.prompt_lens[1]}, output lengths {o.output_lens[0]}-{o.output_lens[1]} "
            f"(uniform); {o.laneway.prompt_tokens} prompt and {o.laneway.output_tokens} requested output tokens. "
            f"Laneway gets every request at once (continuous batching, up to {o.laneway_max_num_seqs} running); "
            f"transformers `generate` gets static batches of {o.hf_batch_size} in arrival order, left-padded, "
            "each run to its longest requested output. Only requested output tokens count.",
            "",
            "| system | seconds | useful output tokens/s | ratio |",
            "|---|---:|---:|---:|",
            f"| Laneway engine | {o.laneway.seconds:.1f} | {o.laneway.tokens_per_s:.1f} | "
            f"{'' if o.ratio is None else f'{o.ratio:.1f}x'} |",
        ]
        if o.hf is not None:
            lines.append(f"| HF generate, static batches of {o.hf_batch_size} | {o.hf.seconds:.1f} | "
                         f"{o.hf.tokens_per_s:.1f} | 1.0x |")
    lines += ["", *_targets(r)]
    for table in r.profiles:
        first, _, rest = table.partition("\n")
        lines += ["", f"<details><summary>Profile: {first}</summary>", "", "```", rest.rstrip(), "```", "",
                  "</details>"]
    lines.append(END)
    return "\n".join(lines) + "\n"


def _targets(r: EngineBenchResult) -> list[str]:
    out = ["Targets on this machine:", ""]
    b1, b32 = r.point(1), r.point(32)
    if b1 is not None:
        mbu = r.mbu(b1)
        out.append(f"- MBU at batch 1 >= {TARGET_MBU_B1:.0%}: {mbu:.0%} ({_met(mbu >= TARGET_MBU_B1)}).")
    if b1 is not None and b32 is not None:
        speedup = b32.tokens_per_s / b1.tokens_per_s
        out.append(f"- Batch-32 decode tokens/s >= {TARGET_SPEEDUP_B32:.0f}x batch 1: {speedup:.1f}x "
                   f"({_met(speedup >= TARGET_SPEEDUP_B32)}).")
    if r.offline is not None and r.offline.ratio is not None:
        out.append(f"- Mixed-workload throughput >= {TARGET_OFFLINE_RATIO:.0f}x HF generate: "
                   f"{r.offline.ratio:.1f}x ({_met(r.offline.ratio >= TARGET_OFFLINE_RATIO)}).")
    return out


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of `path` (or append it; create the file if needed)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1].lstrip("\n")
        text = before + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def _relative(plot_path: str, doc_dir: Path | None) -> str:
    plot = Path(plot_path).resolve()
    if doc_dir is None:
        return str(plot_path)
    try:
        return str(plot.relative_to(doc_dir.resolve()))
    except ValueError:
        return str(plot)
