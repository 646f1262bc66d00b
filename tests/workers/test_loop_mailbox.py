"""The engine thread's hand-off to the event loop: nothing runs before a flush, then
everything posted runs in order, in one callback (one wake-up of the loop per step)."""

from __future__ import annotations

import asyncio
import threading

from workers.loop_mailbox import LoopMailbox


def test_posts_from_another_thread_run_in_order_at_the_flush_in_one_callback() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        mailbox = LoopMailbox(loop)
        got: list[int] = []
        wakeups: list[int] = []  # drains the loop ran
        drain = mailbox._drain

        def counting() -> None:
            wakeups.append(1)
            drain()

        mailbox._drain = counting  # type: ignore[method-assign]
        step_posted = threading.Event()

        def engine_step() -> None:
            for i in range(32):
                mailbox.post(got.append, i)
            step_posted.set()

        threading.Thread(target=engine_step).start()
        await asyncio.to_thread(step_posted.wait, 10)
        await asyncio.sleep(0.01)
        assert got == [], "nothing runs before the flush"
        await asyncio.to_thread(mailbox.flush)
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.01)
        assert got == list(range(32)) and len(wakeups) == 1
        mailbox.flush()  # nothing posted since: no wake-up
        assert len(wakeups) == 1

    asyncio.run(main())
