"""Lanes: the policy vocabulary shared by gateway and workers. Pure Python, no I/O frameworks."""

from lanes.lane import LaneKind
from lanes.policy_errors import PolicyError
from lanes.policy_load import load_policy, parse_policy
from lanes.policy_model import Policy

__all__ = ["LaneKind", "Policy", "PolicyError", "load_policy", "parse_policy"]
