"""Market-data services of the sim-gateway: ticks, history, real-time bars, scanner, pacing.

:class:`MarketDataService` answers these TWS API requests (ids as in ib_async's
``client.py``; reply layouts as ib_async's ``decoder.py`` at server version 178, see
``docs/tws-protocol.md`` §6.8–6.10, §7.3–7.5):

* ``reqMarketDataType`` (59) — remembered per connection. With type 3/4 (delayed) the
  ticks use IB's delayed tick ids (bid 66, ask 67, last 68, bid/ask/last size 69/70/71,
  high 72, low 73, volume 74, close 75, open 76, last timestamp 88, halted 90), preceded by
  the warning 10167 and ``marketDataType`` (58). Values are the replay's current values
  (the sim does not add IB's 15-minute delay). Type 1 gets live ids (1, 2, 4, 0, 3, 5, 6,
  7, 8, 9, 14, 45, 49).
* ``reqMktData`` (1) / ``cancelMktData`` (2) — an initial picture (bid, ask, last with
  sizes, high, low, volume, previous close, open, last timestamp), then updates as market
  time advances; ``snapshot`` ends with ``tickSnapshotEnd`` (57). Quotes are synthetic:
  bid = last − 1 tick, ask = last + 1 tick, 100 shares each (the recorded data has trades
  only). Day high/low/volume count every replayed trade since 04:00; open is the first
  regular-hours trade.
* ``reqHistoricalData`` (20) / ``cancelHistoricalData`` (25) — TRADES (also MIDPOINT, BID,
  ASK, ADJUSTED_LAST from the same trade path) bars of 1–30 secs, 1–30 mins, 1–8 hours and
  1 day, built from the replayed trades (intrabar path of :mod:`.market`) up to
  ``min(endDateTime, market now)`` — never a bar after market now; the last bar may still
  be forming. ``keepUpToDate`` streams ``historicalDataUpdate`` (90) for the forming bar.
* ``reqRealTimeBars`` (50) / ``cancelRealTimeBars`` (51) — one 5-second bar per 5 s of
  market time (quiet intervals: flat bar, volume 0), derived from the intrabar path.
* ``reqScannerSubscription`` (22) / ``cancelScannerSubscription`` (23) /
  ``reqScannerParameters`` (24) — TOP_PERC_GAIN, TOP_PERC_LOSE, MOST_ACTIVE,
  HOT_BY_VOLUME, TOP_OPEN_PERC_GAIN ranked on the replayed data up to market now, with
  ``abovePrice``/``belowPrice``/``aboveVolume``/``numberOfRows`` and the filter options
  ``priceAbove``, ``priceBelow``, ``volumeAbove``, ``changePercAbove``, ``changePercBelow``.
  Resent every 30 s of market time (at most once per wall second) while subscribed.
* Historical pacing for bars of 30 secs or less — :class:`HistoricalPacing`, error 162.
* Halts (:meth:`ReplayMarket.set_halted`): no trade ticks, no bars and no history
  updates while halted; ``halted`` generic tick 49/90 = 1 on halt, 0 on resume.

Time: market time is the gateway's clock (America/New_York); pacing uses wall time
(:func:`daytrading.clock.monotonic`), as IB enforces it in wall time.

What is computed on the replay alone (request parameters, history pacing, the scanner's ranking)
is in :mod:`.engine.marketdata`; this module keeps the subscriptions of each connection and
turns the replay into messages. It is given the market, the clock, the latency settings and
the event log, never the gateway object.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from daytrading.clock import NY, monotonic
from daytrading.sim_gateway.engine.alarm import Alarm
from daytrading.sim_gateway.engine.market import ContractInfo, ReplayMarket, _num
from daytrading.sim_gateway.engine.marketdata import (
    SCAN_CODES,
    SCANNER_MAX_ROWS,
    HistoricalPacing,
    duration_start,
    parse_bar_size,
    parse_duration,
    parse_end_datetime,
    scan,
)
from daytrading.sim_gateway.protocol.messages import RealTimeBarFrames
from daytrading.sim_gateway.protocol.requests import (
    Cancel,
    NoArgs,
    ReqHeadTimeStamp,
    ReqHistoricalData,
    ReqMarketDataType,
    ReqMktData,
    ReqRealTimeBars,
    ReqScannerSubscription,
    RequestContract,
)
from daytrading.sim_gateway.protocol.versions import MAX_SERVER_VERSION, bar_volume, tick_size
from daytrading.sim_gateway.session import MAX_BUFFER

if TYPE_CHECKING:  # pragma: no cover
    from daytrading.sim_gateway.session import Connection

log = logging.getLogger(__name__)

__all__ = ["HistoricalPacing", "MarketDataService", "parse_bar_size", "parse_duration", "parse_end_datetime"]

# message ids (server -> client)
TICK_PRICE, TICK_SIZE, TICK_GENERIC, TICK_STRING = 1, 2, 45, 46
HISTORICAL_DATA, HISTORICAL_DATA_UPDATE, REAL_TIME_BAR = 17, 90, 50
SCANNER_DATA, SCANNER_PARAMETERS, TICK_SNAPSHOT_END, MARKET_DATA_TYPE = 20, 19, 57, 58

#: live tick id -> delayed tick id (IB "Available Tick Types": delayed ids 66–76, 88, 90).
DELAYED = {1: 66, 2: 67, 4: 68, 0: 69, 3: 70, 5: 71, 6: 72, 7: 73, 8: 74, 9: 75, 14: 76, 45: 88, 49: 90}
BID, ASK, LAST, BID_SIZE, ASK_SIZE, LAST_SIZE = 1, 2, 4, 0, 3, 5
HIGH, LOW, VOLUME, CLOSE, OPEN, LAST_TS, HALTED = 6, 7, 8, 9, 14, 45, 49
QUOTE_SIZE = 100

SCANNER_REFRESH_MARKET_S = 30.0
UNSET_INT = 2147483647

PACING_TEXT = "Historical Market Data Service error message:Historical data request pacing violation"
NO_DATA_TEXT = "Historical Market Data Service error message:HMDS query returned no data: {sym}@SMART {what}"


# --------------------------------------------------------------------------- subscriptions


@dataclass
class _MktSub:
    conn: Any
    req_id: int
    info: ContractInfo
    delayed: bool
    last_ts: float
    last_px: float | None = None
    high: float = -math.inf
    low: float = math.inf
    volume: int = 0
    open_px: float | None = None
    halted: bool = False


@dataclass
class _HistSub:
    conn: Any
    req_id: int
    info: ContractInfo
    bar_seconds: int
    rth: bool
    fmt: int
    last_ts: float
    bar: list[float] | None = None  # [start, open, high, low, close, volume, pv, count]


@dataclass
class _RtSub:
    conn: Any
    req_id: int
    info: ContractInfo
    rth: bool
    next_i: int  # next bucket index of the grid to send
    header: bytes = b""  # RealTimeBarFrames.header(req_id)
    frames: RealTimeBarFrames | None = None  # the symbol's framed bars (None until it has trades)


@dataclass
class _ScanSub:
    conn: Any
    req_id: int
    code: str
    rows: int
    above_price: float | None
    below_price: float | None
    above_volume: float | None
    tags: dict[str, str] = field(default_factory=dict)
    next_market: float = 0.0
    last_wall: float = -1e18


# --------------------------------------------------------------------------- service


class MarketDataService:
    """Market-data handlers of one :class:`SimGateway` (see the module docstring).

    Args:
        market: the replayed market; clock: the gateway's clock (``timestamp``, ``speed``,
            optionally ``monotonic``); latency: the injected latency settings (``market_data_ms``,
            :class:`~.engine.faults.Latency`); log: the gateway's event log ``log(event, **fields)``.

    Lifecycle (driven by the gateway): ``install(register)`` registers the request handlers;
    ``run()`` is awaited as a background task and streams updates; the gateway calls
    ``on_connection_closed(conn)`` when a client goes away and ``on_data_lost()`` when an
    outage with data loss (1101) fires — every subscription is then dropped, as IB does.

    Attributes:
        pacing: the :class:`HistoricalPacing` in force (tests may replace it).
        max_step_wall: wall seconds before retrying after a failed streaming step.
        stats: counters (``rt_bars``, ``ticks``, ``hist_updates``, ``scans``) for benchmarks.
    """

    def __init__(self, market: ReplayMarket, clock: Any, *, latency: Any = None,
                 log: Callable[..., None] | None = None) -> None:
        self.market = market
        self.clock = clock
        self.latency = latency
        self.log_event = log
        self.pacing = HistoricalPacing(now=self._monotonic)
        self.max_step_wall = 0.1
        self.stats = {"rt_bars": 0, "ticks": 0, "hist_updates": 0, "scans": 0}
        self._data_type: dict[int, int] = {}
        self._mkt: dict[tuple[int, int], _MktSub] = {}
        self._hist: dict[tuple[int, int], _HistSub] = {}
        self._rt: dict[tuple[int, int], _RtSub] = {}
        self._scan: dict[tuple[int, int], _ScanSub] = {}
        self._rt_frames: dict[str, RealTimeBarFrames] = {}
        self._wake = Alarm()
        #: market seconds between a 5-s bar's end and its sending (one sample per sent bar
        #: batch; benchmarks read it)
        self.rt_send_lag: deque[float] = deque(maxlen=200_000)

    def _speed(self) -> float:
        """Market seconds per wall second of the clock."""
        return max(float(getattr(self.clock, "speed", 1.0)), 1e-9)

    def _monotonic(self) -> float:
        """Wall seconds as the gateway's clock knows them (loop time on the backtest's clock)."""
        mono = getattr(self.clock, "monotonic", None)
        return float(mono()) if callable(mono) else monotonic()

    def _now(self) -> float:
        """Market time as the data streams see it: now minus the injected ``market_data_ms``."""
        lag = self.latency.seconds("market_data_ms") if self.latency is not None else 0.0
        return self.clock.timestamp() - lag

    def _log(self, event: str, **fields: Any) -> None:
        logger = self.log_event
        if callable(logger):
            try:
                logger(event, **fields)
                return
            except Exception:  # noqa: BLE001 - logging must never break data service
                log.debug("gateway log failed", exc_info=True)
        log.info("%s %s", event, fields)

    # ------------------------------------------------------------------ lifecycle

    def install(self, reg: Callable[[int, Callable[..., Any]], None]) -> None:
        """Register the request handlers with ``reg(msg_id, handler)`` (the gateway's ``register``)."""
        reg(1, self.req_mkt_data)
        reg(2, self.cancel_mkt_data)
        reg(20, self.req_historical_data)
        reg(25, self.cancel_historical_data)
        reg(22, self.req_scanner_subscription)
        reg(23, self.cancel_scanner_subscription)
        reg(24, self.req_scanner_parameters)
        reg(50, self.req_real_time_bars)
        reg(51, self.cancel_real_time_bars)
        reg(59, self.req_market_data_type)
        reg(87, self.req_head_timestamp)

    def on_connection_closed(self, conn: Connection) -> None:
        """Drop every subscription of ``conn``."""
        cid = id(conn)
        for book in (self._mkt, self._hist, self._rt, self._scan):
            for key in [k for k in book if k[0] == cid]:
                del book[key]
        self._data_type.pop(cid, None)

    def on_data_lost(self) -> None:
        """Outage with data loss (1101): drop all market-data subscriptions of all clients."""
        n = len(self._mkt) + len(self._hist) + len(self._rt) + len(self._scan)
        for book in (self._mkt, self._hist, self._rt, self._scan):
            book.clear()
        self._log("market_data_subscriptions_dropped", count=n)

    def subscription_counts(self) -> dict[str, int]:
        """Open subscriptions by kind (for reports and tests)."""
        return {"mkt": len(self._mkt), "hist": len(self._hist), "rt": len(self._rt), "scan": len(self._scan)}

    def wake(self) -> None:
        """Re-plan the streaming loop now (a subscription, halt or latency changed)."""
        self._wake.set()

    def next_due(self, now: float) -> float | None:
        """Market time (as the streams see it) of the next thing to send: the next 5-s bar
        boundary (real-time bars, keepUpToDate history), the next trade of a symbol with a
        tick subscription, the next scanner refresh; None when nothing is subscribed."""
        due: float | None = None

        def take(t: float | None) -> None:
            nonlocal due
            if t is not None and t > now and (due is None or t < due):
                due = t

        if self._rt or self._hist:
            take((math.floor(now / 5.0) + 1) * 5.0)
        for sub in self._mkt.values():
            take(self.market.next_trade_time(sub.info.symbol, max(now, sub.last_ts)))
        if self._scan:
            speed = self._speed()
            mono = self._monotonic()
            for sc in self._scan.values():
                wall_ok = now + max(0.0, sc.last_wall + 1.0 - mono) * speed + 1e-3
                take(max(sc.next_market, wall_ok))
        return due

    async def run(self) -> None:
        """Stream updates until cancelled. Sleeps until the next due update
        (:meth:`next_due`) or a new subscription, never on a fixed period."""
        while True:
            try:
                self.step()
                now = self._now()
                due = self.next_due(now)
            except Exception:  # noqa: BLE001 - never crash the running gateway
                log.exception("market data step failed")
                now, due = self._now(), self._now() + self.max_step_wall
            self._wake.clear()
            timeout = None
            if due is not None:
                timeout = max(0.0, (due - self._now()) / self._speed()) + 1e-6
            await self._wake.sleep(timeout)

    def step(self) -> None:
        """Send everything due up to market now (one streaming pass)."""
        now = self._now()
        if self._rt:
            self._step_rt(now)
        if self._mkt:
            self._step_mkt(now)
        if self._hist:
            self._step_hist(now)
        if self._scan:
            self._step_scan(now)

    @staticmethod
    def _alive(conn: Any) -> bool:
        return not getattr(conn, "closed", False)

    # ------------------------------------------------------------------ market data type

    def req_market_data_type(self, conn: Connection, req: ReqMarketDataType) -> None:
        """59: ``59|1|type`` — remember the type for this connection (no reply; a type other than
        1–4 was answered with 321 by the decoder)."""
        self._data_type[id(conn)] = req.market_data_type
        conn.market_data_type = req.market_data_type

    # ------------------------------------------------------------------ reqMktData

    def _resolve(self, conn: Connection, req_id: int, contract: RequestContract) -> ContractInfo | None:
        """The replay's contract by ``conId``, else by symbol (stocks only); None after error 200."""
        info = self.market.contract_by_id(contract.con_id) if contract.con_id else None
        if info is None and contract.symbol and contract.sec_type in ("STK", ""):
            info = self.market.contract(contract.symbol)
        if info is None:
            conn.send_error(req_id, 200, "No security definition has been found for the request")
        return info

    def req_mkt_data(self, conn: Connection, req: ReqMktData) -> None:
        """1: reqMktData — initial picture, then streaming updates (or a snapshot + 57)."""
        req_id = req.req_id
        info = self._resolve(conn, req_id, req.contract)
        if info is None:
            return
        snapshot = req.snapshot
        data_type = self._data_type.get(id(conn), getattr(conn, "market_data_type", 1))
        delayed = data_type in (3, 4)
        if delayed:
            conn.send_error(req_id, 10167, "Requested market data is not subscribed. Displaying delayed market data.")
            conn.send(MARKET_DATA_TYPE, 1, req_id, data_type)
        now = self._now()
        sub = _MktSub(conn, req_id, info, delayed, last_ts=now)
        self._picture(sub, now)
        if snapshot:
            conn.send(TICK_SNAPSHOT_END, 1, req_id)
            return
        self._mkt[(id(conn), req_id)] = sub
        self._wake.set()

    def cancel_mkt_data(self, conn: Connection, req: Cancel) -> None:
        """2: cancelMktData — stop (no reply)."""
        self._mkt.pop((id(conn), req.req_id), None)

    def _tid(self, sub: _MktSub, live: int) -> int:
        return DELAYED[live] if sub.delayed else live

    def _picture(self, sub: _MktSub, now: float) -> None:
        """Initial ticks: close, then the state of the day so far."""
        m, conn, rid = self.market, sub.conn, sub.req_id
        s = m.series(sub.info.symbol)
        prev = m.previous_close(sub.info.symbol)
        if prev is not None:
            conn.send(TICK_PRICE, 6, rid, self._tid(sub, CLOSE), _num(prev), 0, 0)
        if s is not None:
            b = int(np.searchsorted(s.tick_ts, now, side="right"))
            if b > 0:
                sub.high = float(s.tick_px[:b].max())
                sub.low = float(s.tick_px[:b].min())
                sub.volume = int(s.tick_sz[:b].sum())
                r = int(np.searchsorted(s.tick_ts, m.regular_open, side="left"))
                if r < b:
                    sub.open_px = float(s.tick_px[r])
        sub.halted = m.is_halted(sub.info.symbol, now)
        last = m.last_trade(sub.info.symbol, now)
        if last is not None:
            self._send_trade(sub, last.price, last.size, last.ts, day_changed=True)
        if sub.open_px is not None:
            conn.send(TICK_PRICE, 6, rid, self._tid(sub, OPEN), _num(sub.open_px), 0, 0)
        if sub.halted:
            conn.send(TICK_GENERIC, 6, rid, self._tid(sub, HALTED), 1)
        sub.last_ts = now

    def _send_trade(self, sub: _MktSub, price: float, size: int, ts: float, *, day_changed: bool) -> None:
        conn, rid, tid = sub.conn, sub.req_id, self._tid
        p = _num(price)
        ver = getattr(conn, "server_version", MAX_SERVER_VERSION)
        if price != sub.last_px:
            bid, ask = _num(round(price - 0.01, 4)), _num(round(price + 0.01, 4))
            conn.send(TICK_PRICE, 6, rid, tid(sub, BID), bid, tick_size(ver, QUOTE_SIZE), 0)
            conn.send(TICK_PRICE, 6, rid, tid(sub, ASK), ask, tick_size(ver, QUOTE_SIZE), 0)
        conn.send(TICK_PRICE, 6, rid, tid(sub, LAST), p, tick_size(ver, size), 0)
        conn.send(TICK_SIZE, 6, rid, tid(sub, LAST_SIZE), tick_size(ver, size))
        if day_changed:
            conn.send(TICK_PRICE, 6, rid, tid(sub, HIGH), _num(sub.high), 0, 0)
            conn.send(TICK_PRICE, 6, rid, tid(sub, LOW), _num(sub.low), 0, 0)
        conn.send(TICK_SIZE, 6, rid, tid(sub, VOLUME), tick_size(ver, sub.volume))
        conn.send(TICK_STRING, 6, rid, tid(sub, LAST_TS), str(int(ts)))
        sub.last_px = price
        self.stats["ticks"] += 1

    def _step_mkt(self, now: float) -> None:
        m = self.market
        for key, sub in list(self._mkt.items()):
            if not self._alive(sub.conn):
                self._mkt.pop(key, None)
                continue
            halted = m.is_halted(sub.info.symbol, now)
            if halted != sub.halted:
                sub.halted = halted
                sub.conn.send(TICK_GENERIC, 6, sub.req_id, self._tid(sub, HALTED), 1 if halted else 0)
            if now <= sub.last_ts:
                continue
            ticks = m.ticks_between(sub.info.symbol, sub.last_ts, now)
            sub.last_ts = now
            if not ticks:
                continue
            changed = False
            for t in ticks:
                sub.volume += t.size
                if t.price > sub.high:
                    sub.high, changed = t.price, True
                if t.price < sub.low:
                    sub.low, changed = t.price, True
                if sub.open_px is None and t.ts >= m.regular_open:
                    sub.open_px = t.price
                    sub.conn.send(TICK_PRICE, 6, sub.req_id, self._tid(sub, OPEN), _num(t.price), 0, 0)
            last = ticks[-1]
            self._send_trade(sub, last.price, last.size, last.ts, day_changed=changed)

    # ------------------------------------------------------------------ history

    def req_historical_data(self, conn: Connection, req: ReqHistoricalData) -> None:
        """20: reqHistoricalData — all bars in one 17, then 90 updates with keepUpToDate."""
        req_id = req.req_id
        info = self._resolve(conn, req_id, req.contract)
        if info is None:
            return
        end_text, bar_text, dur_text = req.end, req.bar_size, req.duration
        rth, what, fmt, keep = req.use_rth, req.what_to_show or "TRADES", req.format_date, req.keep_up_to_date
        try:
            bar_seconds = parse_bar_size(bar_text)
            n, unit = parse_duration(dur_text)
            end = parse_end_datetime(end_text)
        except ValueError as exc:
            conn.send_error(req_id, 321, f"Error validating request:-'bP' : cause - {exc}")
            return
        if what not in ("TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK", "ADJUSTED_LAST"):
            conn.send_error(req_id, 321, f"Error validating request:-'bP' : cause - whatToShow {what!r} is not supported")
            return
        if keep and end is not None:
            conn.send_error(req_id, 321, "Error validating request:-'bP' : cause - End date not supported with live updates")
            return
        if bar_seconds <= 30:
            ident = (info.con_id, end_text, bar_text, dur_text, what, rth)
            broken = self.pacing.check(ident, (info.con_id, "SMART", what), weight=2 if what == "BID_ASK" else 1)
            if broken:
                self._log("history_pacing_violation", client_id=getattr(conn, "client_id", None),
                          req_id=req_id, symbol=info.symbol, rule=broken)
                conn.send_error(req_id, 162, PACING_TEXT)
                return
        now = self._now()
        t1 = now if end is None else min(end, now)
        t0 = duration_start(t1, n, unit)
        # an explicit end is exclusive (the bar starting at endDateTime is not part of the answer)
        t_last = t1 - 1e-6 if end is not None and end <= now else t1
        bars = self.market.aggregate(info.symbol, bar_seconds, t0, t_last, rth=rth)
        if bar_seconds < 86400 and len(bars["start"]):
            sel = bars["start"] + bar_seconds > t0  # drop a bucket that starts before t0 only partly
            bars = {k: v[sel] for k, v in bars.items()}
        if not len(bars["start"]):
            conn.send_error(req_id, 162, NO_DATA_TEXT.format(sym=info.symbol, what=what.title()))
            return
        no_volume = what not in ("TRADES", "ADJUSTED_LAST")
        ver = getattr(conn, "server_version", MAX_SERVER_VERSION)
        out: list[Any] = [HISTORICAL_DATA, req_id, _hdr(t0), _hdr(t1), len(bars["start"])]
        daily = bar_seconds >= 86400
        for k in range(len(bars["start"])):
            out += [
                _bar_date(float(bars["start"][k]), fmt, daily),
                _num(bars["open"][k]),
                _num(bars["high"][k]),
                _num(bars["low"][k]),
                _num(bars["close"][k]),
                "-1" if no_volume else str(bar_volume(ver, bars["volume"][k])),
                "-1" if no_volume else _num(round(float(bars["wap"][k]), 6)),
                "-1" if no_volume else str(int(bars["count"][k])),
            ]
        conn.send(*out)
        if keep:
            k = len(bars["start"]) - 1
            b = [float(bars["start"][k]), float(bars["open"][k]), float(bars["high"][k]), float(bars["low"][k]),
                 float(bars["close"][k]), float(bars["volume"][k]), float(bars["wap"][k] * bars["volume"][k]),
                 float(bars["count"][k])]
            self._hist[(id(conn), req_id)] = _HistSub(conn, req_id, info, bar_seconds, rth, fmt, last_ts=t1, bar=b)
            self._wake.set()

    def cancel_historical_data(self, conn: Connection, req: Cancel) -> None:
        """25: cancelHistoricalData — stop keepUpToDate updates (no reply)."""
        self._hist.pop((id(conn), req.req_id), None)

    def _step_hist(self, now: float) -> None:
        m = self.market
        for key, sub in list(self._hist.items()):
            if not self._alive(sub.conn):
                self._hist.pop(key, None)
                continue
            if now <= sub.last_ts:
                continue
            ticks = m.ticks_between(sub.info.symbol, sub.last_ts, now)
            sub.last_ts = now
            changed = False
            for t in ticks:
                if sub.rth and not (m.regular_open <= t.ts < m.regular_close):
                    continue
                if sub.bar_seconds < 86400:
                    start = math.floor(t.ts / sub.bar_seconds) * sub.bar_seconds
                else:
                    d = datetime.fromtimestamp(t.ts, NY)
                    start = datetime(d.year, d.month, d.day, tzinfo=NY).timestamp()
                b = sub.bar
                if b is None or start > b[0]:
                    if b is not None and changed:
                        self._send_update(sub)
                    b = [start, t.price, t.price, t.price, t.price, 0.0, 0.0, 0.0]
                    sub.bar = b
                b[2] = max(b[2], t.price)
                b[3] = min(b[3], t.price)
                b[4] = t.price
                b[5] += t.size
                b[6] += t.price * t.size
                b[7] += 1
                changed = True
            if changed:
                self._send_update(sub)

    def _send_update(self, sub: _HistSub) -> None:
        b = sub.bar
        assert b is not None
        wap = b[6] / b[5] if b[5] > 0 else b[4]
        sub.conn.send(
            HISTORICAL_DATA_UPDATE, sub.req_id, int(b[7]), _bar_date(b[0], sub.fmt, sub.bar_seconds >= 86400),
            _num(b[1]), _num(b[4]), _num(b[2]), _num(b[3]), _num(round(wap, 6)),
            str(bar_volume(getattr(sub.conn, "server_version", MAX_SERVER_VERSION), b[5])),
        )
        self.stats["hist_updates"] += 1

    def req_head_timestamp(self, conn: Connection, req: ReqHeadTimeStamp) -> None:
        """87: reqHeadTimeStamp — the first trade the replay knows for the contract."""
        req_id = req.req_id
        info = self._resolve(conn, req_id, req.contract)
        if info is None:
            return
        arr = self.market.trade_arrays(info.symbol)
        if arr is None or not len(arr.ts):
            conn.send_error(req_id, 162, NO_DATA_TEXT.format(sym=info.symbol, what="Trades"))
            return
        conn.send(88, req_id, _bar_date(float(arr.ts[0]), req.format_date, False))

    # ------------------------------------------------------------------ real-time bars

    def req_real_time_bars(self, conn: Connection, req: ReqRealTimeBars) -> None:
        """50: reqRealTimeBars — 5-s bars from the next 5-s boundary on; barSize ≠ 5 → 420."""
        req_id = req.req_id
        info = self._resolve(conn, req_id, req.contract)
        if info is None:
            return
        if req.bar_size not in ("5", "5.0"):
            conn.send_error(req_id, 420, f"Invalid Real-time Query:Invalid bar size {req.bar_size}; "
                                         "only 5 seconds is supported")
            return
        rth = req.use_rth
        bars = self._frames_of(info.symbol)  # its cost here, not while streaming
        now = self._now()
        next_i = 0 if bars is None else max(0, int(math.ceil((now - bars.t0) / 5.0)))
        self._rt[(id(conn), req_id)] = _RtSub(conn, req_id, info, rth, next_i, RealTimeBarFrames.header(req_id),
                                              bars)
        self._wake.set()

    def cancel_real_time_bars(self, conn: Connection, req: Cancel) -> None:
        """51: cancelRealTimeBars — stop (no reply)."""
        self._rt.pop((id(conn), req.req_id), None)

    def _step_rt(self, now: float) -> None:
        """Send every subscription its 5-s bars that ended by ``now``: one socket write per
        connection carrying all of its symbols' bars (the client reads them in one go)."""
        halts = self.market._halts  # noqa: SLF001 - same package
        lags = self.rt_send_lag
        batches: dict[int, list[Any]] = {}  # id(conn) -> [conn, frame parts, bars]
        for key, sub in list(self._rt.items()):
            conn = sub.conn
            if getattr(conn, "closed", False):
                self._rt.pop(key, None)
                continue
            bars = sub.frames
            if bars is None:
                bars = sub.frames = self._frames_of(sub.info.symbol)
                if bars is None:
                    continue
            last_i = bars.due(now)
            i = sub.next_i
            if i >= last_i:
                continue
            batch = batches.get(id(conn))
            if batch is None:
                batch = batches[id(conn)] = [conn, [], 0]
            lags.append(now - (bars.t0 + 5.0 * (i + 1)))
            sym = sub.info.symbol
            if not sub.rth and not halts.get(sym):
                bars.frames_into(batch[1], sub.header, i, last_i)
                batch[2] += last_i - i
            else:
                grid = bars.grid
                for k in range(i, last_i):
                    t = grid.t0 + 5.0 * k
                    if (not sub.rth or grid.rth[k]) and not (halts.get(sym) and self.market.halted_during(sym, t, t + 5.0)):
                        bars.frames_into(batch[1], sub.header, k, k + 1)
                        batch[2] += 1
            sub.next_i = last_i
        for conn, parts, n in batches.values():
            if n:
                _write_frames(conn, parts)
                self.stats["rt_bars"] += n

    def _frames_of(self, symbol: str) -> RealTimeBarFrames | None:
        """The framed 5-s bars of ``symbol`` (made once per symbol); None without trades."""
        bars = self._rt_frames.get(symbol)
        if bars is None:
            grid = self.market.grid_bars(symbol, 5)
            if grid is None:
                return None
            bars = self._rt_frames[symbol] = RealTimeBarFrames(grid)
        return bars

    # ------------------------------------------------------------------ scanner

    def req_scanner_parameters(self, conn: Connection, req: NoArgs) -> None:  # noqa: ARG002 - no content
        """24: reqScannerParameters — a small XML document listing the supported scans."""
        codes = "".join(
            f"<ScanType><displayName>{c}</displayName><scanCode>{c}</scanCode>"
            f"<instruments>STK</instruments><locationFilter>STK.US.MAJOR</locationFilter></ScanType>"
            for c in SCAN_CODES
        )
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?><ScanParameterResponse>'
            "<InstrumentList><Instrument><name>US Stocks</name><type>STK</type></Instrument></InstrumentList>"
            "<LocationTree><Location><displayName>US Major</displayName><locationCode>STK.US.MAJOR</locationCode>"
            "</Location></LocationTree>"
            f"<ScanTypeList>{codes}</ScanTypeList>"
            "<FilterList><SimpleFilter><id>priceAbove</id></SimpleFilter><SimpleFilter><id>priceBelow</id>"
            "</SimpleFilter><SimpleFilter><id>volumeAbove</id></SimpleFilter><SimpleFilter><id>changePercAbove</id>"
            "</SimpleFilter><SimpleFilter><id>changePercBelow</id></SimpleFilter></FilterList>"
            "</ScanParameterResponse>"
        )
        conn.send(SCANNER_PARAMETERS, 1, xml)

    def req_scanner_subscription(self, conn: Connection, req: ReqScannerSubscription) -> None:
        """22: reqScannerSubscription — full ranking now (20), resent while subscribed."""
        req_id, code, rows = req.req_id, req.scan_code, req.rows
        if code not in SCAN_CODES:
            conn.send_error(req_id, 162, f"Historical Market Data Service error message:Scanner type {code!r} is not supported")
            return
        if rows <= 0 or rows == UNSET_INT:
            rows = SCANNER_MAX_ROWS
        sub = _ScanSub(conn, req_id, code, min(rows, SCANNER_MAX_ROWS), req.above_price, req.below_price,
                       req.above_volume, tags=dict(req.filters))
        key = (id(conn), req_id)
        self._send_scan(sub, self._now())
        self._scan[key] = sub

    def cancel_scanner_subscription(self, conn: Connection, req: Cancel) -> None:
        """23: cancelScannerSubscription — stop (no reply)."""
        self._scan.pop((id(conn), req.req_id), None)

    def _step_scan(self, now: float) -> None:
        wall = self._monotonic()
        for key, sub in list(self._scan.items()):
            if not self._alive(sub.conn):
                self._scan.pop(key, None)
                continue
            if now >= sub.next_market and wall - sub.last_wall >= 1.0:
                self._send_scan(sub, now)

    def scan(self, code: str, now: float, *, rows: int = SCANNER_MAX_ROWS, above_price: float | None = None,
             below_price: float | None = None, above_volume: float | None = None,
             tags: dict[str, str] | None = None) -> list[tuple[str, float]]:
        """Ranking of ``code`` at market time ``now`` (:func:`.engine.marketdata.scan`)."""
        return scan(self.market, code, now, rows=rows, above_price=above_price, below_price=below_price,
                    above_volume=above_volume, tags=tags)

    def _send_scan(self, sub: _ScanSub, now: float) -> None:
        ranking = self.scan(sub.code, now, rows=sub.rows, above_price=sub.above_price,
                            below_price=sub.below_price, above_volume=sub.above_volume, tags=sub.tags)
        out: list[Any] = [SCANNER_DATA, 3, sub.req_id, len(ranking)]
        for rank, (sym, _score) in enumerate(ranking):
            info = self.market.contract(sym)
            assert info is not None
            out += [rank, info.con_id, info.symbol.replace("-", " "), "STK", "", 0.0, "", "SMART", "USD",
                    info.symbol.replace("-", " "), info.primary_exchange, info.primary_exchange, "", "", "", ""]
        sub.conn.send(*out)
        sub.next_market = now + SCANNER_REFRESH_MARKET_S
        sub.last_wall = self._monotonic()
        self.stats["scans"] += 1


# --------------------------------------------------------------------------- helpers


def _write_frames(conn: Any, frames: list[bytes]) -> None:
    """Write already framed messages (:class:`~.protocol.messages.RealTimeBarFrames`; any split of
    their bytes into parts) to ``conn`` in one socket write; a client whose output buffer passes ``MAX_BUFFER`` is disconnected.

    One write per streaming step instead of one per bar keeps the gateway's syscalls and the
    clients' reads few at 390x (see ``benchmarks/bench_sim_gateway.py``).
    """
    writer = getattr(conn, "writer", None)
    if writer is None or getattr(conn, "closed", False):
        return
    try:
        writer.write(b"".join(frames))
    except (ConnectionError, RuntimeError):
        conn.abort()
        return
    transport = getattr(writer, "transport", None)
    if transport is not None and transport.get_write_buffer_size() > MAX_BUFFER:
        log.warning("client %r does not read; disconnecting", conn)
        conn.abort()


def _hdr(ts: float) -> str:
    """Header time of a historicalData message: ``YYYYMMDD HH:MM:SS`` New York."""
    return datetime.fromtimestamp(ts, NY).strftime("%Y%m%d %H:%M:%S")


def _bar_date(ts: float, fmt: int, daily: bool) -> str:
    """Bar date as IB sends it: daily ``YYYYMMDD``; intraday formatDate 1
    ``YYYYMMDD HH:MM:SS US/Eastern`` (bar start), formatDate 2 epoch seconds."""
    if daily:
        return datetime.fromtimestamp(ts, NY).strftime("%Y%m%d")
    if fmt == 2:
        return str(int(ts))
    return datetime.fromtimestamp(ts, NY).strftime("%Y%m%d %H:%M:%S") + " US/Eastern"
