from __future__ import annotations

import pytest

from lanes.classify import RequestFeatures, UnknownEndpointError, classify
from tests.lanes.factories import make_policy, with_change

POLICY = make_policy()
BACKGROUND = {"x-laneway-priority": "background"}


def features(endpoint: str = "chat", **overrides: object) -> RequestFeatures:
    values: dict = dict(endpoint=endpoint, stream=True, tenant="acme", headers={}, prompt_tokens=100, max_tokens=32)
    values.update(overrides)
    return RequestFeatures(**values)


# (case, features, lane, index of the rule that matched or None)
CASES = [
    ("no rule: endpoint's own lane", features(), "streaming", None),
    ("unstreamed chat is interactive", features(stream=False), "interactive", 1),
    ("header demotes to bulk", features(headers=BACKGROUND), "bulk", 0),
    ("other header value does not match", features(headers={"x-laneway-priority": "now"}), "streaming", None),
    ("header rule beats the later stream rule", features(stream=False, headers=BACKGROUND), "bulk", 0),
    ("prompt_tokens min is inclusive", features(prompt_tokens=8000), "bulk", 2),
    ("one token under the min", features(prompt_tokens=7999), "streaming", None),
    ("first match wins over a later one", features(stream=False, prompt_tokens=9000), "interactive", 1),
    ("endpoint list matches its second name", features("voice-reply", prompt_tokens=9000), "bulk", 2),
    ("custom-named lane by endpoint", features("voice-reply"), "voice", None),
    ("tenant rule", features(tenant="bots"), "bulk", 3),
    ("tenant rule is scoped to its endpoint", features("inline-completion", tenant="bots"), "interactive", None),
    ("max_tokens below range", features("inline-completion", max_tokens=32), "interactive", None),
    ("max_tokens lower bound inclusive", features("inline-completion", max_tokens=33), "streaming", 4),
    ("max_tokens upper bound inclusive", features("inline-completion", max_tokens=64), "streaming", 4),
    ("max_tokens above range", features("inline-completion", max_tokens=65), "interactive", None),
    ("bulk endpoint", features("nightly-labeling", tenant="bots", stream=False), "bulk", None),
    # Rules a client triggers move it to a more urgent lane only if its tenant lists that lane.
    ("unlisted lane: the rule is passed over", features(stream=False, tenant="anonymous"), "streaming", None),
    ("a less urgent lane needs no listing", features(tenant="anonymous", headers=BACKGROUND), "bulk", 0),
]


@pytest.mark.parametrize(("case", "request_features", "lane", "rule_index"), CASES, ids=[c[0] for c in CASES])
def test_classify(case: str, request_features: RequestFeatures, lane: str, rule_index: int | None) -> None:
    decision = classify(request_features, POLICY)
    assert (decision.lane_name, decision.rule_index) == (lane, rule_index), case
    assert decision.lane is POLICY.lanes[lane]
    assert decision.endpoint is POLICY.endpoints[request_features.endpoint]


def test_unknown_endpoint_is_a_typed_error() -> None:
    with pytest.raises(UnknownEndpointError, match="'nope'") as err:
        classify(features("nope"), POLICY)
    assert err.value.endpoint == "nope"


def test_catch_all_rule_takes_everything_no_earlier_rule_took() -> None:
    catch_all = with_change(
        "  - {match: {endpoint: inline-completion, max_tokens: {min: 33, max: 64}}, lane: streaming}\n",
        "  - {match: {endpoint: inline-completion, max_tokens: {min: 33, max: 64}}, lane: streaming}\n"
        "  - {match: {}, lane: voice}\n",
    )
    policy = make_policy(catch_all)
    assert classify(features("nightly-labeling"), policy).lane_name == "voice"
    assert classify(features("nightly-labeling"), policy).rule_index == 5
    assert classify(features(stream=False), policy).rule_index == 1


def test_header_rule_names_are_case_insensitive_in_the_policy() -> None:
    # The policy spells the header X-Laneway-Priority; the gateway hands names over lower-cased.
    assert POLICY.rules[0].match.header == BACKGROUND
