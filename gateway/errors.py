"""Domain errors of the HTTP edge and the handlers that render them as OpenAI-style bodies.

Every error a client sees is `{"error": {"message", "type", "param", "code"}}` with a 4xx
or 5xx status; no traceback ever reaches a client.
"""

from __future__ import annotations

import json
import logging
import re

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger(__name__)


class APIError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def refused(reason: str, message: str, retry_after_s: float) -> APIError:
    """Capacity refusal: 429 with Retry-After and the reason, so clients can back off sensibly."""
    retry = max(1, int(retry_after_s + 0.999))
    return APIError(429, message, type="rate_limit_error", code=reason,
                    headers={"Retry-After": str(retry), "x-laneway-reject-reason": reason})


def unavailable(message: str, retry_after_s: float = 1.0) -> APIError:
    return APIError(503, message, type="service_unavailable", code="unavailable",
                    headers={"Retry-After": str(max(1, int(retry_after_s)))})


def from_validation_error(exc: ValidationError) -> APIError:
    """Name the offending field and what was wrong with it. A value that fits no member of a
    union (a prompt may be a string or lists) fails once per member: the deepest failure is the
    one that says most (a content part of the wrong type, rather than "not a string")."""
    errors = exc.errors()
    first = max(errors, key=lambda e: len(_field_path(e["loc"])))  # max keeps the first of equals
    param = ".".join(_field_path(first["loc"])) or None
    if first["type"] == "extra_forbidden":  # OpenAI's words for an unknown field
        return APIError(400, f"Unrecognized request argument supplied: {param}", param=param,
                        code="unknown_parameter")
    value = first.get("input")
    shown = json.dumps(value, default=str)[:80] if first["type"] != "missing" else None
    msg = f"{param}: {first['msg']}" if param else first["msg"]
    if shown is not None:
        msg += f" (got {shown})"
    return APIError(400, msg, param=param, code=first["type"])


def _field_path(loc: tuple[int | str, ...]) -> list[str]:
    # pydantic puts each union member's tag in the location ("str", "list[int]", "constrained-str"):
    # the client wrote none of them.
    return [str(p) for p in loc if not (isinstance(p, str) and _UNION_TAG.fullmatch(p))]


_UNION_TAG = re.compile(r"(constrained-|function-\w+-)?(str|int|float|bool|none|list|dict|tuple)(\[.*\])?|.*\[.*\]")


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, APIError):  # Starlette routes only APIError here; never a traceback regardless
        return await unhandled_error_handler(request, exc)
    return exc.response()


async def http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HTTPException):
        return await unhandled_error_handler(request, exc)
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    return APIError(exc.status_code, str(exc.detail), type=kind, headers=dict(exc.headers or {})).response()


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return APIError(500, "internal error; the request was not completed", type="server_error",
                    code="internal_error").response()


EXCEPTION_HANDLERS = {
    APIError: api_error_handler,
    HTTPException: http_exception_handler,
    Exception: unhandled_error_handler,
}
