"""Fault drills against real `laneway serve` / `laneway worker` processes, loopback only.

    python scripts/fault_drills.py                         # all three, report on stdout
    python scripts/fault_drills.py --out docs/benchmarks.md   # and rewrite its "Fault drills" section
    python scripts/fault_drills.py --only redis            # one drill: worker, redis or malformed

1. worker: `laneway serve` with two tiny workers; 48 streams (half greedy, half seeded
   sampling); once every stream has its first token, kill -9 the worker running the most.
   Passes with 0 client-visible errors (non-200, error event, no [DONE]), 0 hangs, and
   every stream's text equal to the same request's answer from a healthy cluster.
2. redis: `laneway serve` with its private Redis; a tenant with limits; kill -9 Redis.
   Passes when the supervisor has Redis answering again within 5 s, and the fail-closed
   endpoint serves (200, rate-limit headers back) within 10 s of the restart.
3. malformed: `laneway worker`; Generate calls crafted at the gRPC layer (bytes that are
   not protobuf, invalid UTF-8, wrong wire types, NaN, ids outside the vocabulary, ...),
   then the same requests as streams of one Session call, and a Session call whose own
   message is not a SessionRequest. Passes when each fails alone and the worker stays up:
   health SERVING, the next request (on the same session too) served, the process alive.

Every wait is bounded (--bound-s); processes are stopped on the way out. Exit 0 only if
every drill passed. Logs go to a temporary directory named in the report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "proto")]

import grpc  # noqa: E402
import httpx  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from lanes.policy import hash_api_key  # noqa: E402
from laneway.procs import Proc, free_port, laneway_cmd, wait_ready  # noqa: E402
from laneway.redis_server import answers_ping  # noqa: E402
from laneway_proto import worker_pb2 as pb  # noqa: E402
from laneway_proto import worker_pb2_grpc as pb_grpc  # noqa: E402
from workers.bench import report as engine_report  # noqa: E402

START, END = "<!-- drills:start -->", "<!-- drills:end -->"
QUIET = {"LANEWAY_TRACING": "off"}
NUM_STREAMS = 48
STREAM_TOKENS = 300
KEY = "sk-drill"

WORKER_POLICY = """\
version: 1
default_endpoint: long
auth: {required: false}
lanes:
  streaming: {priority: 1, batch_window_ms: 5, max_batch_size: 16, max_queue_depth: 256, max_queue_wait_ms: 60000,
              stream_interval_ms: 25}  # paced, as the default policy's: held tokens die with a killed worker
endpoints:
  long: {lane: streaming, limits: {max_tokens: 512, max_prompt_tokens: 64}}
"""

REDIS_POLICY = f"""\
version: 1
default_endpoint: open
auth: {{required: true}}
lanes:
  interactive: {{priority: 0, batch_window_ms: 2, max_batch_size: 16, max_queue_depth: 256, max_queue_wait_ms: 10000}}
endpoints:
  strict: {{lane: interactive, on_redis_unavailable: closed, limits: {{max_tokens: 8}}}}
  open: {{lane: interactive, on_redis_unavailable: open, limits: {{max_tokens: 8}}}}
tenants:
  drill: {{keys_sha256: ["{hash_api_key(KEY)}"], endpoints: "*", rpm: 1000000, tpm: 100000000}}
"""


@dataclass
class Drill:
    name: str
    criteria: str
    passed: bool = False
    lines: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(f"[{self.name}] {line}", flush=True)


# ---- processes --------------------------------------------------------------------------------

def _spawn(tmp: Path, name: str, *args: str) -> Proc:
    port = free_port()
    return Proc(name, laneway_cmd(*args, "--port", str(port)), port, tmp / f"{name}.log", env=dict(QUIET)).start()


def _children(pid: int) -> dict[int, list[str]]:
    """pid -> command line of each child of pid."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            if stat[0] == "Z" or int(stat[1]) != pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                found[int(entry)] = [p.decode() for p in f.read().split(b"\0") if p]
        except (OSError, IndexError, ValueError):
            continue
    return found


def _flag(cmdline: list[str], flag: str) -> str | None:
    return cmdline[cmdline.index(flag) + 1] if flag in cmdline[:-1] else None


def _wait(predicate: Callable[[], object], bound_s: float, what: str, interval_s: float = 0.05) -> object:
    deadline = time.monotonic() + bound_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {bound_s:.0f} s")
        time.sleep(interval_s)


def _healthy_workers(base: str) -> list[str]:
    try:
        return httpx.get(f"{base}/readyz", timeout=5).json().get("healthy_workers", [])
    except (httpx.HTTPError, ValueError):
        return []


# ---- 1. kill -9 a worker under 48 streams --------------------------------------------------

@dataclass
class StreamOutcome:
    status: int = 0
    text: str = ""
    finish_reason: str | None = None
    has_error_event: bool = False
    has_done: bool = False
    started: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def is_clean(self) -> bool:
        return self.status == 200 and self.has_done and not self.has_error_event and self.finish_reason is not None


def _stream_body(i: int, stream: bool) -> dict:
    body = {"prompt": f"drill stream {i}: tell me a long story", "max_tokens": STREAM_TOKENS, "ignore_eos": True,
            "stream": stream}
    # Half greedy, half seeded sampling: both must continue exactly after a failover.
    body.update({"temperature": 0.0} if i % 2 == 0 else {"temperature": 0.8, "seed": 1000 + i})
    return body


async def _stream(client: httpx.AsyncClient, base: str, i: int, out: StreamOutcome) -> None:
    async with client.stream("POST", f"{base}/v1/completions", json=_stream_body(i, True)) as r:
        out.status = r.status_code
        if r.status_code != 200:
            return
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                out.has_done = True
                continue
            event = json.loads(data)
            if "error" in event:
                out.has_error_event = True
                continue
            choice = event["choices"][0]
            out.text += choice.get("text") or ""
            out.finish_reason = choice.get("finish_reason") or out.finish_reason
            out.started.set()


def drill_worker_kill(tmp: Path, bound_s: float) -> Drill:
    drill = Drill("worker", f"kill -9 a worker under {NUM_STREAMS} streams: 0 client-visible errors, 0 hangs, "
                            "every stream's text equal to an undisturbed run")
    (tmp / "worker-policy.yaml").write_text(WORKER_POLICY)
    serve = _spawn(tmp, "serve-workers", "serve", "--model", "tiny", "--workers", "2", "--no-redis",
                   "--kv-cache-memory", "64MB", "--policy", str(tmp / "worker-policy.yaml"))
    base = f"http://127.0.0.1:{serve.port}"
    try:
        wait_ready(base, timeout=bound_s)
        _wait(lambda: len(_healthy_workers(base)) == 2, bound_s, "two healthy workers")
        assert serve.popen is not None
        workers = {int(_flag(c, "--port") or 0): pid for pid, c in _children(serve.popen.pid).items() if "worker" in c}
        outcomes = [StreamOutcome() for _ in range(NUM_STREAMS)]

        async def run() -> tuple[int, int, int]:
            async with httpx.AsyncClient(timeout=httpx.Timeout(bound_s, connect=10)) as client:
                tasks = [asyncio.create_task(_stream(client, base, i, o)) for i, o in enumerate(outcomes)]
                await asyncio.wait_for(asyncio.gather(*(o.started.wait() for o in outcomes)), bound_s)
                running = {port: _load(f"127.0.0.1:{port}").num_running for port in workers}
                victim = max(running, key=running.__getitem__)
                os.kill(workers[victim], signal.SIGKILL)
                sent = sorted(len(o.text) for o in outcomes)
                drill.say(f"killed worker :{victim} (pid {workers[victim]}) with -9 while it ran {running[victim]} "
                          f"of the {NUM_STREAMS} streams, every stream mid-way ({sent[0]} to {sent[-1]} characters "
                          f"of about {STREAM_TOKENS} received)")
                done, pending = await asyncio.wait(tasks, timeout=bound_s)
                for task in pending:
                    task.cancel()
                errors = sum(1 for t in done if t.exception() is not None)
                return victim, len(pending), errors

        t0 = time.monotonic()
        victim, num_hung, num_raised = asyncio.run(run())
        drill.say(f"all streams ended {time.monotonic() - t0:.1f} s after they started")
        bad = [i for i, o in enumerate(outcomes) if not o.is_clean]
        drill.say(f"client-visible errors: {len(bad)} (statuses {dict(Counter(o.status for o in outcomes))}, "
                  f"error events {sum(o.has_error_event for o in outcomes)}, raised {num_raised}); hangs: {num_hung}")
        t1 = time.monotonic()
        _wait(lambda: f"127.0.0.1:{victim}" in _healthy_workers(base), bound_s, "restarted worker in rotation", 0.1)
        drill.say(f"the supervisor restarted the killed worker; back in the gateway's rotation "
                  f"{time.monotonic() - t1:.1f} s after the streams ended")

        async def references() -> list[str]:
            async with httpx.AsyncClient(timeout=bound_s) as client:
                rs = await asyncio.gather(*(client.post(f"{base}/v1/completions", json=_stream_body(i, False))
                                            for i in range(NUM_STREAMS)))
                return [r.json()["choices"][0]["text"] if r.status_code == 200 else f"<{r.status_code}>" for r in rs]

        reference = asyncio.run(references())
        mismatched = [i for i, (o, ref) in enumerate(zip(outcomes, reference)) if o.text != ref]
        drill.say(f"texts equal to the same requests run again on the healthy cluster: "
                  f"{NUM_STREAMS - len(mismatched)}/{NUM_STREAMS} (greedy and seeded alike)")
        drill.passed = not bad and num_hung == 0 and num_raised == 0 and not mismatched
    except (TimeoutError, AssertionError, httpx.HTTPError) as exc:
        drill.say(f"drill failed: {exc!r}; log tail:\n{serve.log_tail()}")
    finally:
        serve.stop()
    return drill


def _load(address: str) -> pb.LoadReport:
    with grpc.insecure_channel(address) as channel:
        return pb_grpc.WorkerStub(channel).Load(pb.LoadRequest(), timeout=5)


# ---- 2. kill -9 the private Redis ------------------------------------------------------------

def drill_redis_kill(tmp: Path, bound_s: float) -> Drill:
    drill = Drill("redis", "kill -9 the private Redis: answering again within 5 s; a fail-closed endpoint "
                           "serving (rate limits checked) within 10 s of the restart")
    (tmp / "redis-policy.yaml").write_text(REDIS_POLICY)
    serve = _spawn(tmp, "serve-redis", "serve", "--model", "tiny", "--workers", "1", "--kv-cache-memory", "16MB",
                   "--policy", str(tmp / "redis-policy.yaml"))
    base = f"http://127.0.0.1:{serve.port}"
    headers = {"Authorization": f"Bearer {KEY}"}

    def post(endpoint: str) -> httpx.Response | None:
        try:
            return httpx.post(f"{base}/v1/endpoints/{endpoint}/completions", headers=headers, timeout=5,
                              json={"prompt": "hello", "max_tokens": 4})
        except httpx.HTTPError:
            return None

    try:
        wait_ready(base, timeout=bound_s)
        first = post("strict")
        assert first is not None and first.status_code == 200, first
        assert "x-ratelimit-limit-requests" in first.headers, "the tenant's limits are not checked in Redis"
        assert serve.popen is not None
        redis = {pid: c for pid, c in _children(serve.popen.pid).items() if c and "redis-server" in c[0]}
        assert len(redis) == 1, redis
        (pid, cmdline), = redis.items()
        # As started (--port N), or once Redis retitled itself "redis-server 127.0.0.1:PORT".
        port = int(_flag(cmdline, "--port") or cmdline[-1].rsplit(":", 1)[1])

        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        during: Counter[str] = Counter()

        def restarted() -> bool:
            for endpoint in ("strict", "open"):  # what clients see meanwhile
                r = post(endpoint)
                during[f"{endpoint} {r.status_code if r is not None else 'error'}"] += 1
            new = [p for p, c in _children(serve.popen.pid).items() if c and "redis-server" in c[0] and p != pid]
            return bool(new) and answers_ping(port)

        _wait(restarted, bound_s, "Redis answering again", 0.1)
        restarted_at = time.monotonic()
        restart_s = restarted_at - killed_at
        drill.say(f"killed Redis (pid {pid}, port {port}) with -9; the supervisor had it answering PING again "
                  f"on the same port after {restart_s:.1f} s")

        def strict_serves() -> bool:
            r = post("strict")
            during[f"strict {r.status_code if r is not None else 'error'}"] += 1
            return r is not None and r.status_code == 200 and "x-ratelimit-limit-requests" in r.headers

        _wait(strict_serves, bound_s, "fail-closed endpoint serving again", 0.1)
        serving_s = time.monotonic() - restarted_at
        drill.say(f"the fail-closed endpoint served again, with rate-limit headers, {serving_s:.1f} s after "
                  f"the restart")
        drill.say(f"answers meanwhile (polled every 0.1 s): {dict(sorted(during.items()))}")
        drill.passed = restart_s <= 5.0 and serving_s <= 10.0
    except (TimeoutError, AssertionError, ValueError) as exc:
        drill.say(f"drill failed: {exc!r}; log tail:\n{serve.log_tail()}")
    finally:
        serve.stop()
    return drill


# ---- 3. malformed requests at the gRPC layer -------------------------------------------------

def _valid(**sampling: object) -> pb.GenerateRequest:
    params = {"max_tokens": 4, "ignore_eos": True, **sampling}
    return pb.GenerateRequest(token_ids=pb.TokenIds(ids=[10, 11, 12]), sampling=pb.SamplingParams(**params))


def _malformed() -> list[tuple[str, bytes]]:
    whole = _valid().SerializeToString()
    huge = pb.GenerateRequest(token_ids=pb.TokenIds(ids=list(range(100_000))), sampling=pb.SamplingParams(max_tokens=4))
    return [
        ("bytes that are not protobuf", b"\xff\xff\xff\xff\xff"),
        ("invalid UTF-8 in the prompt text", b"\x12\x02\xff\xfe"),
        ("sampling (a message) sent as a varint", bytes([5 << 3 | 0, 1])),
        ("a request cut off mid-field", whole[: len(whole) // 2]),
        ("temperature NaN", _valid(temperature=math.nan).SerializeToString()),
        ("max_tokens -5", _valid(max_tokens=-5).SerializeToString()),
        ("token id 10^9", pb.GenerateRequest(token_ids=pb.TokenIds(ids=[10**9]),
                                            sampling=pb.SamplingParams(max_tokens=4)).SerializeToString()),
        ("a 100,000-token prompt", huge.SerializeToString()),
        ("lane max_seq_share 5", pb.GenerateRequest(token_ids=pb.TokenIds(ids=[1]), sampling=pb.SamplingParams(
            max_tokens=4), lane=pb.LaneInfo(max_seq_share=5.0)).SerializeToString()),
        ("resume tokens past max_tokens", pb.GenerateRequest(token_ids=pb.TokenIds(ids=[1]), sampling=pb.SamplingParams(
            max_tokens=2), resume_token_ids=[5, 6, 7]).SerializeToString()),
        ("no prompt at all", pb.GenerateRequest(sampling=pb.SamplingParams(max_tokens=4)).SerializeToString()),
    ]


def drill_malformed(tmp: Path, bound_s: float) -> Drill:
    drill = Drill("malformed", "malformed requests crafted at the gRPC layer: each fails alone, the worker stays up")
    worker = _spawn(tmp, "worker", "worker", "--model", "tiny", "--kv-cache-memory", "16MB")
    try:
        worker.wait_port(bound_s)
        channel = grpc.insecure_channel(worker.address)
        raw = channel.unary_stream("/laneway.worker.v1.Worker/Generate", request_serializer=None,
                                   response_deserializer=pb.GenerateChunk.FromString)
        health = health_pb2_grpc.HealthStub(channel)
        stub = pb_grpc.WorkerStub(channel)
        _wait(lambda: _serving(health), bound_s, "worker SERVING", 0.2)
        all_ok = True
        drill.say("| crafted request | answer | then: health, next request |")
        drill.say("|---|---|---|")
        for what, payload in _malformed():
            try:
                list(raw(payload, timeout=30))
                answer, failed = "served (!)", False
            except grpc.RpcError as exc:
                answer, failed = f"{exc.code().name}: {(exc.details() or '')[:90]}", True
            serving = _serving(health)
            chunks = list(stub.Generate(_valid(), timeout=30))
            served = sum(len(c.token_ids) for c in chunks) == 4
            ok = failed and serving and served
            all_ok &= ok
            drill.say(f"| {what} | {answer} | {'SERVING' if serving else 'NOT SERVING'}, "
                      f"{'served' if served else 'NOT served'} |")
        all_ok &= _malformed_on_a_session(drill, channel, stub, health)
        channel.close()
        alive = worker.popen is not None and worker.popen.poll() is None
        drill.say(f"worker process alive after all of them: {alive}")
        drill.passed = all_ok and alive
    except (TimeoutError, RuntimeError, grpc.RpcError) as exc:
        drill.say(f"drill failed: {exc!r}; log tail:\n{worker.log_tail()}")
    finally:
        worker.stop()
    return drill


def _malformed_on_a_session(drill: Drill, channel: grpc.Channel, stub: pb_grpc.WorkerStub,
                            health: health_pb2_grpc.HealthStub) -> bool:
    """The same requests opened as streams of one Session call, then a valid one on it; and a
    Session call whose own message is not a SessionRequest."""
    cases = _malformed()
    opens = [pb.SessionRequest(open=pb.SessionOpen(tag=str(i), request=payload)) for i, (_, payload) in
             enumerate(cases)]
    opens.append(pb.SessionRequest(open=pb.SessionOpen(tag="valid", request=_valid().SerializeToString())))
    events: dict[str, list[pb.SessionEvent]] = {}
    for batch in stub.Session(iter(opens), timeout=60):
        for event in batch.events:
            events.setdefault(event.tag, []).append(event)
    drill.say("The same requests as streams of one Session call, then a valid stream on it:")
    drill.say("| crafted request | its stream's end |")
    drill.say("|---|---|")
    all_ok = True
    for i, (what, _) in enumerate(cases):
        last = events.get(str(i), [pb.SessionEvent()])[-1]
        code = next((c for c in grpc.StatusCode if c.value[0] == last.status_code), None)
        failed = last.last and code not in (None, grpc.StatusCode.OK)
        all_ok &= failed
        drill.say(f"| {what} | {code.name if failed and code else 'served (!)'}: {last.status_message[:90]} |")
    valid = events.get("valid", [])
    served = sum(len(e.chunk.token_ids) for e in valid) == 4 and bool(valid) and valid[-1].last
    drill.say(f"the valid stream after them on the same session: {'served' if served else 'NOT served'}")
    raw = channel.stream_stream("/laneway.worker.v1.Worker/Session", request_serializer=None,
                                response_deserializer=pb.SessionBatch.FromString)
    try:
        list(raw(iter([b"\xff\xff\xff\xff"]), timeout=30))
        answer, refused = "served (!)", False
    except grpc.RpcError as exc:
        answer, refused = f"{exc.code().name}: {(exc.details() or '')[:90]}", True
    serving = _serving(health)
    again = stub.Session(iter([pb.SessionRequest(open=pb.SessionOpen(tag="x", request=_valid().SerializeToString()))]),
                         timeout=30)
    served_again = sum(len(e.chunk.token_ids) for batch in again for e in batch.events) == 4
    drill.say(f"a Session call whose message is not a SessionRequest: {answer}; then "
              f"{'SERVING' if serving else 'NOT SERVING'}, a new session {'served' if served_again else 'NOT served'}")
    return all_ok and served and refused and serving and served_again


def _serving(health: health_pb2_grpc.HealthStub) -> bool:
    try:
        return health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == \
            health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


# ---- report ---------------------------------------------------------------------------------

def render(drills: list[Drill], command: str, tmp: Path) -> str:
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    out = [START, "## Fault drills", "", "Reproduce (real processes on loopback, every wait bounded):", "",
           "```bash", command, "```", "",
           f"Run on {os.cpu_count()} shared CPU cores (load average after: {load}), tiny preset workers.", ""]
    for d in drills:
        out += [f"### {d.name}: {'passed' if d.passed else '**failed**'}", "", f"Criteria: {d.criteria}.", ""]
        out += [*_body(d.lines), ""]
    out.append(END)
    return "\n".join(out) + "\n"


def _body(lines: list[str]) -> list[str]:
    """A drill's lines in order: runs of table rows as tables, the rest as bullets."""
    out: list[str] = []
    in_table = False
    for line in lines:
        if not line.strip():
            continue
        is_row = line.startswith("|")
        if out and is_row != in_table:
            out.append("")
        out.append(line if is_row else f"- {line}")
        in_table = is_row
    return out


def write_section(path: Path, section: str) -> None:
    """Replace this report's section of `path`, or append it."""
    engine_report.write_section(path, section, START, END)


DRILLS = {"worker": drill_worker_kill, "redis": drill_redis_kill, "malformed": drill_malformed}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=sorted(DRILLS), action="append", help="run only these drills")
    p.add_argument("--bound-s", type=float, default=180.0, help="the longest any one wait may take")
    p.add_argument("--out", type=Path, default=None, help="a Markdown file whose 'Fault drills' section is rewritten")
    a = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="laneway-drills-"))
    print(f"logs in {tmp}", flush=True)
    drills = [DRILLS[name](tmp, a.bound_s) for name in (a.only or DRILLS)]
    command = "python scripts/fault_drills.py" + "".join(f" --only {n}" for n in a.only or ())
    report = render(drills, command + (f" --out {a.out}" if a.out else ""), tmp)
    print(report)
    if a.out is not None:
        write_section(a.out, report)
    return 0 if all(d.passed for d in drills) else 1


if __name__ == "__main__":
    sys.exit(main())
