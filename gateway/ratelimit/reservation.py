"""What an admitted request holds: its reserved tokens, and the headers its responses carry.

Admission reserves prompt estimate + max_tokens; when the output stream ends (finished,
failed or cancelled) the reservation is settled to the tokens really used, releasing the
rest to the tenant. Settling runs as its own task: a cancelled request (client gone)
still gives its unused tokens back.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

from gateway.job import Chunk

Settle = Callable[[int], None]  # schedules the settling; never blocks the stream's end


class Reservation:
    def __init__(self, num_tokens: int = 0, headers: dict[str, str] | None = None,
                 settle: Settle | None = None) -> None:
        self.num_tokens = num_tokens
        self.headers = headers or {}
        self._settle = settle
        self._is_settled = False

    @classmethod
    def unlimited(cls) -> Reservation:
        return cls()

    async def meter(self, chunks: AsyncGenerator[Chunk, None]) -> AsyncGenerator[Chunk, None]:
        """Pass the chunks through, counting tokens; settle when the stream ends for any reason."""
        prompt = generated = 0
        reported: int | None = None
        try:
            async for c in chunks:
                prompt = max(prompt, c.prompt_tokens)
                generated += len(c.token_ids)
                if c.has_usage:
                    reported = c.prompt_tokens + c.completion_tokens
                yield c
        finally:
            await chunks.aclose()
            self.settle_soon(reported if reported is not None else prompt + generated)

    def settle_soon(self, used_tokens: int) -> None:
        if self._settle is not None and not self._is_settled:
            self._is_settled = True
            self._settle(used_tokens)
