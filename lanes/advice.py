"""Advice on a valid policy: settings that load fine but will not do what their author hopes.

Not errors: the gateway serves such a policy. `laneway policy check` prints them after OK.
"""

from __future__ import annotations

from lanes.policy_model import Policy

# sha256("sk-demo-local"): the key printed in the README and policies/default.yaml for local
# runs. Anyone can send it, so a policy that grants it grants every caller.
DEMO_KEY_SHA256 = "534c5604f303b8a9cb6a313de62e3d42b72bfebc6e9a75d1c94a9c22eef4314d"


def endpoints_reaching(policy: Policy, lane: str) -> set[str]:
    """Endpoints whose requests may land in `lane`: its own endpoints, and any a rule sends there."""
    names = {name for name, spec in policy.endpoints.items() if spec.lane == lane}
    for rule in policy.rules:
        if rule.lane == lane:
            names |= set(rule.match.endpoint) if rule.match.endpoint is not None else set(policy.endpoints)
    return names


def advice(policy: Policy) -> list[str]:
    notes = []
    for name, tenant in policy.tenants.items():
        if DEMO_KEY_SHA256 in tenant.keys_sha256:
            notes.append(f"WARNING: tenants.{name}.keys_sha256 holds the hash of the public demo key "
                         "(sk-demo-local): anyone can call as this tenant; replace it before the gateway is "
                         "reachable from other machines")
    for name, lane in policy.lanes.items():
        if not lane.batch_window.auto:
            continue
        budgeted = [e for e in sorted(endpoints_reaching(policy, name))
                    if policy.endpoints[e].slo.ttft_p95_ms is not None]
        if not budgeted:
            # The controller steers by TTFT against a budget; with none it always has slack.
            notes.append(f"lanes.{name}.batch_window_ms: auto, but no endpoint that reaches lane {name!r} has "
                         f"slo.ttft_p95_ms, so the window will widen to its max ({lane.batch_window.max_ms:g} ms) "
                         "and stay there; a fixed window says the same thing plainly")
    return notes
