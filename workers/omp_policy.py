"""OpenMP's wait policy for a worker's torch threads, chosen before torch loads.

After each parallel region (about a hundred per decode step) libgomp's idle threads spin
for a while, then sleep on a futex. Three cases, by how many cores torch's threads take:

- More threads than cores: PASSIVE (sleep at once). A spinning thread would hold a core
  that another of torch's threads needs, and each op's barrier would wait for a time slice.
- Exactly one thread per core (a worker's default): a bounded spin, ACTIVE with
  GOMP_SPINCOUNT=SPIN_COUNT. The worker thread wakes from the spin, not from a futex, for
  the next op of the same step; a thread with nothing to do sleeps after the spin, so the
  worker's gRPC loop and the gateway still get the core between steps. Measured on the
  2-core test machine (docs/benchmarks.md, "Served path"), `laneway bench serve` c=1 and
  c=8 through the gateway and over direct gRPC, side by side in two pairs of runs: the
  bounded spin was 5-25% faster than PASSIVE in 11 of 12 cells. Those workers still held
  two OpenMP teams, which throttles the spin; the spin holds in full only since a worker
  builds and steps its engine on one thread (workers/build.py). (Unbounded spinning,
  ACTIVE alone, had a stream under other load at 0.5 tok/s against PASSIVE's 17 tok/s.)
- Cores to spare: libgomp's default (the same bounded spin).

An operator's OMP_WAIT_POLICY or GOMP_SPINCOUNT wins over all of this.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

ENV = "OMP_WAIT_POLICY"
SPIN_ENV = "GOMP_SPINCOUNT"
SPIN_COUNT = 300_000  # libgomp's own default when threads fit the cores; a few ms of spinning at most


def wait_policy(num_threads: int | None, num_cores: int) -> dict[str, str]:
    """The variables to set for torch's threads (None: torch's default, one per core)."""
    threads = num_cores if num_threads is None else num_threads
    if threads > num_cores:
        return {ENV: "PASSIVE"}
    if threads == num_cores:
        return {ENV: "ACTIVE", SPIN_ENV: str(SPIN_COUNT)}
    return {}


def apply_wait_policy(num_threads: int | None, env: MutableMapping[str, str] = os.environ) -> str | None:
    """Sets the policy unless the operator set OMP_WAIT_POLICY or GOMP_SPINCOUNT; returns the
    policy in force. Only effective before torch (and with it libgomp) is loaded."""
    if ENV in env or SPIN_ENV in env:
        return env.get(ENV)
    chosen = wait_policy(num_threads, len(os.sched_getaffinity(0)))
    env.update(chosen)
    return chosen.get(ENV)
