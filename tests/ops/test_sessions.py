"""Session-aware ops: after a replay of a recorded day, the commands show that day (and say so);
the session report ends with the follow-up commands; ``--port`` and ``--client-id`` are validated."""

from __future__ import annotations

import json
from datetime import date

import pytest

from daytrading.cli import main
from daytrading.clock import ManualClock
from daytrading.config import load_settings
from daytrading.ops.report import followup_commands, session_report
from daytrading.ops.sessions import CURRENT, EMPTY, LATEST, REQUESTED, choose_session
from tests.ops._util import DAY, at, manual_coord, round_trip, settings_for


@pytest.fixture()
def replayed(tmp_path, monkeypatch):
    """A database holding only 2020-11-17 (as after a sim replay), 2 trades and 3 rejections."""
    monkeypatch.chdir(tmp_path)
    for key in ("DAYTRADING_CONFIG", "DAYTRADING_SIM__START", "DAYTRADING_SIM__EPOCH"):
        monkeypatch.delenv(key, raising=False)
    settings = settings_for(tmp_path)
    clock = ManualClock(at(9, 45))
    coord = manual_coord(settings, "exit-manager", clock)
    round_trip(coord, clock, "AAPL", 10, 100.0, 101.8, "target", at(9, 45), at(10, 30), order_id=1)
    round_trip(coord, clock, "TSLA", 5, 400.0, 396.4, "stop", at(10, 0), at(10, 20), order_id=2)
    coord.record_gate_decisions([
        {"symbol": "MSFT", "gate": "max_positions", "passed": False, "reason": "4 of 4", "when": at(12, 1)},
        {"symbol": "NVDA", "gate": "max_positions", "passed": False, "reason": "4 of 4", "when": at(12, 1)},
        {"symbol": "INTC", "gate": "cooldown", "passed": False, "reason": "5 min < 30", "when": at(12, 2)},
    ])
    return settings, coord


def _run(capsys, settings, *argv: str) -> tuple[int, str]:
    code = main(["--mode", "sim", "--db", str(settings.paths.database), *argv])
    return code, capsys.readouterr().out


def test_choose_session_rules(replayed):
    settings, coord = replayed
    later = date(2026, 12, 1)
    assert choose_session(coord, DAY, clock_day=later).source == REQUESTED
    choice = choose_session(coord, None, clock_day=later)
    assert (choice.day, choice.source) == (DAY, LATEST)
    assert "latest recorded session" in choice.label and "2026-12-01 has no records" in choice.label
    assert choose_session(coord, None, clock_day=DAY).source == CURRENT
    empty = manual_coord(settings_for(settings.paths.database.parent / "empty"), "t", ManualClock(at(9, 0)))
    assert choose_session(empty, None, clock_day=later) == choose_session(empty, None, clock_day=later)
    assert choose_session(empty, None, clock_day=later).source == EMPTY


def test_commands_default_to_the_latest_recorded_session(replayed, capsys):
    """The wall clock's session (live clock: today) has nothing; every command shows 2020-11-17."""
    settings, _ = replayed
    code, out = _run(capsys, settings, "why", "--summary", "--json")
    why = json.loads(out)
    assert code == 0 and why["session_date"] == "2020-11-17" and why["session_source"] == LATEST
    assert {g["gate"]: g["rejections"] for g in why["by_gate"]} == {"max_positions": 2, "cooldown": 1}

    code, out = _run(capsys, settings, "why", "--summary")
    out = " ".join(out.split())  # rich wraps the title
    assert code == 0 and "session 2020-11-17 (latest recorded session" in out and "no rejections recorded" not in out

    code, out = _run(capsys, settings, "status", "--json")
    status = json.loads(out)
    assert status["session_date"] == "2020-11-17" and status["trades"] == 2
    assert status["realized_pnl"] == pytest.approx(18.0 - 18.0, abs=0.01)
    assert status["gate_rejections"] == {"max_positions": 2, "cooldown": 1}

    code, out = _run(capsys, settings, "analyze-today", "--json", "--no-chart")
    analysis = json.loads(out)
    assert code == 0 and analysis["session_date"] == "2020-11-17" and analysis["total"]["trades"] == 2

    code, out = _run(capsys, settings, "orders", "--no-broker", "--json")
    orders = json.loads(out)
    assert code == 0 and orders["session_date"] == "2020-11-17" and len(orders["orders"]) == 4
    assert "latest recorded session" in orders["session_label"]

    code, out = _run(capsys, settings, "why", "TSLA", "--date", "2020-11-18", "--json")
    assert json.loads(out)["session_source"] == REQUESTED


def test_session_report_ends_with_the_follow_up_commands(replayed, tmp_path):
    _, coord = replayed
    rep = session_report(coord, DAY, gateway_report=None, bars=None, out_dir=tmp_path / "r")
    tail = rep.text.splitlines()[-5:]
    db = coord.engine.url.database
    assert tail[0] == f"  daytrading --db {db} analyze --date 2020-11-17"
    assert tail[1] == f"  daytrading --db {db} why --summary --date 2020-11-17"
    assert rep.text.splitlines()[-6] == "next:"
    synthetic = session_report(coord, DAY, gateway_report={"synthetic": True}, bars=None, out_dir=tmp_path / "r")
    assert synthetic.text.splitlines()[-2].startswith("  daytrading --db") and "SYNTHETIC" in synthetic.text.splitlines()[-1]
    assert followup_commands(DAY, tmp_path / "trading_history.db")[0] == "daytrading analyze --date 2020-11-17"


def test_followup_commands_work_as_printed(replayed, capsys):
    settings, coord = replayed
    for command in followup_commands(DAY, coord.engine.url.database)[:4]:
        code = main(["--mode", "sim", *command.split()[1:]])
        out = capsys.readouterr().out
        assert code == 0, command
        assert "2020-11-17" in out, command


def test_port_means_the_sim_gateway_port_in_sim_mode(tmp_path, monkeypatch):
    from daytrading.broker.connection import broker_endpoint
    from daytrading.cli import _overrides, build_parser

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["--mode", "sim", "--port", "4999", "status"])
    settings = load_settings(None, _overrides(args), env_file=None)
    assert settings.sim.port == 4999 and broker_endpoint(settings).port == 4999
    args = build_parser().parse_args(["--mode", "paper", "--port", "4001", "status"])
    assert broker_endpoint(load_settings(None, _overrides(args), env_file=None)).port == 4001


@pytest.mark.parametrize(("argv", "message"), [
    (["exit-manager", "--client-id", "-1"], "client id must be between 0 and 2147483647, got -1"),
    (["day-trader", "--client-id", "x"], "client id must be an integer, got 'x'"),
    (["exit-manager", "--client-id", "2"], "must differ"),
    (["day-trader", "--client-id", "10"], "must differ"),
    (["test-connection", "--client-id", "-5"], "got -5"),
])
def test_bot_client_id_is_validated_before_reaching_ib(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["--mode", "sim", "--db", str(tmp_path / "t.db"), *argv])
    except SystemExit as exc:  # argparse's own error exit
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not (tmp_path / "t.db").exists()  # refused before anything was opened
