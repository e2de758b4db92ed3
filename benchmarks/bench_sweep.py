"""Sweep throughput on Dask: session-runs per minute with 1 and 2 workers, scaling, overhead per task.

In one run, on the same grid of cells × sessions (distinct ``profit_target`` values, so no
two runs are the same task):

1. **bare**: ``run_session`` called in this process, one run after the other (after one
   warm-up run that parses the data files), giving the mean seconds of a run;
2. **1 worker** and **2 workers**: the same number of runs through :class:`SweepRunner` on a
   fresh ``LocalCluster`` each (one thread per worker process). Timed from the first
   submission to the last result, cluster start excluded; each worker parses the files on
   its first task, as in real use.

It prints session-runs per minute for each, the scaling ratio 2 workers / 1 worker (target
≥ 1.8 on a 2-core machine, which needs the machine otherwise idle), and the overhead per task
on one worker against the bare run (Dask submit, pickling of settings and results, scheduling).

    python benchmarks/bench_sweep.py [--data PATH] [--sessions 4] [--cells 3] [--symbols TSLA,NIO]
                                     [--window 09:20-09:40 | --window all]

The default window (20 minutes around the open of each session) keeps a run to seconds; with
``--window all`` every run is a whole session (minutes each on this machine today).

Measured 2026-12-01 10:35 UTC with ``--cells 2 --sessions 2`` while the 2-core machine ran at a
load average of 14-23 (other engineers' suites), so these figures say nothing about scaling yet:
bare 23.0 s per run (2.6 runs/min); 1 worker 2.0 runs/min; 2 workers 1.7 runs/min; scaling
0.86×; overhead per task on 1 worker +7.0 s (+30 %). Re-run on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date
from pathlib import Path

from daytrading.backtest import list_sessions, run_session, settings_with
from daytrading.backtest.cli import parse_window, window_span
from daytrading.backtest.sweep import SweepRunner, check_workers, open_client
from daytrading.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("DAYTRADING_MARKET_DATA", ROOT.parent / "shared" / "data" / "market")) / "alphavantage_1min"


def _cells(n: int) -> list:
    base = load_settings(env_file=None)
    return [settings_with(base, {"profit_target": f"{0.015 + 0.005 * i:.3f}"}) for i in range(n)]


def _on_cluster(workers: int, data: Path, sessions: list, cells: list, symbols: list[str], window) -> float:
    with open_client(workers) as client:
        check_workers(client, data)
        runner = SweepRunner(client, data, symbols=symbols, window=window)
        start = time.perf_counter()
        for i, settings in enumerate(cells):
            runner.submit(i, settings, sessions)
        failed = [c.error for c in runner.cells() if c.error]
        elapsed = time.perf_counter() - start
    if failed:
        raise SystemExit(f"runs failed: {failed[:3]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--cells", type=int, default=3)
    parser.add_argument("--symbols", default="TSLA,NIO")
    parser.add_argument("--window", default="09:20-09:40", help="HH:MM-HH:MM New York, or 'all'")
    args = parser.parse_args()
    window = None if args.window == "all" else parse_window(args.window)
    data = args.data.resolve()
    symbols = [s for s in args.symbols.split(",") if s]
    sessions = [d for d in list_sessions(data) if d >= date(2020, 11, 16)][: args.sessions]
    runs = args.sessions * args.cells

    print(f"grid: {args.cells} cells × {len(sessions)} sessions = {runs} session-runs, symbols {symbols}, "
          f"window {args.window}")
    bare_cells = _cells(args.cells)

    run_session(data, sessions[0], bare_cells[0], symbols=symbols, **window_span(sessions[0], window))  # warm-up: parse files
    start = time.perf_counter()
    for settings in bare_cells:
        for day in sessions:
            run_session(data, day, settings, symbols=symbols, **window_span(day, window))
    bare = (time.perf_counter() - start) / runs
    print(f"bare run_session in this process: {bare:.2f} s per run, {60 / bare:.1f} session-runs/min")

    one = _on_cluster(1, data, sessions, _cells(args.cells), symbols, window)
    two = _on_cluster(2, data, sessions, _cells(args.cells), symbols, window)
    rate1, rate2 = runs / one * 60, runs / two * 60
    print(f"1 worker : {one:7.1f} s, {rate1:6.1f} session-runs/min")
    print(f"2 workers: {two:7.1f} s, {rate2:6.1f} session-runs/min")
    print(f"scaling 2 workers / 1 worker: {rate2 / rate1:.2f}x (target >= 1.8x)")
    overhead = one / runs - bare
    print(f"overhead per task on 1 worker vs bare: {overhead * 1000:+.0f} ms ({overhead / bare:+.1%} of a run)")


if __name__ == "__main__":
    main()
