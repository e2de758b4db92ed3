"""The bots' idle wait: an event or a timeout, in the calling task (no task of its own)."""

from __future__ import annotations

import asyncio

import pytest

from daytrading.bots.base import wait_event


def test_set_before_during_and_never():
    async def main() -> tuple[bool, bool, bool, float]:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        event.set()
        before = await wait_event(event, 0.0)
        event.clear()
        loop.call_later(0.01, event.set)
        during = await wait_event(event, 30.0)
        event.clear()
        started = loop.time()
        never = await wait_event(event, 0.02)
        return before, during, never, loop.time() - started

    before, during, never, waited = asyncio.run(main())
    assert (before, during, never) == (True, True, False)
    assert waited >= 0.02


def test_a_cancel_from_outside_is_not_taken_for_a_timeout():
    async def main() -> None:
        event = asyncio.Event()
        task = asyncio.ensure_future(wait_event(event, 30.0))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
