"""Injected latency: how long, in market time, the gateway holds back what it sends.

Four settings, all **milliseconds of market time** on the replay clock, default 0 (off):

==================  ==========================================================================
key                 what is held back
==================  ==========================================================================
``positions_ms``    the position (61), portfolio (7), account-value (6, 8) and P&L (94, 95)
                    pushes that follow a fill are sent this long after the fill's
                    execDetails/orderStatus (IB sends its position stream separately from,
                    and often after, the order's own messages). The once-a-minute portfolio
                    refresh and the answers to reqPositions/reqAccountUpdates queue behind
                    them, so a client never sees an older position after a newer one.
``order_ack_ms``    placeOrder, cancelOrder and reqGlobalCancel reach the order book this long
                    after they arrive; their acknowledgements (openOrder, orderStatus,
                    ``Cancelled`` + 202) follow then. An order only sees trades after it
                    reached the book; an order being cancelled can still fill meanwhile.
``executions_ms``   execDetails (11) and commissionReport (59) of a fill are sent this long
                    after the fill; its orderStatus (and openOrder when done) are not delayed.
                    Answers to reqExecutions queue behind pending ones.
``market_data_ms``  every market-data stream (ticks, 5-s bars, keepUpToDate bars, scanner)
                    and history request sees the market as it was this long ago.
==================  ==========================================================================

So a fill at market time ``t`` reaches the client as orderStatus at ``t``, execDetails at
``t + executions_ms`` and the position push at ``t + executions_ms + positions_ms``.

Set in the fault scenario (``--faults FILE``)::

    [latency]
    positions_ms = 700
    order_ack_ms = 50

at run time with ``daytrading sim-gateway-ctl latency positions_ms=700 order_ack_ms=50``
(``latency`` without arguments prints the current values), or at a market time with a
``[[fault]]`` entry ``action = "latency"`` carrying the same keys. Messages for one kind keep
their order whatever the setting: lowering a latency never lets a later message overtake
one already held back. Messages held for a connection that closes are dropped, as a real
socket would lose them; reqExecutions / reqPositions after reconnecting give the state.

The settings themselves (:class:`~.engine.faults.Latency`, ``LATENCY_KEYS``) are fault state in
:mod:`.engine.faults`; this module is the delay line that holds messages back by them.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
from collections.abc import Callable

__all__ = ["DelayLine"]

log = logging.getLogger("daytrading.sim_gateway")

class DelayLine:
    """Runs callbacks at a later market time, in order.

    Each callback belongs to a ``channel``; within a channel callbacks run in submission order
    (a due time never precedes the channel's previous one). Across channels, equal due times
    run in submission order.

    Args:
        now: market time source (POSIX seconds).
        speed: market seconds per wall second of the clock (to turn market delays into wall
            sleeps); read on every wait, so a clock that changes speed is followed.
        max_wait: longest wall sleep between checks (s), so that a clock that does not follow
            the wall (a hand-driven test clock) is still served.
    """

    def __init__(self, now: Callable[[], float], speed: Callable[[], float], *, max_wait: float = 0.05) -> None:
        self._now = now
        self._speed = speed
        self.max_wait = max_wait
        self._heap: list[tuple[float, int, str, Callable[[], None]]] = []
        self._tail: dict[str, float] = {}
        self._pending: dict[str, int] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()

    def pending(self, channel: str) -> int:
        """Callbacks of ``channel`` not yet run."""
        return self._pending.get(channel, 0)

    def submit(self, channel: str, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn()`` ``delay`` market seconds from now (at once when nothing of ``channel``
        waits and ``delay`` is 0)."""
        if delay <= 0 and not self._pending.get(channel):
            fn()
            return
        due = max(self._now() + max(delay, 0.0), self._tail.get(channel, -math.inf))
        self._tail[channel] = due
        self._pending[channel] = self._pending.get(channel, 0) + 1
        heapq.heappush(self._heap, (due, next(self._seq), channel, fn))
        self._wake.set()

    def next_due(self) -> float | None:
        """Market time of the earliest held callback, or None."""
        return self._heap[0][0] if self._heap else None

    def run_due(self, now: float | None = None) -> int:
        """Run every callback due at ``now`` (default market now); returns how many ran."""
        t = self._now() if now is None else now
        n = 0
        while self._heap and self._heap[0][0] <= t:
            _, _, channel, fn = heapq.heappop(self._heap)
            self._pending[channel] -= 1
            n += 1
            try:
                fn()
            except Exception:  # noqa: BLE001 - one bad callback must not stop the others
                log.exception("delayed %s callback failed", channel)
        return n

    async def run(self) -> None:
        """Sleep until the next due callback (or a new submission), run what is due; forever."""
        while True:
            self.run_due()
            due = self.next_due()
            self._wake.clear()
            if due is None:
                await self._wake.wait()
                continue
            wait = (due - self._now()) / max(self._speed(), 1e-9)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(max(wait, 0.0), self.max_wait))
