"""What a request is counted against: one or more scopes, each with its own rpm and tpm.

The policy gives limits per tenant (`tenants.NAME.rpm` / `tpm`, "across all gateways"),
and has no per-endpoint limit field. So a request is checked against one scope, its
tenant. Counting the same numbers again per (tenant, endpoint) would never refuse
anything the tenant scope admits (the tenant's count includes every endpoint's), so
that scope is not written. The limiter checks any number of scopes in one atomic step;
a per-endpoint limit in the policy would be one more `Scope` here.
"""

from __future__ import annotations

from dataclasses import dataclass

from lanes.policy import Policy

KEY_PREFIX = "lw:rl"


@dataclass(frozen=True)
class Scope:
    name: str  # what a refusal names, e.g. "tenant 'acme'"
    key: str  # Redis key stem; the tenant in {braces} keeps a tenant's scopes on one cluster slot
    rpm: int | None  # None: no request limit in this scope
    tpm: int | None  # None: no token limit in this scope

    @property
    def log_key(self) -> str:
        return f"{self.key}:log"  # ZSET request id -> admitted at (ms, Redis clock)

    @property
    def tokens_key(self) -> str:
        return f"{self.key}:tok"  # HASH request id -> tokens, plus "#total"


def scopes_for(policy: Policy, tenant: str, endpoint: str) -> tuple[Scope, ...]:
    spec = policy.tenants.get(tenant)
    if spec is None or (spec.rpm is None and spec.tpm is None):
        return ()  # anonymous, or a tenant without limits: nothing to count
    return (Scope(f"tenant {tenant!r}", f"{KEY_PREFIX}:{{{tenant}}}", spec.rpm, spec.tpm),)
