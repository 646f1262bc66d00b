"""The base of every policy model, its scalar types, and how models report problems.

Policy files are written by product owners, so validation is deliberately unforgiving:
unknown fields are errors (a typo must not silently fall back to a default), numbers
must be numbers (`"10"` and `true` are not 10), and every problem carries the field
path, the offending value and what was expected, for `policy_errors` to print.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

# Durations are milliseconds; fractions are allowed (`2.5`), infinity and NaN are not.
Ms = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
PositiveMs = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
Count = Annotated[int, Strict(), Field(ge=1)]
Text = Annotated[str, Strict()]

# Names end up in URLs (/v1/endpoints/NAME/...), metric labels and log lines.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
NAME_EXPECTED = "a URL-safe name: lowercase letters a-z, digits, '-' and '_', not starting with '-' or '_'"


class Problem(ValueError):
    """One bad value. `loc` is relative to the model (or field) that raised it."""

    def __init__(self, loc: tuple[str | int, ...], value: Any, expected: str) -> None:
        super().__init__(f"{'.'.join(map(str, loc)) or '<root>'}: expected {expected}")
        self.loc = loc
        self.value = value
        self.expected = expected


class Problems(ValueError):
    """Several problems found by one cross-field check, reported together."""

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("Problems needs at least one problem")
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def show_number(value: float) -> str:
    """300.0 -> '300', 2.5 -> '2.5', 86400000.0 -> '86400000' (never exponent notation)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def raise_if_any(problems: list[Problem]) -> None:
    if problems:
        raise Problems(problems)


def _one_or_many(value: Any) -> Any:
    # `endpoint: chat` reads better than `endpoint: [chat]`; both mean the same.
    return [value] if isinstance(value, str) else value


TextList = Annotated[
    tuple[Text, ...],
    Field(min_length=1),
    BeforeValidator(_one_or_many, json_schema_input_type=str | list[str]),
]


class Spec(BaseModel):
    """Frozen, closed, documented: the shape shared by every policy model."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_alias=True,
        validate_by_name=True,
        use_attribute_docstrings=True,
    )
