"""The OpenMP wait policy a worker sets for torch before loading it."""

from __future__ import annotations

import pytest

from workers.omp_policy import ENV, SPIN_COUNT, SPIN_ENV, apply_wait_policy, wait_policy

BOUNDED_SPIN = {ENV: "ACTIVE", SPIN_ENV: str(SPIN_COUNT)}


@pytest.mark.parametrize(("threads", "cores", "policy"), [
    (None, 2, BOUNDED_SPIN),  # torch's default, one thread per core: spin a little, then sleep
    (2, 2, BOUNDED_SPIN),
    (1, 1, BOUNDED_SPIN),
    (4, 2, {ENV: "PASSIVE"}),  # oversubscribed: a spinning thread holds a core another thread needs
    (3, 2, {ENV: "PASSIVE"}),
    (1, 2, {}),  # a core to spare: libgomp's default
    (7, 8, {}),
])
def test_policy_by_threads_against_cores(threads, cores, policy):
    assert wait_policy(threads, cores) == policy


@pytest.mark.parametrize("operator", [{ENV: "PASSIVE"}, {SPIN_ENV: "1000"}])
def test_an_operator_setting_wins(operator):
    env = dict(operator)
    apply_wait_policy(None, env)
    assert env == operator


def test_sets_the_variable_when_unset():
    env: dict[str, str] = {}
    policy = apply_wait_policy(10_000, env)  # more threads than any machine's cores
    assert policy == "PASSIVE" and env == {ENV: "PASSIVE"}
