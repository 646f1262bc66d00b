"""The live progress line of `laneway load`, on stderr about once a second.

    [load x1] 12s/60s sent 240/1200 lag p99 1ms | in flight 35 | ok 200 429 3 err 2 | chat 410 tok/s ttft p95 220ms

On a terminal the line rewrites itself; into a file or pipe each update is its own line.
Counters are updated by the run on the event loop; the printer reads them there too.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import defaultdict, deque
from typing import TextIO

from laneway.load.client import RequestResult
from laneway.load.stats import percentile


class Progress:
    def __init__(self, label: str, total: int, duration_s: float, out: TextIO | None = None,
                 interval_s: float = 1.0) -> None:
        self.label = label
        self.total = total
        self.duration_s = duration_s
        self.out = out if out is not None else sys.stderr
        self.interval_s = interval_s
        self.num_sent = 0
        self.num_ok = 0
        self.num_refused = 0
        self.num_errors = 0
        self._lags: deque[float] = deque(maxlen=2000)
        self._ttfts: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=500))
        self._tokens: dict[str, deque[tuple[float, int]]] = defaultdict(deque)  # (done at, tokens), last 5 s
        self._started = time.perf_counter()
        self._task: asyncio.Task | None = None
        self._is_tty = self.out.isatty()

    def on_sent(self, lag_s: float) -> None:
        self.num_sent += 1
        self._lags.append(lag_s)

    def on_done(self, r: RequestResult) -> None:
        if r.ok:
            self.num_ok += 1
            if r.ttft_s is not None:
                self._ttfts[r.endpoint].append(r.ttft_s)
            self._tokens[r.endpoint].append((time.perf_counter(), r.output_tokens))
        elif r.status == 429:
            self.num_refused += 1
        else:
            self.num_errors += 1

    def line(self) -> str:
        now = time.perf_counter()
        lag = percentile(list(self._lags), 99)
        planned = f"/{self.total}" if self.total else ""  # a closed loop plans no count
        head = f"[{self.label}] {now - self._started:4.0f}s/{self.duration_s:.0f}s sent {self.num_sent}{planned}"
        if lag is not None:
            head += f" lag p99 {lag * 1e3:.0f}ms"
        in_flight = self.num_sent - self.num_ok - self.num_refused - self.num_errors
        parts = [head, f"in flight {in_flight}", f"ok {self.num_ok} 429 {self.num_refused} err {self.num_errors}"]
        for endpoint in sorted(self._tokens):
            window = self._tokens[endpoint]
            while window and window[0][0] < now - 5.0:
                window.popleft()
            rate = sum(n for _, n in window) / 5.0
            p95 = percentile(list(self._ttfts[endpoint]), 95)
            ttft = f" ttft p95 {p95 * 1e3:.0f}ms" if p95 is not None else ""
            parts.append(f"{endpoint} {rate:.0f} tok/s{ttft}")
        return " | ".join(parts)

    def start(self) -> None:
        self._task = asyncio.create_task(self._print_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._write(self.line(), final=True)

    async def _print_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self._write(self.line())

    def _write(self, text: str, final: bool = False) -> None:
        if self._is_tty:
            self.out.write("\r\x1b[2K" + text + ("\n" if final else ""))
        else:
            self.out.write(text + "\n")
        self.out.flush()
