"""Everything the dashboard shows, read from the database (read-only) and the exit-manager's log.

:class:`Reader` builds one *snapshot* (status, positions with distances, trades, gate
summary, events, health) with the Coordinator's own read methods, so its figures are those of
``daytrading status --json``; :meth:`Reader.changes` returns the rows recorded since a cursor
(the live stream). All methods are blocking (SQLite): the web app runs them in threads.

A database that cannot be read (missing, not yet created, damaged, locked for too long)
never raises out of :meth:`Reader.snapshot`: the snapshot carries ``db_error`` and the
health check fails with it.

A snapshot reads the database's rows again only when some connection has committed since
the last read (SQLite's ``PRAGMA data_version`` on a dedicated read-only connection, which
changes on any other connection's commit), or when the rows are ``FULL_READ_S`` wall seconds
old; otherwise it reuses them and recomputes only what the clocks change (ages, health, the
critical window, market time) and what lives in files (heartbeat files, freeze file, the
exit-latency log).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from daytrading.clock import Clock, wall_time
from daytrading.config import Settings
from daytrading.dashboard import views
from daytrading.dashboard.readonly import connect_readonly, open_readonly
from daytrading.coordination.api import TradeView
from daytrading.db.models import Event, ExecutionRecord, GateDecision, Trade


def _error_text(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return f"{type(exc).__name__}: {text}"


class ExitLatencyLog:
    """The exit-manager's "exit sent" latencies (its ticker event → placeOrder, ms), tailed from its JSON log.

    Keeps the last ``keep`` values for quantiles, and the count and sum of all seen.
    A truncated or replaced file is read again from the start.
    """

    def __init__(self, path: Path, keep: int = 1000) -> None:
        self.path = path
        self.offset = 0
        self.values: deque[float] = deque(maxlen=keep)
        self.count = 0
        self.total_ms = 0.0
        self._lock = threading.Lock()

    def poll(self) -> None:
        """Read the lines appended since the last call (a partial last line waits)."""
        with self._lock:
            try:
                size = self.path.stat().st_size
            except OSError:
                return
            if size < self.offset:
                self.offset = 0
            if size == self.offset:
                return
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read(min(size - self.offset, 8 << 20))
            end = data.rfind(b"\n")
            if end < 0:
                return
            self.offset += end + 1
            for line in data[: end + 1].splitlines():
                if b"exit sent" not in line:
                    continue
                try:
                    rec = json.loads(line)
                    value = float(rec["latency_ms"])
                except (ValueError, KeyError, TypeError):
                    continue
                if rec.get("msg") == "exit sent":
                    self.values.append(value)
                    self.count += 1
                    self.total_ms += value

    def summary(self) -> dict[str, Any]:
        """``{"count", "sum_ms", "p50_ms", "p99_ms"}`` (quantiles over the kept values, None when empty)."""
        with self._lock:
            values = sorted(self.values)
        def q(p: float) -> float | None:
            return values[min(len(values) - 1, int(p * len(values)))] if values else None
        return {"count": self.count, "sum_ms": round(self.total_ms, 3), "p50_ms": q(0.5), "p99_ms": q(0.99)}


def merge_heartbeats(db: dict[str, dict[str, Any]], files: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each bot's newest heartbeat: the database row, or its heartbeat file when that is newer
    (the file still gets through while the database is locked or full)."""
    out = dict(db)
    for bot, f in files.items():
        row = out.get(bot)
        if row is None or (f.get("last_seen") and f["last_seen"] > row["last_seen"]):
            out[bot] = {**(row or {}), **{k: f.get(k) for k in ("pid", "state", "detail", "last_seen")}, "bot": bot}
    return out


@dataclass
class Cursor:
    """Newest row ids already streamed (events, trades, gate decisions, executions)."""

    event: int = 0
    trade: int = 0
    gate: int = 0
    execution: int = 0
    #: :meth:`Reader.data_version` when the rows after these ids were last read (None: unknown)
    version: tuple[int, int] | None = None


#: Wall seconds after which a snapshot reads every row again even when no commit was seen.
FULL_READ_S = 5.0


class TradeRows(list[TradeView]):
    """A session's trades (a list of :class:`TradeView`, exit-time order) with ``ids``, the
    ``trades.id`` of each row at the same index (the page keys its table rows by it)."""

    ids: list[int]

    def __init__(self, rows: list[tuple[Any, int, TradeView]]) -> None:
        super().__init__(r[2] for r in rows)
        self.ids = [r[1] for r in rows]


class _OneRead:
    """The read-only coordinator as one full snapshot read sees it: heartbeats and active
    positions are read once for :func:`~daytrading.ops.status.status_rows` and the snapshot
    alike (one consistent view, half the queries), a session's trades come from
    :meth:`Reader.trades_of`; every other method is the coordinator's own."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self._memo: dict[Any, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader.coord, name)

    def _once(self, key: Any, read: Any) -> Any:
        if key not in self._memo:
            self._memo[key] = read()
        return self._memo[key]

    def get_heartbeats(self) -> dict[str, dict[str, Any]]:
        return self._once("beats", self._reader.coord.get_heartbeats)  # type: ignore[no-any-return]

    def get_active_positions(self) -> list[Any]:
        return self._once("positions", self._reader.coord.get_active_positions)  # type: ignore[no-any-return]

    def get_trades_by_date(self, day: date | None = None) -> list[TradeView]:
        day = day or self._reader.coord.session_date()
        return self._once(("trades", day), lambda: self._reader.trades_of(day))  # type: ignore[no-any-return]


class Reader:
    """Read-only view of the shared database for one dashboard process."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.coord = open_readonly(settings.paths.database, clock)
        self.latency = ExitLatencyLog(Path(settings.paths.log_dir) / "exit_manager.jsonl")
        self._lock = threading.Lock()
        self._probe: tuple[int, sqlite3.Connection] | None = None  # (inode of the file, connection)
        # (session asked for, clock's session) -> (data version, monotonic time the read began, rows)
        self._rows: dict[tuple[Any, Any], tuple[Any, float, dict[str, Any]]] = {}
        # session -> [(exit_time, id, TradeView)] sorted as Coordinator.get_trades_by_date sorts
        self._trades: dict[date, list[tuple[Any, int, TradeView]]] = {}
        self._equity: tuple[list[Any], str] | None = None
        self.full_reads = 0
        self.trade_rows_read = 0

    def trades_of(self, day: date) -> TradeRows:
        """The trades of session ``day``, the rows and order of
        :meth:`~daytrading.coordination.Coordinator.get_trades_by_date`, read incrementally:
        one ``count, max(id)`` query, then only rows with a larger id than those held (a trade
        row is written once, at the exit); any other difference (rows deleted, a restored
        file) reads them all again. One read transaction, so the count and the rows agree.
        The list's ``ids`` are the rows' ``trades.id``."""
        t = Trade.__table__
        names = tuple(TradeView.__dataclass_fields__)
        held = self._trades.get(day, [])
        top = max((r[1] for r in held), default=0)
        with self.coord.engine.connect() as conn:
            count, newest = conn.execute(select(func.count(), func.coalesce(func.max(t.c.id), 0))
                                         .where(t.c.session_date == day)).one()
            if (count, newest) != (len(held), top):
                q = select(t).where(t.c.session_date == day)
                fresh = conn.execute(q.where(t.c.id > top) if held and newest > top else q).mappings().all()
                self.trade_rows_read += len(fresh)
                rows = [(r["exit_time"], r["id"], TradeView(**{n: r[n] for n in names})) for r in fresh]
                held = sorted([*held, *rows] if held and newest > top else rows, key=lambda r: (r[0], r[1]))
                if len(held) != count:  # something else changed: all again
                    fresh = conn.execute(q).mappings().all()
                    held = sorted(((r["exit_time"], r["id"], TradeView(**{n: r[n] for n in names})) for r in fresh),
                                  key=lambda r: (r[0], r[1]))
                if len(self._trades) >= 8:
                    self._trades.clear()
                self._trades[day] = held
        return TradeRows(held)

    def data_version(self) -> tuple[int, int] | None:
        """``(inode, PRAGMA data_version)`` of the database: it changes whenever any other
        connection commits (or the file is replaced); ``None`` when it cannot be read."""
        path = self.settings.paths.database
        with self._lock:
            try:
                ino = os.stat(path).st_ino
                if self._probe is None or self._probe[0] != ino:
                    self._close_probe()
                    self._trades.clear()  # another file: its ids say nothing about the rows held
                    self._probe = (ino, connect_readonly(path))
                return ino, int(self._probe[1].execute("PRAGMA data_version").fetchone()[0])
            except (OSError, sqlite3.Error):
                self._close_probe()
                return None

    def _close_probe(self) -> None:
        if self._probe is not None:
            self._probe[1].close()
            self._probe = None

    def _database_rows(self, day: date | None, now_wall: float, health_check: float) -> dict[str, Any]:
        """The snapshot's database rows: the last ones read while nothing was committed since
        (clock-dependent parts recomputed), else read now. Raises what the reads raise."""
        from daytrading.ops.status import status_clock_rows, status_rows

        now = self.clock.now()
        version = self.data_version()
        key = (day, self.coord.session_date(now))
        cached = self._rows.get(key)
        if version is not None and cached is not None and cached[0] == version \
                and time.monotonic() - cached[1] < FULL_READ_S:
            rows = dict(cached[2])
            rows["status"] = {**rows["status"], **status_clock_rows(rows["beats"], now, now_wall, health_check),
                              "freeze": self._freeze(rows["status"].get("freeze"))}
            return rows
        started = time.monotonic()
        one = _OneRead(self)
        status = status_rows(one, self.clock, health_check=health_check, now_wall=now_wall, day=day)  # type: ignore[arg-type]
        session = date.fromisoformat(status["session_date"])
        rows = {"status": status, "beats": one.get_heartbeats(), "positions": one.get_active_positions(),
                "trades": one.get_trades_by_date(session), "events": self.coord.get_events(limit=50),
                "gates": self.gate_summary(session)}
        self.full_reads += 1
        if version is not None:
            if len(self._rows) >= 8:
                self._rows.clear()
            self._rows[key] = (version, started, rows)
        return rows

    def _freeze(self, held: dict[str, Any] | None) -> dict[str, Any] | None:
        """The freeze now, when nothing was committed since ``held`` was read: a database flag
        is still set; otherwise only the freeze file (not in the database) can have changed,
        and one ``stat`` says whether it exists (no SQL)."""
        if held is not None and held.get("source") != "file":
            return held
        return self.coord.freeze_info() if self.coord.is_frozen_file() else None

    # ------------------------------------------------------------------ snapshot

    def snapshot(self, day: date | None = None) -> dict[str, Any]:
        """Everything the page shows for session ``day`` (default: the clock's session when it
        has records, else the latest recorded; see :mod:`daytrading.ops.sessions`).

        Keys: ``status`` (:func:`daytrading.ops.status.status_rows`), ``positions`` (rows of
        :func:`views.position_rows`), ``unrealized_pnl``, ``trades``, ``equity_svg``, ``gates``,
        ``events``, ``critical``, ``health``, ``latency``, ``db_error``, ``market_time``.
        """
        from daytrading.ops.status import _supervisor_view

        now_wall = wall_time()
        now = self.clock.now()
        health_check = self.settings.intervals.health_check
        status: dict[str, Any] = {}
        beats: dict[str, dict[str, Any]] = {}
        positions: list[Any] = []
        trades: list[Any] = TradeRows([])
        events: list[dict[str, Any]] = []
        gates: dict[str, Any] = {"by_gate": [], "latest": []}
        db_error = None
        try:
            rows = self._database_rows(day, now_wall, health_check)
            status, beats, positions = rows["status"], rows["beats"], rows["positions"]
            trades, events, gates = rows["trades"], rows["events"], rows["gates"]
        except Exception as exc:  # noqa: BLE001 - an unreadable database is a health result, not a crash
            db_error = _error_text(exc)
        beats = merge_heartbeats(beats, self.coord.heartbeat_files())
        self.latency.poll()
        rows = views.position_rows(positions, views.recorded_prices(beats), now_wall)
        supervisor = _supervisor_view(beats, now_wall, health_check)
        critical = views.critical_open(events, status.get("freeze"),
                                       supervisor["bots"] if supervisor["alive"] else {}, now,
                                       self.settings.dashboard.critical_window_minutes)
        health = views.health_report(beats=beats, supervisor=supervisor, critical=critical, db_error=db_error,
                                     now_wall=now_wall, stale_after=self.settings.dashboard.stale_after)
        return {
            "market_time": now.isoformat(timespec="seconds"),
            "status": status, "positions": rows, "unrealized_pnl": views.unrealized_pnl(rows),
            "trades": trades, "equity_svg": self._equity_svg(trades), "gates": gates, "events": events,
            "critical": critical, "health": health, "latency": self.latency.summary(), "db_error": db_error,
            "session_date": status.get("session_date"), "session_label": status.get("session_label"),
        }

    def _equity_svg(self, trades: list[Any]) -> str:
        """:func:`views.equity_svg` of ``trades``, drawn again only for another list of rows
        (snapshots that reuse their rows reuse the list)."""
        held = self._equity
        if held is None or held[0] is not trades:
            held = self._equity = (trades, views.equity_svg(trades))
        return held[1]

    def gate_summary(self, day: date) -> dict[str, Any]:
        """Rejections by gate (count, symbols, the latest reason) and each symbol's latest decision.

        Aggregated in SQL (a session can hold tens of thousands of decisions).
        """
        g = GateDecision
        with self.coord.engine.connect() as conn:
            counts = conn.execute(
                select(g.gate, func.count(), func.count(func.distinct(g.symbol)), func.max(g.id))
                .where(g.session_date == day, g.passed.is_(False)).group_by(g.gate)).all()
            reasons = dict(conn.execute(select(g.id, g.reason).where(g.id.in_([c[3] for c in counts]))).all()) \
                if counts else {}
            latest_ids = select(func.max(g.id)).where(g.session_date == day).group_by(g.symbol)
            latest = conn.execute(select(g.symbol, g.ts, g.gate, g.passed, g.reason)
                                  .where(g.id.in_(latest_ids)).order_by(g.symbol)).all()
        by_gate = sorted(({"gate": gate, "rejections": int(n), "symbols": int(syms), "latest_reason": reasons.get(last)}
                          for gate, n, syms, last in counts), key=lambda r: -r["rejections"])
        return {"session_date": day.isoformat(), "by_gate": by_gate,
                "latest": [{"symbol": s, "ts": ts, "gate": gate, "passed": bool(p), "reason": reason}
                           for s, ts, gate, p, reason in latest]}

    # ------------------------------------------------------------------ changes

    def cursor(self) -> Cursor:
        """The current newest ids (a new stream starts here, without replaying history)."""
        with self.coord.engine.connect() as conn:
            ids = [conn.execute(select(func.coalesce(func.max(t.id), 0))).scalar_one()
                   for t in (Event, Trade, GateDecision)]
            ids.append(self._max_execution_id(conn))
        return Cursor(*[int(i) for i in ids])

    @staticmethod
    def _max_execution_id(conn: Any) -> int:
        try:
            return int(conn.execute(select(func.coalesce(func.max(ExecutionRecord.id), 0))).scalar_one())
        except Exception:  # noqa: BLE001 - a database from before the execution ledger
            conn.rollback()
            return 0

    def changes(self, cur: Cursor, limit: int = 200) -> dict[str, list[dict[str, Any]]]:
        """Rows recorded after ``cur`` (``cur`` is advanced): events, trades (exits), gate
        decisions, executions (fills); each list oldest first, at most ``limit`` newest rows.

        No query when nothing was committed since the last call with ``cur`` (``PRAGMA
        data_version``): an idle session costs the stream one pragma per tick."""
        version = self.data_version()
        if version is not None and cur.version == version:
            return {"events": [], "trades": [], "gates": [], "fills": []}

        def rows(conn: Any, model: Any, after: int) -> list[dict[str, Any]]:
            table = model.__table__
            q = select(table).where(table.c.id > after).order_by(table.c.id.desc()).limit(limit)
            return [dict(r._mapping) for r in reversed(conn.execute(q).all())]

        out: dict[str, list[dict[str, Any]]] = {}
        with self.coord.engine.connect() as conn:
            out["events"] = rows(conn, Event, cur.event)
            out["trades"] = rows(conn, Trade, cur.trade)
            out["gates"] = rows(conn, GateDecision, cur.gate)
            try:
                out["fills"] = rows(conn, ExecutionRecord, cur.execution)
            except Exception:  # noqa: BLE001 - a database from before the execution ledger
                conn.rollback()
                out["fills"] = []
        for key, attr in (("events", "event"), ("trades", "trade"), ("gates", "gate"), ("fills", "execution")):
            if out[key]:
                setattr(cur, attr, max(r["id"] for r in out[key]))
        cur.version = version  # read before the rows: a commit meanwhile makes the next call read again
        return out

    def events_since(self, since: int = 0, level: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Events with an id above ``since`` (oldest first, at most ``limit``), optionally of one level."""
        table = Event.__table__
        q = select(table).where(table.c.id > since)
        if level:
            q = q.where(table.c.level == level)
        with self.coord.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(table.c.id).limit(limit))]
