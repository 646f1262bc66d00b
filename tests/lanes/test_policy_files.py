"""Every policy shipped under policies/ loads, and survives a dump/load round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lanes import LaneKind, Policy, load_policy, parse_policy
from lanes.tenant_spec import ANONYMOUS
from lanes.tenants import authenticate

POLICIES = Path(__file__).resolve().parents[2] / "policies"
FILES = sorted(POLICIES.rglob("*.yaml")) + sorted(POLICIES.rglob("*.yml"))


def test_the_shipped_policies_are_found() -> None:
    names = {path.relative_to(POLICIES).as_posix() for path in FILES}
    assert {"default.yaml", "examples/coding-assistant.yaml", "examples/support-desk.yaml"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(POLICIES).as_posix())
def test_policy_file_loads(path: Path) -> None:
    policy = load_policy(path)
    assert policy.default_endpoint in policy.endpoints
    kinds = {lane.kind for lane in policy.lanes.values()}
    if path.parent.name == "bench" and path.name.startswith("global-"):
        # The product-blind baselines deliberately put every endpoint in one shared lane.
        assert len(policy.lanes) == 1
        assert {spec.lane for spec in policy.endpoints.values()} == set(policy.lanes)
    elif path.parent.name == "bench" and path.name.startswith("tenants-"):
        # Two tenants sharing lanes is the whole experiment (laneway bench tenants).
        assert {"noisy", "quiet"} <= set(policy.tenants)
    else:
        assert kinds == set(LaneKind), "each kind of work has a lane"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(POLICIES).as_posix())
def test_policy_round_trips_through_yaml(path: Path) -> None:
    policy = load_policy(path)
    dumped = yaml.safe_dump(policy.model_dump(mode="json", by_alias=True), sort_keys=False)
    assert parse_policy(dumped, "dumped.yaml") == policy


def test_default_policy_serves_without_an_api_key() -> None:
    # `make run` must work with no key at all.
    policy = load_policy(POLICIES / "default.yaml")
    assert not policy.auth.required
    assert authenticate(policy, None) == ANONYMOUS


def test_examples_demo_keys_authenticate() -> None:
    # The comments promise these clear-text demo keys; keep the hashes honest.
    demo_keys = {
        "examples/coding-assistant.yaml": {"sk-demo-acme": "acme", "sk-demo-acme-ci": "acme-ci"},
        "examples/support-desk.yaml": {"sk-demo-helpdesk": "helpdesk", "sk-demo-labeler": "labeler"},
        "default.yaml": {"sk-demo-local": "demo"},
    }
    for name, keys in demo_keys.items():
        policy: Policy = load_policy(POLICIES / name)
        text = (POLICIES / name).read_text()
        for key, tenant in keys.items():
            assert key in text, f"{name} should mention its demo key {key}"
            assert authenticate(policy, key) == tenant, f"{name}: {key}"
