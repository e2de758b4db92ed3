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
