"""--max-model-len: auto takes the model's context bounded by the KV pool; a number overrides."""

from __future__ import annotations

import argparse
import logging

import pytest

from workers.build import build_engine
from workers.config import WorkerConfig
from workers.context_length import parse_max_model_len, resolve_max_model_len
from workers.engine.config import CacheConfig
from workers.main import add_arguments, config_from_args


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_flag_defaults_to_auto_and_takes_a_number() -> None:
    assert config_from_args(_args()).scheduler.max_model_len is None
    assert config_from_args(_args("--max-model-len", "4096")).scheduler.max_model_len == 4096
    assert config_from_args(_args("--max-model-len", "AUTO")).scheduler.max_model_len is None
    assert WorkerConfig().scheduler.max_model_len is None
    for bad in ("lots", "1", "0"):
        with pytest.raises(argparse.ArgumentTypeError, match="--max-model-len"):
            parse_max_model_len(bad)


def test_auto_is_the_models_context_unless_the_kv_cache_holds_less() -> None:
    model = resolve_max_model_len(None, model_len=32768, kv_tokens=100_000)
    assert model.max_model_len == 32768 and "model's context length" in model.why and not model.is_cut
    kv = resolve_max_model_len(None, model_len=32768, kv_tokens=4096)
    assert kv.max_model_len == 4096 and "bounded by the KV cache" in kv.why and "raise --kv-cache-memory" in kv.why


def test_a_number_overrides_within_the_model_and_the_kv_cache() -> None:
    assert resolve_max_model_len(1024, model_len=32768, kv_tokens=4096).max_model_len == 1024
    cut = resolve_max_model_len(65536, model_len=32768, kv_tokens=100_000)
    assert (cut.max_model_len, cut.is_cut) == (32768, True) and "--max-model-len 65536" in cut.why
    with pytest.raises(SystemExit,
                       match="--max-model-len 8192: the KV cache holds 4096 tokens.*raise --kv-cache-memory"):
        resolve_max_model_len(8192, model_len=32768, kv_tokens=4096)
    with pytest.raises(SystemExit, match="KV cache holds 1 tokens"):
        resolve_max_model_len(None, model_len=32768, kv_tokens=1)


def test_a_worker_logs_which_bound_won(caplog: pytest.LogCaptureFixture) -> None:
    # A SIMULATED worker builds in milliseconds and decides its length as a real one does
    # (workers/build.py and workers/sim/build.py share resolve_max_model_len).
    small_kv = WorkerConfig(model="sim:cpu-small", cache=CacheConfig(kv_cache_memory_bytes=10**6))
    with caplog.at_level(logging.INFO, logger="laneway.worker"):
        built = build_engine(small_kv)
    kv_tokens = built.loop.engine.scheduler.block_manager.num_total_blocks * small_kv.cache.block_size
    assert built.scheduler_config.max_model_len == kv_tokens
    assert f"max_model_len {kv_tokens}: bounded by the KV cache" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="laneway.worker"):
        roomy = build_engine(WorkerConfig(model="sim:cpu-small"))
    assert f"max_model_len {roomy.scheduler_config.max_model_len}: the model's context length" in caplog.text
