"""The coordination invariants as one API (architecture page, "Shared state").

Both bots, the supervisor and the scripts go through :class:`Coordinator`; nobody
else writes the coordination tables. Every public method is **one transaction**
(``BEGIN IMMEDIATE``), so a process killed at any instant leaves either the old
or the new state, never half of a close.

Invariants enforced here:

1. one row per symbol in ``active_positions``; :meth:`Coordinator.claim_entry`
   checks "free, not closed today, not frozen" and inserts ``PENDING_ENTRY`` in the
   same transaction;
2. no claim for a symbol in ``closed_positions_today`` for the current session date;
6. status moves ``PENDING_ENTRY → OPEN → EXITING → (closed)`` only through these
   methods; :meth:`Coordinator.close_position` moves the row to closed-today and
   writes the ``trades`` row in one transaction.

Transient ``database is locked`` / ``busy`` errors are retried with exponential
back-off and jitter (tenacity); they never escape to a bot unless the database
stays locked for the whole budget (:class:`DatabaseBusyError`). A full disk, an I/O
error, a read-only or damaged file raise :class:`DatabaseUnavailableError` (a
:class:`~daytrading.errors.TemporaryError`, like the busy error), never a bare
SQLAlchemy exception, so a bot's ``except DaytradingError`` survives them.

Never blocking an event loop: synchronous callers (the CLI, scripts) keep the patient
policy above, up to ``busy_timeout`` 5 s per attempt plus 30 s of retries. Async
callers use :meth:`Coordinator.run_async`, which runs the call in this coordinator's
worker threads, optionally with a fail-fast ``timeout``; sync callers that must not
wait (the supervisor's watchdog) use :meth:`Coordinator.fail_fast`. Threads rather
than "short busy timeout + ``tenacity.AsyncRetrying`` on the loop" because the loop
then never runs SQLite code at all: besides lock waits, a commit can stall on a slow
disk, a WAL checkpoint, an antivirus scan of the file (Windows) or a network drive,
and no busy timeout bounds those. ``sqlite3`` releases the GIL while SQLite works, so
a waiting worker thread costs the loop nothing; the hop costs ~0.1 ms per call.

The freeze and the heartbeats also travel through files beside the database
(:mod:`daytrading.coordination.freeze`), which work while SQLite does not:
:meth:`Coordinator.freeze` writes the freeze file first, :meth:`Coordinator.is_frozen`
and :meth:`Coordinator.claim_entry` check it before any SQL, and every
:meth:`Coordinator.heartbeat` writes the bot's heartbeat file before its row.

Hot path: the entry→exit lifecycle (:meth:`~Coordinator.claim_entry`,
:meth:`~Coordinator.confirm_entry`, :meth:`~Coordinator.take_exit_lock`,
:meth:`~Coordinator.close_position`) runs the pre-written SQL of
:mod:`daytrading.db.lifecycle_sql` on the DBAPI connection of a pooled SQLAlchemy
connection that each thread keeps between calls, inside a SQLAlchemy transaction
(the engine's ``begin`` hook: ``BEGIN IMMEDIATE``; commit/rollback events as usual),
without an ORM Session; driver errors are re-raised as SQLAlchemy's exception types.
Statement-level engine events (``before_cursor_execute``, ``echo``) do not see these
statements. The other methods use the ORM. Both share the retry policy. Throughput:
``benchmarks/bench_coordination.py``.

Units: prices in dollars per share, quantities in shares, ``target`` / ``stop``
fractions (0.018 = 1.8 %), ``pnl_pct`` / ``profit_loss_pct`` in percent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import date, datetime, UTC
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, delete, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import DatabaseError as SADatabaseError
from sqlalchemy.exc import OperationalError as SAOperationalError
from sqlalchemy.orm import Session
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    stop_before_delay,
    wait_exponential_jitter,
)

from daytrading.clock import Clock, LiveClock, session_date
from daytrading.coordination import generations, ledger
from daytrading.coordination.ledger import Execution
from daytrading.db import lifecycle_sql as sql
from daytrading.db.lifecycle_sql import json_text, utc_text, utc_value
from daytrading.db.models import (
    ActivePosition,
    ClosedPositionToday,
    Event,
    ExecutionRecord,
    Flag,
    GateDecision,
    Heartbeat,
    OrderRecord,
    PositionStatus,
    Trade,
)
from daytrading.coordination import freeze as side_files
from daytrading.db.engine import BUSY_TIMEOUT_MS
from daytrading.errors import CoordinationError, DatabaseBusyError, DatabaseUnavailableError

T = TypeVar("T")

EXIT_REASONS = ("target", "stop", "eod", "manual", "reconciled", "liquidate_all")
FREEZE_FLAG = "freeze"
#: Worker threads of :meth:`Coordinator.run_async` per coordinator.
ASYNC_WORKERS = 4

log = logging.getLogger("daytrading.coordination")


class _HeldConnection(threading.local):
    """Per-thread slot of :meth:`Coordinator._run_core`'s connection (and the pid that opened it)."""

    conn: Connection | None = None
    dbapi: sqlite3.Connection | None = None
    pid: int = 0
    #: fail-fast deadline (``time.monotonic()``) of the calls on this thread, or None (patient)
    deadline: float | None = None


def _wrap(exc: sqlite3.Error) -> BaseException:
    """A driver error as SQLAlchemy would raise it (``sqlalchemy.exc.OperationalError`` …)."""
    return DBAPIError.instance(None, None, exc, sqlite3.Error)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, SAOperationalError):
        text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
        return "locked" in text or "busy" in text
    return False


#: SQLite primary result codes meaning "the database cannot be used now" (not a coding error):
#: IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB, READONLY (https://sqlite.org/rescode.html).
_UNAVAILABLE_CODES = {10, 11, 13, 14, 15, 26, 8}
_UNAVAILABLE_TEXT = ("disk is full", "malformed", "not a database", "disk i/o error", "readonly database",
                     "unable to open database file")


def _is_unavailable(exc: BaseException) -> bool:
    """A full disk, an I/O error, a damaged, read-only or unopenable file (SQLAlchemy or sqlite3 error)."""
    if isinstance(exc, IntegrityError) or not isinstance(exc, (SADatabaseError, sqlite3.DatabaseError)):
        return False
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return (int(code) & 0xFF) in _UNAVAILABLE_CODES
    text = str(orig).lower()
    return any(t in text for t in _UNAVAILABLE_TEXT)


@dataclass(frozen=True)
class ClaimResult:
    """Outcome of :meth:`Coordinator.claim_entry`.

    ``ok`` is True when the symbol is now ``PENDING_ENTRY`` for the caller; else
    ``reason`` is one of ``active``, ``closed_today``, ``frozen`` (or, from the day-trader,
    ``database: …`` when the database did not answer in time and the entry was skipped).
    """

    ok: bool
    symbol: str
    reason: str = ""


@dataclass(frozen=True)
class PositionView:
    """A detached, read-only copy of an ``active_positions`` row."""

    symbol: str
    status: str
    quantity: float
    requested_quantity: float
    entry_price: float | None
    entry_timestamp: datetime | None
    agent_name: str
    profit_target_price: float | None
    stop_loss_price: float | None
    session_date: date
    claimed_at: datetime | None
    claimed_by: str | None
    claim_pid: int | None
    entry_client_id: int | None
    entry_order_id: int | None
    entry_perm_id: int | None
    target_order_id: int | None
    target_perm_id: int | None
    exit_order_id: int | None
    exit_perm_id: int | None
    exit_reason: str | None
    exit_started_at: datetime | None
    exit_attempts: int
    last_updated: datetime
    meta: dict[str, Any] | None

    @classmethod
    def of(cls, row: ActivePosition) -> PositionView:
        """Copy an ORM row."""
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class TradeView:
    """A detached copy of a ``trades`` row (``pnl`` dollars, ``pnl_pct`` percent)."""

    symbol: str
    session_date: date
    quantity: float
    entry_time: datetime | None
    entry_price: float | None
    exit_time: datetime
    exit_price: float
    pnl: float | None
    pnl_pct: float | None
    commission: float
    exit_reason: str
    bot: str
    exit_bot: str | None
    entry_perm_id: int | None
    exit_perm_id: int | None

    @classmethod
    def of(cls, row: Trade) -> TradeView:
        """Copy an ORM row."""
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


# positions in a lifecycle_sql.POSITION_BY_SYMBOL row (the id, then PositionView's fields)
_F = {name: i + 1 for i, name in enumerate(sql.POSITION_ATTRS)}
if tuple(sql.POSITION_ATTRS) != tuple(PositionView.__dataclass_fields__):  # pragma: no cover - a coding error
    raise ImportError("PositionView's fields and lifecycle_sql.POSITION_ATTRS differ")
_F_STATUS, _F_QUANTITY, _F_ENTRY_PRICE, _F_ENTRY_TIMESTAMP = _F["status"], _F["quantity"], _F["entry_price"], \
    _F["entry_timestamp"]
_F_TARGET, _F_STOP, _F_ENTRY_PERM_ID, _F_LAST_UPDATED = _F["profit_target_price"], _F["stop_loss_price"], \
    _F["entry_perm_id"], _F["last_updated"]


def target_and_stop(entry_price: float, target: float, stop: float) -> tuple[float, float]:
    """Profit-target and stop prices for a long entry, rounded to the cent.

    ``target`` / ``stop`` are fractions: target = entry × (1 + target),
    stop = entry × (1 − stop). (US stocks ≥ $1 trade in $0.01 ticks.)
    """
    return round(entry_price * (1 + target), 2), round(entry_price * (1 - stop), 2)


class Coordinator:
    """The coordination API over one database file.

    Args:
        engine: from :func:`daytrading.db.engine.make_engine` (schema must exist).
        bot: this process's name (``exit-manager``, ``day-trader``, ``supervisor``…).
        clock: market time; ``session_date`` is derived from it via XNYS.
        profit_target, stop_loss: fractions used when a position becomes OPEN.
        retry_seconds: total budget for retrying a locked database.
        inline: :meth:`run_async` runs calls directly instead of in a worker thread, and
            without its fail-fast wall-clock deadline (for the backtest's virtual-time event
            loop and private database: a thread, or a deadline that a loaded machine misses,
            would let real time leak into the result).
        read_cache: inline only, a repeated read is answered from its last result while no
            table it read has been written (:meth:`_read`); ``False`` reads the database every time.
    """

    def __init__(
        self,
        engine: Engine,
        bot: str,
        clock: Clock | None = None,
        *,
        profit_target: float = 0.018,
        stop_loss: float = 0.009,
        retry_seconds: float = 30.0,
        inline: bool = False,
        read_cache: bool = True,
    ) -> None:
        self.engine = engine
        self.bot = bot
        self.clock: Clock = clock or LiveClock()
        self.profit_target = profit_target
        self.stop_loss = stop_loss
        self._retry_seconds = retry_seconds
        self._pid = os.getpid()
        self._local = _HeldConnection()  # per thread: the held hot-path connection
        #: run :meth:`run_async` calls directly on the loop, no thread (the backtest's virtual-time loop)
        self.inline = inline
        #: inline only: answer unchanged reads from the last result (:meth:`_read`); False = always the database
        self.read_cache = read_cache
        #: inline: read key -> (table generations when read, result)
        self._reads: dict[tuple[Any, ...], tuple[tuple[int, ...], Any]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        database = engine.url.database
        #: the database file (None for an in-memory database: no side channel then)
        self.db_path: Path | None = Path(database).resolve() if database and database != ":memory:" else None

    # ------------------------------------------------------------------ non-blocking use

    async def run_async(self, fn: Callable[..., T], /, *args: Any, timeout: float | None = None, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` (a method of this coordinator) run in a worker thread.

        The event loop never executes SQLite code, so a locked, slow, full or damaged
        database cannot stall it (heartbeats, IB socket, stops keep going).

        Args:
            fn: e.g. ``coord.take_exit_lock``; any callable that uses this coordinator.
            timeout: fail fast: the call gives up ``timeout`` wall seconds after this
                call (busy waiting included) with :class:`DatabaseBusyError`. ``None``:
                the patient policy (``busy_timeout`` 5 s per attempt, 30 s of retries).

        Up to :data:`ASYNC_WORKERS` calls run at once and may commit in any order: await
        one before starting the next when the order matters. Cancelling the awaiting
        task does not stop a call already running (its write may still land).

        Raises:
            Whatever ``fn`` raises: :class:`DatabaseBusyError`, :class:`DatabaseUnavailableError`,
            :class:`CoordinationError`...
        """
        # inline (the backtest): no other program writes its private database, so a wall
        # deadline could only be missed by a slow machine, and would change the outcome
        deadline = None if timeout is None or self.inline else time.monotonic() + max(0.0, timeout)

        def work() -> T:
            local = self._local
            saved, local.deadline = local.deadline, deadline
            try:
                return fn(*args, **kwargs)
            finally:
                local.deadline = saved

        if self.inline:
            return work()
        return await asyncio.get_running_loop().run_in_executor(self._workers(), work)

    @contextmanager
    def fail_fast(self, seconds: float) -> Iterator[None]:
        """Within the block, calls on this thread give up after ``seconds`` wall seconds in total.

        For synchronous code that must not wait on a lock (the supervisor's watchdog,
        liquidate-all before it sells): each SQLite busy wait is cut to what is left and
        tenacity stops retrying at the deadline; then :class:`DatabaseBusyError` is raised.
        Nested blocks keep the earlier deadline.
        """
        local = self._local
        saved = local.deadline
        mine = time.monotonic() + max(0.0, seconds)
        local.deadline = mine if saved is None else min(saved, mine)
        try:
            yield
        finally:
            local.deadline = saved

    def _workers(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=ASYNC_WORKERS, thread_name_prefix=f"db-{self.bot}")
            return self._executor

    def _remaining(self) -> float | None:
        """Seconds left before this thread's fail-fast deadline (None: patient)."""
        deadline = self._local.deadline
        return None if deadline is None else deadline - time.monotonic()

    def _busy_error(self, seconds: float) -> DatabaseBusyError:
        return DatabaseBusyError(f"database {self.engine.url.database} stayed locked for {seconds:.1f} s (another "
                                 "program holds its write lock, e.g. a SQLite browser with unsaved changes)")

    @contextmanager
    def _busy_limit(self, dbapi: sqlite3.Connection) -> Iterator[None]:
        """Cut SQLite's busy wait on ``dbapi`` to this thread's remaining fail-fast time (no-op when patient)."""
        left = self._remaining()
        if left is None:
            yield
            return
        if left <= 0:
            raise self._busy_error(0.0)
        previous = dbapi.execute("PRAGMA busy_timeout").fetchone()[0]
        dbapi.execute(f"PRAGMA busy_timeout={min(BUSY_TIMEOUT_MS, max(1, int(left * 1000)))}")
        try:
            yield
        finally:
            with suppress(sqlite3.Error):  # a broken connection is dropped by the caller
                dbapi.execute(f"PRAGMA busy_timeout={int(previous)}")

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailableError:
        orig = getattr(exc, "orig", None) or exc
        return DatabaseUnavailableError(f"database {self.engine.url.database} unavailable: {orig}")

    # ------------------------------------------------------------------ plumbing

    def _read(self, key: tuple[Any, ...], tables: tuple[str, ...], fn: Callable[[Session], T]) -> T:
        """``fn`` in a read-only transaction (:meth:`_run`); inline (the backtest), the result of
        the last read with the same ``key`` while none of ``tables`` (the tables ``fn`` reads)
        has been written since.

        Every write transaction of an inline coordinator bumps the generations of the tables
        it wrote, process-wide per database file (:mod:`daytrading.coordination.generations`,
        which also catches untraced commits through ``PRAGMA data_version``); the generations
        are taken before the query, so a write during it shows at the next call. A hit then
        costs one PRAGMA (the backtest's sweeps and gate checks re-read unchanged rows
        thousands of times a session, while gate decisions are written every cycle). Lists of
        dicts come back as fresh copies; rows are frozen views. A probe that cannot read the
        file: read as usual.
        """
        gens = self._generations() if self.read_cache else None
        snap = gens.snapshot(tables) if gens is not None else None
        if snap is None:
            return self._run(fn, read_only=True)
        hit = self._reads.get(key)
        if hit is None or hit[0] != snap:
            hit = self._reads[key] = (snap, self._run(fn, read_only=True))
        return _fresh(hit[1])

    def _generations(self) -> generations.Generations | None:
        """The write generations of this coordinator's file when inline (else None: live)."""
        return generations.of(self.db_path) if self.inline and self.db_path is not None else None

    @contextmanager
    def _traced(self, dbapi: sqlite3.Connection) -> Iterator[None]:
        """Around an inline write transaction: record the tables it writes, bump them after it ended."""
        gens = self._generations()
        if gens is None:
            yield
            return
        gens.before_write()
        trace = generations.WriteTrace()
        dbapi.set_trace_callback(trace)
        try:
            yield
        finally:
            with suppress(sqlite3.Error):
                dbapi.set_trace_callback(None)
            gens.wrote(trace.tables)

    def close_probe(self) -> None:
        """Forget the cached reads and close the file's ``data_version`` connection (opened again when needed)."""
        self._reads.clear()
        if self.db_path is not None:
            generations.forget(self.db_path)

    def _run(self, fn: Callable[[Session], T], *, read_only: bool = False) -> T:
        """Run ``fn`` in one ORM-session transaction, retrying transient lock errors."""
        return self._retrying(lambda: self._transaction(read_only), fn)

    def _run_core(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction (``BEGIN IMMEDIATE``) on this thread's held connection.

        The hot path. SQLAlchemy owns the connection (pool), the transaction (the
        engine's ``begin`` hook issues ``BEGIN IMMEDIATE``; commit/rollback and their
        events) and the retry policy is :meth:`_run`'s; ``fn`` runs the pre-written
        statements of :mod:`daytrading.db.lifecycle_sql` on the DBAPI connection inside
        that transaction. Driver errors are re-raised as SQLAlchemy's exception types
        (``sqlalchemy.exc.OperationalError`` …), as a Core execution would raise them;
        a full disk or a damaged file as :class:`DatabaseUnavailableError`.

        Inline (the backtest), the first attempt issues ``BEGIN IMMEDIATE`` / ``COMMIT`` /
        ``ROLLBACK`` on the DBAPI connection itself (:meth:`_inline_transaction`: the same
        statements without SQLAlchemy's transaction bookkeeping, a fifth of a session's
        database time); a retry goes through :meth:`_core_transaction` as live.
        """
        if self._local.deadline is not None:  # fail fast: every attempt goes through the limited path
            return self._retry(self._core_transaction, fn)
        local = self._local
        conn = local.conn
        try:
            if conn is None or local.pid != os.getpid() or conn.closed or conn.invalidated:
                conn = self._held_connection()
            if self.inline:
                with self._traced(local.dbapi):  # type: ignore[arg-type]
                    return self._inline_transaction(local.dbapi, fn)  # type: ignore[arg-type]
            with conn.begin():
                return fn(local.dbapi)  # type: ignore[arg-type]
        except CoordinationError:
            raise
        except (sqlite3.Error, SADatabaseError) as exc:
            self._drop_connection()
            wrapped = _wrap(exc) if isinstance(exc, sqlite3.Error) else exc
            if _is_unavailable(wrapped):
                raise self._unavailable(wrapped) from exc
            if not _is_transient(wrapped):
                raise wrapped from (exc if wrapped is not exc else exc.__cause__)
        except BaseException:
            self._drop_connection()
            raise
        return self._retry(self._core_transaction, fn)

    @staticmethod
    def _inline_transaction(dbapi: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(dbapi)`` between ``BEGIN IMMEDIATE`` and ``COMMIT`` (``ROLLBACK`` when it raises).

        The held connection is in autocommit mode between transactions (``isolation_level``
        None, SQLAlchemy's own transaction never begun), so this is the transaction
        SQLAlchemy's ``begin`` hook would open. Driver errors (a failed rollback's too)
        propagate as ``sqlite3`` errors; :meth:`_run_core` wraps them and drops the connection.
        """
        dbapi.execute("BEGIN IMMEDIATE")
        try:
            result = fn(dbapi)
        except BaseException:
            dbapi.rollback()
            raise
        dbapi.commit()
        return result

    def _retrying(self, open_tx: Callable[[], Any], fn: Callable[[Any], T]) -> T:
        """Run ``fn`` inside ``open_tx()``, retrying transient lock errors (tenacity)."""
        try:  # fast path: most transactions never meet a lock
            with open_tx() as handle:
                return fn(handle)
        except SADatabaseError as exc:
            if _is_unavailable(exc):
                raise self._unavailable(exc) from exc
            if not _is_transient(exc):
                raise
        return self._retry(open_tx, fn)

    def _retry(self, open_tx: Callable[[], Any], fn: Callable[[Any], T]) -> T:
        """The slow path after a transient lock error: exponential back-off with jitter.

        Patient (``retry_seconds``) unless this thread has a fail-fast deadline; then
        tenacity stops before a sleep would pass it.
        """
        left = self._remaining()
        budget = self._retry_seconds if left is None else max(0.0, left)
        stop = stop_after_delay(budget) if left is None else stop_before_delay(budget)
        try:
            for attempt in Retrying(
                retry=retry_if_exception(_is_transient),
                wait=wait_exponential_jitter(initial=0.01, max=1.0),
                stop=stop,
                reraise=False,
            ):
                with attempt, open_tx() as handle:
                    return fn(handle)
        except RetryError as exc:
            raise self._busy_error(budget) from exc
        except SADatabaseError as exc:
            if _is_unavailable(exc):
                raise self._unavailable(exc) from exc
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _transaction(self, read_only: bool) -> Iterator[Session]:
        conn = self.engine.connect()
        if read_only:
            conn = conn.execution_options(sqlite_begin="DEFERRED")
        dbapi = conn.connection.driver_connection
        try:
            with self._busy_limit(dbapi), self._traced(dbapi) if self.inline and not read_only else nullcontext(), \
                    conn.begin(), Session(bind=conn, expire_on_commit=False) as session:
                yield session
                session.flush()
        finally:
            conn.close()

    @contextmanager
    def _core_transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction on this thread's held connection (the retry path).

        Checking a connection out of the pool and back in (with its reset) cost as much
        as the statements, so each thread of this Coordinator keeps one pooled
        connection between calls. Between transactions it is idle in autocommit mode:
        it holds no lock and no read snapshot. Any error other than a
        :class:`CoordinationError` (raised after the rollback, connection healthy)
        returns the connection to the pool; the next call checks out a fresh one.
        """
        try:
            conn = self._held_connection()
            dbapi = self._local.dbapi
            with self._busy_limit(dbapi), self._traced(dbapi) if self.inline else nullcontext(), \
                    conn.begin():  # type: ignore[arg-type]
                yield dbapi  # type: ignore[misc]
        except (CoordinationError, DatabaseBusyError):
            raise
        except sqlite3.Error as exc:
            self._drop_connection()
            raise _wrap(exc) from exc
        except BaseException:
            self._drop_connection()
            raise

    def _held_connection(self) -> Connection:
        """This thread's connection, checked out of the pool on first use (or after an error)."""
        local = self._local
        conn, pid = local.conn, os.getpid()
        if conn is None or local.pid != pid or conn.closed or conn.invalidated:
            # after a fork the parent's connection is not ours to use or close: forget it
            conn = local.conn = self.engine.connect()
            local.dbapi = conn.connection.driver_connection
            local.pid = pid
        return conn

    def _drop_connection(self) -> None:
        """Give the held connection back to the pool (after an error); the next call takes a fresh one."""
        local = self._local
        conn, local.conn, local.dbapi = local.conn, None, None
        if conn is not None and local.pid == os.getpid():
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection: let the pool discard it
                conn.invalidate()

    def _now(self) -> datetime:
        return self.clock.now()

    def session_date(self, when: datetime | None = None) -> date:
        """XNYS session date of ``when`` (default: now on this coordinator's clock)."""
        return session_date(when or self._now())

    # ------------------------------------------------------------------ entries

    def claim_entry(
        self,
        symbol: str,
        quantity: float,
        *,
        agent: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ClaimResult:
        """Atomically claim ``symbol`` for an entry (status ``PENDING_ENTRY``).

        Fails (``ok=False``) when the symbol is active, closed in the current
        session, or the global freeze is set (the freeze file is checked first,
        before any SQL). Call before sending the BUY.
        """
        symbol = symbol.upper()
        if side_files.is_frozen_file(self.db_path):
            return ClaimResult(False, symbol, "frozen")
        now = self._now()
        today = self.session_date(now)

        def tx(c: sqlite3.Connection) -> ClaimResult:
            today_text = today.isoformat()
            frozen, active, closed = c.execute(
                sql.CLAIM_CHECK, (FREEZE_FLAG, symbol, symbol, today_text)
            ).fetchone()
            if frozen is not None:
                return ClaimResult(False, symbol, "frozen")
            if active:
                return ClaimResult(False, symbol, "active")
            if closed:
                return ClaimResult(False, symbol, "closed_today")
            now_text = utc_text(now)
            c.execute(
                sql.CLAIM_INSERT,  # columns: sql.CLAIM_ATTRS
                (symbol, 0.0, float(quantity), agent or self.bot, PositionStatus.PENDING_ENTRY, now_text,
                 json_text(meta), today_text, now_text, self.bot, self._pid, 0),
            )
            return ClaimResult(True, symbol)

        return self._run_core(tx)

    def record_entry_order(self, symbol: str, client_id: int, order_id: int, perm_id: int | None) -> None:
        """Store the entry order's ids on the claim (so a restart can resolve it)."""
        self._update(symbol, entry_client_id=client_id, entry_order_id=order_id, entry_perm_id=perm_id)

    def confirm_entry(
        self,
        symbol: str,
        quantity: float,
        entry_price: float,
        *,
        entry_time: datetime | None = None,
        perm_id: int | None = None,
    ) -> PositionView:
        """Mark the claim ``OPEN`` with the filled ``quantity`` and average ``entry_price``.

        Also used for a later partial fill of an OPEN position (updates quantity and
        price). Target and stop prices are computed from the entry price.

        Raises:
            CoordinationError: no claim or open position for ``symbol``, or ``quantity`` <= 0.
        """
        symbol = symbol.upper()
        if quantity <= 0:
            raise CoordinationError(f"{symbol}: confirm_entry needs a positive quantity, got {quantity}")
        now = self._now()
        tgt, stp = target_and_stop(entry_price, self.profit_target, self.stop_loss)

        def tx(c: sqlite3.Connection) -> PositionView:
            found = c.execute(sql.POSITION_BY_SYMBOL, (symbol,)).fetchone()
            if found is None or found[_F_STATUS] not in (PositionStatus.PENDING_ENTRY, PositionStatus.OPEN):
                state = found[_F_STATUS] if found is not None else "absent"
                raise CoordinationError(f"{symbol}: cannot confirm an entry in state {state}")
            # the row with the fields an entry sets (indexes: id first, then PositionView's fields)
            values = sql.decode_position(found)
            row_id = values[0]
            values[_F_STATUS] = PositionStatus.OPEN
            values[_F_QUANTITY] = float(quantity)
            values[_F_ENTRY_PRICE] = float(entry_price)
            values[_F_ENTRY_TIMESTAMP] = values[_F_ENTRY_TIMESTAMP] or entry_time or now
            values[_F_TARGET] = tgt
            values[_F_STOP] = stp
            if perm_id:
                values[_F_ENTRY_PERM_ID] = perm_id
            values[_F_LAST_UPDATED] = now
            view = PositionView(*values[1:])
            c.execute(
                sql.CONFIRM_UPDATE,
                (view.status, view.quantity, view.entry_price, utc_text(view.entry_timestamp), tgt, stp,
                 view.entry_perm_id, utc_text(now), row_id),
            )
            return view

        return self._run_core(tx)

    def release_claim(self, symbol: str, reason: str = "") -> bool:
        """Delete a ``PENDING_ENTRY`` claim whose order is dead. Returns True if one was removed."""
        symbol = symbol.upper()

        def tx(s: Session) -> bool:
            res = s.execute(
                delete(ActivePosition).where(
                    ActivePosition.symbol == symbol,
                    ActivePosition.status == PositionStatus.PENDING_ENTRY,
                )
            )
            if res.rowcount and reason:
                self._event(s, "INFO", "claim_released", symbol, f"claim released: {reason}")
            return bool(res.rowcount)

        return self._run(tx)

    def adopt_position(self, symbol: str, quantity: float, avg_cost: float, *, reason: str = "") -> PositionView:
        """Insert an ``OPEN`` row (agent ``adopted``) for a broker position the database lacks.

        Raises:
            CoordinationError: the symbol already has a row.
        """
        symbol = symbol.upper()
        now = self._now()
        tgt, stp = target_and_stop(avg_cost, self.profit_target, self.stop_loss)

        def tx(s: Session) -> PositionView:
            if self._row(s, symbol) is not None:
                raise CoordinationError(f"{symbol}: already has an active row, cannot adopt")
            row = ActivePosition(
                symbol=symbol,
                quantity=float(quantity),
                requested_quantity=float(quantity),
                entry_price=float(avg_cost),
                entry_timestamp=now,
                agent_name="adopted",
                profit_target_price=tgt,
                stop_loss_price=stp,
                status=PositionStatus.OPEN,
                last_updated=now,
                session_date=self.session_date(now),
                claimed_at=now,
                claimed_by=self.bot,
                claim_pid=self._pid,
                exit_attempts=0,
            )
            s.add(row)
            self._event(s, "WARNING", "adopted", symbol, reason or f"adopted broker position {quantity} @ {avg_cost}")
            s.flush()
            return PositionView.of(row)

        return self._run(tx)

    def set_quantity(self, symbol: str, quantity: float) -> None:
        """Set the held quantity of an OPEN/EXITING row (broker-reported truth)."""
        self._update(symbol, quantity=float(quantity))

    # ------------------------------------------------------------------ exits

    def set_target_order(self, symbol: str, order_id: int | None, perm_id: int | None) -> None:
        """Remember the working profit-target order (``None`` to clear it)."""
        self._update(symbol, target_order_id=order_id, target_perm_id=perm_id)

    def set_exit_order(self, symbol: str, order_id: int | None, perm_id: int | None) -> None:
        """Remember the SELL in flight for an EXITING position."""
        self._update(symbol, exit_order_id=order_id, exit_perm_id=perm_id)

    def take_exit_lock(self, symbol: str, reason: str) -> bool:
        """Move ``OPEN → EXITING`` atomically; only one exit may be in flight per symbol.

        Returns False when the symbol is not OPEN (already exiting, pending, or gone).
        """
        symbol = symbol.upper()
        now = self._now()

        def tx(c: sqlite3.Connection) -> bool:
            now_text = utc_text(now)
            res = c.execute(
                sql.EXIT_LOCK, (PositionStatus.EXITING, reason, now_text, now_text, symbol, PositionStatus.OPEN)
            )
            return bool(res.rowcount)

        return self._run_core(tx)

    def release_exit_lock(self, symbol: str) -> bool:
        """Move ``EXITING → OPEN`` (the exit failed and will be retried)."""
        symbol = symbol.upper()
        now = self._now()

        def tx(s: Session) -> bool:
            res = s.execute(
                update(ActivePosition)
                .where(ActivePosition.symbol == symbol, ActivePosition.status == PositionStatus.EXITING)
                .values(status=PositionStatus.OPEN, exit_order_id=None, exit_perm_id=None, last_updated=now)
            )
            return bool(res.rowcount)

        return self._run(tx)

    def close_position(
        self,
        symbol: str,
        exit_price: float,
        exit_reason: str,
        *,
        exit_time: datetime | None = None,
        quantity: float | None = None,
        commission: float = 0.0,
        exit_perm_id: int | None = None,
        executions: Sequence[Execution] = (),
    ) -> TradeView | None:
        """Close ``symbol``: delete the active row, record closed-today and a trade, in one transaction.

        Idempotent: returns ``None`` when there is no active row (already closed), so a
        fill seen twice is recorded once.

        The trade row comes from the execution ledger when the position's lot (executions
        of the symbol since its claim, this session) holds SELLs: quantity = shares sold,
        exit price = their average, entry price = the lot's BUY average (else the row's),
        commission = every commission of both legs, P&L = sells − sold × entry − commission.
        ``executions`` are recorded first (idempotently, same transaction), so an exit
        journalled late still lands with its fills. Without ledger SELLs the arguments are used.

        Args:
            exit_price: average fill price of the exit (dollars); used without ledger SELLs.
            exit_reason: one of ``target``, ``stop``, ``eod``, ``manual``, ``reconciled``, ``liquidate_all``.
            quantity: shares sold (default: the row's quantity); used without ledger SELLs.
            commission: dollars, entry and exit commissions if known; used without ledger SELLs.
            executions: fills to record before closing (see :meth:`record_executions`).

        Raises:
            CoordinationError: unknown exit reason.
        """
        symbol = symbol.upper()
        if exit_reason not in EXIT_REASONS:
            raise CoordinationError(f"exit_reason must be one of {EXIT_REASONS}, got {exit_reason!r}")
        now = self._now()
        when = exit_time or now
        today = self.session_date(when)

        def tx(c: sqlite3.Connection) -> TradeView | None:
            if executions:
                self._upsert_executions(c, executions, now)
            row = c.execute(sql.CLOSE_DELETE, (symbol,)).fetchone()
            if row is None:
                return None
            row_qty, entry, entry_time_text, agent_name, entry_perm, row_exit_perm, claimed_text = row
            since = utc_value(claimed_text) or utc_value(entry_time_text)
            fills = ledger.lot(self._executions(c, symbol, today), symbol, since)
            summary = ledger.summarize(fills, entry)
            price, fee = float(exit_price), float(commission)
            if summary.sold > 0 and summary.avg_exit is not None:
                qty, price, fee, entry = summary.sold, summary.avg_exit, summary.commission, summary.avg_entry
                pnl = None if summary.pnl is None else round(summary.pnl, 2)
            else:
                qty = float(quantity if quantity is not None else row_qty)
                pnl = None if entry is None else round((price - entry) * qty - fee, 2)
            pct = None if not entry else round((price / entry - 1.0) * 100.0, 4)
            trade = TradeView(
                symbol=symbol,
                session_date=today,
                quantity=qty,
                entry_time=utc_value(entry_time_text),
                entry_price=entry,
                exit_time=when,
                exit_price=price,
                pnl=pnl,
                pnl_pct=pct,
                commission=fee,
                exit_reason=exit_reason,
                bot=agent_name,
                exit_bot=self.bot,
                entry_perm_id=entry_perm,
                exit_perm_id=exit_perm_id or row_exit_perm,
            )
            today_text, when_text = today.isoformat(), utc_text(when)
            c.execute(
                sql.TRADE_INSERT,  # columns: sql.TRADE_ATTRS
                (symbol, today_text, qty, utc_text(trade.entry_time), entry, when_text, trade.exit_price, pnl, pct,
                 trade.commission, exit_reason, agent_name, self.bot, entry_perm, trade.exit_perm_id),
            )
            c.execute(
                sql.CLOSED_UPSERT,  # columns: sql.CLOSED_ATTRS
                (symbol, today_text, qty, entry, trade.exit_price, exit_reason, pct, agent_name, when_text),
            )
            return trade

        return self._run_core(tx)

    # ------------------------------------------------------------------ the execution ledger

    def record_executions(self, executions: Sequence[Execution]) -> None:
        """Record fills in the ledger, idempotently by execId (one transaction).

        A second record of the same execId only fills in what the first lacked (the
        commission and realised P&L of IB's later commission report, the permId).
        """
        if not executions:
            return
        now = self._now()
        self._run_core(lambda c: self._upsert_executions(c, executions, now))

    def get_executions(self, symbol: str, day: date | None = None, *, since: datetime | None = None) -> list[Execution]:
        """The ledger's executions of ``symbol`` in session ``day`` (default: current), by time;
        with ``since``, only the position's lot (:func:`daytrading.coordination.ledger.lot`)."""
        symbol = symbol.upper()
        rows = self.get_executions_of([symbol], day)[symbol]
        return ledger.lot(rows, symbol, since) if since is not None else rows

    def get_executions_of(self, symbols: Sequence[str], day: date | None = None) -> dict[str, list[Execution]]:
        """The ledger's executions of each of ``symbols`` in session ``day`` (default: current), by time;
        one read transaction (no write lock)."""
        day = day or self.session_date()
        wanted = sorted({s.upper() for s in symbols})

        def tx(s: Session) -> dict[str, list[Execution]]:
            out: dict[str, list[Execution]] = {sym: [] for sym in wanted}
            if not wanted:
                return out
            q = (select(ExecutionRecord)
                 .where(ExecutionRecord.session_date == day, ExecutionRecord.symbol.in_(wanted))
                 .order_by(ExecutionRecord.time, ExecutionRecord.exec_id))
            for r in s.scalars(q):
                out[r.symbol].append(Execution(r.exec_id, r.symbol, r.side, r.shares, r.price, r.time, r.commission,
                                               r.realized_pnl, r.perm_id, r.order_id, r.client_id, r.order_ref,
                                               r.account))
            return out

        return self._read(("executions", tuple(wanted), day), (ExecutionRecord.__tablename__,), tx)

    def _upsert_executions(self, c: sqlite3.Connection, executions: Sequence[Execution], now: datetime) -> None:
        now_text = utc_text(now)
        c.executemany(
            sql.EXECUTION_UPSERT,  # columns: sql.EXECUTION_ATTRS
            [(e.exec_id, self.session_date(e.time).isoformat(), e.symbol.upper(), e.side, float(e.shares),
              float(e.price), e.commission, e.realized_pnl, utc_text(e.time), e.perm_id or None, e.order_id,
              e.client_id, e.order_ref or None, e.account or None, self.bot, now_text) for e in executions],
        )

    @staticmethod
    def _executions(c: sqlite3.Connection, symbol: str, day: date) -> list[Execution]:
        out = []
        for (exec_id, _day, sym, side, shares, price, fee, realized, when, perm_id, order_id, client_id, ref,
             account, _bot, _at) in c.execute(sql.EXECUTIONS_OF_SYMBOL, (symbol, day.isoformat())):
            out.append(Execution(exec_id, sym, side, shares, price, utc_value(when), fee, realized, perm_id,  # type: ignore[arg-type]
                                 order_id, client_id, ref, account))
        return out

    # ------------------------------------------------------------------ queries

    def get_position(self, symbol: str) -> PositionView | None:
        """The active row for ``symbol`` or ``None``."""
        symbol = symbol.upper()
        return self._read(("position", symbol), (ActivePosition.__tablename__,),
                          lambda s: (lambda r: PositionView.of(r) if r else None)(self._row(s, symbol)))

    def is_position_active(self, symbol: str) -> bool:
        """True when ``symbol`` has a row in ``active_positions`` (any status)."""
        return self.get_position(symbol) is not None

    def was_closed_today(self, symbol: str, day: date | None = None) -> bool:
        """True when ``symbol`` was closed in the session ``day`` (default: current session)."""
        symbol = symbol.upper()
        day = day or self.session_date()
        return bool(
            self._read(
                ("closed", symbol, day), (ClosedPositionToday.__tablename__,),
                lambda s: s.scalar(
                    select(ClosedPositionToday.id).where(
                        ClosedPositionToday.symbol == symbol, ClosedPositionToday.close_date == day
                    )
                ),
            )
        )

    def get_active_positions(self, statuses: tuple[str, ...] | None = None) -> list[PositionView]:
        """Every active row (optionally only some statuses), ordered by symbol."""

        def tx(s: Session) -> list[PositionView]:
            q = select(ActivePosition).order_by(ActivePosition.symbol)
            if statuses:
                q = q.where(ActivePosition.status.in_(statuses))
            return [PositionView.of(r) for r in s.scalars(q)]

        return self._read(("active", statuses), (ActivePosition.__tablename__,), tx)

    def get_closed_today(self, day: date | None = None) -> list[dict[str, Any]]:
        """Rows of ``closed_positions_today`` for session ``day`` (default: current)."""
        day = day or self.session_date()

        def tx(s: Session) -> list[dict[str, Any]]:
            rows = s.scalars(
                select(ClosedPositionToday)
                .where(ClosedPositionToday.close_date == day)
                .order_by(ClosedPositionToday.timestamp)
            )
            return [_as_dict(r) for r in rows]

        return self._read(("closed_today", day), (ClosedPositionToday.__tablename__,), tx)

    def get_trades_by_date(self, day: date | None = None) -> list[TradeView]:
        """Trades of session ``day`` (default: current), by exit time."""
        day = day or self.session_date()

        def tx(s: Session) -> list[TradeView]:
            rows = s.scalars(select(Trade).where(Trade.session_date == day).order_by(Trade.exit_time, Trade.id))
            return [TradeView.of(r) for r in rows]

        return self._run(tx, read_only=True)

    def realized_pnl(self, day: date | None = None) -> float:
        """Sum of trade P&L in dollars for session ``day``."""
        day = day or self.session_date()
        return float(
            self._read(
                ("realized_pnl", day), (Trade.__tablename__,),
                lambda s: s.scalar(select(func.coalesce(func.sum(Trade.pnl), 0.0)).where(Trade.session_date == day)),
            )
        )

    def latest_session_date(self) -> date | None:
        """The newest session date anything was recorded for (trades, orders, gate decisions,
        events, positions), or ``None`` for an empty database.

        After a sim replay or backtest of a recorded day this is that day, not the clock's.
        """

        def tx(s: Session) -> date | None:
            days = [s.scalar(select(func.max(col))) for col in (
                Trade.session_date, OrderRecord.session_date, GateDecision.session_date, Event.session_date,
                ActivePosition.session_date)]
            found = [d for d in days if d is not None]
            return max(found) if found else None

        return self._run(tx, read_only=True)

    def has_session_records(self, day: date) -> bool:
        """True when trades, orders, gate decisions or events are recorded for session ``day``."""

        def tx(s: Session) -> bool:
            return any(s.scalar(select(col).where(col == day).limit(1)) is not None for col in (
                Trade.session_date, OrderRecord.session_date, GateDecision.session_date, Event.session_date))

        return self._run(tx, read_only=True)

    def clear_closed_today(self, before: date | None = None) -> int:
        """Delete closed-today rows of sessions before ``before`` (default: current session).

        Returns the number of rows removed. Called at the start of each session.
        """
        before = before or self.session_date()

        def tx(s: Session) -> int:
            res = s.execute(delete(ClosedPositionToday).where(ClosedPositionToday.close_date < before))
            return int(res.rowcount or 0)

        return self._run(tx)

    # ------------------------------------------------------------------ freeze

    def freeze(self, reason: str) -> None:
        """Set the global freeze: no bot places an order until :meth:`unfreeze`.

        The freeze file goes first (it works while the database is locked, full or
        damaged), then the database flag and a CRITICAL event.

        Raises:
            DatabaseBusyError, DatabaseUnavailableError: the database part failed (the
                freeze file, if it could be written, is in place and holds the freeze).
        """
        now = self._now()
        if self.db_path is not None:
            try:
                side_files.set_freeze(self.db_path, reason, self.bot)
            except OSError as exc:
                log.error("freeze file not written; the database flag alone holds the freeze",
                          extra={"path": str(side_files.freeze_file(self.db_path)), "error": str(exc)})

        def tx(s: Session) -> None:
            s.merge(Flag(name=FREEZE_FLAG, value=reason or "frozen", set_by=self.bot, set_at=now))
            self._event(s, "CRITICAL", "freeze", None, f"global freeze set: {reason}")

        self._run(tx)

    def unfreeze(self) -> bool:
        """Clear the global freeze (database flag, then the freeze file); True if either was set.

        Raises:
            DatabaseBusyError, DatabaseUnavailableError: the flag could not be cleared;
                the freeze file is then kept, so both channels still agree (frozen).
            OSError: the freeze file exists but cannot be removed.
        """

        def tx(s: Session) -> bool:
            res = s.execute(delete(Flag).where(Flag.name == FREEZE_FLAG))
            if res.rowcount:
                self._event(s, "WARNING", "unfreeze", None, "global freeze cleared")
            return bool(res.rowcount)

        in_db = self._run(tx)
        in_file = side_files.clear_freeze(self.db_path) if self.db_path is not None else False
        return in_db or in_file

    def is_frozen_file(self) -> bool:
        """True while the freeze file exists: one ``stat``, no SQL, never raises (for the order gate)."""
        return side_files.is_frozen_file(self.db_path)

    def is_frozen(self) -> bool:
        """True while the global freeze is set (the freeze file is checked first, without SQL)."""
        if side_files.is_frozen_file(self.db_path):
            return True
        return self._read(("frozen",), (Flag.__tablename__,), lambda s: s.get(Flag, FREEZE_FLAG) is not None)

    def freeze_info(self) -> dict[str, Any] | None:
        """The freeze's reason (``value``), setter (``set_by``) and time (``set_at``), or ``None``.

        From the database flag; from the freeze file when only the file is set (then
        ``source`` is ``"file"``).
        """
        info = self._run(lambda s: (lambda f: _as_dict(f) if f else None)(s.get(Flag, FREEZE_FLAG)), read_only=True)
        if info is None:
            data = side_files.read_freeze(self.db_path)
            if data is not None:
                info = {"name": FREEZE_FLAG, "value": data.get("reason"), "set_by": data.get("set_by"),
                        "set_at": data.get("set_at"), "source": "file"}
        return info

    # ------------------------------------------------------------------ heartbeats

    def beat_file(self, state: str, detail: str | None = None, *, bot: str | None = None) -> bool:
        """Write only this bot's heartbeat file (no SQL; never raises). True when written."""
        if self.db_path is None:
            return False
        return side_files.write_heartbeat_file(self.db_path, bot or self.bot, state, detail, market_time=self._now())

    def heartbeat_files(self) -> dict[str, dict[str, Any]]:
        """Every bot's heartbeat file (see :func:`daytrading.coordination.freeze.read_heartbeat_files`)."""
        return side_files.read_heartbeat_files(self.db_path)

    def heartbeat(self, state: str, detail: str | None = None, *, bot: str | None = None) -> None:
        """Upsert this bot's heartbeat (``last_seen`` = wall time UTC, ``market_time`` = clock).

        The heartbeat file is written first, so the supervisor sees the bot alive even
        when this database write then fails.
        """
        bot = bot or self.bot
        self.beat_file(state, detail, bot=bot)
        wall = datetime.now(tz=UTC)
        market = self._now()

        def tx(s: Session) -> None:
            row = s.get(Heartbeat, bot)
            if row is None or row.pid != self._pid:
                s.merge(
                    Heartbeat(bot=bot, pid=self._pid, state=state, detail=detail, started_at=wall,
                              last_seen=wall, market_time=market)
                )
            else:
                row.state, row.detail, row.last_seen, row.market_time = state, detail, wall, market

        self._run(tx)

    def get_heartbeats(self) -> dict[str, dict[str, Any]]:
        """Every bot's heartbeat row as a dict, keyed by bot name."""
        return self._run(
            lambda s: {r.bot: _as_dict(r) for r in s.scalars(select(Heartbeat))}, read_only=True
        )

    # ------------------------------------------------------------------ orders, gates, events

    def record_order(
        self,
        *,
        client_id: int,
        order_id: int,
        symbol: str,
        side: str,
        order_type: str,
        quantity: float,
        status: str,
        perm_id: int | None = None,
        limit_price: float | None = None,
        time_in_force: str = "DAY",
        order_ref: str | None = None,
        purpose: str | None = None,
        filled_quantity: float = 0.0,
        avg_fill_price: float | None = None,
    ) -> None:
        """Insert or update the ``orders`` row of (client id, order id, session), keeping the permId."""
        now = self._now()
        today = self.session_date(now)

        def tx(s: Session) -> None:
            row = None
            if perm_id:
                row = s.scalar(select(OrderRecord).where(OrderRecord.perm_id == perm_id))
            if row is None:
                row = s.scalar(
                    select(OrderRecord).where(
                        OrderRecord.client_id == client_id,
                        OrderRecord.order_id == order_id,
                        OrderRecord.session_date == today,
                        OrderRecord.symbol == symbol.upper(),
                    )
                )
            if row is None:
                row = OrderRecord(
                    session_date=today, client_id=client_id, order_id=order_id, symbol=symbol.upper(),
                    side=side, order_type=order_type, quantity=float(quantity), limit_price=limit_price,
                    time_in_force=time_in_force or "DAY", order_ref=order_ref, purpose=purpose,
                    status=status, bot=self.bot, created_at=now, updated_at=now,
                )
                s.add(row)
            row.perm_id = perm_id or row.perm_id
            row.status = status
            row.filled_quantity = float(filled_quantity)
            row.avg_fill_price = avg_fill_price if avg_fill_price else row.avg_fill_price
            row.quantity = float(quantity)
            row.limit_price = limit_price if limit_price is not None else row.limit_price
            row.updated_at = now

        self._run(tx)

    def get_orders(self, day: date | None = None) -> list[dict[str, Any]]:
        """Orders of session ``day`` (default: current), oldest first."""
        day = day or self.session_date()
        return self._read(
            ("orders", day), (OrderRecord.__tablename__,),
            lambda s: [
                _as_dict(r)
                for r in s.scalars(
                    select(OrderRecord).where(OrderRecord.session_date == day).order_by(OrderRecord.created_at)
                )
            ],
        )

    def record_gate_decision(
        self,
        symbol: str,
        gate: str,
        passed: bool,
        reason: str,
        values: dict[str, Any] | None = None,
        *,
        when: datetime | None = None,
    ) -> None:
        """Store one gate verdict (the day-trader records every rejection)."""
        self.record_gate_decisions(
            [{"symbol": symbol, "gate": gate, "passed": passed, "reason": reason, "values": values, "when": when}])

    def record_gate_decisions(self, decisions: Sequence[dict[str, Any]]) -> None:
        """Store many gate verdicts in one transaction (keys as :meth:`record_gate_decision`).

        One ``executemany`` of the pre-written :data:`~daytrading.db.lifecycle_sql.GATE_INSERT`
        (the day-trader writes a batch every cycle; the ORM's unit of work cost ~1 ms a row).
        """
        now = self._now()
        rows = []
        stamps: dict[datetime, tuple[str | None, str]] = {}  # a cycle's verdicts share one time: encode it once
        for d in decisions:
            when = d.get("when") or now
            stamp = stamps.get(when)
            if stamp is None:
                stamp = stamps[when] = (utc_text(when), self.session_date(when).isoformat())
            rows.append((*stamp, d["symbol"].upper(), d["gate"], 1 if d["passed"] else 0, d["reason"],
                         json_text(d.get("values"))))
        if rows:
            self._run_core(lambda c: c.executemany(sql.GATE_INSERT, rows))

    def get_gate_decisions(
        self, symbol: str | None = None, day: date | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Latest gate decisions (newest first), optionally for one symbol / session."""

        def tx(s: Session) -> list[dict[str, Any]]:
            q = select(GateDecision).order_by(GateDecision.ts.desc(), GateDecision.id.desc()).limit(limit)
            if symbol:
                q = q.where(GateDecision.symbol == symbol.upper())
            if day:
                q = q.where(GateDecision.session_date == day)
            return [_as_dict(r) for r in s.scalars(q)]

        return self._run(tx, read_only=True)

    def gate_rejection_counts(self, day: date | None = None) -> dict[str, int]:
        """Rejections per gate for session ``day`` (default: current)."""
        day = day or self.session_date()

        def tx(s: Session) -> dict[str, int]:
            rows = s.execute(
                select(GateDecision.gate, func.count())
                .where(GateDecision.session_date == day, GateDecision.passed.is_(False))
                .group_by(GateDecision.gate)
                .order_by(func.count().desc())
            )
            return {gate: int(n) for gate, n in rows}

        return self._run(tx, read_only=True)

    def record_event(
        self, level: str, kind: str, message: str, *, symbol: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        """Store a notable event (level ``INFO``/``WARNING``/``CRITICAL``)."""
        self._run(lambda s: self._event(s, level, kind, symbol, message, data))

    def get_events(self, level: str | None = None, day: date | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Latest events, newest first."""

        def tx(s: Session) -> list[dict[str, Any]]:
            q = select(Event).order_by(Event.id.desc()).limit(limit)
            if level:
                q = q.where(Event.level == level)
            if day:
                q = q.where(Event.session_date == day)
            return [_as_dict(r) for r in s.scalars(q)]

        return self._run(tx, read_only=True)

    # ------------------------------------------------------------------ helpers

    def _event(
        self, s: Session, level: str, kind: str, symbol: str | None, message: str, data: dict[str, Any] | None = None
    ) -> None:
        now = self._now()
        s.add(
            Event(ts=now, session_date=self.session_date(now), bot=self.bot, level=level, kind=kind,
                  symbol=symbol, message=message, data=data)
        )

    @staticmethod
    def _row(s: Session, symbol: str) -> ActivePosition | None:
        return s.scalar(select(ActivePosition).where(ActivePosition.symbol == symbol))

    def _update(self, symbol: str, **values: Any) -> None:
        symbol = symbol.upper()
        values["last_updated"] = self._now()

        def tx(s: Session) -> None:
            res = s.execute(update(ActivePosition).where(ActivePosition.symbol == symbol).values(**values))
            if not res.rowcount:
                raise CoordinationError(f"{symbol}: no active position to update")

        self._run(tx)


def _fresh(value: Any) -> Any:
    """A cached read's result as the caller may keep and change it: new lists and dicts (their
    rows are frozen views or plain values)."""
    if isinstance(value, list):
        return [dict(v) if isinstance(v, dict) else v for v in value]
    if isinstance(value, dict):
        return {k: list(v) if isinstance(v, list) else v for k, v in value.items()}
    return value


def _as_dict(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__mapper__.column_attrs}
