"""Coordination API throughput: full entry→exit lifecycles per second.

One lifecycle = claim, confirm, exit lock, close (4 transactions, 8 statements). Runs with
1, 2 and 4 processes on one WAL database, beside raw ``sqlite3`` running the very same SQL
(``daytrading/db/lifecycle_sql.py``) in the same transaction shape (BEGIN IMMEDIATE per
step) in the same run, and prints both rates and their ratio. Workers start together once
every one has imported, built its calendar and opened its connection. Target: the API
reaches at least half of the raw rate, and no lock error escapes.

    python benchmarks/bench_coordination.py [--seconds 3] [--procs 1 2 4]

Where the time goes (2-core shared machine, one process, medians per call, µs):

    ====================  =====  =====  ==============================================
    step                    API    raw  the API's extra work
    ====================  =====  =====  ==============================================
    claim_entry             180     59  1 tx, 2 driver-level statements
    confirm_entry           210     42  1 tx, Core SELECT of 26 columns, 1 statement
    take_exit_lock           82     26  1 tx, 1 statement
    close_position          253    109  1 tx, 3 statements (DELETE … RETURNING)
    lifecycle               724    236  ratio 0.33 (0.38-0.42 in the multi-process run)
    ====================  =====  =====  ==============================================

Per piece: ``begin()``+``commit`` through SQLAlchemy 19 µs vs 5.5 raw (its ``BEGIN
IMMEDIATE`` comes from the engine's ``begin`` listener, itself an ``exec_driver_sql``);
``Connection.exec_driver_sql`` 8-19 µs per statement vs 2-3 raw; the 26-column Core SELECT
36 µs vs 6 raw (a driver-level SELECT is slower still, ~55 µs, because SQLAlchemy rebuilds
the result metadata from the cursor on every call; a compiled statement caches it). In
calls: one lifecycle runs ~573 Python function calls inside SQLAlchemy (12 executes
including the 4 BEGINs, 4 commits, result objects, event dispatch) for 44 calls into
sqlite3; the Coordinator's own code is ~50 calls (encoding, views, P&L). SQLite itself is
not the cost: the raw lifecycle's 236 µs is the whole of SQLite's work.

What was already removed: ORM Session/unit of work and per-call statement construction
and compilation (was ~5,400 µs per lifecycle, ratio 0.04), pool checkout/return per call
(a per-thread held connection), generator context managers on the fast path. Measured and
not adopted: merging claim's check into an ``INSERT … SELECT … WHERE NOT EXISTS`` (no
gain); running the same SQL on the DBAPI cursor inside SQLAlchemy-managed transactions
reaches ~350 µs (ratio 0.5-0.7), i.e. the remaining gap is SQLAlchemy's per-execute
layer, and closing it means giving up SQLAlchemy (error translation, events, cursor
handling) for the statements.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sqlite3
import tempfile
import time
from datetime import date, datetime, UTC
from pathlib import Path
from typing import Any

from daytrading.clock import NY, ManualClock
from daytrading.coordination import Coordinator
from daytrading.db import lifecycle_sql, make_engine, upgrade

START = datetime(2020, 11, 17, 10, 0, tzinfo=NY)


def _wait_for_start(ready: mp.Queue, go: Any, go_time: Any) -> float:
    """Tell the parent this worker is warm, then wait for the common start instant (epoch seconds)."""
    ready.put(os.getpid())
    go.wait(timeout=300)
    start_at = go_time.value
    while time.time() < start_at:
        pass
    return start_at


def api_worker(db: str, wid: int, seconds: float, ready: mp.Queue, go: Any, go_time: Any, q: mp.Queue) -> None:
    coord = Coordinator(make_engine(db), f"bench-{wid}", ManualClock(START))
    coord.session_date()  # build the XNYS calendar (one-time ~0.5 s) outside the timed window
    coord.get_active_positions()  # and open the pooled connection
    start_at = _wait_for_start(ready, go, go_time)
    n, errors, end = 0, 0, start_at + seconds
    while time.time() < end:
        sym = f"A{wid}_{n}"
        try:
            coord.claim_entry(sym, 10)
            coord.confirm_entry(sym, 10, 100.0)
            coord.take_exit_lock(sym, "target")
            coord.close_position(sym, 101.8, "target")
            n += 1
        except Exception:  # noqa: BLE001 - counted and reported
            errors += 1
    q.put((n, errors))


# The raw baseline runs the very SQL the Coordinator issues (daytrading/db/lifecycle_sql.py):
# 8 statements in 4 BEGIN IMMEDIATE transactions per lifecycle.
CLAIM_CHECK, CLAIM_INSERT, POSITION_BY_SYMBOL, CONFIRM_UPDATE, EXIT_LOCK, CLOSE_DELETE, TRADE_INSERT, CLOSED_UPSERT = (
    lifecycle_sql.STATEMENTS[name]
    for name in ("CLAIM_CHECK", "CLAIM_INSERT", "POSITION_BY_SYMBOL", "CONFIRM_UPDATE", "EXIT_LOCK", "CLOSE_DELETE",
                 "TRADE_INSERT", "CLOSED_UPSERT")
)


def raw_worker(db: str, wid: int, seconds: float, ready: mp.Queue, go: Any, go_time: Any, q: mp.Queue) -> None:
    con = sqlite3.connect(db, timeout=5, isolation_level=None)
    for p in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000", "foreign_keys=ON"):
        con.execute(f"PRAGMA {p}")
    today = date(2020, 11, 17).isoformat()
    pid = os.getpid()
    start_at = _wait_for_start(ready, go, go_time)
    n, errors, end = 0, 0, start_at + seconds

    def now() -> str:
        return datetime.now(tz=UTC).isoformat(timespec="microseconds")

    while time.time() < end:
        sym = f"R{wid}_{n}"
        try:
            con.execute("BEGIN IMMEDIATE")
            frozen, active, closed = con.execute(CLAIM_CHECK, ("freeze", sym, sym, today)).fetchone()
            if frozen is None and not active and not closed:
                t = now()
                con.execute(CLAIM_INSERT, (sym, 0.0, 10.0, "b", "PENDING_ENTRY", t, None, today, t, "b", pid, 0))
            con.execute("COMMIT")
            con.execute("BEGIN IMMEDIATE")
            row = con.execute(POSITION_BY_SYMBOL, (sym,)).fetchone()
            t = now()
            con.execute(CONFIRM_UPDATE, ("OPEN", 10.0, 100.0, t, 101.8, 99.1, row[16], t, row[0]))
            con.execute("COMMIT")
            con.execute("BEGIN IMMEDIATE")
            t = now()
            con.execute(EXIT_LOCK, ("EXITING", "target", t, t, sym, "OPEN"))
            con.execute("COMMIT")
            con.execute("BEGIN IMMEDIATE")
            qty, entry, entry_ts, agent, entry_perm, exit_perm = con.execute(CLOSE_DELETE, (sym,)).fetchone()
            t = now()
            con.execute(TRADE_INSERT, (sym, today, qty, entry_ts, entry, t, 101.8, 18.0, 1.8, 0.0, "target", agent,
                                       "b", entry_perm, exit_perm))
            con.execute(CLOSED_UPSERT, (sym, today, qty, entry, 101.8, "target", 1.8, agent, t))
            con.execute("COMMIT")
            n += 1
        except sqlite3.OperationalError:
            errors += 1
            if con.in_transaction:
                con.execute("ROLLBACK")
    q.put((n, errors))


def measure(kind: str, procs: int, seconds: float) -> tuple[float, int]:
    """Run ``procs`` warm workers of ``kind`` for ``seconds`` from one common start; (lifecycles/s, errors)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.db")
        upgrade(db)
        ctx = mp.get_context("spawn")
        q: mp.Queue = ctx.Queue()
        ready: mp.Queue = ctx.Queue()
        go = ctx.Event()
        go_time = ctx.Value("d", 0.0)
        target = api_worker if kind == "api" else raw_worker
        ps = [ctx.Process(target=target, args=(db, i, seconds, ready, go, go_time, q)) for i in range(procs)]
        for p in ps:
            p.start()
        for _ in ps:  # every worker imported, built its calendar and opened its connection
            ready.get(timeout=300)
        go_time.value = time.time() + 0.2
        go.set()
        results = [q.get(timeout=300) for _ in ps]
        for p in ps:
            p.join()
        total = sum(r[0] for r in results)
        return total / seconds, sum(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    print(f"{'procs':>5} {'API lifecycles/s':>18} {'raw sqlite3/s':>15} {'ratio':>7} {'API errors':>11} {'raw errors':>11}")
    for procs in args.procs:
        api_rate, api_err = measure("api", procs, args.seconds)
        raw_rate, raw_err = measure("raw", procs, args.seconds)
        ratio = api_rate / raw_rate if raw_rate else float("nan")
        print(f"{procs:>5} {api_rate:>18.1f} {raw_rate:>15.1f} {ratio:>7.2f} {api_err:>11} {raw_err:>11}")
    print("target: ratio >= 0.5 and zero API errors")


if __name__ == "__main__":
    main()
