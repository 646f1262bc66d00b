"""Hooks for the schemathesis run in test_openapi.py (loaded through SCHEMATHESIS_HOOKS).

One check replaces schemathesis' positive_data_acceptance: a request valid by the schema
must be served, except that a 400 is right when its `code` names one of the rules JSON
Schema cannot state (gateway.routes.openapi.LIMIT_CODES, listed in the schema's 400 too).
Every other check runs as schemathesis defines it.

One hook keeps requests cheap on a tiny worker with two sequence slots, without changing
whether a request is valid: the endpoints slow by design become `chat`; `n`, prompt lists and
max_tokens (also when left out: the chat default is 256) within their bounds are cut to a few
(out of bounds, they are left alone). The limits this skips are tested in tests/gateway.
"""

from __future__ import annotations

import json

import schemathesis

from gateway.routes.openapi import LIMIT_CODES
from gateway.schemas import MAX_CHOICES, MAX_TOKENS_CEILING

# The statuses schemathesis' own check accepts for schema-valid data.
ACCEPTED = {401, 403, 404, 409, 429}
SLOW_BY_DESIGN = {"parked", "long"}  # a 60 s batch window, 1900-token streams: the drain tests' endpoints
CHEAP_CHOICES = 4
CHEAP_TOKENS = 8


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    params = case.path_parameters
    if params and params.get("endpoint") in SLOW_BY_DESIGN:
        params["endpoint"] = "chat"
    body = case.body
    if not isinstance(body, dict):
        return
    n = body.get("n")
    if type(n) is int and CHEAP_CHOICES < n <= MAX_CHOICES:
        body["n"] = CHEAP_CHOICES
    for name in ("max_tokens", "max_completion_tokens", "min_tokens"):
        value = body.get(name)
        if type(value) is int and CHEAP_TOKENS < value <= MAX_TOKENS_CEILING:
            body[name] = CHEAP_TOKENS
    if ("prompt" in body or "messages" in body) and body.get("max_tokens") is None \
            and body.get("max_completion_tokens") is None:
        body["max_tokens"] = CHEAP_TOKENS  # left out or null: the endpoint's default, up to 256
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)) \
            and CHEAP_CHOICES < len(prompt) <= MAX_CHOICES:
        body["prompt"] = prompt[:CHEAP_CHOICES]


@schemathesis.check
def positive_data_acceptance_except_stated_limits(ctx, response, case) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    status = response.status_code
    if status < 400 or status >= 500 or status in ACCEPTED:
        return None
    code = _error_code(response.text) if status == 400 else None
    if code in LIMIT_CODES:
        return None
    raise AssertionError(f"schema-valid request refused with {status} (code {code!r}), and that code is not "
                         f"one of the limits the schema lists: {response.text[:300]}")


def _error_code(text: str) -> str | None:
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        return None
    return error.get("code") if isinstance(error, dict) else None
