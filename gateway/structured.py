"""A request's structured-output fields -> the job's Constraint, or a 400 naming the field."""

from __future__ import annotations

import json
from collections.abc import Mapping

from gateway.constraint import Constraint
from gateway.errors import bad_request
from gateway.structured_schemas import (
    LEGACY_FIELDS,
    JsonObjectFormat,
    JsonSchemaResponseFormat,
    ResponseFormat,
    StructuredOutputs,
)


def refuse_legacy_fields(body: object) -> None:
    """Fields other servers take that would change the output: a 400 naming the field and
    what to send instead, never silently ignored."""
    if not isinstance(body, Mapping):
        return
    for name, instead in LEGACY_FIELDS.items():
        if name in body:
            hint = f"; send {instead} instead" if instead else ""
            raise bad_request(f"{name} is not supported{hint}", param=name, code="unsupported_field")


def response_format_constraint(fmt: ResponseFormat | None) -> Constraint | None:
    if isinstance(fmt, JsonObjectFormat):
        return Constraint("json_object")
    if isinstance(fmt, JsonSchemaResponseFormat):
        spec = fmt.json_schema
        # OpenAI's strict mode refuses schemas it cannot enforce; non-strict is best effort.
        return Constraint("json_schema", source=json.dumps(spec.json_schema), lenient=not spec.strict)
    return None  # text, or absent


def structured_outputs_constraint(so: StructuredOutputs | None) -> Constraint | None:
    if so is None:
        return None
    if so.json_ is not None:
        source = so.json_ if isinstance(so.json_, str) else json.dumps(so.json_)  # vLLM takes either
        return Constraint("json_schema", source=source)
    if so.json_object:
        return Constraint("json_object")
    if so.regex is not None:
        return Constraint("regex", source=so.regex)
    if so.choice is not None:
        return Constraint("choice", choices=tuple(so.choice))
    if so.grammar is not None:
        return Constraint("grammar", source=so.grammar)
    return None
