"""The worker's engine is built and stepped by one thread (workers/build.py).

Why it matters: libgomp keeps one OpenMP team per thread that runs parallel regions, and a
second team (the model packed on the main thread, stepped on the engine thread) throttles
every team's spin-wait. These tests pin the property, not its timing."""

from __future__ import annotations

import queue
import threading

import pytest

from workers.config import WorkerConfig
from workers.engine.config import CacheConfig
from workers.engine.outputs import RequestOutput
from workers.engine.sequence import SamplingParams, Sequence

TINY = WorkerConfig(model="tiny", device="cpu", cache=CacheConfig(kv_cache_memory_bytes=16 * 2**20))


def test_the_thread_that_loads_the_model_is_the_one_that_steps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import workers.models.loader as loader
    from workers.build import build_engine_on_its_thread

    threads: dict[str, threading.Thread] = {}
    real_load = loader.load_model

    def recording_load(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        threads["load"] = threading.current_thread()
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "load_model", recording_load)
    built = build_engine_on_its_thread(TINY)
    real_step = built.loop.engine.step

    def recording_step():  # type: ignore[no-untyped-def]
        threads["step"] = threading.current_thread()
        return real_step()

    built.loop.engine.step = recording_step  # type: ignore[method-assign]
    seq = Sequence("r", [5, 6, 7], SamplingParams(max_tokens=4, ignore_eos=True))
    outputs: queue.SimpleQueue[RequestOutput] = queue.SimpleQueue()
    seq.on_output = outputs.put
    built.loop.add(seq)
    assert built.loop.load.num_running == 0  # queued before start: nothing steps until then
    built.loop.start()
    try:
        got = [outputs.get(timeout=60)]
        while not got[-1].is_finished:
            got.append(outputs.get(timeout=60))
    finally:
        built.loop.stop()
    assert sum(len(o.token_ids) for o in got) == 4 and got[-1].finish_reason == "length"
    assert threads["load"] is threads["step"]
    assert threads["load"] is not threading.main_thread()
    assert threads["step"].name == "engine-loop"
    assert not threads["step"].is_alive()  # stop() ended it


def test_a_build_failure_is_raised_on_the_callers_thread() -> None:
    from workers.build import build_engine_on_its_thread

    too_small = WorkerConfig(model="tiny", device="cpu", cache=CacheConfig(kv_cache_memory_bytes=4096))
    with pytest.raises(SystemExit) as info:
        build_engine_on_its_thread(too_small)
    assert "--kv-cache-memory" in str(info.value)


def test_a_bound_loop_stopped_before_it_started_lets_its_thread_go() -> None:
    from workers.build import build_engine_on_its_thread

    built = build_engine_on_its_thread(TINY)
    engine_threads = [t for t in threading.enumerate() if t.name == "engine-loop" and t.is_alive()]
    assert engine_threads, "the builder thread waits to run the loop"
    built.loop.stop()
    for t in engine_threads:
        t.join(10)
    assert not any(t.is_alive() for t in engine_threads)
