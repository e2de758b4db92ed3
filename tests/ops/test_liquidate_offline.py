"""liquidate-all without a reachable broker: a real subprocess, a real database file."""

from __future__ import annotations

from daytrading.clock import ManualClock
from tests.ops._util import at, manual_coord, run_cli, settings_for


def open_row(coord, symbol, qty, entry):
    assert coord.claim_entry(symbol, qty).ok
    coord.confirm_entry(symbol, qty, entry)


def test_liquidate_all_without_gateway_keeps_the_freeze(tmp_path):
    settings = settings_for(tmp_path)
    coord = manual_coord(settings, "day-trader", ManualClock(at(10, 0)))
    open_row(coord, "AAPL", 10, 100.0)
    env = {"DAYTRADING_MODE": "sim", "DAYTRADING_SIM__PORT": "1",
           "DAYTRADING_PATHS__DATABASE": str(tmp_path / "trading.db")}
    res = run_cli("liquidate-all", "--yes", env=env, cwd=tmp_path)
    assert res.returncode == 1
    assert "connection refused" in res.stdout and "LIQUIDATION INCOMPLETE" in res.stdout
    assert coord.is_frozen()  # the bots stay stood down
    assert [p.symbol for p in coord.get_active_positions()] == ["AAPL"]  # nothing invented
    res = run_cli("liquidate-all", "--yes", "--timeout", "-1", env=env, cwd=tmp_path)
    assert res.returncode == 2 and "--timeout must be positive" in res.stdout
