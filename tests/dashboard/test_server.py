"""``daytrading dashboard`` as a real process on loopback: start-up refusals, the live stream,
and read connections that never make a writer wait."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from daytrading.sim_gateway.testing import free_port
from daytrading.clock import ManualClock
from tests.ops._util import ROOT, at, manual_coord, round_trip, settings_for

pytestmark = pytest.mark.timeout(120)


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYTRADING_")}
    env.update({"PYTHONPATH": str(ROOT), "DAYTRADING_MODE": "sim",
                "DAYTRADING_PATHS__DATABASE": str(tmp / "trading.db"), "DAYTRADING_PATHS__LOG_DIR": str(tmp / "logs"),
                "DAYTRADING_DASHBOARD__POLL_INTERVAL": "0.1",
                # nice 10: these tests need it served on a loaded machine (SCHED_IDLE: its own test below)
                "DAYTRADING_DASHBOARD__PRIORITY": "below_normal", **extra})
    return env


def _dashboard(tmp: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "daytrading", "dashboard", *args], env=_env(tmp, **env), cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_serving(proc: subprocess.Popen[str], port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("dashboard did not serve")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One dashboard process for the module (starting one costs ~2 s of CPU)."""
    tmp_path = tmp_path_factory.mktemp("dash")
    settings = settings_for(tmp_path)
    clock = ManualClock(at(9, 45))
    coord = manual_coord(settings, "exit-manager", clock)
    round_trip(coord, clock, "AAPL", 10, 100.0, 101.8, "target", at(9, 45), at(10, 30), order_id=1)
    port = free_port()
    proc = _dashboard(tmp_path, "--port", str(port))
    try:
        _wait_serving(proc, port)
        yield settings, clock, coord, port, proc
    finally:
        proc.terminate()
        proc.wait(20)


def test_refuses_a_non_loopback_bind_without_token_and_a_port_in_use(world):
    settings, _, _, port, _ = world
    tmp_path = settings.paths.database.parent
    res = subprocess.run([sys.executable, "-m", "daytrading", "dashboard", "--host", "0.0.0.0"], env=_env(tmp_path),
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "dashboard.token" in res.stderr and "0.0.0.0" in res.stderr, res.stderr
    res = subprocess.run([sys.executable, "-m", "daytrading", "dashboard", "--port", str(port)], env=_env(tmp_path),
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 3 and "already in use" in res.stderr, res.stderr


def test_a_control_request_is_logged_with_its_socket_address_not_a_forwarded_one(world):
    """X-Forwarded-For from a local process does not change the client a control request is logged with."""
    settings, _, _, port, _ = world
    res = httpx.post(f"http://127.0.0.1:{port}/api/control/freeze", json={},
                     headers={"X-Forwarded-For": "203.0.113.9"}, timeout=30)
    assert res.status_code == 403
    log_file = settings.paths.log_dir / "dashboard.jsonl"
    deadline, refused = time.monotonic() + 30, []
    while not refused and time.monotonic() < deadline:
        lines = log_file.read_text(encoding="utf-8").splitlines() if log_file.exists() else []
        refused = [json.loads(x) for x in lines if "control request refused" in x]
        time.sleep(0.05)  # another process's log file: poll it with a deadline
    assert refused, "no control log line"
    assert refused[-1]["client"].startswith("127.0.0.1:"), refused[-1]


def _frames(response: httpx.Response, out: list[tuple[str, dict]], stop: threading.Event) -> None:
    kind = None
    with contextlib.suppress(httpx.HTTPError):  # the test closes the stream under the reader
        for line in response.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind:
                out.append((kind, json.loads(line[6:])))


def test_stream_sends_fills_exits_positions_and_critical_events_as_recorded(world):
    _, clock, coord, port, _ = world
    got: list[tuple[str, dict]] = []
    stop = threading.Event()
    with httpx.Client(timeout=httpx.Timeout(30, read=60)) as client, \
            client.stream("GET", f"http://127.0.0.1:{port}/api/stream") as res:
        assert res.headers["content-type"].startswith("text/event-stream")
        reader = threading.Thread(target=_frames, args=(res, got, stop), daemon=True)
        reader.start()

        def wait(pred, what: str):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                found = [d for k, d in list(got) if pred(k, d)]
                if found:
                    return found[0]
                time.sleep(0.02)
            raise AssertionError(f"no {what} on the stream; got {[k for k, _ in got]}")

        wait(lambda k, d: k == "status", "status")
        clock.set(at(11, 0))
        assert coord.claim_entry("NIO", 100).ok
        coord.confirm_entry("NIO", 100, 40.0, entry_time=at(11, 0))
        pos = wait(lambda k, d: k == "positions" and any(p["symbol"] == "NIO" for p in d["positions"]), "NIO")
        assert 'data-symbol="NIO"' in pos["html"]["positions"]
        coord.close_position("NIO", 40.72, "target", exit_time=at(11, 30))
        exit_ = wait(lambda k, d: k == "exit", "exit")
        assert [t["symbol"] for t in exit_["trades"]] == ["NIO"] and 'data-symbol="NIO"' in exit_["trade_rows"]
        coord.record_event("CRITICAL", "outage", "broker unreachable for 300 market s")
        crit = wait(lambda k, d: k == "critical", "critical")
        assert crit["events"][0]["kind"] == "outage"
        coord.record_gate_decisions([{"symbol": "AMD", "gate": "cooldown", "passed": False, "reason": "r",
                                      "when": at(11, 31)}])
        gate = wait(lambda k, d: k == "gate", "gate")
        assert gate["decisions"][0]["symbol"] == "AMD" and "cooldown" in gate["html"]["gates"]
        stop.set()


def test_dashboard_reads_never_make_a_writer_wait(world):
    """Many SSE clients and API requests on the dashboard while a writer commits with
    ``busy_timeout = 100`` ms (any real lock conflict raises): not one write is refused.
    The same writer beside an ordinary read-write connection that holds a transaction is
    refused, so the check can fail."""
    settings, _, _, port, _ = world
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    served = {"n": 0}

    def sse() -> None:
        with contextlib.suppress(httpx.HTTPError), httpx.Client(timeout=httpx.Timeout(10, read=30)) as c, \
                c.stream("GET", f"{base}/api/stream") as r:
            for _ in r.iter_lines():
                if stop.is_set():
                    return

    def requests() -> None:
        with contextlib.suppress(httpx.HTTPError), httpx.Client(timeout=10) as c:
            while not stop.is_set():
                for path in ("/api/status", "/api/positions", "/api/gates", "/metrics", "/health", "/"):
                    c.get(base + path)
                    served["n"] += 1

    threads = [threading.Thread(target=sse, daemon=True) for _ in range(10)]
    threads += [threading.Thread(target=requests, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    # 100 ms, not 0: a WAL reader that catches the WAL-index header in the middle of a commit
    # takes the write lock for microseconds to re-read it (SQLite's walIndexReadHdr); the bots
    # wait up to 5 s (db/engine.py). A connection holding a write transaction still fails it (below).
    writer = sqlite3.connect(settings.paths.database, timeout=0.1, isolation_level=None)
    writer.execute("PRAGMA busy_timeout=100")
    errors: list[str] = []
    try:
        i, deadline = 0, time.monotonic() + 80  # a loaded machine serves slowly: wait for the 200 reads
        while (i < 300 or served["n"] < 200) and time.monotonic() < deadline:  # writes during the load
            i += 1
            try:
                writer.execute("BEGIN IMMEDIATE")
                writer.execute("INSERT INTO events (ts, session_date, bot, level, kind, message) "
                               "VALUES (?, '2020-11-17', 'writer', 'INFO', 'w', ?)", ("2020-11-17T16:00:00+00:00", str(i)))
                writer.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                errors.append(str(exc))
                writer.execute("ROLLBACK") if writer.in_transaction else None
    finally:
        stop.set()
    assert served["n"] >= 200, served
    assert errors == [], errors[:3]
    # control: an ordinary read-write connection holding a write transaction makes the same writer fail
    rogue = sqlite3.connect(settings.paths.database, isolation_level=None)
    rogue.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        writer.execute("BEGIN IMMEDIATE")
    rogue.execute("ROLLBACK")
    writer.close()
    rogue.close()


def _task_stats(pid: int) -> dict[str, list[str]]:
    """Each thread's /proc stat fields from field 3 (state) on (proc(5))."""
    return {t.name: (t / "stat").read_text().rsplit(")", 1)[1].split() for t in Path(f"/proc/{pid}/task").iterdir()}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and SCHED_IDLE are Linux's")
def test_the_dashboard_runs_below_the_bots_in_every_thread(world):
    """dashboard.priority reaches the serving process: below_normal = nice +10 in every thread,
    the database worker threads started after start-up included. The default, idle, is the
    SCHED_IDLE policy for the threads there are and those started later."""
    *_, port, proc = world
    httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=30)  # a read: worker threads exist now
    stats = _task_stats(proc.pid)
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert len(stats) > 1 and {int(f[16]) for f in stats.values()} == {min(19, mine + 10)}, stats  # field 19: nice
    code = ("import os, threading, time; from daytrading.dashboard.server import lower_priority; "
            "print(lower_priority('idle'), flush=True); t = threading.Thread(target=time.sleep, args=(60,), daemon=True); "
            "t.start(); print('ready', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], env=_env(Path(".")), stdout=subprocess.PIPE, text=True)
    try:
        said = [child.stdout.readline().strip(), child.stdout.readline().strip()]
        assert said[0].startswith("SCHED_IDLE") and said[1] == "ready", said
        policies = {tid: int(f[38]) for tid, f in _task_stats(child.pid).items()}  # field 41: policy
        assert len(policies) == 2 and set(policies.values()) == {os.SCHED_IDLE}, policies
    finally:
        child.kill()
        child.wait()
