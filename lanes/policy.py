"""The policy API in one import: the model, loading, errors, schema and key hashing.

The pieces live in their own modules (policy_model, policy_load, policy_errors,
policy_schema, api_key); code that only needs "a policy" imports from here.
"""

from lanes.api_key import hash_api_key
from lanes.endpoint import EndpointSpec
from lanes.lane import LaneSpec
from lanes.policy_errors import PolicyError
from lanes.policy_load import load_policy, parse_policy
from lanes.policy_model import Policy
from lanes.policy_schema import policy_json_schema
from lanes.rule import Rule
from lanes.tenant_spec import TenantSpec

__all__ = [
    "EndpointSpec",
    "LaneSpec",
    "Policy",
    "PolicyError",
    "Rule",
    "TenantSpec",
    "hash_api_key",
    "load_policy",
    "parse_policy",
    "policy_json_schema",
]
