from __future__ import annotations

import pytest

from lanes.api_key import hash_api_key
from lanes.tenant_spec import ANONYMOUS
from lanes.tenants import authenticate, can_call
from tests.lanes.factories import ACME_KEY, BOTS_KEY, make_policy, sha, with_change

POLICY = make_policy()  # auth required
OPEN_POLICY = make_policy(with_change("auth: {required: true}", "auth: {required: false}"))


def test_hash_api_key_is_sha256_hex() -> None:
    assert hash_api_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize(
    ("policy", "key", "tenant"),
    [
        (POLICY, ACME_KEY, "acme"),
        (POLICY, BOTS_KEY, "bots"),
        (POLICY, "sk-test-wrong", None),
        (POLICY, ACME_KEY + " ", None),
        (POLICY, sha(ACME_KEY), None),  # the stored hash is not itself a key
        (POLICY, None, None),  # auth required: no key, no entry
        (POLICY, "", None),
        (OPEN_POLICY, None, ANONYMOUS),
        (OPEN_POLICY, "", ANONYMOUS),
        (OPEN_POLICY, ACME_KEY, "acme"),
        (OPEN_POLICY, "sk-test-wrong", None),  # a wrong key is refused, not downgraded to anonymous
    ],
    ids=[
        "right key",
        "second tenant",
        "wrong key",
        "key with trailing space",
        "hash used as key",
        "missing key, auth required",
        "empty key, auth required",
        "missing key, auth off",
        "empty key, auth off",
        "right key, auth off",
        "wrong key, auth off",
    ],
)
def test_authenticate(policy, key: str | None, tenant: str | None) -> None:
    assert authenticate(policy, key) == tenant


@pytest.mark.parametrize(
    ("policy", "tenant", "endpoint", "allowed"),
    [
        (POLICY, "acme", "chat", True),
        (POLICY, "acme", "nightly-labeling", False),  # not in acme's endpoints
        (POLICY, "bots", "nightly-labeling", True),  # "*" and on the endpoint's allow list
        (POLICY, "bots", "voice-reply", True),
        (POLICY, "bots", "no-such-endpoint", False),
        (POLICY, "nobody", "chat", False),
        (POLICY, ANONYMOUS, "chat", False),  # auth required
        (OPEN_POLICY, ANONYMOUS, "chat", True),
        (OPEN_POLICY, ANONYMOUS, "nightly-labeling", False),  # endpoint restricts its tenants
    ],
)
def test_can_call(policy, tenant: str, endpoint: str, allowed: bool) -> None:
    assert can_call(policy, tenant, endpoint) is allowed
    assert policy.can_call(tenant, endpoint) is allowed


def test_endpoint_allow_list_overrides_tenant_wildcard() -> None:
    policy = make_policy(with_change("allowed_tenants: [bots]", "allowed_tenants: [acme]"))
    assert not can_call(policy, "bots", "nightly-labeling")



def test_hashing_an_empty_key_is_refused_even_under_python_O() -> None:
    with pytest.raises(ValueError, match="empty API key"):
        hash_api_key("")
