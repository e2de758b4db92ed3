"""Sweeps on a real Dask LocalCluster with the real backtest, and the checks made before any run.

The runs are kept to about a second each: three symbols and an 11-minute window around the
open (09:29-09:40) of two recorded sessions; on 2020-11-17 TSLA stops out and LI hits its
target at the 1.2 % target (its stop at 2 %), on 2020-11-18 BA stops out, so the four cells
of the 2 x 2 grid give four different sets of fills on the first session. The
reference is ``run_session`` called in this process, as ``daytrading backtest --set`` calls it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from datetime import time as dtime
from pathlib import Path

import pytest

from daytrading.backtest import run_session, settings_with
from daytrading.backtest.cli import window_span
from daytrading.backtest.sweep import (
    SweepRunner,
    check_workers,
    combine,
    data_benchmark,
    open_client,
    run_grid,
    session_bars,
)
from daytrading.cli import main as cli_main
from daytrading.config import load_settings
from daytrading.errors import OperationalError
from tests.conftest import market_data_root

DATA = market_data_root() / "alphavantage_1min"
SESSION = date(2020, 11, 18)
SESSIONS = [date(2020, 11, 17), SESSION]
SYMBOLS = ["TSLA", "LI", "BA"]
WINDOW = (dtime(9, 29), dtime(9, 40))
GRID = [{"profit_target": pt, "stop_loss": sl} for pt in ("0.012", "0.02") for sl in ("0.006", "0.009")]
CELL = GRID[-1]


def _settings(cell=CELL):
    return settings_with(load_settings(env_file=None), cell)


@pytest.fixture(scope="module")
def one_by_one():
    """Every (cell, session) of the grid run in this process, one after the other."""
    return {(i, day): run_session(DATA, day, _settings(cell), symbols=SYMBOLS, **window_span(day, WINDOW))
            for i, cell in enumerate(GRID) for day in SESSIONS}


@pytest.fixture(scope="module")
def alone(one_by_one):
    """The cell's session run in this process, as ``daytrading backtest --set`` runs it."""
    result = one_by_one[(len(GRID) - 1, SESSION)]
    assert result.fills, "the window must trade for the comparison to mean something"
    return result


def _assert_same(outcome, alone, bench):
    (cell,) = outcome.cells
    assert cell.error is None
    assert cell.results[SESSION].fills == alone.fills
    metrics, fp = combine([alone], _settings(), bench)
    assert cell.fingerprint == fp
    assert cell.metrics == metrics


@pytest.fixture(scope="module")
def client():
    with open_client(workers=2) as c:
        yield c


def test_the_local_cluster_leaves_the_dashboard_port_free(client):
    """The scheduler's own HTTP server takes a free loopback port, never the daytrading dashboard's."""
    from daytrading.config import DashboardSettings

    port = client.scheduler_info()["services"].get("dashboard")
    assert port and port != DashboardSettings().port


def _worker_state(dask_worker):
    import sys

    import dask

    from daytrading.clock import calendar

    return {
        "profiler": dask.config.get("distributed.worker.profile.enabled"),
        "profile_callback": "profile" in dask_worker.periodic_callbacks,
        "warm_up": getattr(dask_worker, "daytrading_warm_up", None),
        "bots_imported": "daytrading.bots.day_trader" in sys.modules,
        "calendar_built": calendar.cache_info().currsize,
    }


def test_the_local_cluster_workers_run_without_the_profiler_and_start_warmed_up(client):
    """No statistical profiler beside the runs; the backtest imported and the calendar built at worker start."""
    states = client.run(_worker_state)
    assert len(states) == 2
    for state in states.values():
        assert state["profiler"] is False
        assert state["profile_callback"] is False
        assert set(state["warm_up"]) == {"imports", "calendar"}
        assert state["bots_imported"] is True
        assert state["calendar_built"] == 1


def _priorities(dask_scheduler):
    return {key: ts.priority for key, ts in dask_scheduler.tasks.items()}


def test_runs_that_replay_more_bars_are_submitted_first(client):
    """Each task's Dask priority is its session's bar count, so the longest runs start first.

    2020-11-27 (the day after Thanksgiving) closes at 13:00: between 12:58 and 13:08 TSLA has
    fewer bars than on 2020-11-18, whose session continues, so its run gets the lower priority
    although it is submitted first.
    """
    from distributed import wait

    half_day, window, symbols = date(2020, 11, 27), (dtime(12, 58), dtime(13, 8)), ["TSLA"]
    short, full = session_bars(DATA, half_day, symbols, window), session_bars(DATA, SESSION, symbols, window)
    assert 0 < short < full
    assert session_bars(DATA, SESSION, symbols) > full  # the whole session
    assert session_bars(DATA, date(2020, 11, 26), symbols) == 0  # Thanksgiving: no bars, the run reports it

    runner = SweepRunner(client, DATA, symbols=symbols, window=window)
    runner.submit("cell", _settings(), [half_day, SESSION])
    futures = dict(runner._futures)
    wait(list(futures.values()), timeout=120)  # the scheduler knows them, and keeps them while they are held
    priorities = client.run_on_scheduler(_priorities)
    by_session = {key.split("-", 1)[1][:10]: priorities[future.key] for key, future in futures.items()}
    assert by_session == {half_day.isoformat(): (-short, *by_session[half_day.isoformat()][1:]),
                          SESSION.isoformat(): (-full, *by_session[SESSION.isoformat()][1:])}
    assert by_session[SESSION.isoformat()] < by_session[half_day.isoformat()]  # Dask runs the smallest tuple first
    (cell,) = list(runner.cells())
    assert cell.error is None and set(cell.results) == {half_day, SESSION}


def test_a_2x2_grid_over_2_sessions_on_2_workers_equals_the_runs_made_one_by_one(client, one_by_one):
    """Dask runs tasks in worker threads of other processes; every cell must still be the runs made alone."""
    bench = data_benchmark(DATA)
    runner = SweepRunner(client, DATA, symbols=SYMBOLS, window=WINDOW)
    outcome = run_grid(runner, [(cell, _settings(cell)) for cell in GRID], SESSIONS, "total_pnl", benchmark=bench)
    assert (outcome.runs_done, outcome.runs_total) == (8, 8)
    assert len({r.fingerprint for (_, day), r in one_by_one.items() if day == SESSIONS[0]}) == 4, \
        "the four cells must differ for the comparison to mean something"
    for i, cell in enumerate(outcome.cells):
        assert cell.error is None and cell.values == {k: float(v) for k, v in GRID[i].items()}
        alone = [one_by_one[(i, day)] for day in SESSIONS]
        assert all(r.fills for r in alone)
        for r in alone:
            assert cell.results[r.date].fills == r.fills
            assert cell.results[r.date].fingerprint == r.fingerprint
        metrics, fp = combine(alone, _settings(GRID[i]), bench)
        assert (cell.fingerprint, cell.metrics) == (fp, metrics)
    assert outcome.best.metrics["total_pnl"] == max(c.metrics["total_pnl"] for c in outcome.cells)


def test_worker_killed_mid_run_is_retried_with_the_same_result(client, alone):
    killed = []

    def kill_when_busy():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)  # polling the scheduler's state: there is no event to await

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    runner = SweepRunner(client, DATA, symbols=SYMBOLS, window=WINDOW)
    killer.start()
    outcome = run_grid(runner, [({"profit_target": "0.02"}, _settings())], [SESSION], "total_pnl",
                       benchmark=data_benchmark(DATA))
    killer.join(timeout=5)
    assert killed, "the worker was never seen busy"
    _assert_same(outcome, alone, data_benchmark(DATA))
    client.wait_for_workers(2, timeout=120)  # the nanny restarted it


def test_on_a_dask_scheduler_and_worker_started_as_processes(tmp_path, alone, capsys):
    bindir = Path(sys.executable).parent
    scheduler_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen(
        [str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(scheduler_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)]
    try:
        deadline = time.monotonic() + 120
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert time.monotonic() < deadline, "the dask scheduler did not write its address"
            assert procs[0].poll() is None, "the dask scheduler exited"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(subprocess.Popen(
            [str(bindir / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path))
        # `daytrading backtest --sweep ... --scheduler ADDRESS`, as a user runs it
        code = cli_main(["backtest", "--data", str(DATA), "--dates", SESSION.isoformat(), "--symbols", ",".join(SYMBOLS),
                         "--window", "09:29-09:40", "--set", "stop_loss=0.009", "--sweep", "profit_target=0.02",
                         "--scheduler", address, "--out", str(tmp_path / "out"), "--json"])
        assert code == 0
        captured = capsys.readouterr()
        doc = json.loads(captured.out)  # stdout is the JSON document alone; progress went to stderr
        assert "session-runs 1/1 done" in captured.err  # one plain line per run: stderr is not a terminal
        (cell,) = doc["cells"]
        metrics, fp = combine([alone], _settings(), data_benchmark(DATA))
        assert cell["settings"] == {"profit_target": 0.02} and cell["fingerprint"] == fp
        assert cell["metrics"]["trades"] == metrics["trades"] == len(alone.trades)
        assert (tmp_path / "out" / "sweep.csv").is_file()
        from distributed import Client

        with Client(address, timeout="20s") as c:  # the sweep warmed the existing cluster's worker up too
            # a lambda travels by value: the worker runs in tmp_path, where `tests` is not importable
            (warm_up,) = c.run(lambda dask_worker: getattr(dask_worker, "daytrading_warm_up", None)).values()
        assert set(warm_up or ()) == {"imports", "calendar"}
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_worker_that_cannot_read_the_data_folder_is_named(client, tmp_path):
    missing = tmp_path / "not-there"
    with pytest.raises(OperationalError) as err:
        check_workers(client, missing)
    text = str(err.value)
    assert "readable at the same path by every Dask worker" in text
    assert str(missing) in text and "tcp://127.0.0.1:" in text


def test_unknown_key_bad_syntax_and_invalid_cells_are_named_before_anything_runs(capsys):
    args = ["backtest", "--data", str(DATA), "--dates", SESSION.isoformat()]
    assert cli_main([*args, "--sweep", "profit_targt=0.02,0.03"]) == 2
    assert "profit_targt" in capsys.readouterr().err
    assert cli_main([*args, "--sweep", "stop_loss=0.01:0.005:0.001"]) == 2
    assert "START 0.01 is above STOP 0.005" in capsys.readouterr().err
    assert cli_main([*args, "--sweep", "entry.rsi_max=50,abc"]) == 2
    err = capsys.readouterr().err
    assert "entry.rsi_max=abc" in err and "rsi_max" in err
    # a cell the settings model refuses: stop_loss must stay below profit_target
    assert cli_main([*args, "--sweep", "profit_target=0.01,0.02", "--sweep", "stop_loss=0.015"]) == 2
    assert "profit_target=0.01, stop_loss=0.015" in capsys.readouterr().err
    assert cli_main([*args, "--sweep", "profit_target=0.02", "--optimize", "trades"]) == 2
    assert "'trades': not a metric that ranks" in capsys.readouterr().err
    assert cli_main([*args, "--sweep", "profit_target=0.02", "--walk-forward", "5:2"]) == 2
    assert "needs at least 7 sessions, the selection has 1" in capsys.readouterr().err


def test_optuna_search_of_4_trials_resumed_from_its_storage_for_2_more(client, tmp_path):
    from daytrading.backtest.sweep_grid import parse_sweep
    from daytrading.backtest.sweep_optuna import run_search, study_name

    specs = [parse_sweep("profit_target=0.012:0.024:0.004"), parse_sweep("stop_loss=0.006,0.009")]
    base = load_settings(env_file=None)

    def make(overrides):
        return settings_with(base, overrides)

    name = study_name({"test": "resume"})
    first = run_search(SweepRunner(client, DATA, symbols=SYMBOLS, window=WINDOW), specs, make, [SESSION],
                       "max_drawdown", 4, tmp_path, name=name, seed=3)
    assert len(first.cells) == 4
    assert (tmp_path / "optuna.db").is_file()
    runner = SweepRunner(client, DATA, symbols=SYMBOLS, window=WINDOW)
    second = run_search(runner, specs, make, [SESSION], "max_drawdown", 6, tmp_path, name=name, seed=3)
    assert len(second.cells) == 6
    # the first four trials come back from the SQLite storage unchanged; at most two new runs
    assert [(c.index, c.values, c.fingerprint) for c in second.cells[:4]] == [
        (c.index, c.values, c.fingerprint) for c in first.cells
    ]
    assert runner.total <= 2
    # drawdown is a positive number of dollars: the best trial has the smallest one
    done = [c for c in second.cells if c.metrics is not None]
    assert second.best.metrics["max_drawdown"] == min(c.metrics["max_drawdown"] for c in done)
    # the same command again runs nothing
    again = SweepRunner(client, DATA, symbols=SYMBOLS, window=WINDOW)
    run_search(again, specs, make, [SESSION], "max_drawdown", 6, tmp_path, name=name, seed=3)
    assert again.total == 0
