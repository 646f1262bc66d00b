"""Which lane serves a request: the first matching rule's, else its endpoint's own.

Pure function of the request's features and the policy, so the gateway can call it on
every request and tests can call it on a table of cases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lanes.endpoint import EndpointSpec
from lanes.lane import LaneSpec
from lanes.policy_model import Policy
from lanes.rule import Rule, RuleMatch


class UnknownEndpointError(LookupError):
    """The request names an endpoint the policy does not define (the gateway's 404)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(f"no endpoint named {endpoint!r} in the policy")
        self.endpoint = endpoint


@dataclass(frozen=True, kw_only=True)
class RequestFeatures:
    endpoint: str
    stream: bool
    tenant: str
    prompt_tokens: int
    max_tokens: int  # what the request will be allowed to generate (its own or the endpoint default)
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-cased


@dataclass(frozen=True)
class LaneDecision:
    lane_name: str
    lane: LaneSpec
    endpoint: EndpointSpec
    rule_index: int | None  # None: no rule matched, the endpoint's own lane


def classify(features: RequestFeatures, policy: Policy) -> LaneDecision:
    endpoint = policy.endpoints.get(features.endpoint)
    if endpoint is None:
        raise UnknownEndpointError(features.endpoint)
    for i, rule in enumerate(policy.rules):
        if matches(rule.match, features) and _may_apply(rule, features, policy):
            return LaneDecision(rule.lane, policy.lanes[rule.lane], endpoint, i)
    return LaneDecision(endpoint.lane, policy.lanes[endpoint.lane], endpoint, None)


def _may_apply(rule: Rule, features: RequestFeatures, policy: Policy) -> bool:
    """A rule the client can trigger moves it to a more urgent lane than its endpoint's only if
    its tenant may use that lane (tenants.NAME.lanes); otherwise the rule is passed over."""
    return not rule.match.is_client_controlled or policy.may_move_to(features.tenant, features.endpoint, rule.lane)


def matches(match: RuleMatch, features: RequestFeatures) -> bool:
    if match.endpoint is not None and features.endpoint not in match.endpoint:
        return False
    if match.stream is not None and features.stream != match.stream:
        return False
    if match.tenant is not None and features.tenant not in match.tenant:
        return False
    if match.header and any(features.headers.get(name) != value for name, value in match.header.items()):
        return False
    if match.prompt_tokens is not None and not match.prompt_tokens.contains(features.prompt_tokens):
        return False
    return match.max_tokens is None or match.max_tokens.contains(features.max_tokens)
