"""The one error for bad input from a caller, wherever in the worker it is found.

Raised by the wire module (workers/wire.py) and the request-shaped types it builds
(SamplingParams, LanePolicy, Sequence), and by the scheduler for what only the worker
knows (its context length, its KV pool, the ids it is running). The servicer answers it
with INVALID_ARGUMENT for that request alone; on the engine thread the engine loop
refuses the one sequence and keeps serving. Never an assert: asserts vanish under -O, and
one raised on the engine thread would fail every request.
"""

from __future__ import annotations


class InvalidRequest(ValueError):
    """Bad input from the caller; the message names the offending value, `code` the rule
    (laneway_proto.error_codes: the servicer sends it beside the status)."""

    def __init__(self, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.code = code
