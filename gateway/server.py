"""The gateway on uvicorn: limits at the HTTP edge and a staged shutdown on SIGTERM.

SIGTERM (Kubernetes, `laneway serve`, systemd) or Ctrl-C starts the drain:

 1. `state.begin_drain()`: /readyz answers 503 "draining" at once, and the Batch API
    runner stops: its unfinished lines stay in Redis and another gateway takes them over
    once their claims go stale (--batch-claim-timeout). The listener stays open for
    `drain_delay_s`, because a load balancer needs that long to stop routing here
    (Kubernetes removes a terminating pod from its endpoints asynchronously); refusing
    during it would fail requests a ready replica could serve.
 2. The listener closes and idle keep-alive connections close. Queued requests keep
    leaving their lane queues for half of `drain_grace_s`; what is still queued then is
    refused with 503 + Retry-After (`state.refuse_queued()`), so clients retry elsewhere.
 3. Running requests and streams get until `drain_grace_s` after the listener closed;
    uvicorn then cancels what is left (the client sees a truncated stream, never a
    hang), and the lifespan closes the worker pool and flushes telemetry.

This lives here rather than in the app's lifespan because uvicorn runs the lifespan's
shutdown only after every connection is gone: too late to answer queued requests.
The whole shutdown is bounded by drain_delay_s + drain_grace_s + the lifespan's own
teardown; Kubernetes' terminationGracePeriodSeconds must be longer (tests/deploy checks).
A second signal ends the drain delay at once; a second Ctrl-C also skips the grace.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from dataclasses import dataclass
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from gateway.edge_protocol import edge_protocol
from gateway.state import GatewayState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    drain_delay_s: float = 0.0  # stage 1: serving on, /readyz 503 (Kubernetes: a few seconds)
    drain_grace_s: float = 10.0  # stages 2-3: queued and running requests after the listener closes
    head_timeout_s: float = 10.0  # request line + headers must arrive within this (edge_protocol.py)
    keep_alive_s: int = 5  # an idle keep-alive connection closes after this
    max_head_bytes: int = 64 * 1024  # request line + headers; larger is refused (431, edge_protocol.py)

    def __post_init__(self) -> None:
        if self.drain_delay_s < 0:
            raise ValueError(f"drain_delay_s must be >= 0, got {self.drain_delay_s}")
        if self.drain_grace_s <= 0:
            raise ValueError(f"drain_grace_s must be > 0, got {self.drain_grace_s}")


def serve(app: Starlette, cfg: ServerConfig) -> None:
    # uvloop and httptools: the event loop and HTTP parser in C that `uvicorn[standard]`
    # brings; on a streaming gateway they take about a quarter less CPU per token than
    # asyncio's loop and h11 (docs/benchmarks.md).
    config = uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", loop="uvloop",
                            http=edge_protocol(cfg.head_timeout_s, cfg.max_head_bytes),
                            timeout_keep_alive=cfg.keep_alive_s,
                            timeout_graceful_shutdown=cfg.drain_grace_s)  # type: ignore[arg-type]  # a float works
    DrainingServer(config, app, cfg).run()


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first SIGTERM/SIGINT starts the drain instead of stopping at once."""

    def __init__(self, config: uvicorn.Config, app: Starlette, cfg: ServerConfig) -> None:
        super().__init__(config)
        self.app = app
        self.cfg = cfg
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_task is not None or self._loop is None or sig not in (signal.SIGTERM, signal.SIGINT):
            super().handle_exit(sig, frame)  # a second signal: uvicorn's own handling (see above)
            return
        # A signal handler runs between two bytecodes of whatever the loop was doing: only
        # schedule here. The signal is not re-raised at exit, so a drained gateway exits 0.
        self._loop.call_soon_threadsafe(self._start_drain, signal.Signals(sig).name)

    def _start_drain(self, signal_name: str) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain(signal_name), name="gateway-drain")

    async def _drain(self, signal_name: str) -> None:
        state: GatewayState | None = getattr(self.app.state, "laneway", None)
        if state is None:  # the lifespan has not started: nothing to drain
            self.should_exit = True
            return
        log.warning("%s: draining; /readyz is 503, listener open %.1fs more, then %.1fs grace",
                    signal_name, self.cfg.drain_delay_s, self.cfg.drain_grace_s)
        await state.begin_drain()  # /readyz 503; the batch runner's lines go back to Redis
        await asyncio.sleep(self.cfg.drain_delay_s)
        self.should_exit = True  # uvicorn closes the listener and waits up to drain_grace_s
        await asyncio.sleep(self.cfg.drain_grace_s / 2)
        await state.refuse_queued()  # still queued now: 503 + Retry-After
