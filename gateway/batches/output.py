"""Lines of a batch's output and error files, in OpenAI's format.

    {"id": "batch_req_...", "custom_id": "...", "response": {"status_code", "request_id", "body"},
     "error": null}

A request that ran and failed (4xx/5xx) goes to the error file with its response; a
request that never ran (the batch expired or was cancelled first) has `response: null`
and an `error` with a code, also in the error file.
"""

from __future__ import annotations

import uuid

from gateway.batches.item_queue import Answer

EXPIRED = ("batch_expired", "This request could not be executed before the completion window expired.")
CANCELLED = ("batch_cancelled", "This request was not executed because the batch was cancelled.")
TENANT_REMOVED = ("tenant_removed", "This request was not executed: its tenant was removed from the gateway's "
                  "policy while the batch ran.")
GAVE_UP = ("too_many_attempts", "This request was started {n} times and no attempt finished (each time the "
            "gateway running it died or failed); it is not retried again.")


def _line_id() -> str:
    return f"batch_req_{uuid.uuid4().hex[:24]}"


def response_answer(custom_id: str, status_code: int, request_id: str, body: dict) -> Answer:
    line = {"id": _line_id(), "custom_id": custom_id,
            "response": {"status_code": status_code, "request_id": request_id, "body": body}, "error": None}
    return Answer(ok=200 <= status_code < 300, line=line)


def unrun_answer(custom_id: str, reason: tuple[str, str]) -> Answer:
    code, message = reason
    return Answer(ok=False, line={"id": _line_id(), "custom_id": custom_id, "response": None,
                                  "error": {"code": code, "message": message}})
