"""Run one recorded session through the production bots on a virtual-time loop.

For each session the runner builds, in ONE process on ONE asyncio loop:

* the sim-gateway (:class:`~daytrading.sim_gateway.server.SimGateway` over a
  :class:`~daytrading.sim_gateway.market.ReplayMarket` of the session), listening
  on a free loopback port;
* the production :class:`~daytrading.bots.exit_manager.ExitManager` and
  :class:`~daytrading.bots.day_trader.DayTrader`, with the given settings and their gate
  chain, each with its own unmodified ``ib_async.IB`` talking the TWS protocol to the
  gateway over that loopback socket;
* a fresh SQLite database in a temporary folder.

The loop is ``looptime``'s (:mod:`daytrading.backtest.loop`): whenever every task waits (no
socket is readable), the loop's clock jumps to the next scheduled timer. Every component reads market time from one
:class:`~daytrading.clock.LoopClock` (market time = session pre-market open + loop time
elapsed), so a session of 16 market hours runs as fast as the CPU allows, and the same
data, settings and seed give the same orders and fills.

The session ends at the regular close plus :data:`AFTER_CLOSE` seconds (every DAY order
has expired and the EOD flatten has filled); the bots are then stopped and the trades
read from the session's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from daytrading.clock import NY, LoopClock, calendar
from daytrading.config import Settings

log = logging.getLogger("daytrading.backtest")

#: Market seconds replayed after the regular close before the session is ended.
AFTER_CLOSE = 120.0
#: permIds of every backtest gateway start here (the live gateway derives them from the wall clock).
PERM_BASE = 500_000_000
#: Heartbeat period of the backtest's bots (seconds of loop time; nobody watches them).
HEARTBEAT_S = 3600.0


@dataclass(frozen=True)
class TradeRecord:
    """One round trip of the session, as the database recorded it.

    Times are tz-aware America/New_York, whole seconds; prices and P&L in dollars; ``quantity`` shares;
    ``stop_price``/``target_price`` are the entry's stop and target (dollars).
    """

    symbol: str
    entry_time: datetime | None
    exit_time: datetime
    quantity: float
    entry_price: float | None
    exit_price: float
    stop_price: float | None
    target_price: float | None
    exit_reason: str
    pnl: float
    commission: float

    def as_dict(self) -> dict[str, Any]:
        """JSON form (ISO New York times)."""
        return {
            "symbol": self.symbol,
            "entry_time": self.entry_time.isoformat() if self.entry_time else None,
            "exit_time": self.exit_time.isoformat(),
            "quantity": self.quantity,
            "entry_price": self.entry_price,
            "exit_price": self.exit_price,
            "stop_price": self.stop_price,
            "target_price": self.target_price,
            "exit_reason": self.exit_reason,
            "pnl": self.pnl,
            "commission": self.commission,
        }


@dataclass(frozen=True)
class FillRecord:
    """One execution at the simulated exchange (``time`` POSIX market seconds, ``price`` dollars)."""

    time: float
    symbol: str
    side: str
    shares: float
    price: float
    order_ref: str

    def key(self) -> str:
        """Canonical text of the fill: to the second and to the cent."""
        return f"{int(round(self.time))}|{self.symbol}|{self.side}|{self.shares:g}|{self.price:.2f}"


@dataclass(frozen=True)
class SessionResult:
    """What one session produced.

    Attributes:
        date: the session date.
        trades: round trips in exit order.
        pnl: realised P&L of the session, dollars (sum of the trades' P&L, after commissions).
        skipped: data problems: dicts with ``file``, ``line``, ``field``, ``value``, ``reason``.
        fingerprint: SHA-256 hex of the session's ordered fills (:meth:`FillRecord.key`).
        fills: the ordered fills.
        exposure_seconds: market seconds during which at least one position was held.
        session_seconds: market seconds of the regular session (for exposure).
    """

    date: date
    trades: list[TradeRecord]
    pnl: float
    skipped: list[dict[str, Any]] = field(default_factory=list)
    fingerprint: str = ""
    fills: list[FillRecord] = field(default_factory=list)
    exposure_seconds: float = 0.0
    session_seconds: float = 0.0


def fills_fingerprint(fills: Sequence[FillRecord]) -> str:
    """SHA-256 hex of the fills' canonical lines, in order."""
    h = hashlib.sha256()
    for f in fills:
        h.update(f.key().encode())
        h.update(b"\n")
    return h.hexdigest()


def fingerprint(results: Sequence[SessionResult]) -> str:
    """One fingerprint for many sessions: SHA-256 of ``date:fingerprint`` lines in date order."""
    h = hashlib.sha256()
    for r in sorted(results, key=lambda r: r.date):
        h.update(f"{r.date.isoformat()}:{r.fingerprint}\n".encode())
    return h.hexdigest()


def backtest_settings(settings: Settings, workdir: Path, port: int) -> Settings:
    """The settings the bots of one backtest session run with.

    Trading settings are kept as given; only what ties a run to a machine changes:
    the broker port (the in-process gateway), the database, log, backup and report
    folders (the session's temporary folder), the watchlist (none), API keys (none:
    a backtest never calls Polygon or an LLM over the network) and the heartbeat period
    (:data:`HEARTBEAT_S`: no supervisor watches a backtest, so its bots beat once an hour).
    """
    paths = settings.paths.model_copy(update={
        "database": workdir / "backtest.db", "log_dir": workdir / "logs", "backup_dir": workdir / "backups",
        "report_dir": workdir / "reports", "watchlist": workdir / "no_watchlist.json",
    })
    intervals = settings.intervals.model_copy(update={"heartbeat": HEARTBEAT_S})
    sim = settings.sim.model_copy(update={"port": port, "start": None, "epoch": None, "speed": 1.0})
    ib = settings.ib.model_copy(update={"port": port, "host": "127.0.0.1", "account": settings.sim.account})
    scanner = settings.scanner.model_copy(update={"polygon_api_key": type(settings.scanner.polygon_api_key)("")})
    empty = type(settings.llm.deepseek_api_key)("")
    llm = settings.llm.model_copy(update={"deepseek_api_key": empty, "gemini_api_key": empty})
    return settings.model_copy(update={"mode": "sim", "paths": paths, "sim": sim, "ib": ib,
                                       "scanner": scanner, "llm": llm, "intervals": intervals})


#: free bytes a memory file system must have left to hold a session's temporary folder
SCRATCH_MIN_FREE = 1 << 30


def scratch_dir(candidates: Sequence[str] = ("/dev/shm",)) -> str | None:  # noqa: S108 - mkdtemp: 0700, random name
    """Where a session's temporary folder (its database, logs) goes: the first of
    ``candidates`` (a memory file system) that is a writable folder with at least
    :data:`SCRATCH_MIN_FREE` bytes free, else None (the system's temporary folder).

    The database commits about 1,500 times a session; on a memory file system its WAL
    writes and checkpoints cost no disk I/O (about 1.3 wall s and 0.15 CPU s a session here).
    Nothing in it outlives the session.
    """
    import os

    for path in candidates:
        try:
            st = os.statvfs(path)
        except (OSError, AttributeError):  # missing, or no statvfs (Windows)
            continue
        if os.path.isdir(path) and os.access(path, os.W_OK) and st.f_bavail * st.f_frsize >= SCRATCH_MIN_FREE:
            return path
    return None


def run_session(
    data: Path,
    session: date,
    settings: Settings,
    seed: int = 0,
    symbols: Sequence[str] | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> SessionResult:
    """Replay ``session`` from ``data`` through the production bots; see the module docstring.

    Args:
        data: a folder of recorded bar files (or one file).
        session: an XNYS session date present in the data.
        settings: the trading settings (``settings_with`` builds variants).
        seed: seeds the gateway's random choices (synthetic sizes, fault draws).
        symbols: replay only these symbols (default: every symbol with bars that day).
        start: market time the replay starts (tz-aware; default the session's pre-market
            open, 04:00 New York).
        end: market time the replay ends (default the close + :data:`AFTER_CLOSE`); the
            benchmarks replay a first hour with it.

    Returns:
        The :class:`SessionResult`.

    Raises:
        DataError: the session cannot be loaded at all (no usable bars that day).
        ValueError: ``session`` is not an XNYS session.
    """
    from daytrading.backtest.loop import new_loop

    loop = new_loop(start=0.0)
    try:
        with tempfile.TemporaryDirectory(prefix="daytrading-backtest-", dir=scratch_dir()) as tmp:
            return loop.run_until_complete(_run(Path(data), session, settings, seed, symbols, Path(tmp), start, end))
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _run(data: Path, day: date, settings: Settings, seed: int, symbols: Sequence[str] | None,
               workdir: Path, start: datetime | None, end: datetime | None) -> SessionResult:
    from daytrading.bots.day_trader import DayTrader
    from daytrading.bots.exit_manager import ExitManager
    from daytrading.coordination import generations
    from daytrading.sim_gateway import SimGateway, build_gateway

    cal = calendar()
    sess = cal.session(day)
    clock = LoopClock(start or sess.premarket_open)
    skipped: list[dict[str, Any]] = []
    gw: SimGateway = build_gateway(data=data, session_date=day, symbols=symbols, cash=settings.sim.cash,
                                   account=settings.sim.account, port=0, admin_port=0, seed=seed,
                                   perm_base=PERM_BASE, clock=clock, skipped=skipped,
                                   path_step_s=settings.sim.path_step_s,
                                   order_latency_ms=settings.sim.order_latency_ms)
    skipped += premarket_gaps({s: gw.market.frame(s) for s in gw.market.symbols}, sess)
    await gw.start()
    bt = backtest_settings(settings, workdir, gw.port)
    em = ExitManager(bt, _coordinator(bt, "exit-manager", clock), clock)
    dt = DayTrader(bt, _coordinator(bt, "day-trader", clock), clock)
    # schema built, and from now on only these two (traced, inline) coordinators write the file
    generations.of(em.coord.db_path).private = True
    tasks = [asyncio.ensure_future(em.run(install_signals=False)),
             asyncio.ensure_future(dt.run(install_signals=False))]
    end = end or sess.close + timedelta(seconds=AFTER_CLOSE)
    try:
        await asyncio.sleep(clock.loop_time_at(end) - clock.loop.time())
    finally:
        dt.stop()
        em.stop()
        await asyncio.wait(tasks, timeout=60)
        for t in tasks:
            t.cancel()
        await gw.stop()
    trades = _trades(em.coord, day, settings)
    for coord in (em.coord, dt.coord):
        coord.close_probe()
    fills = [FillRecord(e.time, e.order.info.symbol, e.side, e.shares, e.price, e.order.order_ref)
             for e in gw.orders.executions]
    return SessionResult(date=day, trades=trades, pnl=round(sum(t.pnl for t in trades), 2),
                         skipped=_dedupe(skipped), fingerprint=fills_fingerprint(fills), fills=fills,
                         session_seconds=(sess.close - sess.open).total_seconds())


def _trades(coord: Any, day: date, settings: Settings) -> list[TradeRecord]:
    from daytrading.coordination.api import target_and_stop

    out = []
    for t in coord.get_trades_by_date(day):
        target = stop = None
        if t.entry_price:
            target, stop = target_and_stop(t.entry_price, settings.profit_target, settings.stop_loss)
        out.append(TradeRecord(
            symbol=t.symbol, entry_time=_second(t.entry_time) if t.entry_time else None,
            exit_time=_second(t.exit_time), quantity=t.quantity,
            entry_price=round(t.entry_price, 4) if t.entry_price is not None else None,
            exit_price=round(t.exit_price, 4), stop_price=stop, target_price=target, exit_reason=t.exit_reason,
            pnl=float(t.pnl or 0.0), commission=float(t.commission or 0.0),
        ))
    return out


def premarket_gaps(bars: dict[str, Any], sess: Any) -> list[dict[str, Any]]:
    """Skipped-data entries (``{file, line, field, value, reason}``) for every symbol of
    ``bars`` (``{symbol: frame}`` of the session) without a bar before the regular open of
    ``sess``: its pre-market gap over the previous close cannot be measured (the gap rule
    then waits for the opening price). The session itself is still replayed."""
    out = []
    for symbol, frame in bars.items():
        if frame is None or not len(frame) or frame.index[0] >= sess.open:
            files = (frame.attrs.get("files") if frame is not None else None) or [None]
            out.append({"file": files[0], "line": None, "field": "time", "value": sess.date.isoformat(),
                        "reason": f"{symbol}: no pre-market bars on {sess.date.isoformat()}; "
                                  "the pre-market gap rule cannot be applied to it that day"})
    return out


def _dedupe(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for item in items:
        key = (item.get("file"), item.get("line"), item.get("field"), item.get("reason"))
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _second(when: datetime) -> datetime:
    """``when`` in New York, rounded to the whole second (the loop's float time carries
    microsecond noise; the report's unit is the second)."""
    return datetime.fromtimestamp(round(when.timestamp()), tz=NY)


def _coordinator(settings: Settings, bot: str, clock: LoopClock) -> Any:
    """The session database's coordinator for ``bot``, running its calls inline (no threads:
    a worker thread would let looptime advance virtual time by real time)."""
    from daytrading.runtime import open_coordinator

    coord = open_coordinator(settings, bot, clock)
    coord.inline = True
    return coord
