"""Operations commands: how long the status table (printed by the supervisor every 5 minutes)
and the session report take on a busy day, beside the raw reads they are made of.

A database is filled through the Coordinator with N round trips and 20 × N gate decisions
(a full day of a busy day-trader is ~50 trades and ~20 000 decisions). Prints milliseconds
per status_rows() call, per render to text, per session_report() (with its PNG charts), and
the ratio of status_rows() to its underlying Coordinator reads.

    python benchmarks/bench_ops.py [--trades 50 200] [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from rich.console import Console

from daytrading.clock import NY, ManualClock
from daytrading.config import load_settings
from daytrading.ops.report import session_report
from daytrading.ops.status import render_rows, status_rows
from daytrading.runtime import open_coordinator

DAY = date(2020, 11, 17)


def fill(folder: Path, trades: int):
    settings = load_settings(None, {"mode": "sim", "paths": {"database": str(folder / "t.db"),
                                                               "backup_dir": str(folder / "b")}}, env_file=None)
    clock = ManualClock(datetime(2020, 11, 17, 9, 31, tzinfo=NY))
    coord = open_coordinator(settings, "bench", clock)
    for i in range(trades):
        sym = f"S{i:03d}"
        coord.claim_entry(sym, 10)
        coord.confirm_entry(sym, 10, 100.0)
        coord.record_order(client_id=10, order_id=i, symbol=sym, side="SELL", order_type="LMT", quantity=10,
                           status="Submitted", purpose="target", limit_price=101.8)
        clock.advance(60)
        coord.close_position(sym, 100.5 if i % 2 else 99.4, "target" if i % 2 else "stop")
    base = clock.now()
    decisions = [{"symbol": f"X{j % 40}", "gate": ("rule", "max_positions", "cooldown")[j % 3], "passed": False,
                  "reason": "r", "when": base + timedelta(seconds=j)} for j in range(20 * trades)]
    coord.record_gate_decisions(decisions)
    return coord, clock


def timed(fn, repeat: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat * 1000


def measure(n: int, repeat: int) -> None:
    """Fill a fresh database with ``n`` trades and print the timings."""
    with tempfile.TemporaryDirectory() as tmp:
        coord, clock = fill(Path(tmp), n)

        def raw():
            coord.get_heartbeats(), coord.get_trades_by_date(DAY), coord.get_active_positions()
            coord.get_closed_today(DAY), coord.gate_rejection_counts(DAY), coord.freeze_info()

        ms_raw = timed(raw, repeat)
        ms_rows = timed(lambda: status_rows(coord, clock), repeat)
        with open(os.devnull, "w") as sink:
            con = Console(file=sink, width=150)
            ms_render = timed(lambda: con.print(render_rows(status_rows(coord, clock))), repeat)
        t0 = time.perf_counter()
        rep = session_report(coord, DAY, gateway_report=None, bars=None, out_dir=Path(tmp) / "r")
        ms_report = (time.perf_counter() - t0) * 1000
        print(f"trades={n:4d} decisions={20 * n:5d}: raw reads {ms_raw:7.2f} ms | status_rows {ms_rows:7.2f} ms "
              f"(ratio {ms_rows / ms_raw:4.2f}) | status rendered {ms_render:7.2f} ms | session_report "
              f"{ms_report:8.1f} ms with {len(rep.chart_paths)} PNGs")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trades", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    for n in args.trades:
        measure(n, args.repeat)


if __name__ == "__main__":
    main()
