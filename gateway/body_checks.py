"""What no generation body may carry, checked before the pydantic models see it.

Both raise a 400 naming the place: OpenAI fields that would change the output and are not
served here (the models would call them merely unrecognized), and lone UTF-16 surrogates,
which JSON can escape but no text holds (the worker could not encode them).
"""

from __future__ import annotations

from gateway.errors import bad_request
from gateway.schemas import UNSUPPORTED


def refuse_unsupported(body: object) -> None:
    """OpenAI fields that would change the output and are not served here: a 400 naming the field
    (unknown fields in general are refused by the models, as unrecognized)."""
    if isinstance(body, dict):
        for name, why in UNSUPPORTED.items():
            if name in body:
                raise bad_request(f"{name} is not supported by this server: {why}", param=name,
                                  code="unsupported_parameter")


def refuse_lone_surrogates(body: object) -> None:
    """JSON may escape a lone UTF-16 surrogate ("\\ud800"); such a string is no text and cannot be
    encoded for the worker: a 400 naming where it is, not a failure later. Iterative: a body
    nested as deep as the JSON parser allows must not exhaust the stack here."""
    stack: list[tuple[object, str]] = [(body, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            try:
                value.encode()
            except UnicodeEncodeError:
                raise bad_request(f"{path or 'body'} holds a lone UTF-16 surrogate, which is not text",
                                  param=path or None, code="invalid_text") from None
        elif isinstance(value, dict):
            stack.extend((key, path) for key in value)
            stack.extend((item, f"{path}.{key}" if path else str(key)) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, f"{path}.{i}" if path else str(i)) for i, item in enumerate(value))
