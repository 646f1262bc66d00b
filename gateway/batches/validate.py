"""Up-front validation of a batch input file: every line, before any line runs.

A file with any bad line fails the whole batch with OpenAI's `errors.data` list, each
error naming its 1-based line number, so the author fixes the file once instead of
finding out line by line in the error file. Checked: JSON per line, the request shape
{custom_id, method, url, body}, custom_id unique, url equal to the batch's endpoint, and
each body as the endpoint would check it over HTTP (gateway.intake.job_from_body).

`validate_file` is one synchronous pass that reads the file line by line (no list of all
lines), checks each line's shape and body as it goes, and stops reading at the first
line past MAX_LINES: a file of a million lines costs the same as one of MAX_LINES + 1.
The runner calls it in a thread (asyncio.to_thread), so a 200 MB file never holds the
event loop, and every stream on the gateway keeps flowing while it is checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gateway.batches.item_queue import Item
from gateway.errors import APIError

MAX_LINES = 50_000  # OpenAI's per-batch limit
MAX_ERRORS = 100  # reported; the rest are summarised in one last error


@dataclass(frozen=True)
class LineError:
    code: str
    message: str
    line: int | None = None
    param: str | None = None

    def to_openai(self) -> dict:
        return {"code": self.code, "message": self.message, "line": self.line, "param": self.param}


def validate_file(text: str, url: str, check: Callable[[dict], object]) -> tuple[list[Item], list[LineError]]:
    """The file's requests, or every problem with its lines (shape, then body by `check`, which
    raises APIError as the HTTP route would). Blocking: run it off the event loop."""
    items: list[Item] = []
    errors: list[LineError] = []
    seen: dict[str, int] = {}
    num_requests = 0
    for number, raw in enumerate(_lines(text), start=1):
        if not raw.strip():
            continue  # blank lines (a trailing newline, spacing) hold no request
        num_requests += 1
        if num_requests > MAX_LINES:
            errors.append(LineError("too_many_requests", f"the input file has more than {MAX_LINES} requests "
                                                         f"(line {number} is request {num_requests}); a batch "
                                                         f"takes at most {MAX_LINES}", number))
            break  # the limit is enforced as the file is read: nothing past it is parsed
        item, error = _parse_line(raw, number, url)
        if error is None and item is not None and item.custom_id in seen:
            error = LineError("duplicate_custom_id", f"custom_id {item.custom_id!r} is already used on line "
                                                     f"{seen[item.custom_id]}; each line needs its own", number,
                              "custom_id")
        if error is None and item is not None:
            error = _check_body(item, check)
        if error is not None:
            errors.append(error)
        elif item is not None:
            seen[item.custom_id] = number
            items.append(item)
    if not items and not errors:
        errors.append(LineError("empty_file", "the input file has no requests"))
    return items, errors


def _lines(text: str) -> Iterator[str]:
    """The text's lines one at a time (\n or \r\n), without building a list of them all."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        yield text[start:end].rstrip("\r")
        start = end + 1


def _parse_line(raw: str, number: int, url: str) -> tuple[Item | None, LineError | None]:
    try:
        req = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, LineError("invalid_json_line", f"line is not valid JSON: {exc.msg} at column {exc.colno}",
                               number)
    if not isinstance(req, dict):
        return None, LineError("invalid_json_line", f"line must be a JSON object, got {type(req).__name__}",
                               number)
    custom_id = req.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return None, LineError("missing_required_parameter", "custom_id must be a non-empty string", number,
                               "custom_id")
    if req.get("method") != "POST":
        return None, LineError("invalid_method", f"method must be \"POST\", got {req.get('method')!r}", number,
                               "method")
    if req.get("url") != url:
        return None, LineError("mismatched_url", f"url {req.get('url')!r} does not match the batch's endpoint "
                                                 f"{url!r}", number, "url")
    body = req.get("body")
    if not isinstance(body, dict):
        return None, LineError("invalid_request", "body must be a JSON object (the request body)", number, "body")
    return Item(number, custom_id, body), None


def _check_body(item: Item, check: Callable[[dict], object]) -> LineError | None:
    if item.body.get("stream"):
        return LineError("invalid_request", "stream: true is not supported in a batch; every line gets one full "
                                            "response", item.line, "body.stream")
    try:
        check(item.body)
    except APIError as exc:
        param = f"body.{exc.param}" if exc.param else "body"
        return LineError("invalid_request", exc.message, item.line, param)
    return None


def capped(errors: list[LineError]) -> list[dict]:
    """At most MAX_ERRORS, in line order, plus one saying how many more there were."""
    ordered = sorted(errors, key=lambda e: e.line or 0)
    shown = [e.to_openai() for e in ordered[:MAX_ERRORS]]
    if len(ordered) > MAX_ERRORS:
        shown.append(LineError("too_many_errors", f"{len(ordered) - MAX_ERRORS} more errors not shown").to_openai())
    return shown
