"""A gRPC health probe in Python, for the worker image's HEALTHCHECK (docker, compose).

    python grpc_health_probe.py HOST:PORT [--service NAME] [--timeout SECONDS]

Exit 0 when the standard health service (grpc.health.v1.Health/Check) says SERVING for
NAME, 1 otherwise (NOT_SERVING while draining, unknown service, unreachable, timeout),
like grpc_health_probe does. Kubernetes uses its native `grpc:` probe instead.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str, timeout_s: float) -> tuple[bool, str]:
    try:
        with grpc.insecure_channel(address) as channel:
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                           timeout=timeout_s)
    except grpc.RpcError as exc:
        return False, f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    return resp.status == health_pb2.HealthCheckResponse.SERVING, status


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="gRPC health check; exit 0 if SERVING")
    p.add_argument("address", help="host:port")
    p.add_argument("--service", default="", help="service name ('' = the server as a whole)")
    p.add_argument("--timeout", type=float, default=3.0)
    a = p.parse_args(argv)
    ok, status = check(a.address, a.service, a.timeout)
    print(f"{a.address} {a.service or '(server)'}: {status}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
