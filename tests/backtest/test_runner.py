"""The backtest runner: production bots + sim-gateway on one virtual-time loop, deterministic."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import daytrading.backtest as backtest_pkg
from daytrading.backtest import fingerprint
from daytrading.bots.day_trader import DayTrader
from daytrading.bots.exit_manager import ExitManager
from tests.backtest.conftest import at as _at


@pytest.fixture(scope="module")
def twice(tsla_window):
    return tsla_window


def test_same_data_settings_and_seed_give_the_same_fills(twice):
    a, b = twice
    assert a.fills, "the window holds a TSLA entry and its stop exit"
    assert [f.key() for f in a.fills] == [f.key() for f in b.fills]
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 64
    assert [t.as_dict() for t in a.trades] == [t.as_dict() for t in b.trades]
    assert fingerprint([a]) == fingerprint([b]) != fingerprint([])


def test_trades_come_from_the_production_bots_and_database(twice):
    a = twice[0]
    assert len(a.trades) == 1
    t = a.trades[0]
    assert t.symbol == "TSLA" and t.exit_reason == "stop"
    # the stop is the production exit-manager's: entry x (1 - stop_loss), and the exit is at or below it
    assert t.stop_price == pytest.approx(round(t.entry_price * (1 - 0.009), 2), abs=0.011)
    assert t.exit_price <= t.stop_price
    assert t.pnl == pytest.approx((t.exit_price - t.entry_price) * t.quantity - t.commission, abs=0.05)
    assert a.pnl == pytest.approx(t.pnl, abs=0.01)
    sides = [f.side for f in a.fills]
    assert sides[0] == "BOT" and sides[-1] == "SLD"
    assert all(f.time >= _at(9, 20).timestamp() for f in a.fills)


def test_no_backtest_only_subclass_overrides_the_bots():
    """The backtest runs the production classes: nothing under daytrading.backtest subclasses them."""
    for info in pkgutil.iter_modules(backtest_pkg.__path__, "daytrading.backtest."):
        importlib.import_module(info.name)
    for base in (ExitManager, DayTrader):
        stack, found = list(base.__subclasses__()), []
        while stack:
            cls = stack.pop()
            stack.extend(cls.__subclasses__())
            if cls.__module__.startswith("daytrading.backtest"):
                found.append(cls)
        assert not found, f"backtest-only subclasses of {base.__name__}: {found}"
    from daytrading.backtest import runner

    source = inspect.getsource(runner._run)
    assert "ExitManager(bt" in source and "DayTrader(bt" in source
