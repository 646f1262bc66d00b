from __future__ import annotations

import pytest
from pydantic import ValidationError

from lanes.lane import LaneKind, LaneSpec
from tests.lanes.factories import make_policy

LANE = {"kind": "bulk", "priority": 2, "max_batch_size": 64, "max_queue_depth": 10, "max_queue_wait_ms": 1000}


def test_plain_number_is_a_fixed_window() -> None:
    lane = LaneSpec.model_validate({**LANE, "batch_window_ms": 2.5})
    window = lane.batch_window
    assert (window.auto, window.min_ms, window.max_ms, window.is_fixed) == (False, 2.5, 2.5, True)


def test_auto_window_keeps_its_bounds() -> None:
    lane = LaneSpec.model_validate({**LANE, "batch_window_ms": {"auto": True, "min": 0, "max": 250}})
    assert (lane.batch_window.auto, lane.batch_window.min_ms, lane.batch_window.max_ms) == (True, 0, 250)
    assert not lane.batch_window.is_fixed


def test_a_range_without_auto_is_refused() -> None:
    with pytest.raises(ValidationError, match="true when min and max differ"):
        LaneSpec.model_validate({**LANE, "batch_window_ms": {"min": 1, "max": 5}})


def test_defaults_hold_the_whole_worker_and_are_not_preemptible() -> None:
    lane = LaneSpec.model_validate({**LANE, "batch_window_ms": 5})
    assert (lane.capacity_share.seqs, lane.capacity_share.kv) == (1.0, 1.0)
    assert (lane.preemptible, lane.backfill, lane.min_share) == (False, False, 0.0)


def test_a_preemptible_lane_may_keep_a_minimum_share_of_each_step() -> None:
    lane = LaneSpec.model_validate({**LANE, "batch_window_ms": 5, "preemptible": True, "min_share": 0.1})
    assert lane.min_share == 0.1
    edge = LaneSpec.model_validate({**LANE, "batch_window_ms": 5, "preemptible": True, "min_share": 0.5})
    assert edge.min_share == 0.5


def test_a_lane_that_never_gives_way_has_no_minimum_share() -> None:
    with pytest.raises(ValidationError, match="0 on a lane that is not preemptible"):
        LaneSpec.model_validate({**LANE, "batch_window_ms": 5, "min_share": 0.1})
    with pytest.raises(ValidationError):
        LaneSpec.model_validate({**LANE, "batch_window_ms": 5, "preemptible": True, "min_share": -0.1})


def test_kind_comes_from_the_lane_name_when_left_out() -> None:
    policy = make_policy()
    assert policy.lanes["interactive"].kind is LaneKind.INTERACTIVE
    assert policy.lanes["bulk"].kind is LaneKind.BULK
    assert policy.lanes["voice"].kind is LaneKind.STREAMING


def test_policy_is_frozen() -> None:
    policy = make_policy()
    with pytest.raises(ValidationError):
        policy.default_endpoint = "inline-completion"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        policy.lanes["bulk"].priority = 0  # type: ignore[misc]


def test_one_name_or_a_list_mean_the_same() -> None:
    policy = make_policy()
    assert policy.rules[1].match.endpoint == ("chat",)
    assert policy.rules[2].match.endpoint == ("chat", "voice-reply")
    assert policy.tenants["bots"].endpoints == ("*",)
