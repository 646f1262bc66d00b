"""Runs the engine on a plain thread; the async gRPC side talks to it through a hand-off queue.

The thread is the loop's own, or the one that built the engine (`bind_to_current_thread`,
workers/build.py): libgomp keeps one OpenMP thread team per thread that runs parallel
regions, and once a process holds more team threads than cores (gomp_managed_threads >
gomp_available_cpus) every team's spin-wait drops to its short throttled count; torch's idle
threads then sleep at the end of nearly every one of the ~60 parallel regions of a decode step
(measured: as slow as OMP_WAIT_POLICY=PASSIVE), and a served stream ran 30-40% slower than the
same engine driven in-process (docs/benchmarks.md). Building the model (weight packing,
warm-up) and stepping it on one thread keeps one team.

Commands (add, abort) cross into the thread through `_inbox`; outputs cross back through
each sequence's `on_output` callback, which the servicer binds to its event loop with
`call_soon_threadsafe`. The thread sleeps on the inbox when there is no work. A sequence
with a `stream_interval_s` is paced here (workers/engine/stream_pacing.py): its outputs
cross in fewer, merged hand-offs. A live sequence keeps the engine stepping, so what its
pacer holds always leaves at the end of some step (its final output takes the rest along).

A request the engine refuses (InvalidRequest from `Engine.add`) gets one final output
naming why, and the thread carries on; so does one that fails in `Engine.add` before the
scheduler took it (its error, answered INTERNAL, is its own). Anything else escaping a
step is an engine failure: the engine's state can no longer be trusted, so the loop stops
for good. It first tells the process (`on_fatal`: health NOT_SERVING, then exit so a
supervisor restarts it), then ends every request, running, queued or still in the inbox,
with an error output; a request added afterwards gets its error at once. No stream is ever
left waiting on a dead thread.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from workers.engine.engine import Engine
from workers.engine.lane_caps import LaneLoad
from workers.engine.outputs import RequestOutput
from workers.engine.request_error import InvalidRequest
from workers.engine.sequence import Sequence
from workers.engine.stream_pacing import StreamPacer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadSnapshot:
    num_running: int = 0
    num_waiting: int = 0
    num_free_kv_blocks: int = 0
    num_total_kv_blocks: int = 0
    num_queued_prefill_tokens: int = 0
    lanes: tuple[LaneLoad, ...] = ()
    step_time_budget_s: float = math.inf  # inf: no step-time model, or nothing to protect
    num_bulk_slots: int = 0


class EngineLoop:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # A Sequence to add, a seq_id to abort, or None to wake the thread (stop).
        self._inbox: queue.SimpleQueue[Sequence | str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="engine-loop", daemon=True)
        self._bound = False  # True: _thread is the builder's, waiting in run_bound() for start()
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._live: dict[str, Sequence] = {}  # routing only: id -> the one Sequence object
        self._pacers: dict[str, StreamPacer] = {}  # live sequences with a stream interval
        self.load = self._snapshot()
        self.fatal_error: BaseException | None = None
        # Called on the engine thread when the engine fails, before any request hears of it,
        # so health can say NOT_SERVING first (workers/main.py). It may block briefly.
        self.on_fatal: Callable[[BaseException], None] | None = None
        # Called once the outputs of a step (or of a failure) have all gone to their sequences'
        # `on_output`: a receiver that batches them hands them over now (workers/loop_mailbox.py).
        self.on_outputs_sent: Callable[[], None] | None = None

    def bind_to_current_thread(self) -> None:
        """The calling thread (the one that built the engine) will run the loop: it calls
        `run_bound()` next, which returns once the loop stops. Call before `start()`."""
        if self._started.is_set():
            raise RuntimeError("bind_to_current_thread() after start()")
        self._thread = threading.current_thread()
        self._bound = True

    def run_bound(self) -> None:
        """On the bound thread: wait for `start()` (or `stop()`), then run the loop."""
        self._started.wait()
        if not self._stopping.is_set():
            self._run()

    def start(self) -> None:
        self._started.set()
        if not self._bound:
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._inbox.put(None)
        self._started.set()  # a bound thread still waiting for start() returns
        if self._thread is not threading.current_thread() and self._thread.ident is not None:
            self._thread.join(timeout)

    def add(self, seq: Sequence) -> None:
        self._inbox.put(seq)
        if self.fatal_error is not None:  # the thread is gone: nobody else will answer it
            self._fail_inbox()

    def abort(self, seq_id: str) -> None:
        self._inbox.put(seq_id)

    def is_live(self, seq_id: str) -> bool:
        return seq_id in self._live

    def live_ids_of(self, request_id: str) -> list[str]:
        """The live sequences of one request (its choices). Called off the engine thread: the
        copy is one C-level call under the GIL, so the dict cannot change while it is made."""
        return [seq.seq_id for seq in list(self._live.values()) if seq.request_id == request_id]

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._drain_inbox(block=not self.engine.has_work())
                if self.engine.has_work():
                    self._deliver(self.engine.step())
                self._outputs_sent()
                self.load = self._snapshot()
        except BaseException as exc:  # the model failed: fail every request, loudly
            log.exception("engine loop crashed")
            self.fatal_error = exc  # set first: add() from now on fails its own sequence
            if self.on_fatal is not None:
                try:
                    self.on_fatal(exc)
                except Exception:
                    log.exception("on_fatal failed; failing the requests anyway")
            for seq in list(self._live.values()):
                pacer = self._pacers.pop(seq.seq_id, None)  # what it held goes first, then the error
                for out in pacer.offer(_failed(seq, exc), 0.0) if pacer is not None else [_failed(seq, exc)]:
                    self._send(seq, out)
            self._live.clear()
            self._outputs_sent()
            self._fail_inbox()

    def _fail_inbox(self) -> None:
        """After a failure: sequences that never reached the engine fail too (any thread may
        call this; each queued item is taken, and answered, once)."""
        exc = self.fatal_error
        assert exc is not None, "_fail_inbox() before the engine failed"
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Sequence):
                self._send(item, _failed(item, exc))
                self._outputs_sent()

    def _drain_inbox(self, block: bool) -> None:
        try:
            item = self._inbox.get(timeout=0.5) if block else self._inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            self._apply(item)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _apply(self, item: Sequence | str | None) -> None:
        if isinstance(item, Sequence):
            self._add(item)
        elif isinstance(item, str):
            self.engine.abort(item)

    def _add(self, seq: Sequence) -> None:
        try:
            self.engine.add(seq)
        except InvalidRequest as exc:  # this request's fault: refuse it alone, keep serving
            self._send(seq, RequestOutput(seq.seq_id, [], "", finish_reason="abort", invalid_request=str(exc)))
            return
        except Exception as exc:
            if self.engine.scheduler.get(seq.seq_id) is seq:
                raise  # the scheduler holds it half-added: its state is not to be trusted
            # Nothing was queued (e.g. its tokenizer failed on these ids): this request fails alone.
            log.exception("request %s failed before the engine took it", seq.seq_id)
            self._send(seq, RequestOutput(seq.seq_id, [], "", finish_reason="abort",
                                          error=f"request failed: {exc.__class__.__name__}"))
            return
        self._live[seq.seq_id] = seq  # only once accepted: a refused duplicate never reroutes the original
        if seq.stream_interval_s > 0:
            self._pacers[seq.seq_id] = StreamPacer(seq.stream_interval_s)

    def _deliver(self, outputs: list[RequestOutput]) -> None:
        offered: set[str] = set()
        for out in outputs:
            seq = self._live.get(out.seq_id)
            if seq is None:
                continue
            if out.is_finished:
                del self._live[out.seq_id]
            pacer = self._pacers.pop(out.seq_id, None) if out.is_finished else self._pacers.get(out.seq_id)
            if pacer is None:
                self._send(seq, out)
                continue
            offered.add(out.seq_id)
            for ready in pacer.offer(out, self.engine.last_step_s):
                self._send(seq, ready)
        for seq_id, pacer in self._pacers.items():  # paced sequences that made nothing this step (preempted)
            if seq_id not in offered and pacer.is_holding:
                for ready in pacer.due(self.engine.last_step_s):
                    self._send(self._live[seq_id], ready)

    def _outputs_sent(self) -> None:
        if self.on_outputs_sent is not None:
            self.on_outputs_sent()

    @staticmethod
    def _send(seq: Sequence, out: RequestOutput) -> None:
        if seq.on_output is not None:
            seq.on_output(out)

    def _snapshot(self) -> LoadSnapshot:
        sched = self.engine.scheduler
        bm = sched.block_manager
        return LoadSnapshot(
            num_running=sched.num_running,
            num_waiting=sched.num_waiting,
            num_free_kv_blocks=bm.num_free_blocks,
            num_total_kv_blocks=bm.num_total_blocks,
            num_queued_prefill_tokens=sched.num_queued_prefill_tokens,
            lanes=tuple(sched.lane_loads()),
            step_time_budget_s=sched.step_time_budget() if sched.cost is not None else math.inf,
            num_bulk_slots=sched.num_bulk_slots(),
        )


def _failed(seq: Sequence, exc: BaseException) -> RequestOutput:
    return RequestOutput(seq.seq_id, [], "", finish_reason="abort",
                         error=f"engine failure: {exc.__class__.__name__}")  # details in the worker's log
