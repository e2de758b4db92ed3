"""Code run in child processes by the multi-process tests (real processes, real SQLite file)."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime

from daytrading.clock import NY, ManualClock
from daytrading.coordination import Coordinator
from daytrading.db.engine import make_engine

CLOCK_START = datetime(2020, 11, 17, 10, 0, tzinfo=NY)


def claim_worker(db: str, worker: int, symbols: list[str], start_at: float, out: str) -> None:
    """Claim every symbol as fast as possible; write what was won and any error."""
    coord = Coordinator(make_engine(db), f"worker-{worker}", ManualClock(CLOCK_START))
    won: list[str] = []
    errors: list[str] = []
    while time.time() < start_at:  # line up the start of all processes
        pass
    for sym in symbols:
        try:
            if coord.claim_entry(sym, 100).ok:
                won.append(sym)
        except Exception as exc:  # noqa: BLE001 - the test asserts there are none
            errors.append(f"{type(exc).__name__}: {exc}")
    with open(out, "w") as fh:
        json.dump({"won": won, "errors": errors}, fh)


def close_and_hang(db: str, symbol: str, ready_file: str) -> None:
    """Start closing ``symbol``; just before COMMIT, tell the parent and wait to be killed."""
    from sqlalchemy import event

    engine = make_engine(db)

    def before_commit(conn):  # noqa: ANN001
        with open(ready_file, "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(600)

    event.listen(engine, "commit", before_commit)
    coord = Coordinator(engine, "exit-manager", ManualClock(CLOCK_START))
    coord.close_position(symbol, 101.0, "target")


def lifecycle_loop(db: str, prefix: str, n: int, ready_file: str = "") -> None:
    """Run full lifecycles until killed (for random-instant SIGKILL tests).

    Writes ``ready_file`` once the first lifecycle is done.
    """
    coord = Coordinator(make_engine(db), "worker", ManualClock(CLOCK_START))
    for i in range(n):
        if i == 1 and ready_file:
            with open(ready_file, "w") as fh:
                fh.write("1")
        sym = f"{prefix}{i}"
        if coord.claim_entry(sym, 10).ok:
            coord.confirm_entry(sym, 10, 100.0)
            coord.take_exit_lock(sym, "target")
            coord.close_position(sym, 101.8, "target")


if __name__ == "__main__":
    fn = globals()[sys.argv[1]]
    fn(*json.loads(sys.argv[2]))
