"""One source of time for every component: live wall clock or shared replay clock.

Every component reads market time from a :class:`Clock` passed in from outside
(NautilusTrader's ``LiveClock`` / ``TestClock`` idea). No module calls
``datetime.now()`` or ``time.time()`` for market logic; this module is the only
place that touches the system clock.

Two implementations:

* :class:`LiveClock` — the system clock, converted to America/New_York.
* :class:`ReplayClock` — market time = ``start + (wall − epoch) × speed``. Every
  process of one sim run builds the same clock from the same three settings
  (``start``, ``epoch``, ``speed``; see :class:`daytrading.config.ClockSettings`),
  so the sim-gateway, both bots and the supervisor agree on market time without
  talking to each other.
* :class:`ManualClock` — a clock tests set and advance by hand.
* :class:`LoopClock` — market time = ``start + (loop.time() − loop start)``: the clock of
  the backtest, whose asyncio loop runs on virtual time (``looptime``), so market time
  jumps with the loop whenever every task is waiting.

Session facts (session date, open, close, early closes, holidays) come from the
XNYS calendar of ``exchange_calendars``; see :class:`SessionCalendar`.
"""

from __future__ import annotations

import asyncio
import functools
import time as _time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, UTC
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

NY = ZoneInfo("America/New_York")
UTC = UTC

#: Regular-hours session of US equities (New York time), used when a date is not
#: covered by the calendar (should not happen for XNYS dates from 2000 on).
REGULAR_OPEN = (9, 30)
REGULAR_CLOSE = (16, 0)
PREMARKET_OPEN = (4, 0)


@runtime_checkable
class Clock(Protocol):
    """What every component needs from time.

    ``now()`` is timezone-aware in America/New_York. ``wall_to_market`` /
    ``market_to_wall_seconds`` convert durations, so a component that must wait
    N market seconds can sleep the right wall time.
    """

    def now(self) -> datetime:  # pragma: no cover - protocol
        """Current market time, tz-aware, America/New_York."""
        ...

    def timestamp(self) -> float:  # pragma: no cover - protocol
        """Current market time as POSIX seconds (UTC)."""
        ...

    @property
    def speed(self) -> float:  # pragma: no cover - protocol
        """Market seconds per wall second (1.0 for live)."""
        ...

    async def sleep(self, market_seconds: float) -> None:  # pragma: no cover - protocol
        """Sleep ``market_seconds`` of market time (wall time / speed)."""
        ...

    def monotonic(self) -> float:  # pragma: no cover - protocol
        """Monotonic seconds of the clock ``asyncio.sleep`` follows (wall for live and
        replay, loop time for the backtest): back-offs, pacing windows and ages use it."""
        ...


class LiveClock:
    """The system clock in America/New_York (production)."""

    speed = 1.0

    def now(self) -> datetime:
        """Return the current time, tz-aware, America/New_York."""
        return datetime.now(tz=NY)

    def timestamp(self) -> float:
        """Return POSIX seconds."""
        return _time.time()

    def monotonic(self) -> float:
        """Monotonic wall seconds (back-offs, pacing windows, ages)."""
        return _time.monotonic()

    async def sleep(self, market_seconds: float) -> None:
        """Sleep ``market_seconds`` of wall time."""
        await asyncio.sleep(max(0.0, market_seconds))

    def __repr__(self) -> str:
        return "LiveClock()"


@dataclass(frozen=True)
class ReplayClock:
    """Replay clock: market time = ``start + (wall − epoch) × speed``.

    Args:
        start: market time at ``epoch``; tz-aware (any zone, reported in New York).
        epoch: wall time (POSIX seconds) at which the replay starts.
        speed: market seconds per wall second (390 replays 6.5 hours in a minute).

    Raises:
        ValueError: ``start`` is naive, or ``speed`` is not positive.
    """

    start: datetime
    epoch: float
    speed: float = 1.0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError(f"ReplayClock start must be timezone-aware, got {self.start!r}")
        if not self.speed > 0:
            raise ValueError(f"ReplayClock speed must be > 0, got {self.speed!r}")

    def timestamp(self) -> float:
        """Market time as POSIX seconds."""
        return self.start.timestamp() + (_time.time() - self.epoch) * self.speed

    def now(self) -> datetime:
        """Market time, tz-aware, America/New_York."""
        return datetime.fromtimestamp(self.timestamp(), tz=NY)

    def monotonic(self) -> float:
        """Monotonic wall seconds (back-offs, pacing windows: IB counts them in wall time)."""
        return _time.monotonic()

    def wall_time_at(self, market: datetime) -> float:
        """Wall POSIX seconds at which the replay reaches ``market`` (tz-aware)."""
        return self.epoch + (market.timestamp() - self.start.timestamp()) / self.speed

    async def sleep(self, market_seconds: float) -> None:
        """Sleep ``market_seconds`` of market time, i.e. ``market_seconds / speed`` wall seconds."""
        await asyncio.sleep(max(0.0, market_seconds) / self.speed)


class ManualClock:
    """A clock tests set by hand. ``sleep`` advances it instead of waiting."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if start.tzinfo is None:
            raise ValueError(f"ManualClock start must be timezone-aware, got {start!r}")
        self._now = start.astimezone(NY)
        self.speed = speed

    def now(self) -> datetime:
        """The time last set."""
        return self._now

    def timestamp(self) -> float:
        """The time last set, POSIX seconds."""
        return self._now.timestamp()

    def monotonic(self) -> float:
        """Monotonic wall seconds: ``asyncio.sleep`` still follows the wall under a hand-set clock."""
        return _time.monotonic()

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (tz-aware)."""
        if when.tzinfo is None:
            raise ValueError(f"ManualClock.set needs a tz-aware datetime, got {when!r}")
        self._now = when.astimezone(NY)

    def advance(self, seconds: float) -> None:
        """Move forward ``seconds`` of market time."""
        self._now = self._now + timedelta(seconds=seconds)

    async def sleep(self, market_seconds: float) -> None:
        """Advance the clock, yield once to the loop."""
        self.advance(max(0.0, market_seconds))
        await asyncio.sleep(0)


class LoopClock:
    """Market time tied to an asyncio loop's clock: ``start + (loop.time() − loop_start)``.

    The backtest runs the sim-gateway and both bots on one loop whose time is virtual
    (``looptime``: the loop's clock jumps to the next timer when every task waits), so
    one market second is one second of loop time (``speed`` is 1.0) and sleeping is the
    loop's own ``asyncio.sleep``. Wall time never enters.

    Args:
        start: market time at ``loop_start``; tz-aware (reported in New York).
        loop: the loop whose ``time()`` drives the clock (default: the running loop).
        loop_start: the loop time that corresponds to ``start`` (default: ``loop.time()`` now).

    Raises:
        ValueError: ``start`` is naive. RuntimeError: no loop given and none running.
    """

    speed = 1.0

    def __init__(self, start: datetime, loop: asyncio.AbstractEventLoop | None = None,
                 loop_start: float | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError(f"LoopClock start must be timezone-aware, got {start!r}")
        self.loop = loop or asyncio.get_running_loop()
        self.start = start.astimezone(NY)
        self._start_ts = self.start.timestamp()
        self.loop_start = self.loop.time() if loop_start is None else float(loop_start)

    def timestamp(self) -> float:
        """Market time as POSIX seconds."""
        return self._start_ts + (self.loop.time() - self.loop_start)

    def now(self) -> datetime:
        """Market time, tz-aware, America/New_York."""
        return datetime.fromtimestamp(self.timestamp(), tz=NY)

    def monotonic(self) -> float:
        """Seconds of loop time: what the wall clock is to the other clocks (back-offs,
        pacing windows, ages), virtual here."""
        return self.loop.time()

    def loop_time_at(self, market: datetime) -> float:
        """Loop time at which market time reaches ``market`` (tz-aware)."""
        return self.loop_start + (market.timestamp() - self._start_ts)

    async def sleep(self, market_seconds: float) -> None:
        """Sleep ``market_seconds`` of loop (= market) time."""
        await asyncio.sleep(max(0.0, market_seconds))

    def __repr__(self) -> str:
        return f"LoopClock(start={self.start.isoformat()}, loop_start={self.loop_start!r})"


def wall_time() -> float:
    """Wall POSIX seconds, for durations that are not market time (timeouts, latency)."""
    return _time.time()


def monotonic() -> float:
    """Monotonic seconds for measuring latencies and timeouts (not market time)."""
    return _time.monotonic()


@dataclass(frozen=True)
class Session:
    """One XNYS session. All datetimes tz-aware America/New_York.

    ``premarket_open`` is 04:00 of the session date (IB's pre-market start);
    ``close`` is 13:00 on early-close days.
    """

    date: date
    premarket_open: datetime
    open: datetime
    close: datetime

    @property
    def is_early_close(self) -> bool:
        """True when the regular session closes before 16:00 New York."""
        return (self.close.hour, self.close.minute) < REGULAR_CLOSE


class SessionCalendar:
    """XNYS sessions from ``exchange_calendars`` (holidays and early closes).

    Source: exchange_calendars' ``XNYS`` calendar; the "session date" of a moment is the
    New York calendar date when that date is a session, else the most recent session
    before it (so a close at 23:30 New York belongs to that day's session, and a
    Saturday belongs to Friday's).
    """

    def __init__(self) -> None:
        import exchange_calendars as xcals

        self._cal = xcals.get_calendar("XNYS", start="2000-01-01")
        # Per-date answers never change for a calendar; cache them (the pandas
        # lookups cost ~50 µs each and sit on every database transaction's path).
        self.is_session = functools.lru_cache(maxsize=4096)(self._is_session)  # type: ignore[method-assign]
        self._session_of_day = functools.lru_cache(maxsize=4096)(self._session_of_day_uncached)
        self.session = functools.lru_cache(maxsize=1024)(self._session)  # type: ignore[method-assign]

    def _is_session(self, day: date) -> bool:
        """True when ``day`` is an XNYS trading day."""
        import pandas as pd

        return bool(self._cal.is_session(pd.Timestamp(day)))

    def is_session(self, day: date) -> bool:  # replaced by a cached bound function in __init__
        """True when ``day`` is an XNYS trading day."""
        return self._is_session(day)

    def _session_of_day_uncached(self, day: date) -> date:
        import pandas as pd

        if self.is_session(day):
            return day
        return self._cal.date_to_session(pd.Timestamp(day), direction="previous").date()

    def session_date(self, when: datetime) -> date:
        """Exchange session date of ``when`` (tz-aware). See the class docstring."""
        if when.tzinfo is None:
            raise ValueError(f"session_date needs a tz-aware datetime, got {when!r}")
        return self._session_of_day(when.astimezone(NY).date())

    def session(self, day: date) -> Session:  # replaced by a cached bound function in __init__
        """The session on ``day`` (see :meth:`_session`)."""
        return self._session(day)

    def _session(self, day: date) -> Session:
        """The session on ``day``.

        Raises:
            ValueError: ``day`` is not an XNYS session (weekend or holiday).
        """
        import pandas as pd

        if not self.is_session(day):
            raise ValueError(f"{day.isoformat()} is not an XNYS trading session")
        ts = pd.Timestamp(day)
        open_ = self._cal.session_open(ts).to_pydatetime().astimezone(NY)
        close = self._cal.session_close(ts).to_pydatetime().astimezone(NY)
        pre = datetime(day.year, day.month, day.day, *PREMARKET_OPEN, tzinfo=NY)
        return Session(date=day, premarket_open=pre, open=open_, close=close)

    def next_session(self, day: date) -> date:
        """First session strictly after ``day``."""
        import pandas as pd

        return self._cal.date_to_session(pd.Timestamp(day + timedelta(days=1)), "next").date()

    def previous_session(self, day: date) -> date:
        """Last session strictly before ``day``."""
        import pandas as pd

        return self._cal.date_to_session(pd.Timestamp(day - timedelta(days=1)), "previous").date()

    def flatten_time(self, day: date, offset_minutes: float) -> datetime:
        """End-of-day flatten time: the session close minus ``offset_minutes`` (New York)."""
        return self.session(day).close - timedelta(minutes=offset_minutes)

    def is_regular_hours(self, when: datetime) -> bool:
        """True between the regular open (inclusive) and close (exclusive) of a session."""
        day = when.astimezone(NY).date()
        if not self.is_session(day):
            return False
        s = self.session(day)
        return s.open <= when < s.close


@functools.lru_cache(maxsize=1)
def calendar() -> SessionCalendar:
    """The process-wide XNYS calendar (built once; construction takes ~0.5 s)."""
    return SessionCalendar()


def session_date(when: datetime) -> date:
    """Exchange session date of ``when`` (tz-aware); shorthand for ``calendar().session_date``."""
    return calendar().session_date(when)


def parse_market_datetime(text: str) -> datetime:
    """Parse ISO text; a naive value is taken as America/New_York.

    Raises:
        ValueError: the text is not an ISO-8601 date-time.
    """
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=NY)
    return value.astimezone(NY)
