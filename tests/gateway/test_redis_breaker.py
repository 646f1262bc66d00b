"""The Redis circuit breaker: closed, open for a while after a failure, then one probe at a time."""

from __future__ import annotations

from gateway.redis_breaker import Permit, RedisBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_opens_it_then_exactly_one_caller_probes_while_the_others_are_refused() -> None:
    clock = Clock()
    breaker = RedisBreaker(open_s=0.5, clock=clock)
    assert [breaker.permit() for _ in range(3)] == [Permit.USE] * 3

    breaker.failed()
    assert not breaker.is_closed and breaker.permit() is Permit.REFUSED
    clock.now += 0.5
    assert [breaker.permit() for _ in range(4)] == [Permit.PROBE] + [Permit.REFUSED] * 3

    breaker.failed()  # the probe failed: open again for a full period, no probe out
    assert breaker.permit() is Permit.REFUSED
    clock.now += 0.5
    assert breaker.permit() is Permit.PROBE
    breaker.succeeded()
    assert breaker.is_closed and breaker.permit() is Permit.USE


def test_an_abandoned_probe_hands_the_probe_to_the_next_caller() -> None:
    clock = Clock()
    breaker = RedisBreaker(open_s=0.5, clock=clock)
    breaker.failed()
    clock.now += 1.0
    assert breaker.permit() is Permit.PROBE
    breaker.abandoned()  # its request was cancelled before Redis answered
    assert breaker.permit() is Permit.PROBE and breaker.permit() is Permit.REFUSED
