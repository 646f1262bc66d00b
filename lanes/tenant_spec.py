"""Tenants (who is calling, found by API key) and the policy's authentication switch."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict, field_validator

from lanes.api_key import is_sha256_hex
from lanes.spec import Count, Problem, Spec, Text

Weight = Annotated[float, Strict(), Field(gt=0, le=1000, allow_inf_nan=False)]

ANONYMOUS = "anonymous"  # the tenant of requests without a key, when auth is not required
ALL_ENDPOINTS = "*"


class TenantSpec(Spec):
    """A customer or team, recognised by its API keys, with its own endpoints and rate limits."""

    keys_sha256: tuple[Text, ...] = ()
    """SHA-256 hashes of the tenant's API keys (64 lowercase hex characters each); at least
    one, except for tenant 'anonymous' (callers without a key), which has none.
    Make one with `laneway policy hash-key`; never put a clear-text key here."""
    endpoints: tuple[Text, ...]
    """Endpoints the tenant may call; "*" means every endpoint; [] means none (the tenant is
    recognised but may call nothing, e.g. `anonymous: {endpoints: []}` turns keyless callers away)."""
    description: Text = ""
    rpm: Count | None = None
    """Most requests per minute, across all gateways. Left out: no limit."""
    tpm: Count | None = None
    """Most tokens (prompt + generated) per minute, across all gateways. Left out: no limit."""
    weight: Weight = 1.0
    """Share of a busy lane against the other tenants in it: a tenant of weight 2 is served
    twice the tokens of a tenant of weight 1 while both wait (fair queuing, per lane)."""
    max_concurrent: Count | None = None
    """Most of the tenant's requests running at once on one gateway (all lanes); more wait
    in their lane's queue. Left out: no cap."""
    max_queued_per_lane: Count | None = None
    """Most of the tenant's requests waiting in one lane's queue on one gateway; beyond it new
    ones are refused (429, reason tenant-queue-full). Left out: only the lane's own depth."""
    lanes: tuple[Text, ...] = ()
    """Lanes more urgent than an endpoint's own that a policy rule may move this tenant's
    requests to (rules match headers, stream and max_tokens, which the client controls).
    Left out: a rule only ever moves its requests to an equally or less urgent lane."""
    shared_batches: Annotated[bool, Strict()] = False
    """Tenant 'anonymous' only: true lets keyless callers use the Batch API, all in one shared
    namespace (each sees the others' files and batches). false: the Batch API needs a key."""

    @field_validator("endpoints", "lanes", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("keys_sha256")
    @classmethod
    def _check_hashes(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        for i, key in enumerate(keys):
            if not is_sha256_hex(key):
                raise Problem(
                    (i,),
                    key,
                    "a SHA-256 hash of the key (64 lowercase hex characters), not the key itself; "
                    "make one with `laneway policy hash-key`",
                )
        return keys

    def can_call(self, endpoint: str) -> bool:
        return ALL_ENDPOINTS in self.endpoints or endpoint in self.endpoints


class AuthSpec(Spec):
    """Whether requests must carry an API key."""

    required: Annotated[bool, Strict()] = True
    """true: every request needs a tenant's API key. false: requests without a key are
    served as tenant 'anonymous' (for local runs and demos)."""
