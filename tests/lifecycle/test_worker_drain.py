"""A worker's drain on SIGTERM, over gRPC and through a gateway.

workers/main.py: health NOT_SERVING and new work refused with UNAVAILABLE first (for
--drain-delay, while probes still get answers), then the server stops accepting calls and
running streams get --drain-grace to finish before they are cancelled (the servicer
aborts their sequences). A gateway in front retries refused work on another worker.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc
from tests.lifecycle.conftest import start_gateway, start_worker, url, wait_until
from tests.support.processes import Proc
from workers.main import SERVICE_NAME

pytestmark = pytest.mark.integration

DELAY_S = 1.5
GRACE_S = 0.5
EXIT_MARGIN_S = 15.0


@dataclass
class Outcome:
    num_chunks: int = 0
    finish_reason: int = 0
    code: grpc.StatusCode | None = None

    def describe(self) -> str:
        how = pb.FinishReason.Name(self.finish_reason) if self.code is None else f"status {self.code.name}"
        return f"{self.num_chunks} chunks, ended with {how}"


def _request(request_id: str, max_tokens: int) -> pb.GenerateRequest:
    return pb.GenerateRequest(request_id=request_id, text="drain the worker",
                              sampling=pb.SamplingParams(max_tokens=max_tokens, temperature=1.0, top_p=1.0,
                                                         ignore_eos=True),
                              lane=pb.LaneInfo(name="streaming", priority=1, max_seq_share=1.0, max_kv_share=1.0),
                              endpoint="chat")


async def _generate(stub: pb_grpc.WorkerStub, req: pb.GenerateRequest, started: asyncio.Event) -> Outcome:
    out = Outcome()
    try:
        async for chunk in stub.Generate(req, timeout=60):
            out.num_chunks += 1
            out.finish_reason = chunk.finish_reason or out.finish_reason
            started.set()
    except grpc.aio.AioRpcError as exc:
        out.code = exc.code()
    finally:
        started.set()
    return out


@pytest.fixture
def draining_worker(lifecycle_tmp: Path) -> Proc:
    w = start_worker(lifecycle_tmp, "--max-num-seqs", "4", "--drain-delay", str(DELAY_S),
                     "--drain-grace", str(GRACE_S), name="draining-worker")
    yield w
    w.kill()


def test_sigterm_reports_not_serving_refuses_new_work_and_ends_running_streams(
        draining_worker: Proc, shared_worker: Proc, lifecycle_tmp: Path, policy_path: Path) -> None:
    w = draining_worker
    gateway = start_gateway(lifecycle_tmp, [w, shared_worker], policy_path, name="gateway-over-draining-worker")
    report: list[str] = []

    async def main() -> None:
        async with grpc.aio.insecure_channel(w.address) as channel:
            stub = pb_grpc.WorkerStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            long_started, short_started = asyncio.Event(), asyncio.Event()
            long_call = asyncio.create_task(_generate(stub, _request("long", 1900), long_started))
            await asyncio.wait_for(long_started.wait(), 30)
            short_call = asyncio.create_task(_generate(stub, _request("short", 100), short_started))
            await asyncio.wait_for(short_started.wait(), 30)

            assert w.popen is not None
            w.popen.send_signal(signal.SIGTERM)
            report.append("tried: SIGTERM to a worker with a 1900-token and a 100-token stream running")

            async def draining() -> bool:
                load = await stub.Load(pb.LoadRequest(), timeout=5)
                return load.is_draining
            for _ in range(50):  # the signal lands within milliseconds; bounded all the same
                if await draining():
                    break
                await asyncio.sleep(0.02)
            statuses = {name or "(overall)": health_pb2.HealthCheckResponse.ServingStatus.Name(
                (await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)).status)
                for name in ("", SERVICE_NAME)}
            report.append(f"observed: during the drain delay, health {statuses}")
            assert set(statuses.values()) == {"NOT_SERVING"}, statuses

            refused = await _generate(stub, _request("late", 4), asyncio.Event())
            report.append(f"observed: a new Generate during the delay got {refused.describe()}")
            assert refused.code == grpc.StatusCode.UNAVAILABLE

            async with httpx.AsyncClient(timeout=30) as client:
                results = await asyncio.gather(*(
                    client.post(f"{url(gateway)}/v1/endpoints/inline/completions",
                                json={"prompt": f"elsewhere {i}", "max_tokens": 4}) for i in range(6)))
            codes = [r.status_code for r in results]
            report.append(f"observed: 6 requests through the gateway meanwhile got {codes}")
            assert codes == [200] * 6, [r.text for r in results]

            short, long = await asyncio.wait_for(asyncio.gather(short_call, long_call),
                                                 DELAY_S + GRACE_S + EXIT_MARGIN_S)
            report.append(f"observed: short stream {short.describe()}; long stream {long.describe()} "
                          "(finished or cancelled at the grace: either, but bounded)")
            assert short.code is None and short.finish_reason == pb.FINISH_REASON_LENGTH, short.describe()
            assert long.num_chunks > 0
            assert long.code is None or long.code in {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE,
                                                      grpc.StatusCode.ABORTED}, long.describe()

    try:
        asyncio.run(main())
        code = w.popen.wait(DELAY_S + GRACE_S + EXIT_MARGIN_S)
        report.append(f"observed: worker exited with {code}")
        assert code == 0, w.log_tail()
        ready = wait_until(lambda: _out_of_rotation(url(gateway), w.address), 10, "the gateway to drop the worker")
        report.append(f"observed: gateway /readyz now {ready}")
    finally:
        print("\n".join(report))
        gateway.stop()


def _out_of_rotation(base: str, address: str) -> dict | None:
    body = httpx.get(f"{base}/readyz", timeout=5).json()
    return body if address not in body["healthy_workers"] and body["status"] == "ready" else None
