"""The supervisor and its bots against a database that fails mid-session, then the
supervisor killed with SIGKILL: one real session (sim-gateway replaying recorded bars,
supervisor, exit-manager, day-trader as real processes, the real SQLite file).

In order, in one session to keep the suite short:

1. another process holds the database's write lock for 90 s, longer than the supervisor's
   shipped 60-s health check (a watchdog that took a late heartbeat for a hang would kill);
2. the disk is full: the database lives on a small tmpfs that is then filled, so SQLite
   fails with its real "database or disk is full" (as root, as in CI, the tmpfs is mounted
   for the test; otherwise the supervisor is started in its own user + mount namespace,
   ``unshare -rm``, which mounts it; see ``tests._dbtrouble.SmallDisk``);
3. the database file is damaged in place (everything after its first page overwritten);

after each the supervisor is alive, logged CRITICAL, killed and restarted nobody (same
pids), and its heartbeat file beside the database stays fresh. Then:

4. SIGKILL the supervisor: the bots and the sim-gateway (the children's process group)
   are gone within seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daytrading.coordination import freeze as side
from tests._dbtrouble import SmallDisk, damage, fill_disk, wal_truncate, write_lock
from daytrading.sim_gateway.testing import free_port
from tests.e2e.test_supervisor_e2e import WATCHLIST, _env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BOTS = ("exit-manager", "day-trader")
#: the supervisor's health check here (wall seconds): the shipped default
HEALTH_CHECK = 60.0
#: the write lock outlasts the health check, so a bot whose loop waits on the database beats too late
LOCK_SECONDS = HEALTH_CHECK + 30.0
#: the supervisor's heartbeat file must stay younger than this (wall seconds; it beats 5 times a second)
FRESH_SUPERVISOR = 5.0
# A bot's heartbeat file is not asserted fresh: a bot whose own loop waits on a database call beats
# late; the supervisor must not kill it for that while the database fails (same pids are asserted).


def _supervisor(tmp: Path, market: Path, db: Path, disk: SmallDisk) -> subprocess.Popen:
    """``daytrading supervisor --sim`` on the recorded 2020-11-17 session; output to supervisor.out."""
    (tmp / "watchlist.json").write_text(json.dumps({"symbols": WATCHLIST}), encoding="utf-8")
    argv = [sys.executable, "-m", "daytrading", "supervisor", "--sim", "--data", str(market / "alphavantage_1min"),
            "--date", "2020-11-17", "--speed", "60", "--no-end"]
    env = _env(tmp, free_port(), DAYTRADING_PATHS__DATABASE=str(db))
    env["DAYTRADING_INTERVALS__HEALTH_CHECK"] = repr(HEALTH_CHECK)
    env["DAYTRADING_DASHBOARD__ENABLED"] = "false"  # not looked at here: one process less
    with open(tmp / "supervisor.out", "wb") as out:
        proc = subprocess.Popen(disk.argv(argv), env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
    disk.attach(proc.pid)
    return proc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _criticals(log_dir: Path) -> list[dict]:
    path = log_dir / "supervisor.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("level") == "CRITICAL":
            out.append(rec)
    return out


class Watch:
    """What the test checks, again and again, while the database is in trouble."""

    def __init__(self, db: Path, sup, pids: dict[str, int]) -> None:
        self.db, self.sup, self.pids = db, sup, pids
        self.worst_age: dict[str, float] = {}

    def check(self, label: str) -> None:
        assert self.sup.poll() is None, f"{label}: the supervisor exited ({self.sup.returncode})"
        beats = side.read_heartbeat_files(self.db)
        now = datetime.now(tz=UTC)
        for bot, pid in self.pids.items():
            assert _alive(pid), f"{label}: {bot} (pid {pid}) is gone"
            hb = beats.get(bot)
            assert hb is not None and hb["pid"] == pid, f"{label}: {bot} restarted or no heartbeat file: {hb}"
            age = (now - hb["last_seen"]).total_seconds()
            self.worst_age[bot] = max(self.worst_age.get(bot, 0.0), age)
            if bot == "supervisor":
                assert age < FRESH_SUPERVISOR, f"{label}: the supervisor's heartbeat file is {age:.1f} s old"

    def hold(self, label: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.check(label)
            time.sleep(0.5)


def test_supervisor_and_bots_survive_a_lock_a_full_disk_and_a_damaged_file_then_die_with_it(
        tmp_path, market_data_dir):
    with SmallDisk(tmp_path / "disk") as small:
        logs = tmp_path / "logs"
        inner = tmp_path / "disk" / "trading_history.db"  # the path the supervisor and SQLite helpers use
        sup = _supervisor(tmp_path, market_data_dir, inner, small)
        disk = small.view(tmp_path / "disk")  # the same folder, as this process sees it
        db = disk / "trading_history.db"
        helper = small.enter()
        try:
            # both bots up and heartbeating through their files
            def ready():
                beats = side.read_heartbeat_files(db)
                if all(beats.get(b, {}).get("state") in ("running", "frozen") for b in BOTS):
                    return {b: beats[b]["pid"] for b in BOTS}
                assert sup.poll() is None, (tmp_path / "supervisor.out").read_text()[-4000:]
                return None

            pids = _wait(ready, 120, "both bots running")
            pids["supervisor"] = sup.pid
            watch = Watch(db, sup, pids)
            watch.check("before")

            # 1. a 90-s write lock held by another process
            with write_lock(inner, helper):
                watch.hold("write lock", LOCK_SECONDS)
            assert any("database unusable" in r["msg"] and "locked" in r.get("error", "") for r in _criticals(logs))
            watch.hold("after the lock", 3)

            # 2. a full disk
            wal_truncate(inner, helper)
            filler = fill_disk(disk)
            _wait(lambda: any("full" in r.get("error", "") for r in _criticals(logs)), 60, "CRITICAL: disk full")
            watch.hold("disk full", 6)
            filler.unlink()
            _wait(lambda: "database usable again" in (logs / "supervisor.jsonl").read_text(encoding="utf-8"), 60,
                  "the supervisor sees the database again")
            watch.hold("after the full disk", 3)

            # 3. the file damaged mid-session
            wal_truncate(inner, helper)
            damage(db)
            _wait(lambda: any(word in r.get("error", "") for r in _criticals(logs)
                              for word in ("malformed", "not a database")), 60, "CRITICAL: damaged file")
            watch.hold("damaged file", 6)

            # one CRITICAL line per outage (and a reminder a minute), not one per watch pass
            assert len([r for r in _criticals(logs) if "database unusable" in r["msg"]]) <= 8

            # 4. SIGKILL the supervisor: its children go with it
            group = os.getpgid(pids["exit-manager"])
            assert os.getpgid(pids["day-trader"]) == group != os.getpgid(sup.pid)
            os.kill(sup.pid, signal.SIGKILL)
            sup.wait(30)
            _wait(lambda: not any(_alive(pids[b]) for b in BOTS), 30, "bots gone after the supervisor's SIGKILL")

            def group_gone() -> bool:
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    return True
                return False

            _wait(group_gone, 30, "the whole process group (sim-gateway included) gone")
            print(f"worst heartbeat-file age per process (s): {watch.worst_age}")
        finally:
            if sup.poll() is None:
                sup.kill()
                sup.wait(30)
