"""Helpers for the operations tests: settings on a temporary folder, a database filled
through the real Coordinator with a hand-set clock, and a runner for ``python -m daytrading``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from daytrading.clock import NY, ManualClock
from daytrading.config import Settings, load_settings
from daytrading.coordination import Coordinator
from daytrading.runtime import open_coordinator

DAY = date(2020, 11, 17)
ROOT = Path(__file__).resolve().parents[2]


def at(hh: int, mm: int, ss: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=NY)


def paths(tmp_path: Path) -> dict[str, str]:
    return {"database": str(tmp_path / "trading.db"), "log_dir": str(tmp_path / "logs"),
            "backup_dir": str(tmp_path / "backups"), "watchlist": str(tmp_path / "watchlist.json"),
            "report_dir": str(tmp_path / "reports")}


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {"mode": "sim", "paths": paths(tmp_path)}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return load_settings(None, base, env_file=None)


def manual_coord(settings: Settings, bot: str, clock: ManualClock) -> Coordinator:
    return open_coordinator(settings, bot, clock)


def round_trip(coord: Coordinator, clock: ManualClock, symbol: str, qty: float, entry: float, exit_: float,
               reason: str, entered: datetime, exited: datetime, *, target_after_s: float | None = 2.0,
               client_id: int = 10, order_id: int = 1) -> None:
    """A whole trade as the bots write it: claim, entry order, confirm, target, close."""
    clock.set(entered)
    assert coord.claim_entry(symbol, qty).ok
    coord.record_order(client_id=2, order_id=order_id, symbol=symbol, side="BUY", order_type="LMT",
                       quantity=qty, status="Filled", limit_price=entry, purpose="entry",
                       order_ref=f"dt-entry:{symbol}", filled_quantity=qty, avg_fill_price=entry)
    coord.confirm_entry(symbol, qty, entry, entry_time=entered)
    if target_after_s is not None:
        clock.advance(target_after_s)
        coord.record_order(client_id=client_id, order_id=order_id + 1000, symbol=symbol, side="SELL",
                           order_type="LMT", quantity=qty, status="Submitted", limit_price=round(entry * 1.018, 2),
                           purpose="target", order_ref=f"dt-target:{symbol}")
    clock.set(exited)
    coord.close_position(symbol, exit_, reason, exit_time=exited)


def run_cli(*argv: str, env: dict[str, str] | None = None, input: str | None = None,
            timeout: float = 120, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m daytrading ARGV`` as a real subprocess (no config file, no .env)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env.pop("DAYTRADING_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "daytrading", *argv], capture_output=True, text=True,
                          env=full_env, input=input, timeout=timeout, cwd=str(cwd))
