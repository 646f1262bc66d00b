"""`laneway worker` arguments that decide where and how the engine runs."""

from __future__ import annotations

import argparse

import pytest
import torch

from workers.build import resolve_device
from workers.config import parse_size
from workers.main import add_arguments, config_from_args


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_auto_device_follows_what_torch_sees():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    assert config_from_args(args()).device == "auto"
    assert config_from_args(args("--device", "cpu")).device == "cpu"


def test_a_device_that_cannot_serve_is_a_clear_error():
    with pytest.raises(SystemExit, match="--device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA device"):
            resolve_device("cuda:0")


def test_sizes_read_with_units_and_bad_ones_name_the_text():
    assert parse_size("512MB") == 512 * 10**6 and parse_size("2GiB") == 2 * 2**30 and parse_size("1000") == 1000
    with pytest.raises(argparse.ArgumentTypeError, match="'lots'"):
        parse_size("lots")
    with pytest.raises(argparse.ArgumentTypeError, match="positive"):
        parse_size("0MB")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("--max-num-seqs", "0"), "max_num_seqs must be positive, got 0"),
        (("--max-num-batched-tokens", "-1"), "max_num_batched_tokens must be positive, got -1"),
        (("--block-size", "0"), "block_size must be positive, got 0"),
        (("--kv-cache-fraction", "1.5"), "kv_cache_memory_fraction must be in (0, 0.9], got 1.5"),
    ],
)
def test_a_flag_value_a_config_refuses_stops_the_worker_with_its_message(argv: tuple[str, ...], needle: str):
    # The configs check themselves with ValueError (not assert, which -O would drop).
    with pytest.raises(SystemExit) as info:
        config_from_args(args(*argv))
    assert str(info.value) == f"laneway worker: {needle}"


def test_cuda_n_becomes_the_current_device(monkeypatch: pytest.MonkeyPatch):
    # No GPU here: torch.cuda is stood in for; what is checked is which device is made current.
    current: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert current == [torch.device("cuda", 1)]
    with pytest.raises(SystemExit, match="--device 'cuda:2': torch sees 2 CUDA device"):
        resolve_device("cuda:2")
    assert current == [torch.device("cuda", 1)]


def test_a_warm_up_failure_stops_the_worker_before_serving_with_a_clear_message(monkeypatch: pytest.MonkeyPatch):
    import workers.engine.warmup as warmup
    from workers.build import build_engine
    from workers.config import WorkerConfig
    from workers.engine.config import CacheConfig

    def kernel_build_fails(*_args: object) -> None:
        raise RuntimeError("triton: failed to compile paged_attention (no C compiler)")

    monkeypatch.setattr(warmup, "start_step_cost", kernel_build_fails)
    with pytest.raises(SystemExit) as info:
        build_engine(WorkerConfig(model="tiny", device="cpu", cache=CacheConfig(kv_cache_memory_bytes=16 * 2**20)))
    message = str(info.value)
    assert message.startswith("laneway worker: start-up failed in the warm-up")
    assert "RuntimeError: triton: failed to compile paged_attention (no C compiler)" in message
