"""Who is calling (API key -> tenant) and whether they may call an endpoint."""

from __future__ import annotations

import hmac

from lanes.api_key import hash_api_key
from lanes.policy_model import Policy
from lanes.tenant_spec import ANONYMOUS


def authenticate(policy: Policy, api_key: str | None) -> str | None:
    """The tenant name for this key, or None when the caller is not let in.

    No key (None or "") is the anonymous tenant when auth is not required. A key that
    matches no tenant is None here; the gateway serves it as anonymous when auth is not
    required (logged and counted: every OpenAI SDK sends some key) and refuses it with a
    401 when it is (gateway/intake.py).
    """
    if not api_key:
        return None if policy.auth.required else ANONYMOUS
    digest = hash_api_key(api_key)
    found = None
    # Compare against every key, in constant time, without stopping early.
    for name, tenant in policy.tenants.items():
        for stored in tenant.keys_sha256:
            if hmac.compare_digest(digest, stored) and found is None:
                found = name
    return found


def can_call(policy: Policy, tenant: str, endpoint: str) -> bool:
    return policy.can_call(tenant, endpoint)
