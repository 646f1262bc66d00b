"""Without triton the module still imports; only calling the kernel fails, and says why."""

from __future__ import annotations

import importlib.util
import sys

import pytest

import workers.kernels.triton_paged_attention as real_module
from tests.workers.triton.factories import make_batch


def test_missing_triton_fails_on_call_not_on_import(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import triton` raise ImportError.
    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.setitem(sys.modules, "triton.language", None)
    spec = importlib.util.spec_from_file_location("triton_paged_attention_without_triton", real_module.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # must not raise

    batch = make_batch([(1, 3)], block_size=4, num_heads=2, num_kv_heads=1, head_dim=16)
    with pytest.raises(ImportError, match="needs the `triton` package"):
        module.triton_paged_attention(batch.q, batch.k_cache, batch.v_cache, batch.md, 0.25)
