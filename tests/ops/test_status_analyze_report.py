"""status, analyze and the session report over a real SQLite file written through the Coordinator."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from rich.console import Console

from daytrading.clock import NY, ManualClock
from daytrading.ops.analyze import analyze_session
from daytrading.ops.report import close_series, session_report
from daytrading.ops.status import render_status, status_rows
from tests.ops._util import DAY, at, manual_coord, round_trip, run_cli, settings_for


@pytest.fixture()
def filled(tmp_path):
    """A session with a target win, a stop loss, an EOD exit, one open position and gate rejections."""
    settings = settings_for(tmp_path)
    clock = ManualClock(at(9, 45))
    coord = manual_coord(settings, "exit-manager", clock)
    round_trip(coord, clock, "AAPL", 10, 100.0, 101.8, "target", at(9, 45), at(10, 30), order_id=1)
    round_trip(coord, clock, "TSLA", 5, 400.0, 396.4, "stop", at(10, 0), at(10, 20), order_id=2)
    round_trip(coord, clock, "AMD", 20, 80.0, 80.5, "eod", at(11, 0), at(15, 45), order_id=3)
    clock.set(at(12, 0))
    assert coord.claim_entry("NIO", 100).ok
    coord.confirm_entry("NIO", 100, 40.0, entry_time=at(12, 0))
    coord.record_order(client_id=10, order_id=77, symbol="NIO", side="SELL", order_type="LMT", quantity=100,
                       status="Submitted", limit_price=40.72, purpose="target", order_ref="dt-target:NIO")
    coord.record_gate_decisions([
        {"symbol": "MSFT", "gate": "max_positions", "passed": False, "reason": "4 of 4", "when": at(12, 1)},
        {"symbol": "NVDA", "gate": "max_positions", "passed": False, "reason": "4 of 4", "when": at(12, 1)},
        {"symbol": "INTC", "gate": "cooldown", "passed": False, "reason": "5 min < 30", "when": at(12, 2)},
        {"symbol": "INTC", "gate": "session", "passed": True, "reason": "open", "when": at(12, 2)},
    ])
    clock.set(at(15, 50))
    return settings, clock, coord


def test_status_rows_from_heartbeats_and_trades(filled):
    settings, clock, coord = filled
    sup = manual_coord(settings, "supervisor", clock)
    detail = {"bots": {"exit-manager": {"state": "RUNNING", "pid": 4242, "started_at": at(9, 0).isoformat(),
                                        "uptime_s": 125.0, "restarts": 0, "last_exit_code": None},
                       "day-trader": {"state": "RESTARTING", "pid": None, "started_at": None, "uptime_s": None,
                                      "restarts": 3, "last_exit_code": -9}},
              "sim": {"port": 4012, "session_date": DAY.isoformat()}}
    sup.heartbeat("running", json.dumps(detail))
    coord.heartbeat("running", json.dumps({"connected": True}))
    data = status_rows(coord, clock, health_check=60)
    bots = {b["bot"]: b for b in data["bots"]}
    assert bots["exit-manager"]["state"] == "RUNNING" and bots["exit-manager"]["pid"] == 4242
    assert bots["exit-manager"]["heartbeat_state"] == "running"
    assert bots["exit-manager"]["heartbeat_age_s"] < 30
    assert bots["day-trader"]["state"] == "RESTARTING" and bots["day-trader"]["restarts"] == 3
    assert bots["day-trader"]["heartbeat_age_s"] is None
    assert [p["symbol"] for p in data["positions"]] == ["NIO"]
    assert data["closed_today"] == 3 and data["trades"] == 3
    # 10 × 1.8 − 5 × 3.6 + 20 × 0.5 = 18 − 18 + 10
    assert data["realized_pnl"] == pytest.approx(10.0)
    assert data["realized_pnl_pct"] == pytest.approx(10.0 / (1000 + 2000 + 1600) * 100, abs=1e-4)
    assert data["gate_rejections"] == {"max_positions": 2, "cooldown": 1}
    assert data["wins"] == 2 and data["losses"] == 1

    console = Console(record=True, width=150)
    console.print(render_status(coord, clock))
    out = console.export_text()
    for text in ("exit-manager", "RUNNING", "RESTARTING", "4242", "NIO", "+10.00 $", "max_positions=2"):
        assert text in out, text


def test_status_without_supervisor_uses_heartbeat_age(filled):
    settings, clock, coord = filled
    coord.heartbeat("frozen")
    later = time.time() + 120  # two minutes of wall time without a heartbeat
    bots = {b["bot"]: b for b in status_rows(coord, clock, health_check=60, now_wall=later)["bots"]}
    assert bots["exit-manager"]["state"] == "STOPPED" and bots["exit-manager"]["stale"]
    bots = {b["bot"]: b for b in status_rows(coord, clock, health_check=60)["bots"]}
    assert bots["exit-manager"]["state"] == "RUNNING" and bots["exit-manager"]["heartbeat_state"] == "frozen"
    assert bots["day-trader"]["state"] == "STOPPED" and not bots["day-trader"]["stale"]


def test_analyze_figures(filled):
    _, _, coord = filled
    a = analyze_session(coord, DAY)
    assert a.total.trades == 3 and a.total.wins == 2 and a.total.losses == 1
    assert a.total.win_rate == pytest.approx(2 / 3, abs=1e-4)
    assert a.total.avg_win == pytest.approx(14.0) and a.total.avg_loss == pytest.approx(-18.0)
    assert set(a.by_symbol) == {"AAPL", "TSLA", "AMD"}
    assert {r: s.trades for r, s in a.by_reason.items()} == {"eod": 1, "stop": 1, "target": 1}
    assert a.by_reason["stop"].pnl == pytest.approx(-18.0)


def test_session_report_checks_and_charts(filled, tmp_path, minute_data_dir):
    _, clock, coord = filled
    from daytrading.marketdata.loader import load_session

    bars = load_session(minute_data_dir, DAY, ["AAPL"])["AAPL"]  # what the supervisor passes
    gw = {"positions": {"NIO": 100}, "shorts": [], "min_position": {"AAPL": 0, "TSLA": 0},
          "executions": [{"symbol": "AAPL", "side": "SLD", "shares": 10},
                         {"symbol": "TSLA", "side": "SLD", "shares": 5},
                         {"symbol": "AMD", "side": "SLD", "shares": 20}]}
    rep = session_report(coord, DAY, gateway_report=gw, bars={"AAPL": bars}, out_dir=tmp_path / "rep")
    status = {c.name: c.status for c in rep.checks}
    assert status == {"never short": "OK", "no re-entry": "OK", "every position protected": "OK",
                      "flat at end": "FAIL", "database matches gateway": "OK"}
    assert not rep.ok  # NIO is still held
    names = sorted(p.name for p in rep.chart_paths)
    assert names == sorted([f"equity_{DAY}.png", f"AAPL_{DAY}.png", f"TSLA_{DAY}.png", f"AMD_{DAY}.png"])
    for p in rep.chart_paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    assert "trades 3" in rep.text and "target=1" in rep.text and "[FAIL] flat at end" in rep.text
    # the raw recorded file (naive times, a 'timestamp' column) gives the same kind of series
    raw = pd.read_csv(minute_data_dir / "AAPL_1min_2020-10-26_2021-01-08.csv.gz")
    s = close_series(raw, DAY)
    assert s.index.min().date() == DAY and str(s.index.tz) == str(NY)
    assert 110 < float(s.loc[at(9, 31)]) < 125  # AAPL traded ≈ 120 $ that day


def test_session_report_finds_violations(tmp_path):
    settings = settings_for(tmp_path)
    clock = ManualClock(at(9, 45))
    coord = manual_coord(settings, "exit-manager", clock)
    # unprotected for 2 hours, then re-entered after its close
    round_trip(coord, clock, "AAPL", 10, 100.0, 99.0, "stop", at(9, 45), at(11, 45), target_after_s=None)
    # the claim check refuses a re-entry, so the second trade is written as the failure would leave it
    clock.set(at(12, 0))
    assert not coord.claim_entry("AAPL", 10).ok
    coord.record_order(client_id=2, order_id=9, symbol="AAPL", side="BUY", order_type="MKT", quantity=10,
                       status="Filled", purpose="entry", filled_quantity=10, avg_fill_price=99.5)
    gw = {"positions": {}, "shorts": [{"symbol": "AAPL", "position": -10}], "min_position": {"AAPL": -10},
          "executions": [{"symbol": "AAPL", "side": "SLD", "shares": 20}]}
    rep = session_report(coord, DAY, gateway_report=gw, bars=None, out_dir=tmp_path / "rep",
                         protect_within_s=60)
    status = {c.name: c.status for c in rep.checks}
    assert status["never short"] == "FAIL"
    assert status["no re-entry"] == "FAIL"
    assert status["every position protected"] == "FAIL"
    assert status["database matches gateway"] == "FAIL"
    assert status["flat at end"] == "OK"
    assert not rep.ok


def test_session_report_without_gateway_skips(tmp_path):
    settings = settings_for(tmp_path)
    clock = ManualClock(at(9, 45))
    coord = manual_coord(settings, "exit-manager", clock)
    rep = session_report(coord, DAY, gateway_report=None, bars=None, out_dir=tmp_path / "rep")
    assert rep.ok and {c.status for c in rep.checks} == {"OK", "SKIP"}
    assert [p.name for p in rep.chart_paths] == [f"equity_{DAY}.png"]


def replay_env(tmp_path, when):
    """Environment that puts a CLI subprocess on a replay clock at ``when`` (speed 1)."""
    return {"DAYTRADING_MODE": "sim", "DAYTRADING_PATHS__DATABASE": str(tmp_path / "trading.db"),
            "DAYTRADING_PATHS__REPORT_DIR": str(tmp_path / "reports"),
            "DAYTRADING_PATHS__LOG_DIR": str(tmp_path / "logs"),
            "DAYTRADING_SIM__START": when.isoformat(), "DAYTRADING_SIM__EPOCH": str(time.time()),
            "DAYTRADING_SIM__SPEED": "1"}


def test_status_and_analyze_commands(filled, tmp_path):
    env = replay_env(tmp_path, at(15, 50))
    res = run_cli("status", "--json", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["session_date"] == DAY.isoformat() and data["trades"] == 3
    assert data["realized_pnl"] == pytest.approx(10.0)

    res = run_cli("status", env=env, cwd=tmp_path)
    assert res.returncode == 0 and "active positions (1)" in res.stdout and "NIO" in res.stdout

    res = run_cli("analyze", "--date", DAY.isoformat(), env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "by exit reason" in res.stdout and "TSLA" in res.stdout
    chart = tmp_path / "reports" / f"equity_{DAY}.png"
    assert chart.exists() and chart.read_bytes()[:4] == b"\x89PNG"

    res = run_cli("analyze-today", "--json", "--no-chart", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["total"]["trades"] == 3 and out["chart"] is None

    res = run_cli("analyze", "--date", "2020-13-01", env=env, cwd=tmp_path)
    assert res.returncode == 2 and "not a date" in res.stderr


def test_status_missing_and_corrupt_database(tmp_path):
    env = replay_env(tmp_path, at(12, 0))
    res = run_cli("status", env=env, cwd=tmp_path)
    assert res.returncode == 1 and "does not exist" in res.stderr
    assert not (tmp_path / "trading.db").exists()
    (tmp_path / "trading.db").write_bytes(b"this is not a database" * 100)
    res = run_cli("status", env=env, cwd=tmp_path)
    assert res.returncode == 1 and "cannot be opened" in res.stderr and "Traceback" not in res.stderr


def test_the_dashboard_the_supervisor_started_is_a_row_with_its_url(filled):
    settings, clock, coord = filled
    sup = manual_coord(settings, "supervisor", clock)
    detail = {"bots": {"exit-manager": {"state": "RUNNING", "pid": 4242, "uptime_s": 5.0, "restarts": 0},
                       "day-trader": {"state": "RUNNING", "pid": 4243, "uptime_s": 5.0, "restarts": 0},
                       "dashboard": {"state": "RESTARTING", "pid": None, "uptime_s": None, "restarts": 2,
                                     "last_exit_code": 1, "url": "http://127.0.0.1:8787/"}},
              "sim": None}
    sup.heartbeat("running", json.dumps(detail))
    bots = {b["bot"]: b for b in status_rows(coord, clock, health_check=60)["bots"]}
    dash = bots["dashboard"]
    assert dash["state"] == "RESTARTING" and dash["restarts"] == 2 and dash["url"] == "http://127.0.0.1:8787/"
    assert dash["heartbeat_state"] is None and not dash["stale"]  # the dashboard writes no heartbeat
    console = Console(record=True, width=150)
    console.print(render_status(coord, clock))
    out = console.export_text()
    assert "dashboard" in out and "http://127.0.0.1:8787/" in out
    sup.heartbeat("stopped", json.dumps(detail))  # no supervisor: no dashboard row (nothing to say about it)
    assert "dashboard" not in {b["bot"] for b in status_rows(coord, clock, health_check=60)["bots"]}
