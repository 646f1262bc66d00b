"""The gateway's staged shutdown on SIGTERM, against a real gateway process.

Stages (gateway/server.py): /readyz 503 while still serving for --drain-delay; then the
listener closes, queued work is refused with 503 + Retry-After halfway through
--drain-grace, running streams get the rest of the grace, and the process exits 0.
No timing is asserted beyond the exit bound: every wait is bounded, outcomes are checked.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.lifecycle.conftest import start_gateway, url
from tests.support.processes import Proc

pytestmark = pytest.mark.integration

DELAY_S = 1.0
GRACE_S = 3.0
EXIT_MARGIN_S = 15.0  # lifespan teardown on 2 busy cores; the bound itself is what is tested


@dataclass
class StreamOutcome:
    status: int = 0
    events: list[str] = field(default_factory=list)
    error: str | None = None
    first_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def is_done(self) -> bool:
        return bool(self.events) and self.events[-1] == "[DONE]"

    @property
    def finish_reason(self) -> str | None:
        for e in reversed(self.events):
            if e != "[DONE]":
                choices = json.loads(e).get("choices") or [{}]
                return choices[0].get("finish_reason")
        return None

    def describe(self) -> str:
        end = "[DONE]" if self.is_done else f"cut ({self.error})"
        return f"status {self.status}, {len(self.events)} events, ended {end}, finish_reason {self.finish_reason}"


async def _stream(client: httpx.AsyncClient, base: str, endpoint: str, max_tokens: int, out: StreamOutcome) -> None:
    body = {"prompt": "drain me", "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
    try:
        async with client.stream("POST", f"{base}/v1/endpoints/{endpoint}/completions", json=body) as r:
            out.status = r.status_code
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    out.events.append(line[6:])
                    out.first_event.set()
    except httpx.HTTPError as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    finally:
        out.first_event.set()


@pytest.fixture
def draining_gateway(lifecycle_tmp: Path, policy_path: Path, shared_worker: Proc):
    g = start_gateway(lifecycle_tmp, [shared_worker], policy_path, "--drain-delay", str(DELAY_S),
                      "--drain-grace", str(GRACE_S), name="draining-gateway")
    yield g
    g.kill()


def test_sigterm_drains_in_stages_and_exits_within_the_bound(draining_gateway: Proc) -> None:
    gw = draining_gateway
    base = url(gw)
    report: list[str] = []

    async def main() -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0)) as client:
            long_run, short_run = StreamOutcome(), StreamOutcome()
            long_task = asyncio.create_task(_stream(client, base, "long", 1900, long_run))
            await asyncio.wait_for(long_run.first_event.wait(), 30)
            parked = asyncio.create_task(client.post(f"{base}/v1/endpoints/parked/completions",
                                                     json={"prompt": "queued", "max_tokens": 4}))
            short_task = asyncio.create_task(_stream(client, base, "chat", 200, short_run))
            await asyncio.wait_for(short_run.first_event.wait(), 30)
            assert short_run.status == 200 and not short_run.is_done, short_run.describe()

            assert gw.popen is not None
            gw.popen.send_signal(signal.SIGTERM)
            sent_at = time.monotonic()
            report.append("tried: SIGTERM with a long stream, a short stream mid-flight and a queued request")

            for _ in range(100):  # the signal is handled on the server's loop: milliseconds, bounded anyway
                ready = await client.get(f"{base}/readyz")
                if ready.status_code == 503:
                    break
                await asyncio.sleep(0.02)
            report.append(f"observed: /readyz {ready.status_code} {ready.json()['status']} right after SIGTERM")
            assert ready.status_code == 503 and ready.json()["status"] == "draining"

            during = await client.post(f"{base}/v1/endpoints/inline/completions",
                                       json={"prompt": "still open", "max_tokens": 4})
            report.append(f"observed: a request sent during the drain delay got {during.status_code}")
            assert during.status_code == 200, during.text

            refused = await asyncio.wait_for(parked, DELAY_S + GRACE_S + EXIT_MARGIN_S)
            report.append(f"observed: the queued request got {refused.status_code} "
                          f"Retry-After={refused.headers.get('retry-after')} {refused.json()['error']['message']!r}")
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) >= 1
            assert "shutting down" in refused.json()["error"]["message"]

            try:
                async with httpx.AsyncClient(timeout=2) as fresh:  # a new connection, not a pooled one
                    await fresh.get(f"{base}/healthz")
                listener = "still open"
            except httpx.ConnectError:
                listener = "closed"
            report.append(f"observed: {time.monotonic() - sent_at:.1f}s after SIGTERM the listener is {listener}")
            assert listener == "closed"

            await asyncio.wait_for(asyncio.gather(short_task, long_task), DELAY_S + GRACE_S + EXIT_MARGIN_S)
            report.append(f"observed: short stream {short_run.describe()}")
            report.append(f"observed: long stream {long_run.describe()} (either is fine: bounded, no hang)")
            assert short_run.is_done and short_run.finish_reason == "length", short_run.describe()
            assert long_run.status == 200 and long_run.events, long_run.describe()

    try:
        asyncio.run(main())
        code = gw.popen.wait(DELAY_S + GRACE_S + EXIT_MARGIN_S)
        report.append(f"observed: gateway exited with {code}")
        assert code == 0
    finally:
        print("\n".join(report))
    log = gw.log_tail(100_000)  # the whole log: a cancelled stream's traceback can be long
    assert "draining" in log, gw.log_tail()
