"""The OpenMP wait policy a worker sets for torch before loading it."""

from __future__ import annotations

import pytest

from workers.omp_policy import ENV, apply_wait_policy, wait_policy


@pytest.mark.parametrize(("threads", "cores", "policy"), [
    (None, 2, "PASSIVE"),  # torch's default takes every core: spinning steals the serving side's time
    (2, 2, "PASSIVE"),
    (4, 2, "PASSIVE"),
    (1, 2, None),  # a core to spare: libgomp's default spin is cheaper than a futex wake per op
    (7, 8, None),
    (1, 1, "PASSIVE"),
])
def test_passive_only_when_torch_takes_every_core(threads, cores, policy):
    assert wait_policy(threads, cores) == policy


def test_an_operator_setting_wins():
    env = {ENV: "ACTIVE"}
    assert apply_wait_policy(None, env) == "ACTIVE"
    assert env == {ENV: "ACTIVE"}


def test_sets_the_variable_when_unset():
    env: dict[str, str] = {}
    policy = apply_wait_policy(10_000, env)  # more threads than any machine's cores
    assert policy == "PASSIVE" and env[ENV] == "PASSIVE"
