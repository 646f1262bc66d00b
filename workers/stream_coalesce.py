"""Coalescing a stream's outputs into one gRPC message when the reader has fallen behind.

The engine produces one output per sequence per step. When the servicer's event loop (or
the gateway behind it) is slower than the engine, for instance at 32 streams on 2 cores,
outputs queue up, and sending each as its own message costs a serialisation, a write and a
gateway-side parse and SSE event per token: CPU taken from the engine, on the same cores.

The rule: take what is already queued, never wait for more. A token the reader could take
now is never held back to fill a chunk; a reader that keeps up gets one token per message,
exactly as before. Outputs that end the stream with an error stay on their own, so the
servicer still aborts with the right status after delivering every token before them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from workers.engine.outputs import RequestOutput


def is_mergeable(out: RequestOutput) -> bool:
    """Error outputs travel alone: they end the call with a status, not a chunk."""
    return out.error is None and out.invalid_request is None


def merge(outputs: Sequence[RequestOutput]) -> RequestOutput:
    """Consecutive outputs of one sequence as one: tokens, text and logprobs concatenated in
    order; the finish reason and usage are the last one's (only the last can carry them)."""
    if not outputs:
        raise ValueError("merge needs at least one output")
    if len(outputs) == 1:
        return outputs[0]
    first, last = outputs[0], outputs[-1]
    if any(o.seq_id != first.seq_id for o in outputs):
        raise ValueError("merge takes outputs of one sequence only")
    if not all(is_mergeable(o) for o in outputs):
        raise ValueError("error outputs are never merged")
    if any(o.is_finished for o in outputs[:-1]):
        raise ValueError("only the last merged output may finish the stream")
    return RequestOutput(
        seq_id=first.seq_id,
        token_ids=[t for o in outputs for t in o.token_ids],
        text="".join(o.text for o in outputs),
        finish_reason=last.finish_reason,
        usage=last.usage,
        logprobs=[lp for o in outputs for lp in o.logprobs],
    )


def take_ready(queue: asyncio.Queue[RequestOutput], first: RequestOutput,
               max_outputs: int = 64) -> tuple[RequestOutput, RequestOutput | None]:
    """`first` plus whatever is already waiting behind it in `queue`, merged; never awaits.

    Returns the merged output and, when an error output was taken off the queue behind
    mergeable ones, that error output: the caller handles it next, after sending the merge.
    Nothing is taken after a finishing output. `max_outputs` bounds one message's size."""
    if not is_mergeable(first) or first.is_finished:
        return first, None
    taken = [first]
    while len(taken) < max_outputs and not queue.empty():
        nxt = queue.get_nowait()
        if not is_mergeable(nxt):
            return merge(taken), nxt
        taken.append(nxt)
        if nxt.is_finished:
            break
    return merge(taken), None
