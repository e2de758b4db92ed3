"""Coordination API throughput: full entry→exit lifecycles per second.

One lifecycle = claim, confirm, exit lock, close (4 transactions). Runs with 1, 2 and
4 processes on one WAL database, beside raw ``sqlite3`` doing the same statements in
the same transaction shape (BEGIN IMMEDIATE per step) in the same run, and prints both
rates and their ratio. Target: the API reaches at least half of the raw rate, and no
lock error escapes.

    python benchmarks/bench_coordination.py [--seconds 3] [--procs 1 2 4]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sqlite3
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

from daytrading.clock import NY, ManualClock
from daytrading.coordination import Coordinator
from daytrading.db import make_engine, upgrade

START = datetime(2020, 11, 17, 10, 0, tzinfo=NY)


def api_worker(db: str, wid: int, seconds: float, start_at: float, q: mp.Queue) -> None:
    coord = Coordinator(make_engine(db), f"bench-{wid}", ManualClock(START))
    coord.session_date()  # build the XNYS calendar (one-time ~0.5 s) outside the timed window
    coord.get_active_positions()  # and open the pooled connection
    while time.time() < start_at:
        pass
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


def raw_worker(db: str, wid: int, seconds: float, start_at: float, q: mp.Queue) -> None:
    con = sqlite3.connect(db, timeout=5, isolation_level=None)
    for p in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000", "foreign_keys=ON"):
        con.execute(f"PRAGMA {p}")
    today = date(2020, 11, 17).isoformat()
    while time.time() < start_at:
        pass
    n, errors, end = 0, 0, start_at + seconds

    def now() -> str:
        return datetime.now(tz=timezone.utc).isoformat(timespec="microseconds")

    while time.time() < end:
        sym = f"R{wid}_{n}"
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("SELECT name FROM flags WHERE name='freeze'").fetchone()
            con.execute("SELECT id FROM active_positions WHERE symbol=?", (sym,)).fetchone()
            con.execute("SELECT id FROM closed_positions_today WHERE symbol=? AND close_date=?", (sym, today)).fetchone()
            con.execute(
                "INSERT INTO active_positions (symbol, quantity, requested_quantity, agent_name, status, last_updated,"
                " session_date, claimed_at, claimed_by, claim_pid, exit_attempts) VALUES (?,0,10,'b','PENDING_ENTRY',?,?,?,'b',1,0)",
                (sym, now(), today, now()),
            )
            con.execute("COMMIT")
            con.execute("BEGIN IMMEDIATE")
            con.execute("SELECT * FROM active_positions WHERE symbol=?", (sym,)).fetchone()
            con.execute(
                "UPDATE active_positions SET status='OPEN', quantity=10, entry_price=100, entry_timestamp=?,"
                " profit_target_price=101.8, stop_loss_price=99.1, last_updated=? WHERE symbol=?",
                (now(), now(), sym),
            )
            con.execute("COMMIT")
            con.execute("BEGIN IMMEDIATE")
            con.execute(
                "UPDATE active_positions SET status='EXITING', exit_reason='target', exit_started_at=?,"
                " exit_attempts=exit_attempts+1, last_updated=? WHERE symbol=? AND status='OPEN'",
                (now(), now(), sym),
            )
            con.execute("COMMIT")
            con.execute("BEGIN IMMEDIATE")
            row = con.execute("SELECT id, quantity, entry_price, entry_timestamp FROM active_positions WHERE symbol=?",
                              (sym,)).fetchone()
            con.execute(
                "INSERT INTO trades (symbol, session_date, quantity, entry_time, entry_price, exit_time, exit_price, pnl,"
                " pnl_pct, commission, exit_reason, bot) VALUES (?,?,?,?,?,?,101.8,18,1.8,0,'target','b')",
                (sym, today, row[1], row[3], row[2], now()),
            )
            con.execute("SELECT id FROM closed_positions_today WHERE symbol=? AND close_date=?", (sym, today)).fetchone()
            con.execute(
                "INSERT INTO closed_positions_today (symbol, close_date, quantity, entry_price, exit_price, exit_reason,"
                " profit_loss_pct, agent_name, timestamp) VALUES (?,?,10,100,101.8,'target',1.8,'b',?)",
                (sym, today, now()),
            )
            con.execute("DELETE FROM active_positions WHERE id=?", (row[0],))
            con.execute("COMMIT")
            n += 1
        except sqlite3.OperationalError:
            errors += 1
            if con.in_transaction:
                con.execute("ROLLBACK")
    q.put((n, errors))


def measure(kind: str, procs: int, seconds: float) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.db")
        upgrade(db)
        ctx = mp.get_context("spawn")
        q: mp.Queue = ctx.Queue()
        target = api_worker if kind == "api" else raw_worker
        start_at = time.time() + 2.0
        ps = [ctx.Process(target=target, args=(db, i, seconds, start_at, q)) for i in range(procs)]
        for p in ps:
            p.start()
        results = [q.get(timeout=120) for _ in ps]
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
