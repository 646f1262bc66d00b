"""Tenants (who is calling, found by API key) and the policy's authentication switch."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict, field_validator

from lanes.api_key import is_sha256_hex
from lanes.spec import Count, Problem, Spec, Text, TextList

ANONYMOUS = "anonymous"  # the tenant of requests without a key, when auth is not required
ALL_ENDPOINTS = "*"


class TenantSpec(Spec):
    """A customer or team, recognised by its API keys, with its own endpoints and rate limits."""

    keys_sha256: Annotated[tuple[Text, ...], Field(min_length=1)]
    """SHA-256 hashes of the tenant's API keys (64 lowercase hex characters each).
    Make one with `laneway policy hash-key`; never put a clear-text key here."""
    endpoints: TextList
    """Endpoints the tenant may call; "*" means every endpoint."""
    description: Text = ""
    rpm: Count | None = None
    """Most requests per minute, across all gateways. Left out: no limit."""
    tpm: Count | None = None
    """Most tokens (prompt + generated) per minute, across all gateways. Left out: no limit."""

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
    """true: every request needs a tenant's API key. false: requests without a key, or with
    a key that matches no tenant, are served as tenant 'anonymous' (for local runs and demos;
    unknown keys are logged and counted in laneway_unknown_api_keys_total)."""
