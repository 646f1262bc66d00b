"""What a job's output must match (structured outputs, forced tool calls), in gateway terms.

The worker compiles it into a grammar and masks tokens by it; gateway/wire.py is the one
place it becomes the proto's OutputConstraint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ConstraintKind = Literal["json_schema", "json_object", "regex", "grammar", "choice"]


@dataclass(frozen=True)
class Constraint:
    kind: ConstraintKind
    source: str = ""  # json_schema: the schema as JSON text; regex / grammar: their text
    choices: tuple[str, ...] = ()  # kind "choice"
    lenient: bool = False  # JSON kinds: schema keywords the engine lacks are ignored, not refused
