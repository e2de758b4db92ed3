"""Supervisor pieces that need no processes: the daily reset and the stop file."""

from __future__ import annotations

from datetime import date, datetime

from daytrading.bots.supervisor import Supervisor, stop_cli, stop_file
from daytrading.clock import NY, ManualClock
from daytrading.config import load_settings
from daytrading.coordination import Coordinator
from daytrading.db import make_engine
from daytrading.runtime import open_coordinator


def _settings(tmp_path, **sim):
    return load_settings(None, {"mode": "sim", "sim": {"session_date": "2020-11-17", **sim},
                                "paths": {"database": str(tmp_path / "t.db"), "log_dir": str(tmp_path / "logs"),
                                          "backup_dir": str(tmp_path / "backups")}}, env_file=None)


def test_daily_reset_clears_earlier_sessions_and_backs_up(tmp_path):
    settings = _settings(tmp_path)
    open_coordinator(settings, "setup").engine.dispose()
    yesterday = Coordinator(make_engine(settings.paths.database), "test",
                            ManualClock(datetime(2020, 11, 16, 15, 0, tzinfo=NY)))
    assert yesterday.claim_entry("TSLA", 10).ok
    yesterday.confirm_entry("TSLA", 10, 400.0)
    yesterday.close_position("TSLA", 410.0, "target")
    assert yesterday.was_closed_today("TSLA", date(2020, 11, 16))

    sup = Supervisor(settings, sim=True)
    sup._prepare_env()  # replay clock on 2020-11-17 09:00 New York
    sup.coord = open_coordinator(settings, "supervisor", sup.clock)
    sup._daily_reset()
    assert not yesterday.was_closed_today("TSLA", date(2020, 11, 16))
    assert sup.coord.claim_entry("TSLA", 5).ok  # a new session: the symbol may be traded again
    assert list((tmp_path / "backups").glob("*.db"))
    assert len(yesterday.get_trades_by_date(date(2020, 11, 16))) == 1  # history is kept
    # same session again: nothing more happens
    backups = len(list((tmp_path / "backups").glob("*.db")))
    sup._daily_reset()
    assert len(list((tmp_path / "backups").glob("*.db"))) == backups


def test_sim_date_must_be_a_session(tmp_path):
    import pytest

    from daytrading.errors import ConfigError

    sup = Supervisor(_settings(tmp_path, session_date="2020-11-26"), sim=True)  # Thanksgiving
    with pytest.raises(ConfigError, match="2020-11-26"):
        sup._prepare_env()


def test_stop_command_writes_the_stop_file(tmp_path):
    settings = _settings(tmp_path)
    assert stop_cli(None, settings) == 0
    assert stop_file(settings).exists()


def test_watchdog_takes_the_fresher_heartbeat_of_the_same_process():
    from datetime import UTC, timedelta

    from daytrading.bots.supervisor import freshest_beat, hung_verdict

    now = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)
    row = {"pid": 42, "state": "running", "last_seen": (now - timedelta(seconds=50)).replace(tzinfo=None)}  # naive UTC
    file = {"pid": 42, "state": "running", "last_seen": (now - timedelta(seconds=2)).isoformat()}
    old_process = {"pid": 41, "state": "running", "last_seen": now}
    best = freshest_beat(42, row, None, file, old_process)
    assert best["last_seen"] == now - timedelta(seconds=2)
    # the database row alone (the file missing) would call the bot hung; the file keeps it alive
    assert hung_verdict(freshest_beat(42, row), 100.0, 8.0, now) == (True, 50.0)
    assert hung_verdict(best, 100.0, 8.0, now) == (False, 2.0)
    # never heartbeated since its start: hung only after max(health_check, 20 s)
    assert freshest_beat(42, old_process) is None
    assert hung_verdict(None, 19.0, 8.0, now) == (False, None)
    assert hung_verdict(None, 21.0, 8.0, now) == (True, None)
    assert hung_verdict(None, 59.0, 60.0, now) == (False, None)


def _locked_supervisor(tmp_path):
    """A supervisor on a fresh database (replay clock) and another connection holding its write lock."""
    import sqlite3

    settings = _settings(tmp_path)
    open_coordinator(settings, "setup").engine.dispose()
    sup = Supervisor(settings, sim=True)
    sup._prepare_env()
    sup.coord = open_coordinator(settings, "supervisor", sup.clock)
    other = sqlite3.connect(settings.paths.database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return sup, other


def test_supervisor_keeps_events_while_the_database_cannot_take_them(tmp_path):
    sup, other = _locked_supervisor(tmp_path)
    sup._event("ERROR", "restart", "day-trader exited (1)")
    sup._write_heartbeat()  # fail-fast, guarded: no exception
    assert sup._db_down_since is not None and len(sup._pending_events) == 1
    assert sup.coord.heartbeat_files()["supervisor"]["state"] == "running"  # the file got through
    other.execute("ROLLBACK")
    other.close()
    sup._write_heartbeat()  # the database works again: the kept event lands
    assert sup._db_down_since is None and not sup._pending_events
    assert [e["kind"] for e in sup.coord.get_events()] == ["restart"]


def test_lifeline_structures_import_on_every_system():
    import ctypes

    from daytrading.bots import lifeline

    assert ctypes.sizeof(lifeline.JobLimits) == (144 if ctypes.sizeof(ctypes.c_void_p) == 8 else 112)
    env = {lifeline.ENV: "not-a-pid"}
    assert lifeline.follow_parent(env) is None and lifeline.ENV not in env  # removed: grandchildren do not inherit


def test_one_critical_per_database_outage(tmp_path, caplog):
    import logging

    sup, other = _locked_supervisor(tmp_path)
    with caplog.at_level(logging.CRITICAL, logger="daytrading.supervisor"):
        for _ in range(3):  # three watch passes under the lock: reads work, writes fail
            sup._beats()
            sup._write_heartbeat()
            sup._db("daily reset", sup._daily_reset)
    other.execute("ROLLBACK")
    other.close()
    assert [r.message for r in caplog.records].count(
        "database unusable; the bots keep running, the watchdog uses process state and heartbeat files") == 1


def test_sim_replay_starts_when_the_gateway_has_loaded_its_data(tmp_path, minute_data_dir):
    """Without sim.epoch the replay clock starts when the sim-gateway is ready, whatever the load took:
    the supervisor (and every bot it starts) adopt the gateway's epoch. Here the provisional epoch is a
    wall minute old, as after a slow data load; at speed 60 a fixed epoch would put the replay an hour in."""
    import time
    from datetime import timedelta

    from daytrading.bots.supervisor import _terminate
    from daytrading.sim_gateway.admin import request
    from daytrading.sim_gateway.testing import free_port

    port, admin = free_port(), free_port()
    settings = load_settings(None, {"mode": "sim", "sim": {"session_date": "2020-11-17", "data": str(minute_data_dir),
                                                           "symbols": ["TSLA"], "speed": 60, "port": port,
                                                           "admin_port": admin},
                                    "paths": {"database": str(tmp_path / "t.db"), "log_dir": str(tmp_path / "logs")}},
                             env_file=None)
    sup = Supervisor(settings, sim=True)
    sup._prepare_env()
    sup.env["DAYTRADING_SIM__EPOCH"] = repr(time.time() - 60)
    try:
        sup._start_gateway()
        clock = request(admin, "clock", timeout=5)
        assert sup.clock.epoch == float(clock["epoch"])
        assert sup.env["DAYTRADING_SIM__EPOCH"] == repr(float(clock["epoch"]))
        start = datetime(2020, 11, 17, 9, 0, tzinfo=NY)
        assert timedelta(0) <= datetime.fromisoformat(clock["now"]) - start < timedelta(minutes=5), clock
    finally:
        if sup.gateway is not None:
            _terminate(sup.gateway, 10)


def test_the_supervisor_reports_the_dashboard_child_with_its_url(tmp_path):
    from daytrading.bots.supervisor import Child
    from daytrading.ops.status import status_rows

    settings = _settings(tmp_path)
    sup = Supervisor(settings, sim=True)
    sup._prepare_env()
    sup.coord = open_coordinator(settings, "supervisor", sup.clock)
    dash = Child("dashboard", ["dashboard"], restart_at_once=False, watch_heartbeat=False)
    dash.restarts = 1
    sup.children = {"dashboard": dash}
    sup._write_heartbeat()
    (row,) = [b for b in status_rows(sup.coord, sup.clock)["bots"] if b["bot"] == "dashboard"]
    assert row["state"] == "RESTARTING" and row["restarts"] == 1 and row["pid"] is None
    assert row["url"] == f"http://127.0.0.1:{settings.dashboard.port}/"
