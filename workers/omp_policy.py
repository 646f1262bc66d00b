"""OpenMP's wait policy for a worker's torch threads, chosen before torch loads.

After each parallel region (about a hundred per decode step) libgomp's idle threads spin
for a while before they sleep (OMP_WAIT_POLICY unset or ACTIVE). On a machine where the
torch threads already take every core, a spinning thread holds a core that the thread
with the real work, the worker's gRPC loop or the gateway needs, and each op's barrier
then waits for a scheduler time slice. On the 2-core test machine under other load, one
in-process batch-1 stream ran at 0.5 tok/s with ACTIVE and 17 tok/s with PASSIVE side
by side (docs/benchmarks.md, "Served path"). With cores to spare, spinning is cheaper
than a futex wake per region, so it stays.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

ENV = "OMP_WAIT_POLICY"


def wait_policy(num_threads: int | None, num_cores: int) -> str | None:
    """PASSIVE when torch's threads (None: torch's default, one per core) leave no core free;
    None (libgomp's default) otherwise."""
    threads = num_cores if num_threads is None else num_threads
    return "PASSIVE" if threads >= num_cores else None


def apply_wait_policy(num_threads: int | None, env: MutableMapping[str, str] = os.environ) -> str | None:
    """Sets OMP_WAIT_POLICY unless the operator already did; returns the policy in force.
    Only effective before torch (and with it libgomp) is loaded."""
    if ENV in env:
        return env[ENV]
    policy = wait_policy(num_threads, len(os.sched_getaffinity(0)))
    if policy is not None:
        env[ENV] = policy
    return policy
