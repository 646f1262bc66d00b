"""Lanes: the policy vocabulary shared by gateway and workers. Pure Python, no I/O frameworks."""

from lanes.classify import LaneDecision, RequestFeatures, classify
from lanes.endpoint import EndpointSpec
from lanes.lane import LaneKind, LaneSpec
from lanes.policy_errors import PolicyError
from lanes.policy_load import load_policy, parse_policy
from lanes.policy_model import Policy
from lanes.policy_source import PolicySource
from lanes.tenants import authenticate, can_call

__all__ = [
    "EndpointSpec",
    "LaneDecision",
    "LaneKind",
    "LaneSpec",
    "Policy",
    "PolicyError",
    "PolicySource",
    "RequestFeatures",
    "authenticate",
    "can_call",
    "classify",
    "load_policy",
    "parse_policy",
]
