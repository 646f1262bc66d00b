"""Where a batch's lines run: which Laneway endpoint, and on which lane.

The batch's `endpoint` is OpenAI's URL (/v1/chat/completions or /v1/completions); it
says the body format, not the product feature. The Laneway endpoint is, in order:
1. the endpoint in the URL, for batches created at /v1/endpoints/NAME/batches;
2. `metadata: {"laneway_endpoint": NAME}`;
3. the policy's first endpoint whose lane is a bulk lane (or a backfill lane);
4. the policy's default endpoint.
Every line then runs on a bulk lane (lane.py: only bulk lanes take Batch API jobs): the
endpoint's own lane if it is one, otherwise the policy's first bulk lane, if any.
"""

from __future__ import annotations

import dataclasses
import time

from gateway.errors import APIError
from gateway.job import Job, LaneTicket
from lanes.lane import LaneKind, LaneSpec
from lanes.policy import Policy

METADATA_KEY = "laneway_endpoint"


def _is_bulk(lane: LaneSpec) -> bool:
    return lane.kind is LaneKind.BULK or lane.backfill


def laneway_endpoint(policy: Policy, from_path: str | None, metadata: dict[str, str] | None) -> str:
    named = metadata.get(METADATA_KEY) if metadata else None
    if from_path is not None and named is not None and named != from_path:
        raise APIError(400, f"metadata.{METADATA_KEY}={named!r} contradicts the endpoint in the URL "
                            f"({from_path!r}); leave one out", param=f"metadata.{METADATA_KEY}")
    name = from_path or named
    if name is not None:
        if name not in policy.endpoints:
            raise APIError(400, f"unknown Laneway endpoint {name!r}; this gateway serves: "
                                f"{', '.join(sorted(policy.endpoints))}", param=f"metadata.{METADATA_KEY}",
                           code="unknown_endpoint")
        return name
    for endpoint_name, spec in policy.endpoints.items():
        lane = policy.lanes.get(spec.lane)
        if lane is not None and _is_bulk(lane):
            return endpoint_name
    return policy.default_endpoint


def on_bulk_lane(job: Job, policy: Policy, expires_at: float) -> Job:
    """The job moved to a bulk lane (if it is not on one), due before the batch expires."""
    lane_name = job.lane.name
    lane = policy.lanes.get(lane_name)
    if lane is None or not _is_bulk(lane):
        bulk = next(((n, s) for n, s in policy.lanes.items() if _is_bulk(s)), None)
        if bulk is not None:
            lane_name, lane = bulk
    ticket = job.lane
    if lane is not None and lane_name != job.lane.name:
        ticket = LaneTicket.for_lane(lane_name, lane)
    deadline = time.time() + lane.max_queue_wait_ms / 1000.0 if lane is not None else job.deadline
    return dataclasses.replace(job, lane=ticket, deadline=min(deadline or expires_at, float(expires_at)))
