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
    step                    API    raw  what the API adds
    ====================  =====  =====  ==============================================
    claim_entry              78     38  SQLAlchemy begin/commit, clock, encoding
    confirm_entry            66     26  … and decoding the row into a PositionView
    take_exit_lock           41     18  SQLAlchemy begin/commit
    close_position          130     86  … and the TradeView, P&L
    lifecycle               315    169  ratio 0.54 (0.57-0.61 in the multi-process run)
    ====================  =====  =====  ==============================================

The remaining gap is SQLAlchemy's transaction: ``Connection.begin()`` + commit costs
~19 µs vs 5.5 raw (~58 Python calls per transaction, including the engine's ``begin``
listener issuing ``BEGIN IMMEDIATE`` through ``exec_driver_sql``), i.e. ~55 µs of the
~145 µs per lifecycle; the rest is the Coordinator's own work (UTC/JSON encoding through
the models' types, views, P&L; ~58 calls).

History of this benchmark (API vs raw lifecycles/s, 1/2/4 processes):

* ORM Session per call, statements built and compiled per call: 118/136/– vs
  2979/3009/1194 (ratio 0.04; the 4-process API figure was lost to workers starting after
  the window, fixed since);
* pre-built Core statements + a held per-thread connection: 920/1052/1032 (ratio 0.26-0.56,
  the raw side then ran 12 statements);
* ``Connection.exec_driver_sql`` with the SQL of ``daytrading/db/lifecycle_sql.py`` (Core
  for the 26-column SELECT, whose result metadata SQLAlchemy caches): 1371/1296/1257 vs
  3572/3084/3195 (ratio 0.38/0.42/0.39). Each execute then cost 8-19 µs in SQLAlchemy vs
  2-3 raw (~48 Python calls: execution context, cursor, result object, event dispatch);
* now: the same SQL on the DBAPI connection inside the SQLAlchemy transaction:
  2128/2330/2262 vs 3506/3927/3973 (ratio 0.61/0.59/0.57), zero errors.
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
            qty, entry, entry_ts, agent, entry_perm, exit_perm, _claimed = con.execute(CLOSE_DELETE, (sym,)).fetchone()
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
