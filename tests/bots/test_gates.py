"""The gate chain: order, first rejection wins, values recorded, sizing rule."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from daytrading.bots.gates import GATES, GateChain, GateContext, position_size
from daytrading.clock import NY
from daytrading.config import load_settings

DAY = date(2020, 11, 17)


def at(hh: int, mm: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY)


@pytest.fixture
def settings():
    return load_settings(None, {"mode": "sim"}, env_file=None)


def ctx(**kw):
    base = dict(symbol="TSLA", now=at(10, 30), price=400.0, net_liquidation=100_000.0, available_funds=100_000.0)
    base.update(kw)
    return GateContext(**base)


def test_all_gates_pass_and_size_follows_allocation(settings):
    results = GateChain(settings).run(ctx())
    assert [r.gate for r in results] == list(GATES[:-1])
    assert all(r.passed for r in results)
    # 0.25 × 100 000 / 4 positions = 6 250 $ → 15 shares at 400 $
    assert results[-2].values["qty"] == 15 == position_size(settings, 100_000.0, 400.0)


@pytest.mark.parametrize(
    ("change", "gate", "reason"),
    [
        ({"now": at(9, 20)}, "session", "before the regular open"),
        ({"now": at(15, 50)}, "session", "after the entry cut-off"),
        ({"now": at(12, 50, date(2020, 11, 27))}, "session", "after the entry cut-off"),  # early close 13:00
        ({"now": at(10, 0, date(2020, 11, 26))}, "session", "not a trading session"),  # Thanksgiving
        ({"frozen": True}, "freeze", "global freeze set"),
        ({"active_symbols": frozenset({"TSLA"})}, "active", "already active"),
        ({"closed_today": frozenset({"TSLA"})}, "closed_today", "closed earlier this session"),
        ({"last_entry_attempt": at(10, 20)}, "cooldown", "min since last attempt"),
        ({"active_count": 4}, "max_positions", "4 of 4 positions"),
        ({"entries_this_cycle": 2}, "max_new_entries", "2 of 2 entries"),
        ({"realized_pnl": -1500.0, "unrealized_pnl": -600.0}, "daily_loss", "day P&L -2100.00"),
        ({"available_funds": 1000.0}, "buying_power", "cost 6000.00 > available 1000.00"),
        ({"price": 7000.0}, "buying_power", "allocation buys no whole share"),
        ({"price": 400.0, "net_liquidation": 7_000.0, "available_funds": 7_000.0}, "min_notional", "notional 400.00"),
    ],
)
def test_first_rejection_stops_the_chain(settings, change, gate, reason):
    results = GateChain(settings).run(ctx(**change))
    last = results[-1]
    assert not last.passed
    assert last.gate == gate
    assert reason in last.reason
    assert all(r.passed for r in results[:-1])
    assert [r.gate for r in results] == list(GATES[: GATES.index(gate) + 1])


def test_cooldown_passes_after_the_configured_minutes(settings):
    c = ctx(last_entry_attempt=at(10, 30) - timedelta(minutes=settings.cooldown_minutes))
    assert GateChain(settings).cooldown(c).passed


def test_flatten_time_caps_the_entry_cutoff(settings):
    s = settings.model_copy(update={"entry_cutoff_minutes": 5, "eod_flatten_minutes": 15})
    r = GateChain(s).session(ctx(now=at(15, 46)))
    assert not r.passed and r.values["cutoff"].startswith("2020-11-17T15:45")
