"""Lanes: the policy vocabulary. Pure Python, no I/O frameworks.

The gateway and the CLI read policies with it; workers do not import it: they get each
request's lane (name, priority, preemptible, capacity shares) over the proto.
"""

from lanes.lane import LaneKind
from lanes.policy_errors import PolicyError
from lanes.policy_load import load_policy, parse_policy
from lanes.policy_model import Policy

__all__ = ["LaneKind", "Policy", "PolicyError", "load_policy", "parse_policy"]
