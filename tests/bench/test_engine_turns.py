"""The in-process engine's turns in `laneway bench serve`: a real engine process over its pipes."""

from __future__ import annotations

import asyncio

import pytest

from laneway.bench.engine_turns import engine_path
from laneway.bench.serve_drive import Shape
from laneway.bench.serve_stats import StreamSample

pytestmark = pytest.mark.integration


def test_each_request_runs_alone_on_the_workers_engine_and_reports_its_times(tmp_path):
    shape = Shape(prompt_len=4, output_len=6, encode=lambda text: [3 + ord(c) % 200 for c in text])
    log = tmp_path / "engine.log"
    send, close = engine_path("tiny", 1, 16 << 20, shape, log)()

    async def run() -> list[StreamSample | str]:
        try:
            return [await send(i) for i in range(3)]
        finally:
            await close()  # type: ignore[misc]

    samples = asyncio.run(run())
    assert all(isinstance(s, StreamSample) for s in samples), samples
    for s in samples:
        assert isinstance(s, StreamSample)
        assert s.output_tokens == 6
        assert 0 < s.ttft_s == s.first_token_s < s.last_token_s
    assert "KV blocks" in log.read_text()  # the worker's own build logged its pool


def test_an_engine_that_cannot_start_is_named_with_its_log(tmp_path):
    shape = Shape(prompt_len=4, output_len=2, encode=lambda text: [3] * len(text))
    log = tmp_path / "engine.log"
    send, _close = engine_path(str(tmp_path / "no-such-model"), 1, 16 << 20, shape, log)()
    async def first() -> StreamSample | str:
        return await send(0)

    with pytest.raises(RuntimeError, match="did not start"):
        asyncio.run(first())
    assert log.read_text()  # why is in the log the error names
