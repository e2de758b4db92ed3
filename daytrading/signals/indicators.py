"""Incremental session VWAP, RSI and ATR: O(1) work and memory per bar.

Each indicator keeps only running sums / smoothed averages, never the bar history,
and reproduces the `ta` library (``ta`` 0.11, read from its source) on the same bar
series to floating-point rounding (tests check 1e-9 relative error on recorded data):

* :class:`RSI` — ``ta.momentum.RSIIndicator(close, window=n)``: Wilder smoothing as
  ``ewm(alpha=1/n, adjust=False)`` of up/down moves. ``ta``'s first move is
  ``diff().where(...)`` of a NaN, i.e. **0.0** (not missing), so both averages start at
  0 on the first bar and the first RSI appears on bar ``n`` (``min_periods=n``); no SMA
  seed. RSI = 100 when the average loss is exactly 0.
* :class:`ATR` — ``ta.volatility.AverageTrueRange(high, low, close, window=n)``: true
  range ``max(H−L, |H−C₋₁|, |L−C₋₁|)`` (``H−L`` on the first bar, which has no previous
  close), first ATR on bar ``n`` = mean of the first ``n`` true ranges, then Wilder's
  ``ATR = (ATR₋₁·(n−1) + TR) / n``. (``ta`` writes 0.0 before bar ``n``; we give ``None``.)
* :class:`SessionVWAP` — ``ta.volume.VolumeWeightedAveragePrice`` uses the typical
  price ``(H+L+C)/3`` weighted by volume over a rolling window; the anchored session
  VWAP is that definition with the window running from the anchor:
  ``Σ((H+L+C)/3 · V) / Σ V`` over the session's bars so far (equal to ``ta`` with
  ``window`` ≥ bars since the anchor and ``min_periods`` 0). Anchor: the regular open
  (09:30 New York, from the XNYS calendar); bars before the open feed a separate
  pre-market VWAP (from the first pre-market bar of the day); bars at or after the
  regular close (13:00 on early-close days) are not added. Both reset on a new day.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Literal

from daytrading.clock import SessionCalendar, calendar
from daytrading.signals.bars import Bar, as_bar

log = logging.getLogger(__name__)

__all__ = ["ATR", "RSI", "IndicatorSet", "Phase", "SessionVWAP", "Snapshot"]

Phase = Literal["pre", "regular", "post", "closed"]


def _check_period(name: str, period: Any) -> int:
    if not isinstance(period, int) or isinstance(period, bool) or period < 1:
        raise ValueError(f"{name} must be a positive integer, got {period!r}")
    return period


class RSI:
    """Relative Strength Index, Wilder smoothing, exactly as ``ta.momentum.RSIIndicator``.

    ``update(close)`` takes the bar's close (dollars) and returns RSI in 0–100, or
    ``None`` for the first ``period − 1`` bars. The smoothing replicates pandas'
    ``ewm(adjust=False)`` arithmetic step by step (pandas turns ``alpha`` into a centre
    of mass and back, and divides by the weight sum), so values agree with ``ta``
    to rounding.

    Raises:
        ValueError: ``period`` is not a positive integer.
    """

    __slots__ = ("_alpha", "_dn", "_old", "_prev", "_up", "nobs", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = _check_period("RSI period", period)
        com = (1.0 - 1.0 / period) / (1.0 / period)  # pandas get_center_of_mass(alpha=...)
        self._alpha = 1.0 / (1.0 + com)  # pandas window.aggregations.ewm
        self._old = 1.0 - self._alpha
        self._prev: float | None = None
        self._up = 0.0
        self._dn = 0.0
        self.nobs = 0
        self.value: float | None = None

    def update(self, close: float) -> float | None:
        """Add one close; return the current RSI (0–100) or ``None`` while warming up."""
        prev, self._prev = self._prev, close
        self.nobs += 1
        if prev is None:  # ta: diff() is NaN → where(...) gives 0.0 for both sides
            self._up = self._dn = 0.0
        else:
            diff = close - prev
            up = diff if diff > 0 else 0.0
            dn = -diff if diff < 0 else 0.0
            a, o = self._alpha, self._old
            if self._up != up:
                self._up = (o * self._up + a * up) / (o + a)
            if self._dn != dn:
                self._dn = (o * self._dn + a * dn) / (o + a)
        if self.nobs < self.period:
            return None
        self.value = 100.0 if self._dn == 0 else 100.0 - (100.0 / (1.0 + self._up / self._dn))
        return self.value


class ATR:
    """Average True Range, Wilder smoothing, exactly as ``ta.volatility.AverageTrueRange``.

    ``update(high, low, close)`` (dollars) returns the ATR in dollars, or ``None`` for
    the first ``period − 1`` bars.

    Raises:
        ValueError: ``period`` is not a positive integer.
    """

    __slots__ = ("_prev_close", "_seed", "nobs", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = _check_period("ATR period", period)
        self._prev_close: float | None = None
        self._seed = 0.0
        self.nobs = 0
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        """Add one bar; return the current ATR (dollars) or ``None`` while warming up."""
        pc, self._prev_close = self._prev_close, close
        tr = high - low
        if pc is not None:
            tr = max(tr, abs(high - pc), abs(low - pc))
        self.nobs += 1
        n = self.period
        if self.nobs < n:
            self._seed += tr
            return None
        if self.nobs == n:
            self.value = (self._seed + tr) / n
        else:
            self.value = (self.value * (n - 1) + tr) / float(n)  # type: ignore[operator]
        return self.value


class SessionVWAP:
    """Session VWAP anchored at the regular open, with a separate pre-market VWAP.

    Typical price ``(H+L+C)/3`` × volume, summed from the anchor (the ``ta``
    ``VolumeWeightedAveragePrice`` definition, cumulative; see the module docstring).
    Sessions (open, close, early closes, holidays) come from the XNYS calendar.

    * bar start < regular open → pre-market: adds to :attr:`premarket_vwap`;
    * open ≤ start < close → regular: adds to :attr:`vwap`;
    * start ≥ close (after hours) or a non-session day: adds to neither.

    Both reset when a bar of a new New York date arrives. A VWAP is ``None`` until its
    part of the day has seen volume. Dollars.
    """

    __slots__ = ("_cal", "_close_ts", "_day", "_open_ts", "_pre_pv", "_pre_v", "_pv", "_v", "phase")

    def __init__(self, cal: SessionCalendar | None = None) -> None:
        self._cal = cal
        self._day: date | None = None
        self._open_ts = self._close_ts = math.inf
        self._pv = self._v = 0.0
        self._pre_pv = self._pre_v = 0.0
        self.phase: Phase = "closed"

    def _new_day(self, day: date) -> None:
        cal = self._cal or calendar()
        self._day = day
        self._pv = self._v = self._pre_pv = self._pre_v = 0.0
        if cal.is_session(day):
            s = cal.session(day)
            self._open_ts, self._close_ts = s.open.timestamp(), s.close.timestamp()
        else:
            self._open_ts = self._close_ts = math.nan

    def update(self, bar: Bar) -> Phase:
        """Add one bar (start time in New York); return its phase."""
        t = bar.time
        day = t.date()
        if day != self._day:
            self._new_day(day)
        ts = t.timestamp()
        if self._open_ts != self._open_ts:  # NaN: not a session day
            self.phase = "closed"
            return self.phase
        pv = (bar.high + bar.low + bar.close) / 3.0 * bar.volume
        if ts < self._open_ts:
            self._pre_pv += pv
            self._pre_v += bar.volume
            self.phase = "pre"
        elif ts < self._close_ts:
            self._pv += pv
            self._v += bar.volume
            self.phase = "regular"
        else:
            self.phase = "post"
        return self.phase

    @property
    def vwap(self) -> float | None:
        """Regular-session VWAP so far (dollars), ``None`` before the open's first volume."""
        return self._pv / self._v if self._v > 0 else None

    @property
    def premarket_vwap(self) -> float | None:
        """Today's pre-market VWAP (dollars), ``None`` without pre-market volume."""
        return self._pre_pv / self._pre_v if self._pre_v > 0 else None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Indicator values after one bar (what the entry rules read).

    Attributes:
        symbol: ticker.
        time: start of the bar just added, tz-aware America/New_York.
        close: that bar's close (dollars).
        vwap: regular-session VWAP (dollars) or ``None`` (pre-market, no volume yet).
        premarket_vwap: today's pre-market VWAP (dollars) or ``None``.
        rsi: RSI(period), 0–100, or ``None`` while warming up.
        atr: ATR(period) in dollars, or ``None`` while warming up.
        atr_pct: ``atr / close`` as a FRACTION (0.003 = 0.3 %), or ``None``.
        bars_seen: bars added so far (all phases, across days).
        ready: RSI and ATR both have values (``bars_seen ≥`` their periods).
            ``vwap`` may still be ``None`` when ``ready`` (before the open).
        phase: ``"pre"``, ``"regular"``, ``"post"`` or ``"closed"`` (of this bar).
    """

    symbol: str
    time: datetime
    close: float
    vwap: float | None
    premarket_vwap: float | None
    rsi: float | None
    atr: float | None
    atr_pct: float | None
    bars_seen: int
    ready: bool
    phase: Phase

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (``time`` as ISO 8601 with offset)."""
        d = asdict(self)
        d["time"] = self.time.isoformat()
        return d


class IndicatorSet:
    """Session VWAP, RSI and ATR for one symbol, updated in O(1) per bar.

    RSI and ATR run over every bar given (pre-market, regular, after hours, across
    days: the series the caller feeds, as ``ta`` would see it); the VWAPs follow the
    session rules of :class:`SessionVWAP`.

    Args:
        symbol: ticker (carried into every :class:`Snapshot`).
        periods: RSI period (and ATR period unless ``atr_period`` is given); 14.
        atr_period: ATR period if different from ``periods``.
        cal: XNYS session calendar (default :func:`daytrading.clock.calendar`).

    Raises:
        ValueError: a period is not a positive integer.
    """

    def __init__(self, symbol: str, periods: int = 14, *, atr_period: int | None = None,
                 cal: SessionCalendar | None = None) -> None:
        self.symbol = symbol
        self.rsi = RSI(periods)
        self.atr = ATR(periods if atr_period is None else atr_period)
        self.vwap = SessionVWAP(cal)
        self.bars_seen = 0
        self.rejected = 0
        self.last: Snapshot | None = None

    def update(self, bar: Bar) -> Snapshot | None:
        """Add one completed bar (bars in time order) and return the new :class:`Snapshot`.

        A bar that is not after the previous one (duplicate, out of order) or cannot
        be read is dropped with a logged warning and the previous snapshot (``None``
        if there is none) is returned: this never raises on bad data.
        """
        if not isinstance(bar, Bar):
            try:
                bar = as_bar(bar)
            except ValueError as exc:
                return self._reject(f"bad bar: {exc}")
        last = self.last
        if last is not None and bar.time <= last.time:
            return self._reject(f"bar at {bar.time.isoformat()} not after {last.time.isoformat()}")
        close = bar.close
        rsi = self.rsi.update(close)
        atr = self.atr.update(bar.high, bar.low, close)
        phase = self.vwap.update(bar)
        self.bars_seen += 1
        snap = Snapshot(
            symbol=self.symbol, time=bar.time, close=close, vwap=self.vwap.vwap,
            premarket_vwap=self.vwap.premarket_vwap, rsi=rsi, atr=atr,
            atr_pct=(atr / close if atr is not None and close > 0 else None),
            bars_seen=self.bars_seen, ready=rsi is not None and atr is not None, phase=phase,
        )
        self.last = snap
        return snap

    def _reject(self, why: str) -> Snapshot | None:
        self.rejected += 1
        log.warning("%s: indicator input dropped: %s", self.symbol, why, extra={"symbol": self.symbol})
        return self.last

    def warm(self, bars: Iterable[Bar]) -> Snapshot | None:
        """Backfill: add historical bars (oldest first); return the last snapshot."""
        for bar in bars:
            self.update(bar)
        return self.last
