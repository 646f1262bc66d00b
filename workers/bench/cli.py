"""The `laneway bench engine` command line; the benchmark itself loads only when it runs.

laneway/cli.py builds every subcommand's parser at start-up, so this module imports
nothing heavier than argparse.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="small", help="preset (tiny, small) or a local HF model directory")
    p.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda or cuda:N: where the model, its KV pool and the transformers baseline run")
    p.add_argument("--num-threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--batch-sizes", default="1,2,4,8,16,32,64")
    p.add_argument("--context", type=int, default=256, help="prompt tokens per sequence in the decode curve")
    p.add_argument("--steps", type=int, default=32,
                   help="measured decode steps per batch size, taken round robin across batch sizes")
    p.add_argument("--requests", type=int, default=128, help="offline workload size (0 skips the offline part)")
    p.add_argument("--prompt-lens", default="32,512")
    p.add_argument("--output-lens", default="16,256")
    p.add_argument("--max-num-seqs", type=int, default=64, help="Laneway's running-sequence cap offline")
    p.add_argument("--max-num-batched-tokens", type=int, default=512)
    p.add_argument("--hf-batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=1, help="offline runs per system, alternating; best counts")
    p.add_argument("--skip-hf", action="store_true", help="no transformers baseline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", nargs="+", default=[], metavar="PATH",
                   help=".md files (their engine section is rewritten) and/or .json files (all measurements)")
    p.add_argument("--plot", default=None, help="PNG path for the decode curve (needs matplotlib)")
    p.add_argument("--profile", default="", metavar="SIZES",
                   help="batch sizes to profile after the curve, e.g. 1,32 (torch profiler tables in the report)")


def main(args: argparse.Namespace) -> int:
    from workers.bench.engine_bench import run

    return run(args)
