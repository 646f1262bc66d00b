"""An endpoint: one product feature with its own URL, lane, latency budget and limits.

The endpoint decides how much queue time is legal; the lane only spends it. The gateway
refuses a request at once (429) when its predicted wait would break the endpoint's
budget, and rejects (400) a request over its limits; nothing is clamped silently.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from pydantic import Field, Strict, model_validator

from lanes.spec import Count, PositiveMs, Problem, Spec, Text, TextList


class RedisFailMode(str, Enum):
    """What to do with rate limits when Redis cannot be reached."""

    OPEN = "open"  # serve without rate limits; availability over quota
    CLOSED = "closed"  # refuse (503); quota over availability


class Slo(Spec):
    """Latency budget the endpoint promises, as 95th percentiles in ms."""

    ttft_p95_ms: PositiveMs | None = None
    """95% of requests see their first token within this many ms (queue wait included)."""
    tbt_p95_ms: PositiveMs | None = None
    """95% of gaps between streamed tokens are shorter than this many ms."""


class RequestLimits(Spec):
    """Hard limits; a request over them is rejected with a message, not trimmed."""

    max_tokens: Count | None = None
    """Most tokens one request may ask the model to generate."""
    max_prompt_tokens: Count | None = None
    """Longest prompt accepted, in tokens."""


class SamplingDefaults(Spec):
    """Used when a request does not set them itself."""

    max_tokens: Count | None = None
    temperature: Annotated[float, Strict(), Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Strict(), Field(gt=0, le=1)] | None = None
    top_k: Annotated[int, Strict(), Field(ge=0)] | None = None
    stop: TextList | None = None
    """Stop strings: one string or a list."""


class EndpointSpec(Spec):
    """One product feature, served at /v1/endpoints/NAME/..."""

    lane: Text
    """Name of the lane this endpoint's requests go to (unless a rule says otherwise)."""
    description: Text = ""
    """Free text for people reading the policy."""
    slo: Slo = Slo()
    limits: RequestLimits = RequestLimits()
    sampling: SamplingDefaults = SamplingDefaults()
    allowed_tenants: TextList | None = None
    """Only these tenants may call the endpoint ('anonymous' included). Left out: any tenant."""
    on_redis_unavailable: RedisFailMode = RedisFailMode.OPEN
    """open: serve without rate limits while Redis is down; closed: refuse with 503."""

    @model_validator(mode="after")
    def _check_defaults_within_limits(self) -> EndpointSpec:
        default, limit = self.sampling.max_tokens, self.limits.max_tokens
        if default is not None and limit is not None and default > limit:
            raise Problem(("sampling", "max_tokens"), default, f"at most limits.max_tokens ({limit})")
        return self

    def can_serve(self, tenant: str) -> bool:
        return self.allowed_tenants is None or tenant in self.allowed_tenants
