"""`laneway bench engine`: bandwidth, the decode batch curve and offline throughput vs HF.

Everything runs in one process on one machine, in this order: bandwidth, the decode curve
(batch sizes measured round robin, step by step), transformers' batch-1 decode step, the offline
workload on Laneway and on transformers (alternating, `--repeats` times each), bandwidth
again. The machine may be shared, so the report carries the load average and every
comparison is made between numbers taken side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from pathlib import Path

from workers.bench.bandwidth import copy_bandwidth
from workers.bench.decode_curve import measure_decode_curve
from workers.bench.offline import ThroughputResult, laneway_offline
from workers.bench.result import EngineBenchResult, Machine, OfflineComparison
from workers.bench.setup import kv_bytes_per_token, weight_bytes
from workers.bench.workload import mixed_workload


def run(args: argparse.Namespace) -> int:
    import torch

    from workers.build import resolve_device
    from workers.models.loader import load_model

    torch.set_num_threads(args.num_threads or len(os.sched_getaffinity(0)))
    device = resolve_device(args.device)
    load_before = os.getloadavg()
    # Every engine and the baseline run where the model's weights are (workers/bench/setup.py).
    model, config, tokenizer = load_model(args.model, dtype=args.dtype, device=device, seed=args.seed)
    dtype = next(model.parameters()).dtype
    bandwidth = [copy_bandwidth(device=device)]
    _log(f"bandwidth {bandwidth[0]:.1f} GB/s; decode curve ...")
    curve = measure_decode_curve(
        model, config, tokenizer, batch_sizes=_ints(args.batch_sizes), context=args.context,
        num_steps=args.steps, seed=args.seed,
    )
    profiles = []
    for b in _ints(args.profile):
        from workers.bench.profile import profile_decode

        _log(f"profiling batch {b} ...")
        profiles.append(profile_decode(model, config, tokenizer, batch_size=b, context=args.context))
    hf = None if args.skip_hf else _hf(args.model, model, config)
    hf_step_ms = None
    if hf is not None:
        from workers.bench.hf_baseline import hf_decode_step_ms

        _log("transformers batch-1 decode step ...")
        hf_step_ms = hf_decode_step_ms(hf, [i % 256 for i in range(args.context)], _pad_id(config))
    offline = _offline(args, model, config, tokenizer, hf) if args.requests > 0 else None
    bandwidth.append(copy_bandwidth(device=device))
    result = EngineBenchResult(
        command="laneway " + shlex.join(sys.argv[1:]),
        model=args.model, dtype=str(dtype).removeprefix("torch."),
        machine=Machine(cpu=_cpu_name(), num_cores=len(os.sched_getaffinity(0)), num_threads=torch.get_num_threads(),
                        load_before=load_before, load_after=os.getloadavg(), torch_version=torch.__version__,
                        accelerator=torch.cuda.get_device_name(device) if device.type == "cuda" else ""),
        bandwidth_gbps=max(bandwidth), bandwidth_samples=tuple(bandwidth),
        weight_bytes=weight_bytes(model), kv_bytes_per_token=kv_bytes_per_token(config, dtype),
        context=args.context, decode=curve, hf_decode_step_ms=hf_step_ms, offline=offline, profiles=profiles,
    )
    _write(result, args)
    return 0


def _offline(args, model, config, tokenizer, hf) -> OfflineComparison:
    prompt_lens, output_lens = _range(args.prompt_lens), _range(args.output_lens)
    requests = mixed_workload(args.requests, prompt_lens, output_lens, config.vocab_size, args.seed)
    laneway_runs: list[ThroughputResult] = []
    hf_runs: list[ThroughputResult] = []
    for i in range(args.repeats):  # alternate, so slow patches of a shared machine hit both
        _log(f"offline {i + 1}/{args.repeats}: Laneway ...")
        laneway_runs.append(laneway_offline(model, config, tokenizer, requests, max_num_seqs=args.max_num_seqs,
                                            max_num_batched_tokens=args.max_num_batched_tokens))
        if hf is not None:
            from workers.bench.hf_baseline import hf_static_batches

            _log(f"offline {i + 1}/{args.repeats}: transformers ...")
            hf_runs.append(hf_static_batches(hf, requests, args.hf_batch_size, _pad_id(config)))
    return OfflineComparison(
        num_requests=args.requests, prompt_lens=prompt_lens, output_lens=output_lens, seed=args.seed,
        laneway=min(laneway_runs, key=lambda r: r.seconds), laneway_max_num_seqs=args.max_num_seqs,
        hf=min(hf_runs, key=lambda r: r.seconds) if hf_runs else None, hf_batch_size=args.hf_batch_size,
    )


def _write(result: EngineBenchResult, args: argparse.Namespace) -> None:
    from workers.bench.report import render_markdown, write_section

    if args.plot:
        from workers.bench.plot import plot_decode_curve

        plot_decode_curve(result, Path(args.plot))
    print(render_markdown(result, args.plot))
    for out in map(Path, args.out):
        if out.suffix == ".json":
            out.write_text(json.dumps(result.to_json(), indent=2) + "\n")
        else:  # the plot is linked relative to the document
            write_section(out, render_markdown(result, args.plot, out.parent))


def _hf(spec: str, model, config):
    from workers.bench.hf_baseline import hf_model

    _log("building the transformers model ...")
    return hf_model(spec, model, config)


def _pad_id(config) -> int:
    return 0  # any id: padded positions are masked out


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]



def _range(text: str) -> tuple[int, int]:
    """An inclusive length range, "lo,hi"."""
    lo, hi = _ints(text)
    return lo, hi


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _log(message: str) -> None:
    print(f"[bench engine] {message}", file=sys.stderr, flush=True)
