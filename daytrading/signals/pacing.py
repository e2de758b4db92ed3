"""Pacing of IB historical-data requests for small bars (30 seconds or less).

Source: IB TWS API documentation, "Historical Data Limitations", section "Pacing
Violations for Small Bars (30 secs or less)"
(https://interactivebrokers.github.io/tws-api/historical_limitations.html). A pacing
violation (error 162) occurs when any of these is not observed:

1. making identical historical data requests within 15 seconds;
2. making six or more historical data requests for the same Contract, Exchange and
   Tick Type within two seconds (so at most **5** in any 2 s);
3. making more than 60 requests within any ten-minute period.

BID_ASK requests count twice. The same page limits simultaneous open historical
requests to 50.

The sim-gateway enforces the same published rules with its own code
(``daytrading.sim_gateway.engine.marketdata.HistoricalPacing``), independent of this module on purpose:
a test double must not share the rules it checks, so a mistake in either shows up as error 162
when the bots run against the sim.

:class:`HistoricalPacer` keeps those limits with sliding windows on a monotonic
**wall** clock (IB enforces them in wall time, whatever the market clock says; in a
replay the sim-gateway sees wall time too) and queues the requests that would break
one, first in first out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = ["HistoricalPacer", "PacingLimits"]


@dataclass(frozen=True)
class PacingLimits:
    """IB's small-bar pacing limits (seconds, counts); defaults from IB's documentation.

    Attributes:
        max_requests: at most this many request units in any ``window`` seconds (60).
        window: the sliding window for ``max_requests`` (600 s = ten minutes).
        identical_interval: identical requests at least this far apart (15 s).
        burst_max: at most this many requests for one contract+exchange+tick type in
            any ``burst_window`` (5: "six or more … within two seconds" is a violation).
        burst_window: 2 s.
        max_open: simultaneous open requests (50), enforced by :meth:`HistoricalPacer.slot`.
        margin: extra seconds added to every window (latency between us and IB).
    """

    max_requests: int = 60
    window: float = 600.0
    identical_interval: float = 15.0
    burst_max: int = 5
    burst_window: float = 2.0
    max_open: int = 50
    margin: float = 0.5

    def __post_init__(self) -> None:
        for name in ("max_requests", "burst_max", "max_open"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"pacing limit {name} must be a positive integer, got {v!r}")
        for name in ("window", "identical_interval", "burst_window", "margin"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or v < 0:
                raise ValueError(f"pacing limit {name} must be ≥ 0 seconds, got {v!r}")


class HistoricalPacer:
    """Queue IB historical-data requests so none breaks the small-bar pacing rules.

    Usage::

        async with pacer.slot(("AAPL", "TRADES", "30 secs", "14400 S")):
            bars = await ib.reqHistoricalDataAsync(...)

    ``key`` identifies the request: equal keys are "identical requests" (include
    everything that makes a request different: contract, what-to-show, bar size,
    duration, end time). ``group`` identifies the contract + exchange + tick type for
    the burst rule; by default it is ``key`` itself (two requests with the same key
    are certainly in the same group). Pass e.g. ``group=("AAPL", "SMART", "TRADES")``
    when several different requests go to the same contract.

    ``cost`` is the number of request units (2 for BID_ASK, as IB counts them);
    ``None`` means 2 when the string ``"BID_ASK"`` is part of ``key``, else 1.

    Requests are granted strictly first in first out: a request that must wait
    holds back those behind it.

    Args:
        limits: the limits (default: IB's, with a 0.5 s margin).
        monotonic: wall-time monotonic clock in seconds (injectable for tests).
        sleep: coroutine function sleeping wall seconds (injectable for tests;
            it must be driven by the same clock as ``monotonic``).
    """

    def __init__(
        self,
        limits: PacingLimits | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.limits = limits or PacingLimits()
        self._now = monotonic
        self._sleep = sleep
        self._sent: deque[tuple[float, int]] = deque()  # (time, cost), global window
        self._units = 0  # Σ cost in _sent
        self._identical: dict[Hashable, float] = {}
        self._groups: dict[Hashable, deque[float]] = {}
        self._queue: deque[asyncio.Event] = deque()
        self._open = 0
        self._released = asyncio.Event()
        self._paused_until = -float("inf")
        self.granted = 0

    # ------------------------------------------------------------------ state

    @property
    def pending(self) -> int:
        """Number of requests queued (waiting for their turn or their limits)."""
        return len(self._queue)

    @property
    def open_requests(self) -> int:
        """Requests inside a :meth:`slot` right now."""
        return self._open

    def _prune(self, now: float) -> None:
        lim = self.limits
        horizon = now - (lim.window + lim.margin)
        while self._sent and self._sent[0][0] <= horizon:
            self._units -= self._sent.popleft()[1]
        if len(self._identical) > 256:
            cut = now - (lim.identical_interval + lim.margin)
            self._identical = {k: t for k, t in self._identical.items() if t > cut}
        if len(self._groups) > 256:
            cut = now - (lim.burst_window + lim.margin)
            self._groups = {g: d for g, d in self._groups.items() if d and d[-1] > cut}

    @staticmethod
    def _cost(key: Hashable, cost: int | None) -> int:
        if cost is not None:
            if not isinstance(cost, int) or cost < 1:
                raise ValueError(f"pacing cost must be a positive integer, got {cost!r}")
            return cost
        parts = key if isinstance(key, tuple) else (key,)
        return 2 if "BID_ASK" in parts else 1

    def would_wait(self, key: Hashable, *, group: Hashable | None = None, cost: int | None = None) -> float:
        """Seconds until the limits would allow a request with this ``key`` (0.0: now).

        Counts the limits only, not requests already queued (see :attr:`pending`) nor
        the open-request cap.

        Raises:
            ValueError: ``cost`` is given and is not a positive integer, or exceeds
                ``max_requests``.
        """
        lim = self.limits
        units = self._cost(key, cost)
        if units > lim.max_requests:
            raise ValueError(f"pacing cost {units} exceeds max_requests {lim.max_requests}")
        now = self._now()
        self._prune(now)
        at = self._paused_until
        # global sliding window: the oldest sends must leave until units fit
        excess = self._units + units - lim.max_requests
        if excess > 0:
            for t, c in self._sent:
                excess -= c
                if excess <= 0:
                    at = max(at, t + lim.window + lim.margin)
                    break
        last = self._identical.get(key)
        if last is not None:
            at = max(at, last + lim.identical_interval + lim.margin)
        sent = self._groups.get(key if group is None else group)
        if sent is not None and len(sent) >= lim.burst_max:
            at = max(at, sent[-lim.burst_max] + lim.burst_window + lim.margin)
        return max(0.0, at - now)

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (e.g. after IB still answered error 162)."""
        self._paused_until = max(self._paused_until, self._now() + max(0.0, seconds))

    # ------------------------------------------------------------------ acquiring

    async def acquire(self, key: Hashable, *, group: Hashable | None = None, cost: int | None = None) -> None:
        """Wait (FIFO) until a request with ``key`` may be sent, then record it as sent.

        Call it right before sending. Cancelling the waiting task leaves the queue
        cleanly. Does not count toward the open-request cap (use :meth:`slot`).

        Raises:
            ValueError: bad ``cost`` (see :meth:`would_wait`).
        """
        await self._acquire(key, group, cost, count_open=False)

    @contextlib.asynccontextmanager
    async def slot(self, key: Hashable, *, group: Hashable | None = None,
                   cost: int | None = None) -> AsyncIterator[None]:
        """``async with pacer.slot(key):`` — :meth:`acquire`, and hold one of the
        ``max_open`` simultaneous-request places until the block exits."""
        await self._acquire(key, group, cost, count_open=True)
        try:
            yield
        finally:
            self._open -= 1
            self._released.set()

    async def _acquire(self, key: Hashable, group: Hashable | None, cost: int | None, *, count_open: bool) -> None:
        units = self._cost(key, cost)
        if units > self.limits.max_requests:
            raise ValueError(f"pacing cost {units} exceeds max_requests {self.limits.max_requests}")
        turn = asyncio.Event()
        self._queue.append(turn)
        if self._queue[0] is turn:
            turn.set()
        try:
            await turn.wait()
            while True:
                if count_open and self._open >= self.limits.max_open:
                    self._released.clear()
                    await self._released.wait()
                    continue
                wait = self.would_wait(key, group=group, cost=units)
                if wait <= 0:
                    break
                log.debug("historical request %r waits %.2f s for IB pacing", key, wait)
                await self._sleep(wait)
            self._record(key, group, units)
            if count_open:
                self._open += 1
        finally:
            self._leave(turn)

    def _leave(self, turn: asyncio.Event) -> None:
        was_head = bool(self._queue) and self._queue[0] is turn
        with contextlib.suppress(ValueError):
            self._queue.remove(turn)
        if was_head and self._queue:
            self._queue[0].set()

    def _record(self, key: Hashable, group: Hashable | None, units: int) -> None:
        now = self._now()
        self._sent.append((now, units))
        self._units += units
        self._identical[key] = now
        g = key if group is None else group
        d = self._groups.get(g)
        if d is None:
            d = self._groups[g] = deque(maxlen=self.limits.burst_max)
        d.append(now)
        self.granted += 1
