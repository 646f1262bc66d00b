"""JSON Schema of the policy file, for editors (YAML language servers) and reviewers."""

from __future__ import annotations

from typing import Any

from lanes.policy_model import Policy


def policy_json_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema(by_alias=True, mode="validation")
    schema["title"] = "Laneway policy"
    # `kind` is filled from the lane's name when the name is a kind; editors must not
    # flag `interactive: {priority: 0, ...}` as incomplete.
    lane = schema["$defs"]["LaneSpec"]
    lane["required"] = [name for name in lane["required"] if name != "kind"]
    return schema
