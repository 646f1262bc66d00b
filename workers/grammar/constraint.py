"""What a request asks its output to match, as the worker's wire module hands it over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from laneway_proto.error_codes import INVALID_CONSTRAINT
from workers.engine.request_error import InvalidRequest

ConstraintKind = Literal["json_schema", "json_object", "regex", "grammar", "choice"]
JSON_KINDS = ("json_schema", "json_object")


@dataclass(frozen=True)
class OutputConstraint:
    kind: ConstraintKind
    source: str = ""  # json_schema: the schema as JSON text; regex: the pattern; grammar: Lark or GBNF text
    choices: tuple[str, ...] = ()  # kind "choice" only
    lenient: bool = False  # JSON kinds: ignore schema keywords the engine does not implement

    def __post_init__(self) -> None:
        if self.kind == "choice" and not self.choices:
            raise InvalidRequest("a choice constraint needs at least one choice", INVALID_CONSTRAINT)
        if self.kind in ("json_schema", "regex", "grammar") and not self.source:
            raise InvalidRequest(f"a {self.kind} constraint needs a non-empty {self.kind}", INVALID_CONSTRAINT)

    @property
    def is_json(self) -> bool:
        """Its output is one JSON document: the matcher can steer it closed before max_tokens."""
        return self.kind in JSON_KINDS
