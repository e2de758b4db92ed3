"""logs, why, orders, monitor and diagnose as real `python -m daytrading` subprocesses over a
real SQLite file and real JSON-lines logs (the broker parts are covered in test_broker_ops.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from daytrading.clock import ManualClock
from daytrading.ops.diagnose import diagnose
from daytrading.ops.tools import position_rows, read_log_records
from daytrading.runtime import JsonLinesFormatter
from tests.ops._util import DAY, ROOT, at, manual_coord, round_trip, run_cli, settings_for
from tests.ops.test_status_analyze_report import replay_env


def write_logs(log_dir, clock):
    """Real records through the project's JSON-lines formatter."""
    import logging

    log_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for bot, items in {
        "day-trader": [("INFO", "Scanner refresh: watchlist=3 ib=0 polygon=0 unique=3 kept=3",
                        {"counts": {"kept": 3}, "symbols": ["AAPL", "TSLA", "NIO"]}),
                       ("INFO", "entry sent", {"symbol": "AAPL", "qty": 10}),
                       ("WARNING", "backfill failed", {"symbol": "NIO", "error": "pacing"})],
        "exit-manager": [("INFO", "target filled; position closed", {"symbol": "AAPL", "price": 101.8}),
                         ("ERROR", "exit not filled", {"symbol": "TSLA"})],
    }.items():
        fmt = JsonLinesFormatter(bot, clock)
        lines = []
        for level, msg, extra in items:
            rec = logging.makeLogRecord({"name": f"daytrading.{bot}", "levelname": level,
                                         "levelno": getattr(logging, level), "msg": msg, **extra})
            lines.append(fmt.format(rec))
        path = log_dir / f"{bot.replace('-', '_')}.jsonl"
        path.write_text("\n".join(lines) + "\nnot json at all\n", encoding="utf-8")
        out[bot] = path
    return out


@pytest.fixture()
def world(tmp_path):
    settings = settings_for(tmp_path)
    clock = ManualClock(at(10, 0))
    coord = manual_coord(settings, "exit-manager", clock)
    round_trip(coord, clock, "AAPL", 10, 100.0, 101.8, "target", at(10, 0), at(10, 40), order_id=1)
    clock.set(at(11, 0))
    assert coord.claim_entry("NIO", 100).ok
    coord.confirm_entry("NIO", 100, 40.0)
    coord.record_gate_decisions([
        {"symbol": "AAPL", "gate": "closed_today", "passed": False, "reason": "closed at 10:40", "when": at(11, 1)},
        {"symbol": "TSLA", "gate": "max_positions", "passed": False, "reason": "4 of 4", "when": at(11, 2)},
        {"symbol": "MSFT", "gate": "max_positions", "passed": False, "reason": "4 of 4", "when": at(11, 2)},
        {"symbol": "MSFT", "gate": "session", "passed": True, "reason": "open", "when": at(11, 2)},
    ])
    clock.set(at(11, 5))
    write_logs(tmp_path / "logs", clock)
    return settings, clock, coord


def test_logs_filters(world, tmp_path):
    env = replay_env(tmp_path, at(11, 5))
    res = run_cli("logs", "--symbol", "tsla", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and all("TSLA" in line for line in lines)  # the scanner line lists it too
    res = run_cli("logs", "--bot", "exit-manager", "--level", "warning", "--json", env=env, cwd=tmp_path)
    recs = [json.loads(line) for line in res.stdout.strip().splitlines()]
    assert [(r["bot"], r["level"], r["msg"]) for r in recs] == [("exit-manager", "ERROR", "exit not filled")]
    res = run_cli("logs", "-n", "1", "--bot", "day-trader", env=env, cwd=tmp_path)
    assert "backfill failed" in res.stdout and len(res.stdout.strip().splitlines()) == 1
    res = run_cli("--log-dir", str(tmp_path / "nope"), "logs", env=env, cwd=tmp_path)
    assert res.returncode == 1 and "no log folder" in res.stdout


def test_logs_follow_prints_new_records(world, tmp_path):
    env = {**replay_env(tmp_path, at(11, 5)), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "daytrading", "logs", "-n", "0", "--follow", "--symbol", "AMD"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        # the earlier records do not match; wait until the follower has started, then append
        deadline = time.monotonic() + 30
        path = tmp_path / "logs" / "exit_manager.jsonl"
        record = {"time": "2020-11-17T11:06:00-05:00", "level": "INFO", "bot": "exit-manager",
                  "msg": "stop triggered", "symbol": "AMD"}
        line = ""
        while time.monotonic() < deadline and "stop triggered" not in line:
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            import select

            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()
        assert "stop triggered" in line and "AMD" in line
    finally:
        proc.terminate()
        proc.wait(10)


def test_read_log_records_orders_by_time(world, tmp_path):
    recs = read_log_records(tmp_path / "logs", level="INFO")
    assert len(recs) == 5 and [r["time"] for r in recs] == sorted(r["time"] for r in recs)


def test_why_symbol_and_summary(world, tmp_path):
    env = replay_env(tmp_path, at(11, 5))
    res = run_cli("why", "aapl", "--json", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["closed_today"]["exit_reason"] == "target" and data["position"] is None
    assert [d["gate"] for d in data["decisions"]] == ["closed_today"]
    res = run_cli("why", "--summary", "--json", env=env, cwd=tmp_path)
    data = json.loads(res.stdout)
    assert data["by_gate"][0] == {"gate": "max_positions", "rejections": 2, "symbols": 2, "top_reason": "4 of 4"}
    assert {d["symbol"]: d["passed"] for d in data["latest"]}["MSFT"] in (True, False)
    res = run_cli("why", "NIO", env=env, cwd=tmp_path)
    assert res.returncode == 0 and "OPEN 100 sh @ 40.00" in res.stdout
    res = run_cli("why", env=env, cwd=tmp_path)
    assert res.returncode == 2 and "SYMBOL or --summary" in res.stdout


def test_orders_and_monitor_without_broker(world, tmp_path):
    env = replay_env(tmp_path, at(11, 5))
    res = run_cli("orders", "--no-broker", "--json", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert [(o["symbol"], o["side"], o["purpose"]) for o in data["orders"]] == [
        ("AAPL", "BUY", "entry"), ("AAPL", "SELL", "target")]
    # no gateway on this port: the database part still shows, the broker problem is named
    res = run_cli("--port", "1", "orders", env={**env, "DAYTRADING_SIM__PORT": "1"}, cwd=tmp_path)
    assert res.returncode == 0 and "orders of session 2020-11-17 (2)" in res.stdout
    assert "connection refused" in res.stdout
    res = run_cli("monitor", "--once", "--no-broker", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "NIO" in res.stdout and "40.00" in res.stdout


def test_position_rows_math(world):
    _, _, coord = world
    [row] = position_rows(coord.get_active_positions(), {"NIO": 40.4})
    assert row["pnl"] == pytest.approx(40.0) and row["pnl_pct"] == pytest.approx(1.0)
    assert row["target"] == pytest.approx(40.72) and row["to_target_pct"] == pytest.approx((40.72 / 40.4 - 1) * 100, abs=1e-3)
    assert row["stop"] == pytest.approx(39.64) and row["to_stop_pct"] == pytest.approx((40.4 / 39.64 - 1) * 100, abs=1e-3)
    [row] = position_rows(coord.get_active_positions(), {})
    assert row["pnl"] is None and row["to_stop_pct"] is None


def test_diagnose_checks(world, tmp_path):
    settings, clock, coord = world
    coord.heartbeat("running")  # exit-manager alive
    manual_coord(settings, "day-trader", clock).heartbeat("frozen")
    coord.freeze("test")
    checks = {c.name: c for c in diagnose(settings, broker=False, clock=clock)}
    assert checks["database"].status == "OK"
    assert checks["supervisor"].status == "FAIL" and "supervisor" in checks["supervisor"].fix
    assert checks["exit-manager"].status == "OK"
    assert checks["day-trader"].status == "FAIL" and "unfreeze" in checks["day-trader"].fix
    assert checks["freeze"].status == "FAIL" and "unfreeze" in checks["freeze"].fix
    assert checks["session open"].status == "OK"
    assert checks["scanner output"].status == "OK" and "kept=3" in checks["scanner output"].detail
    assert checks["gate rejections"].status == "OK"  # one trade today
    assert checks["broker connection"].status == "SKIP"
    clock.set(at(15, 40))  # past the cut-off (16:00 − 15 − 15 min)
    assert {c.name: c for c in diagnose(settings, broker=False, clock=clock)}["session open"].status == "FAIL"
    clock.set(at(12, 0, day=DAY.replace(day=26)))  # Thanksgiving 2020
    c = {c.name: c for c in diagnose(settings, broker=False, clock=clock)}["session open"]
    assert c.status == "FAIL" and "not a trading session" in c.detail and "2020-11-27" in c.fix


def test_diagnose_command_names_failures(world, tmp_path):
    env = {**replay_env(tmp_path, at(11, 5)), "DAYTRADING_SIM__PORT": "1"}
    res = run_cli("diagnose", "--json", env=env, cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert checks["broker connection"]["status"] == "FAIL"
    assert "connection refused" in checks["broker connection"]["detail"]
    assert checks["exit-manager"]["status"] == "FAIL"
    res = run_cli("diagnose", "--no-broker", env=env, cwd=tmp_path)
    assert res.returncode == 1 and "why are there no trades" in res.stdout


def test_script_wrapper_moves_global_options(world, tmp_path):
    env = {k: v for k, v in replay_env(tmp_path, at(11, 5)).items() if k != "DAYTRADING_PATHS__DATABASE"}
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "why.py"), "--summary", "--json",
                          "--db", str(tmp_path / "trading.db")], capture_output=True, text=True, cwd=tmp_path,
                         env={**{k: v for k, v in __import__("os").environ.items() if not k.startswith("DAYTRADING_")},
                              **env}, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["by_gate"][0]["gate"] == "max_positions"
