"""The supervisor's dashboard child without a replay: a refused bind stops the start, a port in
use is not retried, and the dashboard is watched by its process only (it writes no heartbeat)."""

from __future__ import annotations

import sys
import time

import pytest

from daytrading.bots.supervisor import Child, Supervisor
from daytrading.config import load_settings
from daytrading.errors import ConfigError
from daytrading.runtime import open_coordinator


def _settings(tmp_path, **dashboard):
    return load_settings(None, {"mode": "sim", "sim": {"session_date": "2020-11-17"}, "dashboard": dashboard,
                                "paths": {"database": str(tmp_path / "t.db"), "log_dir": str(tmp_path / "logs"),
                                          "backup_dir": str(tmp_path / "backups")}}, env_file=None)


def test_a_non_loopback_dashboard_without_token_refuses_the_start(tmp_path):
    sup = Supervisor(_settings(tmp_path, host="0.0.0.0"), sim=True)
    with pytest.raises(ConfigError, match=r"dashboard\.token"):
        sup.run()
    assert not (tmp_path / "t.db").exists()  # refused before anything started


def _supervisor_with(tmp_path, child: Child) -> Supervisor:
    settings = _settings(tmp_path)
    sup = Supervisor(settings, sim=True)
    sup._prepare_env()
    sup.coord = open_coordinator(settings, "supervisor", sup.clock)
    sup.children = {child.name: child}
    return sup


def _watch_until_exit(sup: Supervisor, child: Child) -> None:
    sup._spawn(child)
    deadline = time.monotonic() + 30
    while child.proc is not None and time.monotonic() < deadline:
        child.proc.wait(30)
        sup._watch()


def test_a_dashboard_whose_port_is_taken_is_not_restarted(tmp_path):
    from daytrading.dashboard.server import EXIT_PORT_IN_USE

    child = Child("dashboard", [sys.executable, "-c", f"raise SystemExit({EXIT_PORT_IN_USE})"], restart_at_once=False,
                  watch_heartbeat=False, final_codes=(2, EXIT_PORT_IN_USE))
    sup = _supervisor_with(tmp_path, child)
    _watch_until_exit(sup, child)
    sup._watch()
    assert child.proc is None and child.state == "STOPPED" and child.restarts == 0
    assert child.last_exit_code == EXIT_PORT_IN_USE and child.next_start == float("inf")


def test_a_crashed_dashboard_is_restarted_and_never_judged_by_heartbeat(tmp_path):
    child = Child("dashboard", [sys.executable, "-c", "raise SystemExit(1)"], restart_at_once=False,
                  watch_heartbeat=False, final_codes=(2, 3))
    sup = _supervisor_with(tmp_path, child)
    _watch_until_exit(sup, child)
    assert child.restarts == 1 and child.state in ("RESTARTING", "CRASH_LOOP") and child.next_start < float("inf")
    # alive without any heartbeat far past the hang grace: not killed
    child.argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    sup._spawn(child)
    child.started_wall = time.monotonic() - 3600
    sup._watch()
    assert child.proc is not None and child.proc.poll() is None
    child.proc.kill()
    child.proc.wait()
