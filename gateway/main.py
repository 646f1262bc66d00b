"""`laneway gateway`: the Starlette app on uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from gateway.app import create_app
from gateway.config import DEFAULT_POLICY, GatewayConfig
from gateway.server import ServerConfig, serve


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    p.add_argument("--worker", action="append", dest="workers", default=None,
                   help="worker address host:port (repeat for several)")
    p.add_argument("--policy", type=Path, default=Path(os.environ.get("LANEWAY_POLICY", DEFAULT_POLICY)))
    p.add_argument("--no-lanes", action="store_true", help="dispatch every request at once (baseline)")
    p.add_argument("--worker-calls", choices=["session", "per-stream"], default="session",
                   help="session: a worker's streams share one gRPC call, each engine step's tokens in one "
                        "message; per-stream: one Generate call per stream (the older wire, for comparison)")
    p.add_argument("--redis-url", default=os.environ.get("LANEWAY_REDIS_URL") or None,
                   help="Redis for rate limits, the Batch API and the worker registry (default: "
                        "$LANEWAY_REDIS_URL; none: no limits, no Batch API, static workers only)")
    p.add_argument("--batch-concurrency", type=int, default=8, help="Batch API lines this gateway runs at once")
    p.add_argument("--batch-claim-timeout", type=float, default=30.0,
                   help="seconds after which lines claimed by a silent gateway are taken over")
    add_edge_arguments(p)


def add_edge_arguments(p: argparse.ArgumentParser) -> None:
    """Shutdown and HTTP-edge limits (also `laneway serve`'s); see gateway/server.py for the drain."""
    p.add_argument("--drain-delay", type=float, default=0.0,
                   help="on SIGTERM, seconds to keep serving with /readyz 503 before the listener closes "
                        "(behind a load balancer: longer than it takes to stop routing here)")
    p.add_argument("--drain-grace", type=float, default=10.0,
                   help="on SIGTERM, seconds queued and running requests get after the listener closes")
    p.add_argument("--max-body-bytes", type=int, default=GatewayConfig.max_body_bytes,
                   help="larger request bodies are refused with 413")
    p.add_argument("--request-head-timeout", type=float, default=10.0,
                   help="seconds a client has to send its request line and headers (else 408, closed)")
    p.add_argument("--request-body-timeout", type=float, default=GatewayConfig.request_body_timeout_s,
                   help="seconds a request body may stall between reads (else 408, closed)")


def server_config_from_args(a: argparse.Namespace) -> ServerConfig:
    return ServerConfig(host=a.host, port=a.port, drain_delay_s=a.drain_delay, drain_grace_s=a.drain_grace,
                        head_timeout_s=a.request_head_timeout)


def config_from_args(a: argparse.Namespace) -> GatewayConfig:
    # With a Redis URL, workers may come from the registry alone; without, the default worker.
    workers = a.workers or ([] if a.redis_url else ["127.0.0.1:50051"])
    return GatewayConfig(worker_addresses=tuple(workers), policy_path=a.policy, use_lanes=not a.no_lanes,
                         worker_sessions=a.worker_calls == "session", redis_url=a.redis_url,
                         batch_concurrency=a.batch_concurrency,
                         batch_claim_idle_s=a.batch_claim_timeout, max_body_bytes=a.max_body_bytes,
                         request_body_timeout_s=a.request_body_timeout)


def run(a: argparse.Namespace) -> int:
    logging.basicConfig(level=os.environ.get("LANEWAY_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(config_from_args(a))
    serve(app, server_config_from_args(a))
    return 0
