"""Start-up configuration is checked explicitly (ValueError), so the checks survive python -O."""

from __future__ import annotations

import pytest

from gateway.config import GatewayConfig
from gateway.edge_protocol import edge_protocol
from gateway.server import ServerConfig


def test_a_gateway_needs_workers_or_a_registry() -> None:
    with pytest.raises(ValueError, match="at least one worker address is required"):
        GatewayConfig(worker_addresses=())
    assert GatewayConfig(worker_addresses=(), redis_url="redis://127.0.0.1:6379/0").redis_url  # registry only


def test_batch_concurrency_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="batch_concurrency must be >= 1, got 0"):
        GatewayConfig(batch_concurrency=0)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"drain_delay_s": -1.0}, "drain_delay_s must be >= 0, got -1.0"),
    ({"drain_grace_s": 0.0}, "drain_grace_s must be > 0, got 0.0"),
])
def test_drain_settings_are_checked(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServerConfig(**overrides)


def test_the_head_timeout_is_positive() -> None:
    with pytest.raises(ValueError, match="head_timeout_s must be > 0, got 0"):
        edge_protocol(0, 1024)
    with pytest.raises(ValueError, match="max_head_bytes must be > 0, got 0"):
        edge_protocol(1, 0)
    protocol = edge_protocol(2.5, 1024)
    assert (protocol.head_timeout_s, protocol.max_head_bytes) == (2.5, 1024)
