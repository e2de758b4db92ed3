"""A wake-up for a service loop that sleeps until its next due time or until it is woken.

``await asyncio.wait_for(event.wait(), timeout)`` does the same, but makes a task, a timer and a
cancellation every time it times out: for the market-data loop that is once per 5-s bar boundary,
tens of thousands of times per replayed session. :class:`Alarm` costs one future and one timer.
"""

from __future__ import annotations

import asyncio

__all__ = ["Alarm"]


def _ring(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Alarm:
    """Set by :meth:`set` (from the loop's thread); :meth:`sleep` returns when it is set or after
    ``timeout`` loop seconds, whichever is first. Like :class:`asyncio.Event`, a :meth:`set` made
    while nobody sleeps is kept until :meth:`clear`, so the next :meth:`sleep` returns at once."""

    __slots__ = ("_is_set", "_waiter")

    def __init__(self) -> None:
        self._is_set = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        """True after :meth:`set`, until :meth:`clear`."""
        return self._is_set

    def set(self) -> None:
        """Wake the sleeper (or the next one)."""
        self._is_set = True
        if self._waiter is not None:
            _ring(self._waiter)

    def clear(self) -> None:
        """Forget an earlier :meth:`set`."""
        self._is_set = False

    async def sleep(self, timeout: float | None) -> bool:
        """Sleep until :meth:`set` or ``timeout`` seconds (None: no limit); True if it was set."""
        if self._is_set:
            return True
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiter = fut
        timer = loop.call_later(timeout, _ring, fut) if timeout is not None else None
        try:
            await fut
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        return self._is_set
