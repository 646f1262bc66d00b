from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc
from tests.support.processes import Proc, start_gateway, start_worker


@pytest.fixture(scope="module")
def proc_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("procs")


@pytest.fixture(scope="module")
def worker(proc_dir: Path) -> Iterator[Proc]:
    w = start_worker(proc_dir)
    yield w
    w.stop()


@pytest.fixture(scope="module")
def gateway(proc_dir: Path, worker: Proc) -> Iterator[str]:
    g = start_gateway(proc_dir, [worker])
    yield f"http://127.0.0.1:{g.port}"
    g.stop()


def worker_load(address: str) -> pb.LoadReport:
    with grpc.insecure_channel(address) as channel:
        return pb_grpc.WorkerStub(channel).Load(pb.LoadRequest(), timeout=5)
