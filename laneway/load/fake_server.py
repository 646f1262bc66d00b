"""A trivial OpenAI-compatible server: fixed TTFT, fixed gap between tokens, no model.

For checking the load generator itself (`laneway load --self-test`) and for tests: it
counts every request it receives per path and the most it ever held at once, and can
answer chosen paths with a chosen status (a 429 for refusals). Runs in a thread of the
caller (`FakeServer(...).start()`) or as its own process:

    python -m laneway.load.fake_server --port 9000 --ttft-ms 50 --tbt-ms 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass(frozen=True)
class FakeBehaviour:
    ttft_s: float = 0.0
    tbt_s: float = 0.0
    status_by_path: tuple[tuple[str, int], ...] = ()  # (path substring, HTTP status) answered at once


@dataclass
class FakeState:
    received: Counter = field(default_factory=Counter)  # path -> requests received
    in_flight: int = 0
    max_in_flight: int = 0

    def enter(self, path: str) -> None:
        self.received[path] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        self.in_flight -= 1


def make_app(behaviour: FakeBehaviour, state: FakeState) -> Starlette:
    async def generate(request: Request) -> Response:
        path = request.url.path
        state.enter(path)
        body = await request.json()
        for part, status in behaviour.status_by_path:
            if part in path:
                state.leave()
                return JSONResponse({"error": {"message": f"fake {status} for {path}"}}, status_code=status,
                                    headers={"x-laneway-reject-reason": "fake"})
        n = int(body.get("max_tokens") or 16)
        is_chat = path.endswith("chat/completions")
        if not body.get("stream"):
            try:
                await asyncio.sleep(behaviour.ttft_s + behaviour.tbt_s * max(0, n - 1))
            finally:
                state.leave()
            return JSONResponse(_final(is_chat, n))
        return StreamingResponse(_stream(behaviour, state, is_chat, n), media_type="text/event-stream")

    routes = [Route("/{path:path}", generate, methods=["POST"])]
    return Starlette(routes=routes)


async def _stream(behaviour: FakeBehaviour, state: FakeState, is_chat: bool, n: int):
    try:
        await asyncio.sleep(behaviour.ttft_s)
        for i in range(n):
            if i:
                await asyncio.sleep(behaviour.tbt_s)
            choice = {"index": 0, "delta": {"content": "a"}} if is_chat else {"index": 0, "text": "a"}
            if i == n - 1:
                choice["finish_reason"] = "length"
            yield f"data: {json.dumps({'choices': [choice]})}\n\n"
        usage = {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}
        yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        state.leave()


def _final(is_chat: bool, n: int) -> dict:
    choice = ({"index": 0, "message": {"role": "assistant", "content": "a" * n}, "finish_reason": "length"}
              if is_chat else {"index": 0, "text": "a" * n, "finish_reason": "length"})
    return {"choices": [choice], "usage": {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}}


class FakeServer:
    """uvicorn in a daemon thread on a free loopback port."""

    def __init__(self, behaviour: FakeBehaviour = FakeBehaviour(), port: int = 0) -> None:
        import uvicorn

        from laneway.procs import free_port

        self.state = FakeState()
        self.port = port or free_port()
        config = uvicorn.Config(make_app(behaviour, self.state), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="off", ws="none", http="h11", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-openai", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> FakeServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"fake server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def main() -> None:
    import uvicorn

    p = argparse.ArgumentParser(description="trivial OpenAI-compatible server (load generator checks)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ttft-ms", type=float, default=0.0)
    p.add_argument("--tbt-ms", type=float, default=0.0)
    a = p.parse_args()
    app = make_app(FakeBehaviour(a.ttft_ms / 1000, a.tbt_ms / 1000), FakeState())
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning", lifespan="off", ws="none", http="h11",
                access_log=False)


if __name__ == "__main__":
    main()
