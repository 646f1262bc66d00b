"""The fused CPU decode-attention kernel (csrc/decode_attention.cpp), compiled on first use.

Decode attention over the paged pool in plain torch gathers every sequence's K/V blocks
into a padded copy and runs SDPA over three query rows per KV head, which oneDNN serves
badly: at batch 32 it costs more than all the matmuls of the step. The kernel reads each
K/V row once, in place, and keeps q, the scores and the output in registers.

It is built with the host compiler through torch.utils.cpp_extension (cached on disk,
keyed by source, flags and CPU), so it needs g++ and ninja. Without them, or with
LANEWAY_CPU_KERNELS=0, `decode_kernel()` is None and the plain torch path runs.

torch guards a build with a plain `lock` file that a killed build leaves behind, and every
later load then waits on it forever. Builds here run under an flock instead, which the
kernel releases when its holder dies: whoever holds it knows any `lock` file is stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

log = logging.getLogger(__name__)

_SOURCE = Path(__file__).parent / "csrc" / "decode_attention.cpp"

# (q (B, Hq, D), k_cache, v_cache (N, bs, Hkv, D), block_tables (B, nb) int32, seq_lens (B,) int32, scale)
DecodeKernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]


@functools.cache
def decode_kernel() -> DecodeKernel | None:
    if os.environ.get("LANEWAY_CPU_KERNELS", "1") == "0":
        return None
    try:
        from torch.utils.cpp_extension import load

        # -march=native: the build is only valid on this CPU, so the CPU is part of its name.
        # So is the torch install: its include path is in the build command, and ninja
        # rebuilds whenever the command changes, so checkouts with their own virtualenvs
        # sharing one directory rebuilt it in turn (a minute of a core each, workers
        # waiting on the lock meanwhile).
        name = f"laneway_cpu_kernels_{_cpu_fingerprint()}_{_torch_fingerprint()}"
        with _build_dir(name) as build_dir:
            load(name=name, sources=[str(_SOURCE)], build_directory=str(build_dir),
                 extra_cflags=["-O3", "-march=native", "-fopenmp"], is_python_module=False, verbose=False)
    except Exception as e:  # no compiler, no ninja, a failed build: all mean "use the torch path"
        log.warning("CPU decode-attention kernel unavailable, using plain torch attention (%s)", e)
        return None
    return torch.ops.laneway.decode_attention


@contextlib.contextmanager
def _build_dir(name: str) -> Iterator[Path]:
    """The extension's build directory, held exclusively (one build at a time per machine)."""
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions") / "laneway"
    build_dir = root / name
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}.flock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # released by the kernel if this process dies
        (build_dir / "lock").unlink(missing_ok=True)  # left by a build that was killed
        yield build_dir


def _cpu_fingerprint() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = "unknown"
    return hashlib.sha256(flags.encode()).hexdigest()[:10]


def _torch_fingerprint() -> str:
    where = f"{Path(torch.__file__).resolve().parent}:{torch.__version__}"
    return hashlib.sha256(where.encode()).hexdigest()[:8]
