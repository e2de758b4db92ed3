"""How long an asyncio event loop stalls when a bot writes to a locked database.

Another connection holds the write lock for ``--lock`` seconds (as a SQLite browser with
unsaved edits does). Meanwhile a 10-ms ticker runs on the loop and one coordinator write
is made three ways, in the same run:

* **sync on the loop** (how the bots called the Coordinator before): the loop stalls
  for the whole wait, up to busy_timeout 5 s + 30 s of tenacity retries;
* **run_async** (patient, in a worker thread): the loop keeps ticking, the write lands
  when the lock clears;
* **run_async(timeout=0.5)** (fail fast): the loop keeps ticking, the caller gets
  ``DatabaseBusyError`` after ~0.5 s and can go on (the exit-manager's stop path).

Printed: the loop's worst stall and the call's duration for each, and the ratio of the
stalls (sync / async).

    python benchmarks/bench_db_lock.py [--lock 6]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from daytrading.clock import NY, ManualClock
from daytrading.coordination import Coordinator
from daytrading.db import make_engine, upgrade
from daytrading.errors import DatabaseBusyError


def hold_lock(db: Path, seconds: float, locked: threading.Event) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    locked.set()
    time.sleep(seconds)
    con.execute("ROLLBACK")
    con.close()


async def measure(coord: Coordinator, db: Path, lock: float, mode: str) -> tuple[float, float, str]:
    locked = threading.Event()
    holder = threading.Thread(target=hold_lock, args=(db, lock, locked))
    holder.start()
    locked.wait()
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    outcome = "written"
    try:
        if mode == "sync":
            coord.record_event("INFO", "bench", "sync")
        elif mode == "async":
            await coord.run_async(coord.record_event, "INFO", "bench", "async")
        else:
            await coord.run_async(coord.record_event, "INFO", "bench", "fail-fast", timeout=0.5)
    except DatabaseBusyError:
        outcome = "DatabaseBusyError"
    took = time.perf_counter() - t0
    done.set()
    await tick
    await asyncio.to_thread(holder.join)
    return worst, took, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=float, default=6.0, help="seconds the other connection holds the lock")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        upgrade(db)
        coord = Coordinator(make_engine(db), "bench", ManualClock(datetime(2020, 11, 17, 10, tzinfo=NY)))
        results = {}
        for mode in ("sync", "async", "fail-fast"):
            results[mode] = asyncio.run(measure(coord, db, args.lock, mode))
    print(f"write lock held {args.lock:.1f} s by another connection")
    print(f"{'call':<28}{'worst loop stall s':>20}{'call took s':>14}  outcome")
    for mode, label in (("sync", "sync on the loop (before)"), ("async", "run_async"),
                        ("fail-fast", "run_async(timeout=0.5)")):
        worst, took, outcome = results[mode]
        print(f"{label:<28}{worst:>20.3f}{took:>14.3f}  {outcome}")
    ratio = results["sync"][0] / max(results["async"][0], results["fail-fast"][0], 1e-6)
    print(f"loop stall ratio sync / async: {ratio:.0f}x")


if __name__ == "__main__":
    main()
