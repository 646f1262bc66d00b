"""What the gateway adds per request, measured so that a shared machine's noise cancels.

The table's c=1 rows run each system for a while, one after the other: on 2 shared cores the
noise between two such stretches (tens of ms of TTFT) dwarfs a gateway's millisecond. Here
one request at a time goes to each path in turn (direct gRPC, gateway, gateway --no-lanes),
the order rotating every turn, so each path sees the same noise; the paths' percentiles are
then compared. Used by `laneway bench serve --overhead-requests N`.

Latency differences of a millisecond drown in a loaded machine's noise; CPU time does not.
So each gateway process's own CPU time (/proc/PID/stat) is read just before and just after
each of its own requests: with one request in flight at a time, the growth is that request's
cost, a number contention stretches far less than wall time. Only its own requests count:
read over all the turns instead (as before), its idle ticks while the other paths ran (load
polling, the dispatcher's timer) were charged to its requests too.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence

from laneway.bench.serve_drive import MakeSend, close_sender
from laneway.bench.serve_stats import LevelResult, StreamSample, summarize_level


def turn_order(names: Sequence[str], turn: int) -> list[str]:
    """The paths in turn `turn`: rotated, so no path always goes first (after the idle gap) or last."""
    k = turn % len(names)
    return list(names[k:]) + list(names[:k])


def parse_cpu_s(stat: str, ticks_per_s: float) -> float:
    """User + system CPU seconds from the text of /proc/PID/stat."""
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": the comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / ticks_per_s  # utime, stime: fields 14 and 15 of the line


def process_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        return parse_cpu_s(f.read(), os.sysconf("SC_CLK_TCK"))


async def interleaved(paths: dict[str, MakeSend], num_requests: int,
                      cpu_of: Mapping[str, Callable[[], float]] | None = None,
                      before: Mapping[str, Callable[[], None]] | None = None,
                      ) -> tuple[list[LevelResult], dict[str, float]]:
    """`num_requests` requests on each path, one request in flight at a time over all paths;
    and for each path in `cpu_of`, the CPU seconds its server process spent per request, read
    around that path's own requests only. `before[name]`, where given, runs before each of
    that path's requests (the bench resumes the path's processes and pauses the others')."""
    senders, closers = {}, []
    for name, make in paths.items():
        send, close = make()
        senders[name] = send
        closers.append(close)
    samples: dict[str, list[StreamSample]] = {name: [] for name in paths}
    failed: dict[str, dict[str, int]] = {name: {} for name in paths}
    wall = dict.fromkeys(paths, 0.0)  # each path's own time in flight (its "aggregate" is one stream's)
    try:
        # Every request its own prompt: the served paths share one worker, whose prefix cache
        # would otherwise hand each prompt's blocks to every path after the first in its turn.
        slot = {name: i for i, name in enumerate(paths)}
        before = before or {}

        def prepare(name: str) -> None:
            if (hook := before.get(name)) is not None:
                hook()

        for name in paths:  # warm-up: connections, first-use paths
            prepare(name)
            await senders[name](10_000 + slot[name])
        loop = asyncio.get_running_loop()
        cpu_of = cpu_of or {}
        cpu_spent = dict.fromkeys(cpu_of, 0.0)
        for turn in range(num_requests):
            for name in turn_order(list(paths), turn):
                prepare(name)
                read_cpu = cpu_of.get(name)
                cpu_before = read_cpu() if read_cpu is not None else 0.0
                started = loop.time()
                sample = await senders[name](turn * len(paths) + slot[name])
                wall[name] += loop.time() - started
                if read_cpu is not None:
                    cpu_spent[name] += read_cpu() - cpu_before
                if isinstance(sample, str):
                    failed[name][sample] = failed[name].get(sample, 0) + 1
                else:
                    samples[name].append(sample)
        cpu_per_request = {name: spent / max(num_requests, 1) for name, spent in cpu_spent.items()}
    finally:
        for close in closers:
            await close_sender(close)
    return ([summarize_level(name, 1, samples[name], failed[name], max(wall[name], 1e-9)) for name in paths],
            cpu_per_request)
