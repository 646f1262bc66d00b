"""The gateway overhead's interleaving: paths take turns, one request in flight at a time."""

from __future__ import annotations

import asyncio

from laneway.bench.serve_overhead import interleaved, parse_cpu_s, process_cpu_s, turn_order
from laneway.bench.serve_stats import StreamSample


def test_turns_rotate_so_no_path_always_goes_first():
    names = ["direct", "gateway", "plain"]
    firsts = [turn_order(names, t)[0] for t in range(6)]
    assert firsts == ["direct", "gateway", "plain", "direct", "gateway", "plain"]
    assert sorted(turn_order(names, 4)) == sorted(names)


def test_paths_take_turns_one_request_in_flight_at_a_time():
    log: list[tuple[str, int]] = []
    in_flight = 0
    closed: list[str] = []

    def path(name: str, ttft: float):
        def make():
            async def send(index: int):
                nonlocal in_flight
                in_flight += 1
                assert in_flight == 1, "two requests in flight"
                await asyncio.sleep(0)
                log.append((name, index))
                charge(name)
                in_flight -= 1
                if index == 5 and name == "b":  # its request of turn 2
                    return "HTTP 500"
                return StreamSample(ttft_s=ttft, first_token_s=ttft, last_token_s=ttft + 1.0, output_tokens=11)
            return send, lambda: closed.append(name)
        return make

    # b's server process: 0.25 s of CPU in each of its own requests, and 1 s (its idle timers)
    # while each of a's runs. Only its own requests are its cost: 0.25 s, not (4 * 1.25) / 4.
    b_cpu = [0.0]

    def charge(name: str) -> None:
        b_cpu[0] += 0.25 if name == "b" else 1.0

    results, cpu_per_request = asyncio.run(interleaved({"a": path("a", 0.01), "b": path("b", 0.02)}, 4,
                                                       {"b": lambda: b_cpu[0]}))
    assert cpu_per_request == {"b": 0.25}
    # warm-ups, then turn by turn, each request with a prompt of its own (a: turn * 2, b: turn * 2 + 1)
    assert [i for _, i in log] == [10_000, 10_001, 0, 1, 3, 2, 4, 5, 7, 6]
    assert [n for n, _ in log[2:6]] == ["a", "b", "b", "a"]
    a, b = results
    assert (a.system, a.concurrency, a.num_requests, a.num_failed) == ("a", 1, 4, 0)
    assert (b.num_requests, b.failures) == (4, {"HTTP 500": 1})
    assert a.ttft_p50_s == 0.01 and b.ttft_p50_s == 0.02
    assert sorted(closed) == ["a", "b"]


def test_each_paths_hook_runs_just_before_each_of_its_requests():
    log: list[str] = []

    def path(name: str):
        def make():
            async def send(index: int):
                log.append(f"{name} request")
                return StreamSample(ttft_s=0.01, first_token_s=0.01, last_token_s=1.0, output_tokens=11)
            return send, lambda: None
        return make

    asyncio.run(interleaved({"a": path("a"), "b": path("b"), "c": path("c")}, 2,
                            before={"a": lambda: log.append("resume a"), "b": lambda: log.append("resume b")}))
    # warm-ups a, b, c; turn 0: a, b, c; turn 1: b, c, a. c has no hook: nothing runs before it.
    assert log == ["resume a", "a request", "resume b", "b request", "c request",
                   "resume a", "a request", "resume b", "b request", "c request",
                   "resume b", "b request", "c request", "resume a", "a request"]


def test_cpu_time_is_user_plus_system_even_when_the_name_has_spaces():
    stat = "4242 (python -m x) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0 100 0 0"
    assert parse_cpu_s(stat, ticks_per_s=100.0) == 3.0


def test_this_process_has_used_cpu():
    import os

    assert process_cpu_s(os.getpid()) > 0
