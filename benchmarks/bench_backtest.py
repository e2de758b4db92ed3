"""Backtest speed, where the time goes, determinism and fidelity, measured in one run.

Data: ``shared/data/market/alphavantage_1min`` (39 symbols, pre-market included).

Printed:

1. **Speed**: sessions per minute on one core (the process is pinned to CPU 0 with
   ``os.sched_setaffinity``; CPU seconds and wall seconds per session) for ``--sessions``
   sessions of the whole folder (default 10; target ≥ 6 sessions/min/core), the same cost in
   units of a fixed pure-Python reference workload timed in the same run (machines differ:
   the same commit measured 15.6 and 8.0 CPU s per session on two machines of this kind), and beside it
   one session through the multi-process supervisor at speed 390 (``--supervisor``), wall
   seconds, and the ratio.
2. **Where the time goes**: one session under ``cProfile`` (CPU timer), own time grouped by
   package: sim-gateway (encode, matching), ib_async (decode, eventkit), bots (and signals,
   scanners), database (coordination, SQLAlchemy, sqlite3), asyncio + looptime (and the
   backtest loop), other; shares of the total. A built-in's time counts for its caller's
   group; the largest entries left in "other" are listed.
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
    ("ib_async decode", ("ib_async", "eventkit")),
    ("database", ("daytrading/coordination", "daytrading/db", "sqlalchemy", "sqlite3", "method 'execute'",
                  "method 'commit'", "method 'fetchall'")),
    ("bots", ("daytrading/bots", "daytrading/signals", "daytrading/scanners", "daytrading/broker")),
    ("asyncio + looptime", ("asyncio", "looptime", "selectors", "daytrading/backtest/loop")),
)


def _quiet() -> None:
    import logging

    logging.basicConfig(level=logging.CRITICAL)
    for name in ("daytrading", "ib_async"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def run(day: date, settings, **kw):  # noqa: ANN001, ANN201
    from daytrading.backtest import run_session

    return run_session(DATA, day, settings, **kw)


def speed(days: list[date], settings) -> tuple[list, list[float], float]:  # noqa: ANN001
    """Run ``days`` one after another: (results, wall s per session, CPU s per session)."""
    results, walls = [], []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for d in days:
        c, w = time.process_time(), time.perf_counter()
        r = run(d, settings)
        results.append(r)
        walls.append(time.perf_counter() - w)
        print(f"  {d}  cpu {time.process_time() - c:6.1f} s  wall {time.perf_counter() - w:6.1f} s  "
              f"trades {len(r.trades):3d}  P&L {r.pnl:+9.2f} $")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"speed: {len(days)} sessions, {cpu / len(days):.1f} CPU s and {wall / len(days):.1f} wall s per session "
          f"= {60 * len(days) / cpu:.2f} sessions/min/core (target >= 6)")
    return results, walls, cpu / len(days)


def machine_reference() -> float:
    """CPU seconds of a fixed pure-Python workload shaped like the backtest's own work.

    It builds, joins, splits and parses 200,000 TWS-style bar messages (text fields with
    NUL separators, floats rounded to the cent, a dict per bar) — best of three. The
    backtest's CPU seconds per session divided by this figure is a cost in "reference
    units" that stays comparable between machines of different speed (this workload and
    the backtest are both single-threaded CPython).
    """
    best = float("inf")
    for _ in range(3):
        c = time.process_time()
        total = 0.0
        for i in range(200_000):
            fields = ("50", "3", str(i), str(1_605_600_000 + 5 * i), f"{100 + i % 97 / 100:.2f}",
                      f"{101 + i % 89 / 100:.2f}", f"{99 + i % 83 / 100:.2f}", f"{100 + i % 79 / 100:.2f}",
                      str(i % 5000), "100.125", str(i % 40))
            msg = "\0".join(fields) + "\0"
            parts = msg.split("\0")
            bar = {"time": int(parts[3]), "open": float(parts[4]), "high": float(parts[5]),
                   "low": float(parts[6]), "close": float(parts[7]), "volume": int(parts[8])}
            total += round(bar["close"] - bar["open"], 2)
        best = min(best, time.process_time() - c)
    return best


def supervisor_session(day: date, speed_x: float, start: str | None = None,
                       end: str | None = None) -> tuple[float, list[dict]]:
    """Wall seconds of one supervisor sim run and its trades (from its database).

    ``start``/``end`` ("HH:MM", New York) bound the replay: the sim starts at ``start`` and the
    run is stopped ``(end - start) / speed`` wall seconds plus a 60-s start-up allowance later
    (the trades recorded by then are read from its database). Without them the whole session
    runs to the supervisor's own end of day.
    """
    from daytrading.clock import NY, ManualClock
    from daytrading.coordination import Coordinator
    from daytrading.db.engine import make_engine

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DAYTRADING_PATHS__DATABASE": f"{tmp}/t.db", "DAYTRADING_PATHS__LOG_DIR": f"{tmp}/logs",
               "DAYTRADING_SIM__PORT": "4591", "DAYTRADING_DASHBOARD__ENABLED": "false"}
        timeout = 900.0
        if start and end:
            t0, t1 = (datetime.combine(day, datetime.strptime(x, "%H:%M").time(), NY) for x in (start, end))
            env["DAYTRADING_SIM__START"] = t0.isoformat()
            timeout = (t1 - t0).total_seconds() / speed_x + 60
        argv = [sys.executable, "-m", "daytrading", "supervisor", "--sim", "--data", str(DATA), "--date",
                day.isoformat(), "--speed", repr(speed_x)]
        t = time.perf_counter()
        # a bounded run is stopped by the timeout; the trades so far are in the database
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(argv, env=env, cwd=tmp, capture_output=True, timeout=timeout)
        wall = time.perf_counter() - t
        coord = Coordinator(make_engine(Path(tmp) / "t.db"), "bench",
                            ManualClock(datetime(day.year, day.month, day.day, 12, tzinfo=NY)))
        trades = [{"symbol": v.symbol, "entry_time": v.entry_time and v.entry_time.astimezone(NY),
                   "exit_time": v.exit_time.astimezone(NY), "quantity": v.quantity, "entry_price": v.entry_price,
                   "exit_price": v.exit_price, "pnl": v.pnl or 0.0, "exit_reason": v.exit_reason}
                  for v in coord.get_trades_by_date(day)]
    return wall, trades


def _row(t: dict | None) -> str:
    if t is None:
        return " " * 62
    when = f"{t['entry_time']:%H:%M:%S}" if t["entry_time"] else "--:--:--"
    return (f"{t['symbol']:5s} {t['quantity']:5.0f} {when} {t['entry_price'] or 0:8.2f} "
            f"{t['exit_time']:%H:%M:%S} {t['exit_price']:8.2f} {t['exit_reason']:6s} {t['pnl']:+8.2f}")


def side_by_side(sup: list[dict], bt: list[dict], t0: datetime, t1: datetime) -> None:
    """Print both trade lists (entries in ``[t0, t1)``), matched by symbol in entry order, with differences."""
    def window(ts: list[dict]) -> list[dict]:
        return sorted((t for t in ts if t["entry_time"] and t0 <= t["entry_time"] < t1),
                      key=lambda t: (t["entry_time"], t["symbol"]))

    sup, bt = window(sup), window(bt)
    print(f"  {'supervisor at 30x':62s} | backtest")
    head = "sym     qty entry    e.price  exit      x.price reason      P&L"
    print(f"  {head:62s} | {head}   differences")
    left = list(bt)
    for a in sup:
        b = next((x for x in left if x["symbol"] == a["symbol"]), None)
        if b is not None:
            left.remove(b)
        print(f"  {_row(a)} | {_row(b)}   {_diff(a, b)}")
    for b in left:
        print(f"  {_row(None)} | {_row(b)}   only in the backtest")
    ps, pb = sum(t["pnl"] for t in sup), sum(t["pnl"] for t in bt)
    print(f"  totals: supervisor {len(sup)} trades {ps:+.2f} $ | backtest {len(bt)} trades {pb:+.2f} $ "
          f"| difference {pb - ps:+.2f} $")


def _diff(a: dict, b: dict | None) -> str:
    if b is None:
        return "only in the supervisor"
    parts = []
    if a["entry_time"] and b["entry_time"]:
        parts.append(f"entry {(b['entry_time'] - a['entry_time']).total_seconds():+.0f} s")
    if a["entry_price"] and b["entry_price"]:
        parts.append(f"e.price {b['entry_price'] - a['entry_price']:+.2f}")
    parts.append(f"x.price {b['exit_price'] - a['exit_price']:+.2f}")
    if a["exit_reason"] != b["exit_reason"]:
        parts.append(f"reason {a['exit_reason']}->{b['exit_reason']}")
    parts.append(f"P&L {b['pnl'] - a['pnl']:+.2f}")
    return ", ".join(parts)


def _group(filename: str, func: str) -> str | None:
    where = f"{filename} {func}"  # built-ins (sqlite3's execute/commit) have no file name
    for name, keys in GROUPS:
        if any(k in where for k in keys):
            return name
    return None


def where_time_goes(day: date, settings) -> None:  # noqa: ANN001
    """One session under cProfile (CPU timer): own time per group. A built-in function
    (``len``, ``isinstance``, a C method) counts for the group of the Python function that
    called it (pstats keeps its time per caller); what is left in "other" is listed."""
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    run(day, settings)
    prof.disable()
    stats = pstats.Stats(prof)
    totals = {name: 0.0 for name, _ in GROUPS}
    totals["other"] = 0.0
    others: dict[str, float] = {}

    def add(filename: str, line: int, func: str, tt: float) -> None:
        name = _group(filename, func)
        if name is None:
            name = "other"
            key = f"{Path(filename).name}:{line}({func})" if filename != "~" else func
            others[key] = others.get(key, 0.0) + tt
        totals[name] += tt

    for (filename, line, func), (_cc, _nc, tt, _ct, callers) in stats.stats.items():
        if filename == "~" and _group(filename, func) is None and callers:
            for (cfile, cline, cfunc), (_c, _n, ctt, _t) in callers.items():
                add(cfile, cline, cfunc, ctt)
        else:
            add(filename, line, func, tt)
    whole = sum(totals.values()) or 1.0
    print("where the time goes (one session, own CPU time under cProfile; built-ins count for their caller):")
    for name, t in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {name:20s} {t:7.1f} s  {100 * t / whole:5.1f} %")
    top = sorted(others.items(), key=lambda kv: -kv[1])[:8]
    print("  largest in other: " + ", ".join(f"{k} {100 * v / whole:.1f} %" for k, v in top))


def _trade_dict(t) -> dict:  # noqa: ANN001
    return {"symbol": t.symbol, "entry_time": t.entry_time, "exit_time": t.exit_time, "quantity": t.quantity,
            "entry_price": t.entry_price, "exit_price": t.exit_price, "pnl": t.pnl, "exit_reason": t.exit_reason}


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
    ref = machine_reference()
    print(f"machine reference: {ref:.3f} CPU s for a fixed pure-Python workload (best of 3)")
    results, walls, per_cpu = speed(days, settings)
    print(f"  = {per_cpu / ref:.1f} reference units per session (comparable between machines; "
          f"the target of 10 CPU s per session is {10 / ref:.1f} units on this machine)")
    if args.supervisor:
        wall, _ = supervisor_session(date.fromisoformat(args.day), 390.0)
        per = statistics.mean(walls)
        print(f"supervisor at 390x: {args.day} took {wall:.1f} s wall = {wall / per:.1f}x the backtest's "
              f"{per:.1f} wall s per session")
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

        # both start at 09:00 so the bots are up and warm at the open (at 30x the supervisor's
        # processes take tens of market minutes to start); trades entered 09:30-10:30 compared
        wall, sup = supervisor_session(day, 30.0, start="09:00", end="10:30")
        t0, t1 = (datetime.combine(day, datetime.strptime(x, "%H:%M").time(), NY) for x in ("09:30", "10:30"))
        bt = run(day, settings, start=datetime.combine(day, datetime.strptime("09:00", "%H:%M").time(), NY), end=t1)
        print(f"fidelity, {day} 09:30-10:30 (both started 09:00): supervisor at 30x ({wall:.0f} s wall) vs backtest")
        side_by_side(sup, [_trade_dict(t) for t in bt.trades], t0, t1)


if __name__ == "__main__":
    main()
