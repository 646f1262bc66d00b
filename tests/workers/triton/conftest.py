"""Run the Triton kernel through its CPU interpreter unless a GPU is present.

triton.jit picks interpreter or compiler when the kernel is decorated, i.e. when
workers.kernels.triton_paged_attention is first imported, so this must run first.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture
def device() -> torch.device:
    return torch.device("cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda")
