"""OpenAI's x-ratelimit-* response headers, from the usage of a request's scopes.

Sent on every response to a tenant with limits, success or refusal, so clients can pace
themselves before they are refused. With several scopes, each header reports the scope
with the least room left (the one that will refuse first).
"""

from __future__ import annotations

from gateway.ratelimit.sliding_log import ScopeUsage


def ratelimit_headers(usage: tuple[ScopeUsage, ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    by_requests = [u for u in usage if u.scope.rpm is not None]
    if by_requests:
        u = min(by_requests, key=lambda u: u.remaining_requests or 0)
        headers["x-ratelimit-limit-requests"] = str(u.scope.rpm)
        headers["x-ratelimit-remaining-requests"] = str(u.remaining_requests)
        headers["x-ratelimit-reset-requests"] = format_duration(u.reset_ms)
    by_tokens = [u for u in usage if u.scope.tpm is not None]
    if by_tokens:
        u = min(by_tokens, key=lambda u: u.remaining_tokens or 0)
        headers["x-ratelimit-limit-tokens"] = str(u.scope.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(u.remaining_tokens)
        headers["x-ratelimit-reset-tokens"] = format_duration(u.reset_ms)
    return headers


def format_duration(ms: int) -> str:
    """OpenAI's format: 250ms, 1.5s, 6m0s."""
    ms = max(0, ms)
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest_ms = divmod(ms, 60_000)
    seconds = f"{rest_ms / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"
