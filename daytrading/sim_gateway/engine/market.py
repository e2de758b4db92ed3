"""The replayed market of one session: contracts, trades on the replay clock, halts.

:class:`ReplayMarket` turns recorded bars into a stream of trades ("ticks") on the
market clock. Bars finer than the recorded data (30-s and 5-s bars, the trade ticks that
fill orders) are derived by this **documented intrabar path**: every recorded bar of
length ``L`` (60 s for minute bars) becomes four trades

===========  ==================  ============================================
offset       price               size (shares)
===========  ==================  ============================================
``0``        open                ``volume // 4``
``L/4``      the nearer of high  ``volume // 4``
             and low to the open
             (high on a tie)
``L/2``      the other extreme   ``volume // 4``
``3L/4``     close               ``volume // 4 + volume % 4`` (the remainder)
===========  ==================  ============================================

so any aggregation of the ticks over whole recorded bars gives back exactly the recorded
open, high, low, close and volume. (This is the usual OHLC path assumption of bar
back-testers, e.g. QuantConnect LEAN's fill model and backtrader's "open, nearer
extreme, other extreme, close".) A minute without a recorded bar has no trades.

With ``path_step_s`` below 15 s (the backtest's ``sim.path_step_s``, 1 s by default) the
path runs in **straight lines** between the same four anchors: ``n = L / path_step_s``
trades (at least 4) at offsets ``k·L/n``; the anchors sit at points ``0``, ``round((n−1)/3)``,
``round(2(n−1)/3)`` and ``n−1`` and carry the recorded prices exactly; the points between
them are interpolated linearly and rounded to the cent (clipped to the bar's range). Each
trade carries ``volume // n`` shares, the close the remainder, so every recorded bar's OHLCV
is still reproduced exactly. A stop inside the bar's range is then crossed near its price.
``path_step_s = 15`` gives the four-point table above. The fill model as a whole is
documented in ``docs/fill-model.md``.

Halts: :meth:`ReplayMarket.set_halted` records halt intervals in market time; trades
strictly inside a halt (after the halt instant, before the resume instant) are not reported by :meth:`ticks_between` / :meth:`last_trade` (and the
market-data service sends no ticks or bars for a halted symbol).

Contract facts are a small documented table: primary exchange per symbol
(:data:`PRIMARY_EXCHANGE`, 2020 listings; default NASDAQ), shortability
(:data:`HARD_TO_BORROW`: recent IPOs / de-SPACs of the data set are not shortable;
everything else — large liquid names — is), con ids stable per symbol (CRC-32 based).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from daytrading.clock import NY, Clock, calendar

__all__ = [
    "HARD_TO_BORROW",
    "PRIMARY_EXCHANGE",
    "ContractInfo",
    "ReplayMarket",
    "SeriesArrays",
    "Tick",
    "con_id_for",
]

#: Primary listing exchange (IB's ``primaryExchange`` names) of the recorded symbols, as
#: listed in 2020 (exchange listings, e.g. nasdaq.com / nyse.com symbol directories).
#: ETFs on NYSE Arca are "ARCA". Unlisted names default to NASDAQ.
PRIMARY_EXCHANGE: dict[str, str] = {
    **dict.fromkeys(
        ["AAPL", "AMD", "AMZN", "ASML", "FB", "GOOG", "HCAC", "INTC", "JD", "LAZR", "LI", "MKSI", "MSFT", "NFLX", "NVDA", "PDD", "QCOM", "QQQ", "RDFN", "SMH", "TSLA"],
        "NASDAQ",
    ),
    **dict.fromkeys(["BA", "BABA", "BAC", "BIG", "BRK-B", "HD", "MCD", "NIO", "T", "TM", "TSM", "TWTR", "WMT", "XOM", "IBM", "AIG"], "NYSE"),
    **dict.fromkeys(["SPY", "IWM", "VIG", "XLE", "XLF", "USD"], "ARCA"),
}

#: Names treated as hard to borrow (not shortable) by default: the SPAC HCAC and the recent
#: de-SPAC / IPO names LAZR (Dec 2020) and LI (IPO Jul 2020), whose borrow was scarce in the
#: recorded window. An assumption for testing "never short", not a record of IB's list.
HARD_TO_BORROW: frozenset[str] = frozenset({"HCAC", "LAZR", "LI"})

_LONG_NAMES: dict[str, str] = {
    "AAPL": "APPLE INC", "AMD": "ADVANCED MICRO DEVICES", "AMZN": "AMAZON.COM INC",
    "ASML": "ASML HOLDING NV-NY REG SHS", "BA": "BOEING CO/THE", "BABA": "ALIBABA GROUP HOLDING-SP ADR",
    "BAC": "BANK OF AMERICA CORP", "BIG": "BIG LOTS INC", "BRK-B": "BERKSHIRE HATHAWAY INC-CL B",
    "FB": "FACEBOOK INC-CLASS A", "GOOG": "ALPHABET INC-CL C", "HCAC": "HENNESSY CAPITAL ACQUISITIO-A",
    "HD": "HOME DEPOT INC", "INTC": "INTEL CORP", "JD": "JD.COM INC-ADR", "LAZR": "LUMINAR TECHNOLOGIES INC",
    "LI": "LI AUTO INC - ADR", "MCD": "MCDONALD'S CORP", "MKSI": "MKS INSTRUMENTS INC",
    "MSFT": "MICROSOFT CORP", "NFLX": "NETFLIX INC", "NIO": "NIO INC - ADR", "NVDA": "NVIDIA CORP",
    "PDD": "PINDUODUO INC-ADR", "QCOM": "QUALCOMM INC", "QQQ": "INVESCO QQQ TRUST SERIES 1",
    "RDFN": "REDFIN CORP", "SMH": "VANECK SEMICONDUCTOR ETF", "T": "AT&T INC",
    "TM": "TOYOTA MOTOR CORP -SPON ADR", "TSLA": "TESLA INC", "TSM": "TAIWAN SEMICONDUCTOR-SP ADR",
    "TWTR": "TWITTER INC", "USD": "PROSHARES ULTRA SEMICONDUCTORS", "VIG": "VANGUARD DIVIDEND APPREC ETF",
    "WMT": "WALMART INC", "XLE": "ENERGY SELECT SECTOR SPDR", "XLF": "FINANCIAL SELECT SECTOR SPDR",
    "XOM": "EXXON MOBIL CORP", "SPY": "SPDR S&P 500 ETF TRUST",
}

#: Tick offsets within a bar with the four-point path, as fractions of the bar length (open,
#: first extreme, second extreme, close); see the module docstring.
TICK_OFFSETS = np.array([0.0, 0.25, 0.5, 0.75])
#: Default market seconds between two trades of the intrabar path: 15 s gives the four-point
#: path of one-minute bars; the backtest passes ``sim.path_step_s`` (1 s by default).
DEFAULT_PATH_STEP_S = 15.0


def con_id_for(symbol: str) -> int:
    """Stable IB-style contract id for ``symbol``: CRC-32 of the name folded into 1e6…2^31."""
    return 1_000_000 + zlib.crc32(symbol.upper().encode()) % 2_000_000_000


@dataclass(frozen=True)
class ContractInfo:
    """Static facts of one stock (US, currency USD, SMART-routed).

    Attributes:
        symbol: data symbol (``BRK-B``; IB's own spelling ``BRK B`` is accepted by lookups).
        con_id: stable per symbol (:func:`con_id_for`).
        primary_exchange: "NASDAQ", "NYSE" or "ARCA".
        shortable: whether a SELL beyond the long position may open a short.
        min_tick: price increment in dollars (0.01).
        long_name: company name.
    """

    symbol: str
    con_id: int
    primary_exchange: str
    shortable: bool
    min_tick: float = 0.01
    long_name: str = ""


@dataclass(frozen=True)
class Tick:
    """One trade: ``ts`` POSIX seconds (market time), ``price`` dollars, ``size`` shares."""

    ts: float
    price: float
    size: int


class SeriesArrays:
    """Numpy arrays of one symbol's session: recorded bars and the derived trade ticks.

    Attributes (all ascending in time):
        bar_start, bar_open, bar_high, bar_low, bar_close, bar_volume: recorded bars
            (POSIX seconds of the bar start; dollars; shares).
        bar_seconds: recorded bar length (60 or 1).
        tick_ts, tick_px, tick_sz: the intrabar path (POSIX seconds, dollars, shares).
    """

    __slots__ = ("bar_close", "bar_high", "bar_low", "bar_open", "bar_seconds", "bar_start",
                 "bar_volume", "tick_px", "tick_sz", "tick_ts")

    def __init__(self, frame: pd.DataFrame, path_step_s: float = DEFAULT_PATH_STEP_S) -> None:
        self.bar_seconds = float(frame.attrs.get("bar_seconds", 60))
        self.bar_start = pd.DatetimeIndex(frame.index).as_unit("ns").asi8.astype(np.float64) / 1e9
        o = frame["open"].to_numpy(np.float64)
        h = frame["high"].to_numpy(np.float64)
        lo = frame["low"].to_numpy(np.float64)
        c = frame["close"].to_numpy(np.float64)
        v = frame["volume"].to_numpy(np.int64)
        self.bar_open, self.bar_high, self.bar_low, self.bar_close, self.bar_volume = o, h, lo, c, v
        high_first = np.abs(o - h) <= np.abs(o - lo)
        first = np.where(high_first, h, lo)
        second = np.where(high_first, lo, h)
        n = path_points(self.bar_seconds, path_step_s)
        anchors = np.stack([o, first, second, c], axis=1)  # (bars, 4)
        seg, frac, at_anchor = _path_shape(n)
        px = anchors[:, seg] + frac[None, :] * (anchors[:, seg + 1] - anchors[:, seg])
        # whole cents inside the bar's range (its cent-rounded range; the raw one when narrower than a cent)
        lo_c, hi_c = np.ceil(lo * 100 - 1e-6) / 100, np.floor(h * 100 + 1e-6) / 100
        narrow = lo_c > hi_c
        lo_c, hi_c = np.where(narrow, lo, lo_c), np.where(narrow, h, hi_c)
        px = np.clip(np.round(px, 2), lo_c[:, None], hi_c[:, None])
        px[:, at_anchor >= 0] = anchors[:, at_anchor[at_anchor >= 0]]  # the four anchors exactly
        self.tick_px = px.ravel()
        offsets = np.arange(n, dtype=np.float64) / n
        self.tick_ts = (self.bar_start[:, None] + offsets[None, :] * self.bar_seconds).ravel()
        q = v // n
        sizes = np.repeat(q[:, None], n, axis=1)
        sizes[:, -1] += v - n * q  # the remainder trades at the close
        self.tick_sz = sizes.ravel()


def path_points(bar_seconds: float, path_step_s: float) -> int:
    """Trades per recorded bar: one every ``path_step_s`` market seconds, at least the four anchors."""
    if not path_step_s > 0:
        raise ValueError(f"path_step_s must be > 0 market seconds, got {path_step_s!r}")
    return max(4, int(round(bar_seconds / path_step_s)))


def _path_shape(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``n`` points: segment (0..2) and fraction along it of each point, and the anchor
    index (0..3) of the points that are anchors (else −1). Anchors sit at points 0,
    round((n−1)/3), round(2(n−1)/3), n−1."""
    idx = np.array([0, round((n - 1) / 3), round(2 * (n - 1) / 3), n - 1])
    k = np.arange(n)
    seg = np.clip(np.searchsorted(idx, k, side="right") - 1, 0, 2)
    span = np.maximum(idx[seg + 1] - idx[seg], 1)
    frac = (k - idx[seg]) / span
    at_anchor = np.full(n, -1)
    at_anchor[idx] = np.arange(4)
    return seg, frac.astype(np.float64), at_anchor


class TradeArrays:
    """Concatenated trades of several :class:`SeriesArrays` with per-trade New York date
    (``day``: days since 1970-01-01 of the local date) and a regular-hours mask (``rth``)."""

    __slots__ = ("_day_start", "day", "px", "rth", "sz", "ts")

    def __init__(self, parts: list[SeriesArrays]) -> None:
        self.ts = np.concatenate([p.tick_ts for p in parts]) if parts else np.empty(0)
        self.px = np.concatenate([p.tick_px for p in parts]) if parts else np.empty(0)
        self.sz = np.concatenate([p.tick_sz for p in parts]).astype(np.int64) if parts else np.empty(0, np.int64)
        local = pd.DatetimeIndex(pd.to_datetime(self.ts, unit="s", utc=True)).tz_convert(NY)
        offsets = np.array([0.0]) if not len(local) else local.tz_localize(None).as_unit("ns").asi8 / 1e9 - self.ts
        self.day = np.floor((self.ts + offsets) / 86400.0).astype(np.int64)
        self.rth = np.zeros(len(self.ts), dtype=bool)
        self._day_start: dict[int, float] = {}
        cal = calendar()
        for d in np.unique(self.day):
            day = date(1970, 1, 1) + timedelta(days=int(d))
            self._day_start[int(d)] = datetime(day.year, day.month, day.day, tzinfo=NY).timestamp()
            if cal.is_session(day):
                sess = cal.session(day)
                o, c = sess.open.timestamp(), sess.close.timestamp()
                sel = self.day == d
                self.rth[sel] = (self.ts[sel] >= o) & (self.ts[sel] < c)

    def day_start_of(self, days: np.ndarray) -> np.ndarray:
        """Midnight New York (POSIX s) of each day number in ``days``."""
        return np.array([self._day_start[int(d)] for d in days], dtype=np.float64)


class GridBars:
    """Gap-free fixed-size bars of one session (see :meth:`ReplayMarket.grid_bars`).

    Attributes: ``t0`` first bucket start (POSIX s), ``seconds``, arrays ``open/high/low/
    close/volume/wap/count`` indexed by bucket number ``(start - t0) // seconds``, ``rth``
    (bucket inside regular hours) and ``encoded`` (lazily formatted wire fields).
    """

    __slots__ = ("close", "count", "encoded", "high", "low", "open", "rth", "seconds", "t0",
                 "volume", "wap")

    def __init__(self, s: SeriesArrays, seconds: int, end: float, rth_open: float, rth_close: float) -> None:
        self.seconds = seconds
        self.t0 = float(np.floor(s.tick_ts[0] / seconds) * seconds)
        n = max(1, int(np.ceil((end - self.t0) / seconds)))
        idx = ((s.tick_ts - self.t0) // seconds).astype(np.int64)
        inside = idx < n
        idx, px, sz = idx[inside], s.tick_px[inside], s.tick_sz[inside]
        count = np.bincount(idx, minlength=n)
        vol = np.bincount(idx, weights=sz, minlength=n)
        pv = np.bincount(idx, weights=px * sz, minlength=n)
        has = count > 0
        first = np.full(n, -1, dtype=np.int64)
        last = np.full(n, -1, dtype=np.int64)
        order = np.arange(len(idx))
        first[idx[::-1]] = order[::-1]
        last[idx] = order
        high = np.full(n, -np.inf)
        low = np.full(n, np.inf)
        np.maximum.at(high, idx, px)
        np.minimum.at(low, idx, px)
        close = np.where(has, px[np.maximum(last, 0)], np.nan)
        # forward-fill the close through quiet buckets
        pos = np.where(has, np.arange(n), 0)
        np.maximum.accumulate(pos, out=pos)
        close = close[pos]
        self.close = close
        self.open = np.where(has, px[np.maximum(first, 0)], close)
        self.high = np.where(has, high, close)
        self.low = np.where(has, low, close)
        self.volume = vol.astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.wap = np.where(vol > 0, pv / np.maximum(vol, 1), close)
        self.count = count.astype(np.int64)
        starts = self.t0 + np.arange(n) * seconds
        self.rth = (starts >= rth_open) & (starts < rth_close)

    def __len__(self) -> int:
        return len(self.close)


def _num(x: float) -> str:
    """Shortest text of a float for the wire (``12.5``, ``12``, never ``nan``)."""
    v = float(x)
    if v != v:  # NaN
        return "0"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


class ReplayMarket:
    """The replayed market of one session on a shared clock.

    Args:
        bars: per symbol, recorded bars of the session (shape of
            :func:`daytrading.marketdata.load_session`: bar START index, tz-aware).
        clock: the replay clock; "now" is ``clock.timestamp()`` (market time).
        session_date: the session replayed (New York date).
        seed: kept for deterministic extensions (e.g. synthetic data); the path is fixed.
        previous_closes: previous session close per symbol (dollars) for the close tick,
            scanners' % change and daily bars.
        synthetic: True when ``bars`` are synthetic (the gateway says so loudly).
        shortable: per-symbol override of the default shortability.
        history: optional minute bars of earlier sessions per symbol (same shape), used
            by multi-day historical requests (e.g. ``2 D`` of 1-min bars, ``1 day`` bars).

    Attributes:
        symbols: sorted symbols; session_date; synthetic; clock; previous_closes; history.
    """

    def __init__(
        self,
        bars: Mapping[str, pd.DataFrame],
        clock: Clock,
        session_date: date,
        *,
        seed: int = 7,
        previous_closes: Mapping[str, float] | None = None,
        synthetic: bool = False,
        shortable: Mapping[str, bool] | None = None,
        history: Mapping[str, pd.DataFrame] | None = None,
        path_step_s: float = DEFAULT_PATH_STEP_S,
    ) -> None:
        path_points(60.0, path_step_s)  # validates
        self.path_step_s = float(path_step_s)
        self.clock = clock
        self.session_date = session_date
        self.seed = seed
        self.synthetic = synthetic
        self.symbols: list[str] = sorted(s.upper() for s in bars)
        self.previous_closes: dict[str, float] = {k.upper(): float(v) for k, v in (previous_closes or {}).items()}
        self.history: dict[str, pd.DataFrame] = {k.upper(): v for k, v in (history or {}).items()}
        self._frames: dict[str, pd.DataFrame] = {s.upper(): f for s, f in bars.items()}
        self._series: dict[str, SeriesArrays] = {}
        self._trades: dict[str, TradeArrays] = {}
        self._grids: dict[tuple[str, int], GridBars] = {}
        self._day_profiles: dict[str, tuple[np.ndarray, np.ndarray, int] | None] = {}
        self._halts: dict[str, list[list[float]]] = {}
        self._shortable = {k.upper(): bool(v) for k, v in (shortable or {}).items()}
        self._contracts: dict[str, ContractInfo] = {}
        self._by_id: dict[int, ContractInfo] = {}
        for sym in self.symbols:
            info = ContractInfo(
                symbol=sym,
                con_id=con_id_for(sym),
                primary_exchange=PRIMARY_EXCHANGE.get(_base(sym), "NASDAQ"),
                shortable=self._shortable.get(sym, _base(sym) not in HARD_TO_BORROW),
                min_tick=0.01,
                long_name=_LONG_NAMES.get(_base(sym), sym),
            )
            self._contracts[sym] = info
            self._by_id[info.con_id] = info
        if calendar().is_session(session_date):
            sess = calendar().session(session_date)
            self.regular_open: float = sess.open.timestamp()
            self.regular_close: float = sess.close.timestamp()
        else:
            base = datetime(session_date.year, session_date.month, session_date.day, tzinfo=NY)
            self.regular_open = (base + timedelta(hours=9, minutes=30)).timestamp()
            self.regular_close = (base + timedelta(hours=16)).timestamp()

    # ------------------------------------------------------------------ building

    @classmethod
    def from_source(
        cls,
        source: str | Path | None,
        session_date: date,
        clock: Clock,
        *,
        symbols: Iterable[str] | None = None,
        seed: int = 7,
        shortable: Mapping[str, bool] | None = None,
        history_days: int = 5,
        synthetic_symbols: Iterable[str] = ("AAPL", "MSFT", "NVDA", "TSLA", "AMD"),
        skipped: list[dict[str, object]] | None = None,
        path_step_s: float = DEFAULT_PATH_STEP_S,
    ) -> ReplayMarket:
        """Build the market from a data folder/file, or a seeded synthetic session when
        ``source`` is None.

        Loads the session (:func:`~daytrading.marketdata.load_session`), the previous
        closes (:func:`~daytrading.marketdata.previous_closes`) and ``history_days``
        earlier sessions of minute bars for multi-day history requests.

        Raises:
            DataError: see :func:`~daytrading.marketdata.load_session`. With ``skipped`` an
                unusable file or bar is left out and described there instead (the backtest).
        """
        from daytrading.marketdata import load_bars, load_session, previous_closes, synthetic_session

        if source is None:
            syms = list(symbols) if symbols is not None else list(synthetic_symbols)
            bars = synthetic_session(session_date, syms, seed)
            first = {s: float(f["open"].iloc[0]) for s, f in bars.items() if len(f)}
            return cls(bars, clock, session_date, seed=seed, previous_closes=first,
                       synthetic=True, shortable=shortable)
        bars = load_session(source, session_date, symbols, skipped=skipped)
        prev = previous_closes(bars, session_date, source=source)
        history: dict[str, pd.DataFrame] = {}
        if history_days > 0:
            cal = calendar()
            first_day = session_date
            for _ in range(history_days):
                first_day = cal.previous_session(first_day)
            history = load_bars(source, list(bars), start=first_day, skipped=skipped,
                                end=session_date - timedelta(days=1))
        return cls(bars, clock, session_date, seed=seed, previous_closes=prev,
                   shortable=shortable, history=history, path_step_s=path_step_s)

    # ------------------------------------------------------------------ contracts

    def contract(self, symbol: str) -> ContractInfo | None:
        """Contract facts of ``symbol`` (case-insensitive; "BRK B" = "BRK-B"); None if unknown."""
        key = symbol.upper().strip().replace(" ", "-").replace(".", "-")
        return self._contracts.get(key)

    def contract_by_id(self, con_id: int) -> ContractInfo | None:
        """Contract facts by IB contract id; None if unknown."""
        return self._by_id.get(int(con_id))

    def set_shortable(self, symbol: str, shortable: bool) -> None:
        """Override shortability of a known symbol (tests, fault scenarios)."""
        info = self.contract(symbol)
        if info is None:
            raise KeyError(f"unknown symbol {symbol!r}")
        new = ContractInfo(info.symbol, info.con_id, info.primary_exchange, shortable, info.min_tick, info.long_name)
        self._contracts[info.symbol] = new
        self._by_id[info.con_id] = new

    # ------------------------------------------------------------------ data

    def now(self) -> float:
        """Market time, POSIX seconds."""
        return self.clock.timestamp()

    def series(self, symbol: str) -> SeriesArrays | None:
        """Numpy arrays of ``symbol``'s session (built once, cached); None if unknown."""
        info = self.contract(symbol)
        if info is None:
            return None
        s = self._series.get(info.symbol)
        if s is None:
            s = SeriesArrays(self._frames[info.symbol], self.path_step_s)
            self._series[info.symbol] = s
        return s

    def frame(self, symbol: str) -> pd.DataFrame | None:
        """The recorded session bars of ``symbol`` (bar START index); None if unknown."""
        info = self.contract(symbol)
        return None if info is None else self._frames[info.symbol]

    def last_trade(self, symbol: str, at: float | None = None) -> Tick | None:
        """Last trade at or before market time ``at`` (POSIX s; default now), skipping
        trades inside halts; None before the first trade or for an unknown symbol."""
        s = self.series(symbol)
        if s is None:
            return None
        t = self.now() if at is None else at
        for h0, h1 in reversed(self._halts.get(self.contract(symbol).symbol, [])):  # type: ignore[union-attr]
            if h0 < t < h1:
                t = h0
        i = int(np.searchsorted(s.tick_ts, t, side="right")) - 1
        if i < 0:
            return None
        return Tick(float(s.tick_ts[i]), float(s.tick_px[i]), int(s.tick_sz[i]))

    def ticks_between(self, symbol: str, t0: float, t1: float) -> list[Tick]:
        """Trades with ``t0 < ts <= t1`` (POSIX s, market time), ascending, from the intrabar
        path (module docstring); trades inside halts are left out."""
        s = self.series(symbol)
        if s is None or t1 <= t0:
            return []
        a = int(np.searchsorted(s.tick_ts, t0, side="right"))
        b = int(np.searchsorted(s.tick_ts, t1, side="right"))
        halts = self._halts.get(self.contract(symbol).symbol, [])  # type: ignore[union-attr]
        out = []
        for i in range(a, b):
            ts = float(s.tick_ts[i])
            if halts and any(h0 < ts < h1 for h0, h1 in halts):
                continue
            out.append(Tick(ts, float(s.tick_px[i]), int(s.tick_sz[i])))
        return out

    def next_trade_time(self, symbol: str, after: float) -> float | None:
        """Market time (POSIX s) of ``symbol``'s first trade strictly after ``after``, or None.

        Trades inside halts count (the fill engine then finds nothing and asks again)."""
        s = self.series(symbol)
        if s is None:
            return None
        i = int(np.searchsorted(s.tick_ts, after, side="right"))
        return float(s.tick_ts[i]) if i < len(s.tick_ts) else None

    def previous_close(self, symbol: str) -> float | None:
        """Previous session's close (dollars), or None when unknown."""
        info = self.contract(symbol)
        return None if info is None else self.previous_closes.get(info.symbol)

    # ------------------------------------------------------------------ halts

    def is_halted(self, symbol: str, at: float | None = None) -> bool:
        """True while ``symbol`` is halted at market time ``at`` (default now)."""
        info = self.contract(symbol)
        if info is None:
            return False
        t = self.now() if at is None else at
        return any(h0 <= t < h1 for h0, h1 in self._halts.get(info.symbol, []))

    def halted_during(self, symbol: str, t0: float, t1: float) -> bool:
        """True when any halt of ``symbol`` overlaps ``[t0, t1)`` (market POSIX s)."""
        info = self.contract(symbol)
        if info is None:
            return False
        return any(h0 < t1 and t0 < h1 for h0, h1 in self._halts.get(info.symbol, []))

    def set_halted(self, symbol: str, halted: bool) -> None:
        """Halt (from now, until resumed) or resume ``symbol``; unknown symbols raise KeyError."""
        info = self.contract(symbol)
        if info is None:
            raise KeyError(f"unknown symbol {symbol!r}")
        now = self.now()
        halts = self._halts.setdefault(info.symbol, [])
        open_halt = bool(halts) and halts[-1][1] == float("inf")
        if halted and not open_halt:
            halts.append([now, float("inf")])
        elif not halted and open_halt:
            halts[-1][1] = now

    # ------------------------------------------------------------------ bars

    def trade_arrays(self, symbol: str) -> TradeArrays | None:
        """All trades of ``symbol`` known to the market: the ``history`` sessions followed by
        this session, as one ascending :class:`TradeArrays` (cached); None if unknown."""
        info = self.contract(symbol)
        if info is None:
            return None
        arr = self._trades.get(info.symbol)
        if arr is None:
            parts = []
            hist = self.history.get(info.symbol)
            if hist is not None and len(hist):
                parts.append(SeriesArrays(hist, self.path_step_s))
            parts.append(self.series(info.symbol))
            arr = TradeArrays(parts)
            self._trades[info.symbol] = arr
        return arr

    def history_day_profile(self, symbol: str) -> tuple[np.ndarray, np.ndarray, int] | None:
        """``(minute_of_day, volume, days)`` of the ``history`` minute bars of ``symbol`` (cached):
        each bar's minute of the day in its index's time zone (``hour * 60 + minute``, New York for
        recorded data), its volume (shares), both in index order, and the number of distinct days;
        None without history. The scanner's HOT_BY_VOLUME reads it at every refresh."""
        info = self.contract(symbol)
        if info is None:
            return None
        if info.symbol not in self._day_profiles:
            hist = self.history.get(info.symbol)
            profile = None
            if hist is not None and len(hist):
                idx = hist.index
                minutes = np.asarray(idx.hour * 60 + idx.minute)
                profile = (minutes, hist["volume"].to_numpy(), len(set(idx.date)))
            self._day_profiles[info.symbol] = profile
        return self._day_profiles[info.symbol]

    def aggregate(
        self, symbol: str, bar_seconds: int, t0: float, t1: float, *, rth: bool = False
    ) -> dict[str, np.ndarray]:
        """Bars of ``bar_seconds`` built from the trades with ``t0 <= ts <= t1``.

        Intraday sizes (< 86400) are aligned to multiples of ``bar_seconds`` in POSIX time
        (New York offsets are whole hours, so sizes dividing an hour align to clock times);
        86400 means one bar per New York session date. Buckets without trades are left out
        (as IB's TRADES history does). ``rth`` keeps only regular-hours trades
        (XNYS open–close of each date). Trades inside halts are left out.

        Returns:
            dict of equal-length arrays: ``start`` (POSIX s; for daily bars the date's
            midnight New York), ``open/high/low/close`` (dollars), ``volume`` (shares),
            ``wap`` (volume-weighted price), ``count`` (trades).
        """
        arr = self.trade_arrays(symbol)
        empty = {k: np.empty(0) for k in ("start", "open", "high", "low", "close", "volume", "wap", "count")}
        if arr is None or t1 < t0:
            return empty
        a = int(np.searchsorted(arr.ts, t0, side="left"))
        b = int(np.searchsorted(arr.ts, t1, side="right"))
        if a >= b:
            return empty
        ts, px, sz = arr.ts[a:b], arr.px[a:b], arr.sz[a:b]
        keep = arr.rth[a:b] if rth else None
        halts = self._halts.get(self.contract(symbol).symbol)  # type: ignore[union-attr]
        if halts:
            hm = np.zeros(len(ts), dtype=bool)
            for h0, h1 in halts:
                hm |= (ts > h0) & (ts < h1)
            keep = ~hm if keep is None else keep & ~hm
        key = arr.day[a:b] if bar_seconds >= 86400 else np.floor(ts / bar_seconds) * bar_seconds
        if keep is not None:
            ts, px, sz, key = ts[keep], px[keep], sz[keep], key[keep]
            if not len(ts):
                return empty
        starts = np.concatenate([[0], np.flatnonzero(np.diff(key) != 0) + 1])
        ends = np.concatenate([starts[1:], [len(ts)]])
        vol = np.add.reduceat(sz, starts)
        pv = np.add.reduceat(px * sz, starts)
        close = px[ends - 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            wap = np.where(vol > 0, pv / np.maximum(vol, 1), close)
        start = arr.day_start_of(key[starts]) if bar_seconds >= 86400 else key[starts]
        return {
            "start": start,
            "open": px[starts],
            "high": np.maximum.reduceat(px, starts),
            "low": np.minimum.reduceat(px, starts),
            "close": close,
            "volume": vol,
            "wap": wap,
            "count": ends - starts,
        }

    def grid_bars(self, symbol: str, seconds: int = 5) -> GridBars | None:
        """Bars of ``seconds`` on a gap-free grid over this session's trades (cached).

        The grid runs from the bucket of the session's first trade to 20:00 New York; a
        bucket without trades is a flat bar at the previous close with volume 0 and count 0
        (how IB's 5-second real-time bars report a quiet interval). Halts are not applied
        here (the streaming service skips halted buckets). None for an unknown symbol or a
        symbol without trades.
        """
        info = self.contract(symbol)
        if info is None:
            return None
        key = (info.symbol, seconds)
        grid = self._grids.get(key)
        if grid is None:
            s = self.series(info.symbol)
            if s is None or not len(s.tick_ts):
                return None
            end = datetime(self.session_date.year, self.session_date.month, self.session_date.day,
                           20, 0, tzinfo=NY).timestamp()
            grid = GridBars(s, seconds, end, self.regular_open, self.regular_close)
            self._grids[key] = grid
        return grid

    def __repr__(self) -> str:
        kind = "SYNTHETIC" if self.synthetic else "recorded"
        return f"ReplayMarket({kind}, {self.session_date}, {len(self.symbols)} symbols)"


def _base(symbol: str) -> str:
    """Base name of a replicated benchmark symbol (``AAPL_R2`` → ``AAPL``)."""
    return symbol.split("_", 1)[0]
