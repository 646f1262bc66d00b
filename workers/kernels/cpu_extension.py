"""Laneway's CPU kernels (csrc/*.cpp), compiled with the host compiler on first use.

One extension holds every kernel: decode attention (cpu_decode_attention.py), the
bfloat16 matmuls (packed_linear.py), the bfloat16 RMSNorm (layers/norm.py), rotary
embedding (layers/rotary.py) and SwiGLU's activation (layers/mlp.py). It is built
through torch.utils.cpp_extension (cached on disk, keyed by source, flags and CPU), so it
needs g++ and ninja. Without them, or with LANEWAY_CPU_KERNELS=0, `load_cpu_extension()`
is False and callers use plain torch.

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
from collections.abc import Iterator
from pathlib import Path

import torch

log = logging.getLogger(__name__)

_SOURCES = [Path(__file__).parent / "csrc" / name
            for name in ("decode_attention.cpp", "bf16_small_gemm.cpp", "rms_norm.cpp", "rotary.cpp",
                                                  "silu_mul.cpp", "amx_gemm.cpp", "panel_gemm.cpp")]


@functools.cache
def load_cpu_extension() -> bool:
    """Build (or find in the disk cache) and load the kernels; True if torch.ops.laneway has them."""
    if os.environ.get("LANEWAY_CPU_KERNELS", "1") == "0":
        return False
    try:
        from torch.utils.cpp_extension import load

        # -march=native: the build is only valid on this CPU, so the CPU is part of its name.
        # So is the torch install: its include path is in the build command, and ninja
        # rebuilds whenever the command changes, so checkouts with their own virtualenvs
        # sharing one directory rebuilt it in turn (a minute of a core each, workers
        # waiting on the lock meanwhile).
        name = f"laneway_cpu_kernels_{_cpu_fingerprint()}_{_torch_fingerprint()}"
        with _build_dir(name) as build_dir:
            load(name=name, sources=[str(s) for s in _SOURCES], build_directory=str(build_dir),
                 extra_cflags=["-O3", "-march=native", "-fopenmp"], is_python_module=False, verbose=False)
    except Exception as e:  # no compiler, no ninja, a failed build: all mean "use the torch path"
        log.warning("CPU kernels unavailable, using plain torch (%s)", e)
        return False
    return True


def has_bf16_cpu_kernel_for(x: torch.Tensor) -> bool:
    """Does a bfloat16 CPU kernel of this extension apply to x (the layers' one test)?"""
    return x.dtype == torch.bfloat16 and x.device.type == "cpu" and load_cpu_extension()


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
