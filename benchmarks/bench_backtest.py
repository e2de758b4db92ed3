"""Backtest speed, where the time goes, determinism and fidelity, measured in one run.

Data: ``shared/data/market/alphavantage_1min`` (39 symbols, pre-market included).

Printed:

1. **Speed**: sessions per minute on one core (the process is pinned to CPU 0 with
   ``os.sched_setaffinity``; CPU seconds and wall seconds per session) for ``--sessions``
   sessions of the whole folder (default 10; target ≥ 6 sessions/min/core), and beside it
   one session through the multi-process supervisor at speed 390 (``--supervisor``), wall
   seconds, and the ratio.
2. **Where the time goes**: one session under ``cProfile``, own time grouped by package:
   sim-gateway (encode, matching), ib_async (decode), bots (and signals, scanners), database
   (coordination, SQLAlchemy, sqlite3), asyncio + looptime, other; shares of the total.
3. **Determinism**: ``--determinism`` sessions (default 5) run twice; fingerprints compared.
4. **Fidelity** (``--fidelity``): the first hour (09:30–10:30) of ``--day`` through the
   supervisor at speed 30 beside the backtest of the same hour: both trade lists side by
   side with the differences; and the median and p90 of |exit − stop| / stop over the stop
   exits of ``--sessions`` sessions at path step 15 s (four points) and 1 s.

    python benchmarks/bench_backtest.py [--sessions 10] [--determinism 5] [--supervisor] [--fidelity]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("DAYTRADING_MARKET_DATA", ROOT.parent / "shared" / "data" / "market")) / "alphavantage_1min"

GROUPS = (
    ("sim-gateway", ("daytrading/sim_gateway",)),
    ("ib_async decode", ("ib_async",)),
    ("database", ("daytrading/coordination", "daytrading/db", "sqlalchemy", "sqlite3", "method 'execute'",
                  "method 'commit'", "method 'fetchall'")),
    ("bots", ("daytrading/bots", "daytrading/signals", "daytrading/scanners", "daytrading/broker")),
    ("asyncio + looptime", ("asyncio", "looptime", "selectors")),
)


def _quiet() -> None:
    import logging

    logging.basicConfig(level=logging.CRITICAL)
    for name in ("daytrading", "ib_async"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def run(day: date, settings, **kw):  # noqa: ANN001, ANN201
    from daytrading.backtest import run_session

    return run_session(DATA, day, settings, **kw)


def speed(days: list[date], settings) -> list:  # noqa: ANN001
    results = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for d in days:
        c, w = time.process_time(), time.perf_counter()
        r = run(d, settings)
        results.append(r)
        print(f"  {d}  cpu {time.process_time() - c:6.1f} s  wall {time.perf_counter() - w:6.1f} s  "
              f"trades {len(r.trades):3d}  P&L {r.pnl:+9.2f} $")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"speed: {len(days)} sessions, {cpu / len(days):.1f} CPU s and {wall / len(days):.1f} wall s per session "
          f"= {60 * len(days) / cpu:.2f} sessions/min/core (target >= 6)")
    return results


def supervisor_session(day: date, speed_x: float, end: str | None = None) -> tuple[float, list[dict]]:
    """Wall seconds of one supervisor sim run and its trades (from its database)."""
    from daytrading.coordination import Coordinator
    from daytrading.db.engine import make_engine

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DAYTRADING_PATHS__DATABASE": f"{tmp}/t.db", "DAYTRADING_PATHS__LOG_DIR": f"{tmp}/logs",
               "DAYTRADING_SIM__PORT": "4591", "DAYTRADING_DASHBOARD__ENABLED": "false"}
        if end:
            env["DAYTRADING_SIM__START"] = f"{day.isoformat()}T09:30:00-05:00"
        argv = [sys.executable, "-m", "daytrading", "supervisor", "--sim", "--data", str(DATA), "--date",
                day.isoformat(), "--speed", repr(speed_x)]
        t = time.perf_counter()
        # a first-hour run is stopped by the timeout; the trades so far are in the database
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(argv, env=env, cwd=tmp, capture_output=True, timeout=(3600 / speed_x + 60) if end else 900)
        wall = time.perf_counter() - t
        from daytrading.clock import ManualClock, NY

        coord = Coordinator(make_engine(Path(tmp) / "t.db"), "bench", ManualClock(datetime(day.year, day.month,
                                                                                              day.day, 12, tzinfo=NY)))
        trades = [{"symbol": v.symbol, "entry_time": v.entry_time, "exit_time": v.exit_time, "pnl": v.pnl,
                   "exit_reason": v.exit_reason} for v in coord.get_trades_by_date(day)]
    return wall, trades


def where_time_goes(day: date, settings) -> None:  # noqa: ANN001
    prof = cProfile.Profile()
    prof.enable()
    run(day, settings)
    prof.disable()
    stats = pstats.Stats(prof)
    totals = {name: 0.0 for name, _ in GROUPS}
    totals["other"] = 0.0
    for (filename, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        where = f"{filename} {func}"  # built-ins (sqlite3's execute/commit) have no file name
        for name, keys in GROUPS:
            if any(k in where for k in keys):
                totals[name] += tt
                break
        else:
            totals["other"] += tt
    whole = sum(totals.values()) or 1.0
    print("where the time goes (one session, own time under cProfile):")
    for name, t in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {name:20s} {t:7.1f} s  {100 * t / whole:5.1f} %")


def slippage(results) -> str:  # noqa: ANN001
    rel = [abs(t.exit_price - t.stop_price) / t.stop_price for r in results for t in r.trades
           if t.exit_reason == "stop" and t.stop_price]
    if not rel:
        return "no stop exits"
    rel.sort()
    p90 = rel[min(len(rel) - 1, int(0.9 * len(rel)))]
    return f"{len(rel)} stop exits: median {100 * statistics.median(rel):.3f} %, p90 {100 * p90:.3f} %"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--determinism", type=int, default=5)
    p.add_argument("--supervisor", action="store_true", help="also time one session through the supervisor at 390x")
    p.add_argument("--fidelity", action="store_true", help="first hour via the supervisor at speed 30 vs backtest")
    p.add_argument("--day", default="2020-11-17")
    args = p.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    _quiet()
    from daytrading.backtest import list_sessions, settings_with
    from daytrading.config import load_settings

    settings = load_settings(env_file=None)
    days = list_sessions(DATA, date(2020, 11, 2))[: args.sessions]
    print(f"data {DATA}; sessions {days[0]} … {days[-1]}")
    results = speed(days, settings)
    cpu_per_session = None
    if args.supervisor:
        wall, _ = supervisor_session(date.fromisoformat(args.day), 390.0)
        print(f"supervisor at 390x: one session {wall:.1f} s wall (backtest: see the per-session figures above)")
        cpu_per_session = wall
    where_time_goes(date.fromisoformat(args.day), settings)
    det = days[: args.determinism]
    again = [run(d, settings) for d in det]
    same = [a.fingerprint == b.fingerprint for a, b in zip(results[: len(det)], again, strict=True)]
    print(f"determinism: {sum(same)}/{len(det)} sessions with equal fingerprints on a second run")
    print(f"stop exits at path step 1 s:  {slippage(results)}")
    four = [run(d, settings_with(settings, {"sim.path_step_s": "15"})) for d in days]
    print(f"stop exits at path step 15 s: {slippage(four)}")
    if args.fidelity:
        day = date.fromisoformat(args.day)
        from daytrading.clock import NY

        wall, sup = supervisor_session(day, 30.0, end="10:30")
        bt = run(day, settings, start=datetime(day.year, day.month, day.day, 9, 30, tzinfo=NY),
                 end=datetime(day.year, day.month, day.day, 10, 30, tzinfo=NY))
        print(f"fidelity, {day} 09:30-10:30: supervisor at 30x ({wall:.0f} s wall) | backtest")
        rows = max(len(sup), len(bt.trades))
        for i in range(rows):
            a = sup[i] if i < len(sup) else None
            b = bt.trades[i] if i < len(bt.trades) else None
            left = f"{a['symbol']:5s} {a['exit_reason']:6s} {a['pnl'] or 0:+8.2f}" if a else " " * 21
            right = f"{b.symbol:5s} {b.exit_reason:6s} {b.pnl:+8.2f}" if b else ""
            mark = "" if a and b and a["symbol"] == b.symbol and a["exit_reason"] == b.exit_reason else "  <- differs"
            print(f"  {left} | {right}{mark}")
    _ = cpu_per_session


if __name__ == "__main__":
    main()
