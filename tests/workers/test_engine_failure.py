"""An engine failure is never silent: health turns NOT_SERVING before any stream hears of it,
every live stream ends with an error (none hangs), and the worker exits non-zero so its
supervisor restarts it. The fault is injected into the runner (tests/workers/faulty_worker.py);
everything around it is the real worker: engine loop, servicer, health service, `serve()`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from laneway.procs import ROOT, free_port
from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc
from tests.workers import faulty_worker
from workers.main import EXIT_ENGINE_FAILED, serve

BOUND_S = 60.0
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class StreamEnd:
    num_chunks: int = 0
    code: grpc.StatusCode | None = None
    details: str = ""
    health_at_error: int | None = None  # health status read the moment the error arrived
    started: asyncio.Event = field(default_factory=asyncio.Event)


def _request(request_id: str, max_tokens: int = 900) -> pb.GenerateRequest:
    return pb.GenerateRequest(request_id=request_id, token_ids=pb.TokenIds(ids=[10, 11, 12]),
                              sampling=pb.SamplingParams(max_tokens=max_tokens, ignore_eos=True))


async def _stream(channel: grpc.aio.Channel, request_id: str, end: StreamEnd) -> StreamEnd:
    try:
        async for _chunk in pb_grpc.WorkerStub(channel).Generate(_request(request_id), timeout=BOUND_S):
            end.num_chunks += 1
            end.started.set()
    except grpc.aio.AioRpcError as exc:
        end.code, end.details = exc.code(), exc.details() or ""
        check = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        end.health_at_error = check.status
    return end


async def _serving(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for _ in range(600):
        try:
            if (await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)).status == \
                    health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the worker never reported SERVING")


def test_a_fault_in_the_runner_ends_every_stream_with_an_error_and_the_worker_exits_non_zero() -> None:
    async def main() -> tuple[int, list[StreamEnd], StreamEnd]:
        port = free_port()
        # The drain delay keeps the server answering health after the streams end, so each
        # stream's reader can ask it what it said at that moment.
        worker = asyncio.create_task(serve(faulty_worker.config(port, drain_delay_s=3.0), faulty_worker.build()))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(_serving(channel), BOUND_S)
            ends = [StreamEnd() for _ in range(3)]
            streams = [asyncio.create_task(_stream(channel, f"live-{i}", end)) for i, end in enumerate(ends)]
            await asyncio.wait_for(asyncio.gather(*(end.started.wait() for end in ends)), BOUND_S)
            poison = await asyncio.wait_for(_stream(channel, f"{faulty_worker.POISON}-1", StreamEnd()), BOUND_S)
            live = await asyncio.wait_for(asyncio.gather(*streams), BOUND_S)
        code = await asyncio.wait_for(worker, BOUND_S)
        return code, live, poison

    code, live, poison = asyncio.run(main())
    for end in [*live, poison]:
        assert end.code == grpc.StatusCode.INTERNAL, end
        assert "engine failure: InjectedFault" in end.details, end
        assert end.health_at_error == NOT_SERVING, f"health still said {end.health_at_error} to {end}"
    assert all(end.num_chunks > 0 for end in live), "the live streams were mid-way when the engine failed"
    assert code == EXIT_ENGINE_FAILED


def test_the_worker_process_exits_with_engine_failed_and_refuses_new_work_meanwhile(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tests.workers.faulty_worker", "--port", str(port),
                                 "--drain-delay", "2"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        async def main() -> tuple[StreamEnd, grpc.StatusCode]:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await asyncio.wait_for(_serving(channel), BOUND_S)
                poison = await asyncio.wait_for(_stream(channel, f"{faulty_worker.POISON}-2", StreamEnd()), BOUND_S)
                after = await _stream(channel, "after-the-failure", StreamEnd())
                assert after.code is not None
                return poison, after.code

        poison, after_code = asyncio.run(main())
        code = proc.wait(BOUND_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text(errors="replace")
    assert poison.code == grpc.StatusCode.INTERNAL and poison.health_at_error == NOT_SERVING, (poison, output)
    assert after_code == grpc.StatusCode.UNAVAILABLE, output  # a dead engine takes no new request
    assert code == EXIT_ENGINE_FAILED, output
    assert "engine failed (InjectedFault)" in output
