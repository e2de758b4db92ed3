"""Market-data computations on the replayed market: request parameters, history pacing, scanner ranking.

Pure functions of the replay (:class:`~.market.ReplayMarket`) and their arguments: no subscription,
no connection, no message. The connection-facing market-data service
(:mod:`daytrading.sim_gateway.marketdata`) calls them and turns their results into messages.

Times are POSIX seconds; the session's calendar and clock are New York (America/New_York).
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from daytrading.clock import NY, UTC, calendar, monotonic
from daytrading.sim_gateway.engine.market import ReplayMarket

__all__ = [
    "SCANNER_MAX_ROWS",
    "SCAN_CODES",
    "HistoricalPacing",
    "duration_start",
    "parse_bar_size",
    "parse_duration",
    "parse_end_datetime",
    "scan",
]

SCAN_CODES = ("TOP_PERC_GAIN", "TOP_PERC_LOSE", "MOST_ACTIVE", "HOT_BY_VOLUME", "TOP_OPEN_PERC_GAIN")
SCANNER_MAX_ROWS = 50


# --------------------------------------------------------------------------- request parameters


_BAR_RE = re.compile(r"^\s*(\d+)\s+(sec|secs|min|mins|hour|hours|day|days)\s*$", re.IGNORECASE)
_BAR_UNITS = {"sec": 1, "secs": 1, "min": 60, "mins": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
_VALID_BARS = {1, 5, 10, 15, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 14400, 28800, 86400}


def parse_bar_size(text: str) -> int:
    """IB ``barSizeSetting`` (``"30 secs"``, ``"1 min"``, ``"5 mins"``, ``"1 hour"``, ``"1 day"``)
    → seconds. Raises ValueError for other values (weeks/months are not served)."""
    m = _BAR_RE.match(text or "")
    if not m:
        raise ValueError(f"barSizeSetting {text!r} is invalid")
    seconds = int(m.group(1)) * _BAR_UNITS[m.group(2).lower()]
    if seconds not in _VALID_BARS:
        raise ValueError(f"barSizeSetting {text!r} is not one of IB's bar sizes")
    return seconds


def parse_duration(text: str) -> tuple[int, str]:
    """IB ``durationStr`` ``"<n> S|D|W|M|Y"`` → (n, unit). Raises ValueError otherwise."""
    m = re.match(r"^\s*(\d+)\s*([SDWMY])\s*$", text or "", re.IGNORECASE)
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"durationStr {text!r} is invalid (expected '<integer> S|D|W|M|Y')")
    return int(m.group(1)), m.group(2).upper()


def parse_end_datetime(text: str) -> float | None:
    """IB ``endDateTime`` → POSIX seconds; ``""`` → None (= now).

    Accepts ``YYYYMMDD HH:MM:SS UTC``, ``YYYYMMDD HH:MM:SS <IANA zone>``, ``YYYYMMDD-HH:MM:SS``
    (UTC), ``YYYYMMDD HH:MM:SS`` (gateway time zone: America/New_York) and ``YYYYMMDD``
    (end of that day, New York). Raises ValueError otherwise.
    """
    s = (text or "").strip()
    if not s:
        return None
    try:
        if len(s) == 8 and s.isdigit():
            d = datetime.strptime(s, "%Y%m%d").replace(tzinfo=NY)
            return (d + timedelta(days=1)).timestamp()
        if len(s) >= 17 and s[8] == "-":
            return datetime.strptime(s[:17], "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC).timestamp()
        parts = s.split(" ")
        base = datetime.strptime(parts[0] + " " + parts[1], "%Y%m%d %H:%M:%S")  # noqa: DTZ007 - zone set below
        zone = " ".join(parts[2:]).strip()
        tz = NY if not zone else (UTC if zone.upper() in ("UTC", "GMT") else ZoneInfo(zone))
        return base.replace(tzinfo=tz).timestamp()
    except (ValueError, IndexError, ZoneInfoNotFoundError) as exc:
        raise ValueError(f"endDateTime {text!r} is invalid") from exc


def _f(x: str) -> float | None:
    """A request float field: ∅ or IB's UNSET_DOUBLE → None."""
    if x in ("", None) or x.startswith("1.7976931348623157"):
        return None
    try:
        v = float(x)
    except ValueError:
        return None
    return None if math.isinf(v) or v >= 1.7e308 else v


# --------------------------------------------------------------------------- pacing


def duration_start(t1: float, n: int, unit: str) -> float:
    """Start (POSIX s) of a duration ending at ``t1``: S = seconds; D/W/M/Y = that many
    sessions (W = 5, M = 21, Y = 252 per unit) counting the session of ``t1``, from its
    midnight New York."""
    if unit == "S":
        return t1 - n
    sessions = n * {"D": 1, "W": 5, "M": 21, "Y": 252}[unit]
    cal = calendar()
    day = datetime.fromtimestamp(t1, NY).date()
    if not cal.is_session(day):
        day = cal.session_date(datetime.fromtimestamp(t1, NY))
    for _ in range(sessions - 1):
        day = cal.previous_session(day)
    return datetime(day.year, day.month, day.day, tzinfo=NY).timestamp()


# --------------------------------------------------------------------------- pacing


class HistoricalPacing:
    """IB's pacing rules for historical requests of small bars (30 secs or less).

    Source: IB TWS API documentation, "Historical Data Limitations" → "Pacing Violations for
    Small Bars (30 secs or less)" (interactivebrokers.github.io/tws-api/historical_limitations.html).
    A pacing violation occurs when a client makes

    1. identical historical data requests within 15 seconds;
    2. six or more historical data requests for the same Contract, Exchange and Tick Type
       within two seconds (so at most 5 in any 2 s);
    3. more than 60 requests within any ten-minute period.

    Kept independent of the client-side :class:`daytrading.signals.pacing.HistoricalPacer` on
    purpose (same published rules, separate code, no import either way): a test double must not
    share the rules it checks, so a mistake in one shows up as error 162 against the other.

    BID_ASK requests count twice. Windows are wall-clock seconds, across all connections of
    this gateway (IB paces per user session). Rejected requests do not count.
    """

    def __init__(
        self,
        *,
        max_requests: int = 60,
        window: float = 600.0,
        identical_interval: float = 15.0,
        burst_max: int = 5,
        burst_window: float = 2.0,
        now: Callable[[], float] = monotonic,
    ) -> None:
        self.max_requests, self.window = max_requests, window
        self.identical_interval = identical_interval
        self.burst_max, self.burst_window = burst_max, burst_window
        self._now = now
        self._all: deque[float] = deque()
        self._by_contract: dict[tuple, deque[float]] = {}
        self._identical: dict[tuple, float] = {}

    def check(self, identical_key: tuple, contract_key: tuple, *, weight: int = 1) -> str | None:
        """Record a request; return None if allowed, else the rule it breaks (text)."""
        t = self._now()
        while self._all and self._all[0] <= t - self.window:
            self._all.popleft()
        burst = self._by_contract.setdefault(contract_key, deque())
        while burst and burst[0] <= t - self.burst_window:
            burst.popleft()
        last = self._identical.get(identical_key)
        if last is not None and t - last < self.identical_interval:
            return f"identical request within {self.identical_interval:g} s"
        if len(burst) + weight > self.burst_max:
            return f"six or more requests for the same contract within {self.burst_window:g} s"
        if len(self._all) + weight > self.max_requests:
            return f"more than {self.max_requests} requests within {self.window / 60:g} minutes"
        for _ in range(weight):
            self._all.append(t)
            burst.append(t)
        self._identical[identical_key] = t
        if len(self._identical) > 4096:
            self._identical = {k: v for k, v in self._identical.items() if t - v < self.identical_interval}
        return None


# --------------------------------------------------------------------------- subscriptions


# --------------------------------------------------------------------------- scanner


def scan(market: ReplayMarket, code: str, now: float, *, rows: int = SCANNER_MAX_ROWS, above_price: float | None = None,
         below_price: float | None = None, above_volume: float | None = None,
         tags: dict[str, str] | None = None) -> list[tuple[str, float]]:
    """Ranking of ``code`` at market time ``now``: ``[(symbol, score), …]`` best first.

    Scores: TOP_PERC_GAIN / TOP_PERC_LOSE — last / previous close − 1 (fraction; gainers
    > 0, losers < 0 only); TOP_OPEN_PERC_GAIN — regular open / previous close − 1;
    MOST_ACTIVE — shares traded since 04:00; HOT_BY_VOLUME — shares traded since 04:00
    divided by the average volume of the same time of day over the ``history``
    sessions (plain volume when there is no history). Filters: price (last) above /
    below, volume above, ``changePercAbove``/``Below`` (percent). Symbols without a
    trade yet, or halted, are left out.
    """
    tags = tags or {}
    price_above = _first(above_price, _ftag(tags, "priceAbove"))
    price_below = _first(below_price, _ftag(tags, "priceBelow"))
    vol_above = _first(above_volume, _ftag(tags, "volumeAbove"))
    chg_above, chg_below = _ftag(tags, "changePercAbove"), _ftag(tags, "changePercBelow")
    m = market
    out: list[tuple[str, float]] = []
    for sym in m.symbols:
        s = m.series(sym)
        if s is None or m.is_halted(sym, now):
            continue
        b = int(np.searchsorted(s.tick_ts, now, side="right"))
        if b == 0:
            continue
        last = float(s.tick_px[b - 1])
        volume = float(s.tick_sz[:b].sum())
        prev = m.previous_close(sym)
        change = (last / prev - 1.0) if prev else None
        if price_above is not None and not last > price_above:
            continue
        if price_below is not None and not last < price_below:
            continue
        if vol_above is not None and not volume > vol_above:
            continue
        if chg_above is not None and (change is None or not change * 100 > chg_above):
            continue
        if chg_below is not None and (change is None or not change * 100 < chg_below):
            continue
        score = _score(m, code, sym, s, b, now, last, volume, change, prev)
        if score is not None:
            out.append((sym, score))
    out.sort(key=lambda x: (-x[1], x[0]))
    return out[:rows]

def _score(m: ReplayMarket, code: str, sym: str, s: Any, b: int, now: float, last: float, volume: float,
           change: float | None, prev: float | None) -> float | None:
    if code == "TOP_PERC_GAIN":
        return change if change is not None and change > 0 else None
    if code == "TOP_PERC_LOSE":
        return -change if change is not None and change < 0 else None
    if code == "TOP_OPEN_PERC_GAIN":
        r = int(np.searchsorted(s.tick_ts, m.regular_open, side="left"))
        if not prev or r >= b:
            return None
        gap = float(s.tick_px[r]) / prev - 1.0
        return gap if gap > 0 else None
    if code == "MOST_ACTIVE":
        return volume if volume > 0 else None
    if code == "HOT_BY_VOLUME":
        avg = _avg_volume_same_time(m, sym, now)
        return volume / avg if avg else volume
    return None

def _avg_volume_same_time(market: ReplayMarket, sym: str, now: float) -> float | None:
    """Mean volume of the history sessions from 04:00 to the same time of day as ``now``."""
    profile = market.history_day_profile(sym)
    if profile is None:
        return None
    minutes, volume, days = profile
    tod = datetime.fromtimestamp(now, NY)
    cut = tod.hour * 60 + tod.minute
    if days == 0:
        return None
    total = float(volume[minutes < cut].sum())
    return total / days if total > 0 else None


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _ftag(tags: dict[str, str], name: str) -> float | None:
    v = tags.get(name)
    return _f(v) if v is not None else None
