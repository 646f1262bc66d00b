"""Classification rules: send some requests of an endpoint to another lane.

Rules are tried in order and the first whose every condition holds wins; a request no
rule matches goes to its endpoint's own lane (the explicit default). A rule with an
empty `match: {}` matches everything, so it may only be the last rule.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict, field_validator, model_validator

from lanes.spec import Problem, Spec, Text, TextList

TokenCount = Annotated[int, Strict(), Field(ge=0)]


class TokenRange(Spec):
    """Inclusive bounds on a token count; either bound may be left out."""

    min: TokenCount | None = None
    max: TokenCount | None = None

    @model_validator(mode="after")
    def _check_bounds(self) -> TokenRange:
        if self.min is None and self.max is None:
            raise Problem((), {}, "at least one of min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise Problem(("max",), self.max, f"at least min ({self.min})")
        return self

    def contains(self, value: int) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class RuleMatch(Spec):
    """Conditions on a request; all given conditions must hold."""

    endpoint: TextList | None = None
    """Endpoint name, or a list of names (any of them)."""
    stream: Annotated[bool, Strict()] | None = None
    """true: only streamed requests; false: only requests answered in one body."""
    tenant: TextList | None = None
    """Tenant name, or a list of names (any of them)."""
    header: dict[Text, Text] | None = None
    """HTTP headers that must be present with exactly these values; names are case-insensitive."""
    prompt_tokens: TokenRange | None = None
    """Bounds on the prompt length in tokens, e.g. {min: 8000}."""
    max_tokens: TokenRange | None = None
    """Bounds on the tokens the request asks to generate, e.g. {max: 64}."""

    @field_validator("header")
    @classmethod
    def _lower_case_names(cls, header: dict[str, str] | None) -> dict[str, str] | None:
        # HTTP header names are case-insensitive; the gateway hands them over lower-cased.
        if header is None:
            return None
        lowered = {name.lower(): value for name, value in header.items()}
        if len(lowered) != len(header):
            raise Problem((), header, "each header name once (names are case-insensitive)")
        return lowered

    @property
    def is_client_controlled(self) -> bool:
        """True when a client can make this match by what it sends (headers, stream, token
        counts); endpoint and tenant conditions are the policy author's choice alone."""
        return any(getattr(self, name) is not None
                   for name in ("stream", "header", "prompt_tokens", "max_tokens"))

    @property
    def is_catch_all(self) -> bool:
        return all(getattr(self, name) in (None, {}) for name in type(self).model_fields)


class Rule(Spec):
    match: RuleMatch
    """Conditions; {} matches every request."""
    lane: Text
    """Lane the matching requests go to."""
    description: Text = ""
