"""`laneway serve` as a real process: kill -9 a worker under mixed traffic.

The launcher's supervisor restarts the worker (with backoff) on the same port, and the
gateway's pool refresh puts it back in rotation once its health check passes. Meanwhile:
streams that were on the dead worker resume on the survivor from the tokens already sent
and finish without an error event (no client hangs, none loses its answer), requests that
were on the dead worker are served by the survivor, and every request sent after the
worker died succeeds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.lifecycle.conftest import children, cmdline, spawn, wait_until, worker_load
from tests.support.processes import Proc, free_port, wait_ready

pytestmark = pytest.mark.integration

BOUND_S = 60.0  # no request, restart or shutdown may take longer than this


def _worker_pids(launcher: Proc) -> dict[int, int]:
    """port -> pid of the launcher's worker children."""
    assert launcher.popen is not None
    found = {}
    for pid in children(launcher.popen.pid):
        args = cmdline(pid)
        if "worker" in args and "--port" in args:
            found[int(args[args.index("--port") + 1])] = pid
    return found


def _is_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # dead, not yet reaped by the launcher
    except OSError:
        return True


def _healthy(base: str) -> list[str]:
    try:
        return httpx.get(f"{base}/readyz", timeout=5).json()["healthy_workers"]
    except (httpx.HTTPError, ValueError, KeyError):
        return []


async def _stream(client: httpx.AsyncClient, base: str, i: int, started: asyncio.Event) -> str:
    body = {"prompt": f"stream {i}", "max_tokens": 1900, "ignore_eos": True, "stream": True}
    events: list[str] = []
    async with client.stream("POST", f"{base}/v1/endpoints/long/completions", json=body) as r:
        if r.status_code != 200:
            return f"status {r.status_code}"
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
                started.set()
    assert events and events[-1] == "[DONE]", f"stream {i} ended without [DONE]: {events[-2:]}"
    if any('"error"' in e for e in events[:-1]):
        return "error-event"
    return json.loads(events[-2])["choices"][0]["finish_reason"]


async def _post(client: httpx.AsyncClient, base: str, endpoint: str, i: int) -> int:
    r = await client.post(f"{base}/v1/endpoints/{endpoint}/completions",
                          json={"prompt": f"{endpoint} {i}", "max_tokens": 16, "ignore_eos": True})
    return r.status_code


def test_launcher_restarts_a_killed_worker_and_the_gateway_readmits_it(lifecycle_tmp: Path, policy_path: Path) -> None:
    port = free_port()
    launcher = spawn(lifecycle_tmp, "serve", "serve", "--model", "tiny", "--workers", "2", "--no-redis",
                     "--kv-cache-memory", "16MB", "--policy", str(policy_path), "--port", str(port),
                     "--drain-grace", "2", port=port)
    base = f"http://127.0.0.1:{port}"
    report: list[str] = []
    try:
        wait_ready(base, timeout=BOUND_S)
        wait_until(lambda: len(_healthy(base)) == 2, BOUND_S, "both workers healthy")
        pids = _worker_pids(launcher)
        assert len(pids) == 2, (pids, launcher.log_tail())
        victim: dict[str, int] = {}

        async def main() -> None:
            async with httpx.AsyncClient(timeout=BOUND_S) as client:
                # Two waves: a lane batch goes to one worker, so the second wave (a later batch)
                # goes to the other, less loaded one. Both workers then have streams to lose.
                started = [asyncio.Event() for _ in range(6)]
                streams = []
                for wave in (range(0, 3), range(3, 6)):
                    streams += [asyncio.create_task(_stream(client, base, i, started[i])) for i in wave]
                    await asyncio.wait_for(asyncio.gather(*(started[i].wait() for i in wave)), BOUND_S)
                # Placement is the gateway's business: ask the workers where the streams run,
                # and kill the one running the most.
                running = {port: worker_load(f"127.0.0.1:{port}").num_running for port in pids}
                victim["port"] = max(running, key=running.__getitem__)
                on_victim = running[victim["port"]]
                assert on_victim > 0, running
                mixed = [asyncio.create_task(_post(client, base, ep, i))
                         for i in range(4) for ep in ("inline", "chat", "nightly")]
                os.kill(pids[victim["port"]], signal.SIGKILL)
                report.append(f"tried: kill -9 worker :{victim['port']} (pid {pids[victim['port']]}) running "
                              f"{on_victim} of 6 long streams, with 12 mixed requests (interactive, streaming, "
                              "bulk) in flight")
                stream_outcomes = await asyncio.wait_for(asyncio.gather(*streams), BOUND_S)
                mixed_codes = await asyncio.wait_for(asyncio.gather(*mixed), BOUND_S)
                report.append(f"observed: streams {Counter(stream_outcomes)}; "
                              f"in-flight requests {Counter(mixed_codes)}")
                assert stream_outcomes == ["length"] * 6, \
                    "every stream on the killed worker resumed on the survivor and finished"
                assert mixed_codes == [200] * 12, mixed_codes

                wait_until(lambda: _is_gone(pids[victim["port"]]), 10, "the killed worker to be gone")
                after = await asyncio.gather(*(_post(client, base, "inline", i) for i in range(8)))
                report.append(f"observed: 8 requests sent after the worker died got {Counter(after)}")
                assert after == [200] * 8

        asyncio.run(main())
        victim_port = victim["port"]
        victim_address = f"127.0.0.1:{victim_port}"
        t0 = time.monotonic()
        back = wait_until(lambda: victim_address in _healthy(base) and _worker_pids(launcher).get(victim_port),
                          BOUND_S, f"{victim_address} to be restarted and back in rotation")
        report.append(f"observed: restarted as pid {back}, in /readyz again after {time.monotonic() - t0:.1f}s; "
                      f"launcher log: {[line for line in launcher.log_tail(80).splitlines() if 'restart' in line]}")
        assert back != pids[victim_port]
        codes = [httpx.post(f"{base}/v1/endpoints/inline/completions", json={"prompt": f"again {i}",
                                                                               "max_tokens": 8}, timeout=30).status_code
                 for i in range(6)]
        report.append(f"observed: requests after the restart got {Counter(codes)}")
        assert codes == [200] * 6

        assert launcher.popen is not None
        survivors = list(_worker_pids(launcher).values())
        launcher.popen.send_signal(signal.SIGTERM)
        code = launcher.popen.wait(BOUND_S)
        report.append(f"observed: SIGTERM to the launcher: exit {code}; workers {survivors} gone: "
                      f"{all(_is_gone(p) for p in survivors)}")
        assert code == 0, launcher.log_tail()
        wait_until(lambda: all(_is_gone(p) for p in survivors), 20, "the workers to exit after the launcher")
    finally:
        print("\n".join(report))
        launcher.kill()
