"""Launchers and Task Scheduler files: the POSIX launchers run for real (with a stand-in
.venv-daytrader that points at the project's interpreter, so nothing is downloaded); the
Windows files are checked for what Windows would run."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.ops._util import ROOT

NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
WEEKDAYS = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}


def task(name: str) -> ET.Element:
    return ET.parse(ROOT / "task_scheduler" / f"{name}.xml").getroot()


def schedule(root: ET.Element) -> tuple[str, set[str]]:
    trig = root.find("t:Triggers/t:CalendarTrigger", NS)
    start = trig.find("t:StartBoundary", NS).text
    days = {d.tag.split("}")[1] for d in trig.find("t:ScheduleByWeek/t:DaysOfWeek", NS)}
    return start.split("T")[1], days


def test_task_scheduler_files():
    start = task("daytrading_start")
    at, days = schedule(start)
    assert days == WEEKDAYS and at < "09:30:00"
    cmd = start.find("t:Actions/t:Exec/t:Command", NS).text
    assert cmd.endswith("\\start_supervisor.bat")
    assert start.find("t:Settings/t:MultipleInstancesPolicy", NS).text == "IgnoreNew"
    stop = task("daytrading_stop")
    at, days = schedule(stop)
    assert days == WEEKDAYS and at > "16:00:00"
    exe = stop.find("t:Actions/t:Exec", NS)
    assert exe.find("t:Command", NS).text.endswith("\\.venv-daytrader\\Scripts\\daytrading.exe")
    assert exe.find("t:Arguments", NS).text == "stop"
    # both point at the same checkout folder (the setup doc replaces it in one go)
    assert start.find("t:Actions/t:Exec/t:WorkingDirectory", NS).text == exe.find("t:WorkingDirectory", NS).text
    doc = (ROOT / "docs" / "TASK_SCHEDULER_SETUP.md").read_text(encoding="utf-8")
    assert "Register-ScheduledTask" in doc and "daytrading_start.xml" in doc and "daytrading_stop.xml" in doc


@pytest.mark.parametrize("name,command", [("start_exit_manager", "exit-manager"), ("start_day_trader", "day-trader"),
                                          ("liquidate_all", "liquidate_all.py")])
def test_windows_launchers(name, command):
    text = (ROOT / f"{name}.bat").read_bytes().decode("ascii")
    assert "scripts\\bootstrap.bat" in text and ".venv-daytrader\\Scripts\\" in text and command in text
    assert text.count("\r\n") == text.count("\n")  # CRLF for cmd.exe
    sh = ROOT / f"{name}.sh"
    assert sh.stat().st_mode & stat.S_IXUSR
    assert subprocess.run(["bash", "-n", str(sh)]).returncode == 0
    assert "source scripts/bootstrap.sh" in sh.read_text()


@pytest.fixture()
def venv(tmp_path):
    """A .venv-daytrader stand-in: bootstrap.sh finds it installed and up to date."""
    real = Path(sys.executable)  # the interpreter running the tests (CI: .venv-daytrader)
    v = tmp_path / "venv"
    (v / "bin").mkdir(parents=True)
    for name, body in (("python", f'exec "{real}" "$@"'), ("daytrading", f'exec "{real}" -m daytrading "$@"')):
        p = v / "bin" / name
        p.write_text(f"#!/usr/bin/env bash\n{body}\n")
        p.chmod(0o755)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    (v / ".daytrading-installed-_").write_text(digest + "\n")
    return v


def launcher_env(tmp_path, venv, port="1"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYTRADING_")}
    env.update({"DAYTRADING_VENV": str(venv), "PYTHONPATH": str(ROOT), "DAYTRADING_MODE": "sim",
                "DAYTRADING_SIM__PORT": port, "DAYTRADING_PATHS__DATABASE": str(tmp_path / "trading.db"),
                "DAYTRADING_PATHS__LOG_DIR": str(tmp_path / "logs"),
                "DAYTRADING_PATHS__BACKUP_DIR": str(tmp_path / "backups")})
    return env


def test_liquidate_all_sh_without_gateway(tmp_path, venv):
    env = launcher_env(tmp_path, venv)
    res = subprocess.run([str(ROOT / "liquidate_all.sh"), "--yes", "--timeout", "5"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "connection refused" in res.stdout and "LIQUIDATION INCOMPLETE" in res.stdout
    assert "DATABASE could not be updated" in res.stdout and "does not exist" in res.stdout
    res = subprocess.run([str(ROOT / "liquidate_all.sh")], env=env, input="no\n", capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1 and "not confirmed; nothing done" in res.stdout


def test_start_exit_manager_sh_runs_the_bot(tmp_path, venv):
    from daytrading.config import load_settings
    from daytrading.ops import open_db

    env = launcher_env(tmp_path, venv)
    proc = subprocess.Popen([str(ROOT / "start_exit_manager.sh")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        settings = load_settings(None, {"mode": "sim", "paths": {"database": str(tmp_path / "trading.db")}},
                                 env_file=None)
        deadline = time.monotonic() + 60
        beat = None
        while time.monotonic() < deadline and beat is None:
            if (tmp_path / "trading.db").exists():
                beat = open_db(settings, "test").get_heartbeats().get("exit-manager")
            if beat is None:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.2)
        assert beat is not None, "the exit-manager never wrote a heartbeat"
        assert beat["pid"] == proc.pid  # exec: the launcher became the bot
        assert beat["state"] in ("starting", "connecting", "disconnected")  # nothing listens on port 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


@pytest.mark.timeout(300)
def test_start_supervisor_sh_replays_a_session_end_to_end(tmp_path, venv, market_data_dir):
    """The README's main-job command itself, from the repository root as a trader runs it."""
    from daytrading.sim_gateway.testing import free_port

    env = launcher_env(tmp_path, venv, port=str(free_port()))
    env["DAYTRADING_SIM__DATA"] = str(market_data_dir / "alphavantage_1min")
    env["DAYTRADING_PATHS__REPORT_DIR"] = str(tmp_path / "reports")
    env["DAYTRADING_PATHS__WATCHLIST"] = str(tmp_path / "none.json")
    # the last half hour only: the script is under test here (bootstrap, db init, exec, report);
    # the whole session's trading is test_supervisor_e2e.py::test_main_job_replays_a_recorded_session's
    env["DAYTRADING_SIM__START"] = "2020-11-17T15:30:00-05:00"
    env["DAYTRADING_DASHBOARD__ENABLED"] = "false"  # not looked at here: one process less
    res = subprocess.run([str(ROOT / "start_supervisor.sh"), "--speed", "1200"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=280)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "=== session report 2020-11-17 ===" in out
    assert "[OK  ] never short" in out and "[FAIL" not in out
    assert (tmp_path / "trading.db").exists() and list((tmp_path / "backups").glob("*"))
