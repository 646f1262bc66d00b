"""Turn validation failures into messages a product owner can act on.

Every message names the file, the line when known, the field path, the bad value and
what was expected: `policies/x.yaml:12: lanes.bulk.priority: got -1; expected >= 0`.
"""

from __future__ import annotations

import difflib
import json
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from lanes.policy_model import Policy
from lanes.spec import Problem, Problems, show_number

Loc = tuple[str | int, ...]
LineOf = Callable[[Loc], int | None]

_MAX_SHOWN = 80
_SECRET_FIELDS = {"keys_sha256"}  # a clear-text key pasted here must not reach logs


@dataclass(frozen=True)
class PolicyProblem:
    source: str
    line: int | None
    path: str
    got: str
    expected: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.path or '(top level)'}: got {self.got}; expected {self.expected}"


class PolicyError(Exception):
    """A policy file that cannot be used; the message lists every problem, one a line."""

    def __init__(self, source: str, problems: Sequence[PolicyProblem | str]) -> None:
        if not problems:
            raise ValueError("PolicyError needs at least one problem")
        self.source = source
        self.problems = tuple(str(p) for p in problems)
        super().__init__("\n".join(self.problems))


def problems_from_validation(err: ValidationError, source: str, line_of: LineOf) -> list[PolicyProblem]:
    problems = []
    for detail in err.errors():
        for loc, value, expected in _explain(detail):
            problems.append(PolicyProblem(source, line_of(loc), _path(loc), _show(value, loc), expected))
    return problems


def _explain(detail: ErrorDetails) -> list[tuple[Loc, Any, str]]:
    loc: Loc = tuple(part for part in detail["loc"] if part != "[key]")
    error = detail.get("ctx", {}).get("error")
    if isinstance(error, Problems):
        return [(loc + p.loc, p.value, p.expected) for p in error.problems]
    if isinstance(error, Problem):
        return [(loc + error.loc, error.value, error.expected)]
    kind = detail["type"]
    if kind == "missing":
        return [(loc, _NOTHING, f"a value (required): {_describe(loc)}")]
    if kind == "extra_forbidden":
        return [(loc, _UnknownField(str(loc[-1])), _known_fields(loc))]
    return [(loc, detail["input"], _expected(detail))]


def _expected(detail: ErrorDetails) -> str:
    ctx = detail.get("ctx", {})
    bounds = {
        "greater_than": "more than {gt}",
        "greater_than_equal": "{ge} or more",
        "less_than": "less than {lt}",
        "less_than_equal": "{le} or less",
        "too_short": "at least {min_length} item(s)",
        "too_long": "at most {max_length} item(s)",
    }
    words = {
        "int_type": "a whole number",
        "int_from_float": "a whole number",
        "float_type": "a number",
        "finite_number": "a finite number",
        "bool_type": "true or false",
        "string_type": "text",
        "dict_type": "a mapping (name: value pairs)",
        "model_type": "a mapping (name: value pairs)",
        "model_attributes_type": "a mapping (name: value pairs)",
        "tuple_type": "a list",
        "list_type": "a list",
    }
    kind = detail["type"]
    if kind in bounds:
        return bounds[kind].format(**{key: show_number(value) for key, value in ctx.items()})
    if kind in words:
        return words[kind]
    if kind in ("enum", "literal_error"):
        return "one of " + str(ctx.get("expected", "")).replace("'", "")
    msg = detail["msg"]
    return msg.removeprefix("Input should be ").removeprefix("Value error, ")


class _Nothing:
    pass


_NOTHING = _Nothing()


@dataclass(frozen=True)
class _UnknownField:
    name: str


def _show(value: Any, loc: Loc) -> str:
    if value is _NOTHING:
        return "nothing"
    if isinstance(value, _UnknownField):
        return f"an unknown field {value.name!r}"
    if _SECRET_FIELDS.intersection(p for p in loc if isinstance(p, str)) and isinstance(value, str):
        return f"a value of {len(value)} characters (not shown: it may be a secret)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return show_number(value)
    shown = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return shown if len(shown) <= _MAX_SHOWN else shown[: _MAX_SHOWN - 3] + "..."


def _path(loc: Loc) -> str:
    """`lanes.bulk.priority`, `rules[2].lane`: names joined by dots, list items by index."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.removeprefix(".")


def _known_fields(loc: Loc) -> str:
    model = _type_at(loc[:-1])
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return "no field here"
    names = [field.alias or name for name, field in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return "one of the fields: " + ", ".join(names) + hint


def _describe(loc: Loc) -> str:
    field = _field_at(loc)
    if field is None or not field.description:
        return "see `laneway policy schema`"
    return " ".join(field.description.split())


def _type_at(loc: Loc) -> Any:
    """The annotation that validates the value at `loc` in a policy (None if unknown)."""
    tp: Any = Policy
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = _model_field(tp, part)
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) in (tuple, list):
            tp = get_args(tp)[0]
        else:
            return None
    return _unwrap(tp)


def _field_at(loc: Loc) -> FieldInfo | None:
    if not loc:
        return None
    model = _type_at(loc[:-1])
    if isinstance(model, type) and issubclass(model, BaseModel):
        return _model_field(model, loc[-1])
    return None


def _model_field(model: type[BaseModel], key: str | int) -> FieldInfo | None:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and `X | None` down to X."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            arms = [arm for arm in get_args(tp) if arm is not type(None)]
            if len(arms) != 1:
                return tp
            tp = arms[0]
        else:
            return tp
