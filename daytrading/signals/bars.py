"""Price bars: the :class:`Bar` type, 5-second → 30-second aggregation, IB conversion.

Every bar is stamped with its **start** time, tz-aware, America/New_York (IB's
convention for both ``reqRealTimeBars`` and ``reqHistoricalData``: the bar stamped
09:30:00 covers [09:30:00, 09:30:30) for 30-second bars).

Aggregation rules used by :class:`BarAggregator` (the usual OHLCV resample, the same
as ``pandas.DataFrame.resample(..., label="left", closed="left")`` with ``first /
max / min / last / sum``):

* bucket = the input bar's start time floored to a multiple of ``bar_seconds`` on
  the clock (``:00`` and ``:30`` for 30-second bars; New York's UTC offset is a whole
  number of hours, so flooring POSIX seconds is the same as flooring the NY clock);
* open = open of the first input bar in the bucket, close = close of the last,
  high = max of highs, low = min of lows (zero-volume inputs included: IB sends them
  with the last price);
* volume = sum of input volumes (shares, as IB reports them);
* wap = volume-weighted mean of the input WAPs, ``Σ wapᵢ·volᵢ / Σ volᵢ`` (dollars);
  ``None`` when the bucket's volume is zero or any input lacks a WAP;
* count = sum of input trade counts (``None`` if any input lacks one);
* a bucket with no input bars produces no bar (missing 5-second bars are tolerated:
  the 30-second bar is built from the ones that did arrive).

Volume units are passed through as IB reports them. Feed one symbol's indicators
from sources with the same unit (IB can report US-stock volume in lots of 100 to
clients that ask for it): VWAP is unchanged by a constant factor, but not by a mix.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any

from ib_async import RealTimeBar

from daytrading.clock import NY

log = logging.getLogger(__name__)

__all__ = ["Bar", "BarAggregator", "as_bar", "bars_from_ib"]


def _finite(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"bar field {name!r} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"bar field {name!r} must be finite, got {value!r}")
    return v


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar.

    Attributes:
        time: bar START, tz-aware; normalised to America/New_York.
        open, high, low, close: dollars per share (finite, ≥ 0, ``low ≤ high``).
        volume: shares traded in the bar (float; ≥ 0).
        wap: the bar's volume-weighted average trade price in dollars, or ``None``.
        count: number of trades in the bar, or ``None``.

    Raises:
        ValueError: naive ``time``, a non-finite or negative price/volume, or
            ``high < low``; the message names the field and the value.
    """

    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    wap: float | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        t = self.time
        if not isinstance(t, datetime):
            raise ValueError(f"bar field 'time' must be a datetime, got {t!r}")
        if t.tzinfo is None or t.tzinfo.utcoffset(t) is None:
            raise ValueError(f"bar field 'time' must be timezone-aware, got {t!r}")
        if t.tzinfo is not NY:
            object.__setattr__(self, "time", t.astimezone(NY))
        for name in ("open", "high", "low", "close", "volume"):
            v = _finite(name, getattr(self, name))
            if v < 0:
                raise ValueError(f"bar field {name!r} must be ≥ 0, got {v!r}")
            object.__setattr__(self, name, v)
        if self.high < self.low:
            raise ValueError(f"bar high {self.high!r} is below low {self.low!r} at {self.time.isoformat()}")
        if self.wap is not None:
            object.__setattr__(self, "wap", _finite("wap", self.wap))


def as_bar(obj: Any, *, naive_tz: tzinfo = NY) -> Bar:
    """Convert a :class:`Bar`, an ib_async ``RealTimeBar`` or ``BarData`` to a :class:`Bar`.

    * ``RealTimeBar`` (``time, open_, high, low, close, volume, wap, count``): ``time``
      is the 5-second bar's start, tz-aware (ib_async builds it from IB's epoch seconds).
    * ``BarData`` (``date, open, high, low, close, volume, average, barCount``): ``date``
      is the bar start; a naive datetime is taken to be in ``naive_tz`` (IB's
      ``formatDate=1`` without a zone is the TWS login time zone: pass it), a ``date``
      (daily bars) becomes 00:00 of that day in New York. IB reports ``average = -1``
      or ``0`` when it has no WAP: that becomes ``None``.

    Raises:
        ValueError: unknown object shape or a bad field (see :class:`Bar`).
    """
    if isinstance(obj, Bar):
        return obj
    if hasattr(obj, "open_"):  # ib_async RealTimeBar
        wap = float(obj.wap)
        return Bar(
            time=_aware(obj.time, naive_tz), open=obj.open_, high=obj.high, low=obj.low,
            close=obj.close, volume=float(obj.volume), wap=wap if wap > 0 else None,
            count=int(obj.count) if obj.count is not None and obj.count >= 0 else None,
        )
    if hasattr(obj, "date") and hasattr(obj, "open"):  # ib_async BarData
        avg = getattr(obj, "average", None)
        n = getattr(obj, "barCount", None)
        return Bar(
            time=_aware(obj.date, naive_tz), open=obj.open, high=obj.high, low=obj.low,
            close=obj.close, volume=float(obj.volume),
            wap=float(avg) if avg is not None and float(avg) > 0 else None,
            count=int(n) if n is not None and n >= 0 else None,
        )
    raise ValueError(f"cannot convert {type(obj).__name__} to a Bar (need Bar, RealTimeBar or BarData)")


def _aware(t: Any, naive_tz: tzinfo) -> datetime:
    if isinstance(t, datetime):
        return t if t.tzinfo is not None else t.replace(tzinfo=naive_tz)
    if isinstance(t, date):
        return datetime(t.year, t.month, t.day, tzinfo=NY)
    raise ValueError(f"bar time must be a datetime or date, got {t!r}")


def bars_from_ib(bars: Iterable[Any], *, naive_tz: tzinfo = NY) -> list[Bar]:
    """Convert ib_async ``BarData`` (historical backfill) to a list of :class:`Bar`.

    Args:
        bars: ``BarData`` objects (e.g. a ``BarDataList`` from ``reqHistoricalDataAsync``),
            oldest first, each stamped with its start time.
        naive_tz: time zone of naive timestamps (see :func:`as_bar`).

    Returns:
        The converted bars, in input order. A bar that cannot be converted (bad
        field) is skipped with a logged warning, never raised: one bad row from the
        broker must not stop a backfill.
    """
    out: list[Bar] = []
    for b in bars:
        try:
            out.append(as_bar(b, naive_tz=naive_tz))
        except ValueError as exc:
            log.warning("skipping bad historical bar: %s", exc)
    return out


_INF = math.inf


def _rt_fields(bar: Any) -> tuple[Any, ...] | None:
    """``(start POSIX s, open, high, low, close, volume, wap, count)`` of an ib_async
    ``RealTimeBar`` whose fields are already clean (the values :func:`as_bar` would give),
    without building a :class:`Bar`; None for anything else (another type, a value of another
    type, a naive time, a bad value), which then takes the validating path of :func:`as_bar`.

    This is the per-bar path of a live session (one call per symbol every 5 s), so it checks
    the same rules as :class:`Bar` with plain comparisons: prices and volume finite and ≥ 0,
    ``low ≤ high``, a finite WAP (≤ 0 means none), a count ≥ 0 (else none).
    """
    if type(bar) is not RealTimeBar:
        return None
    t, o, h, lo, c, v, w, n = bar.time, bar.open_, bar.high, bar.low, bar.close, bar.volume, bar.wap, bar.count
    if (type(t) is not datetime or type(o) is not float or type(h) is not float or type(lo) is not float
            or type(c) is not float or type(v) is not float or type(w) is not float
            or not (0.0 <= lo <= h < _INF and 0.0 <= o < _INF and 0.0 <= c < _INF and 0.0 <= v < _INF)
            or w == _INF or t.utcoffset() is None):
        return None
    if n is not None and type(n) is not int:
        return None
    return (t.timestamp(), o, h, lo, c, v, w if w > 0 else None, n if n is not None and n >= 0 else None)


def _iso(ts: float) -> str:
    """POSIX seconds as New York ISO text (log messages)."""
    return datetime.fromtimestamp(ts, NY).isoformat()


class BarAggregator:
    """Build ``bar_seconds`` bars (default 30) from finer bars, aligned to the clock.

    Feed it IB 5-second real-time bars (``RealTimeBar``), :class:`Bar` objects or any
    bars whose duration divides ``bar_seconds`` and which are aligned to it. The
    aggregation rules are in the module docstring.

    ``add(bar)`` returns a completed bar: the bucket's own bar when ``bar`` is its last
    input (it ends at the bucket's end: the 5-second bar stamped ``:25`` closes the
    ``:00`` bucket), else the previous bucket's when ``bar`` belongs to a later bucket,
    else ``None``. ``flush()`` returns the bar being built (end of data, or the caller
    knows the bucket is over). ``poll(now)`` returns it once its last input has come, or
    once ``now`` is ``grace_seconds`` past the bucket's end without it (that input bar is
    missing).

    Why the grace: IB stamps a real-time bar with its start and sends it when it ends,
    so the bar that completes a bucket arrives just *after* the bucket's end. Emitting at
    the end itself would close every 30-second bar without its last 5 seconds (a close
    5 s stale, a sixth of the volume lost) and drop that input bar as late.

    Bad input never raises out of ``add``: a bar at or before the last accepted
    bar's start (duplicate or out of order), a bar for a bucket already emitted (late,
    after ``flush``/``poll``), or one with a bad field, is dropped with a logged
    warning; :attr:`rejected` counts them.

    Args:
        bar_seconds: output bar length in seconds; must divide 3600.
        input_seconds: length of one input bar in seconds (IB real-time bars: 5).
        grace_seconds: how long past a bucket's end ``poll`` waits for its last input bar
            (default ``input_seconds``: IB sends a real-time bar within a second of its end).

    Raises:
        ValueError: ``bar_seconds`` is not a positive divisor of 3600, or ``input_seconds``
            is not a positive divisor of ``bar_seconds``, or ``grace_seconds`` is negative.
    """

    def __init__(self, bar_seconds: int = 30, *, symbol: str = "", input_seconds: int = 5,
                 grace_seconds: float | None = None) -> None:
        if not isinstance(bar_seconds, int) or bar_seconds <= 0 or 3600 % bar_seconds:
            raise ValueError(f"bar_seconds must be a positive divisor of 3600, got {bar_seconds!r}")
        if not isinstance(input_seconds, int) or input_seconds <= 0 or bar_seconds % input_seconds:
            raise ValueError(f"input_seconds must be a positive divisor of bar_seconds ({bar_seconds}), "
                             f"got {input_seconds!r}")
        grace = float(input_seconds if grace_seconds is None else grace_seconds)
        if not grace >= 0:
            raise ValueError(f"grace_seconds must be >= 0, got {grace_seconds!r}")
        self.bar_seconds = bar_seconds
        self.input_seconds = input_seconds
        self.grace_seconds = grace
        self.symbol = symbol
        self.rejected = 0
        self._last_input: float | None = None
        self._bucket: float | None = None  # POSIX seconds of the open bucket's start
        self._emitted: float | None = None  # start of the last emitted bucket
        self._open = self._high = self._low = self._close = 0.0
        self._volume = 0.0
        self._wap_num: float | None = 0.0
        self._count: int | None = 0

    @property
    def pending(self) -> bool:
        """True while a bucket has input bars that have not been emitted."""
        return self._bucket is not None

    def add(self, bar: Any) -> Bar | None:
        """Add one finer bar; return the completed previous bar, if this one closes it."""
        f = _rt_fields(bar)
        if f is None:  # not a plain ib_async RealTimeBar with clean values: the validating path
            try:
                b = as_bar(bar)
            except ValueError as exc:
                self.rejected += 1
                log.warning("%s: bad input bar dropped: %s", self.symbol or "bar aggregator", exc,
                            extra={"symbol": self.symbol})
                return None
            f = (b.time.timestamp(), b.open, b.high, b.low, b.close, b.volume, b.wap, b.count)
        ts = f[0]
        if self._last_input is not None and ts <= self._last_input:
            self.rejected += 1
            kind = "duplicate" if ts == self._last_input else "out-of-order"
            log.warning("%s: %s input bar at %s dropped (last accepted %s)", self.symbol or "bar aggregator",
                        kind, _iso(ts), _iso(self._last_input), extra={"symbol": self.symbol})
            return None
        bucket = ts - (ts % self.bar_seconds)
        if self._emitted is not None and bucket <= self._emitted:
            self.rejected += 1
            log.warning("%s: late input bar at %s dropped (its bar was already emitted)",
                        self.symbol or "bar aggregator", _iso(ts), extra={"symbol": self.symbol})
            return None
        self._last_input = ts
        done = self.flush() if self._bucket is not None and bucket != self._bucket else None
        if self._bucket is None:
            self._start(bucket, f)
        else:
            self._extend(f)
        if done is None and self._complete():
            done = self.flush()  # its last input bar: nothing more can come for this bucket
        return done

    def _complete(self) -> bool:
        """The open bucket has its last input bar (the one that ends at the bucket's end)."""
        return (self._bucket is not None and self._last_input is not None
                and self._last_input + self.input_seconds >= self._bucket + self.bar_seconds)

    def _start(self, bucket: float, f: tuple[Any, ...]) -> None:
        self._bucket = bucket
        _, self._open, self._high, self._low, self._close, volume, wap, self._count = f
        self._volume = volume
        self._wap_num = None if wap is None else wap * volume

    def _extend(self, f: tuple[Any, ...]) -> None:
        _, _, high, low, close, volume, wap, count = f
        if high > self._high:
            self._high = high
        if low < self._low:
            self._low = low
        self._close = close
        self._volume += volume
        if self._wap_num is not None:
            self._wap_num = None if wap is None else self._wap_num + wap * volume
        if self._count is not None:
            self._count = None if count is None else self._count + count

    def flush(self) -> Bar | None:
        """Emit the bar being built (``None`` if there is none) and start afresh."""
        if self._bucket is None:
            return None
        wap = self._wap_num / self._volume if self._wap_num is not None and self._volume > 0 else None
        out = Bar(
            time=datetime.fromtimestamp(self._bucket, NY), open=self._open, high=self._high,
            low=self._low, close=self._close, volume=self._volume, wap=wap, count=self._count,
        )
        self._emitted = self._bucket
        self._bucket = None
        return out

    def poll(self, now: datetime) -> Bar | None:
        """Emit the bar being built if it has its last input bar, or if ``now`` (tz-aware) is
        ``grace_seconds`` or more past its bucket's end (its last input bar never came)."""
        if self._bucket is None:
            return None
        if self._complete() or now.timestamp() >= self._bucket + self.bar_seconds + self.grace_seconds:
            return self.flush()
        return None
