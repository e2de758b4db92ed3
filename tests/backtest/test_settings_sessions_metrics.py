"""Pure parts of the backtest: --set validation, the session list, the metrics by hand."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pytest

from daytrading.backtest import list_sessions, settings_with
from daytrading.backtest.metrics import compute_metrics
from daytrading.backtest.runner import SessionResult, TradeRecord
from daytrading.clock import NY
from daytrading.config import load_settings
from daytrading.errors import ConfigError


@pytest.fixture(scope="module")
def base():
    return load_settings(env_file=None)


def test_set_applies_dotted_keys_and_converts_text(base):
    s = settings_with(base, {"profit_target": "0.02", "entry.rsi_max": "55", "sim.symbols": "AAPL,NIO"})
    assert s.profit_target == 0.02 and s.entry.rsi_max == 55.0 and s.sim.symbols == ("AAPL", "NIO")
    assert base.profit_target == 0.018  # the base is unchanged


@pytest.mark.parametrize(("overrides", "named"), [
    ({"entry.rsi_mx": "5"}, "entry.rsi_mx"),
    ({"entry.rsi_max": "abc"}, "entry.rsi_max"),
    ({"entry.rsi_max": "150"}, "entry.rsi_max"),
    ({"entry": "1"}, "entry"),
    ({"profit_target.x": "1"}, "profit_target.x"),
    ({"stop_loss": "0.5"}, "stop_loss"),
])
def test_set_validation_names_the_key_and_value(base, overrides, named):
    with pytest.raises(ConfigError) as err:
        settings_with(base, overrides)
    assert named in str(err.value)
    value = next(iter(overrides.values()))
    assert repr(value) in str(err.value) or value in str(err.value)


def test_list_sessions_are_xnys_sessions_in_range(minute_data_dir):
    days = list_sessions(minute_data_dir, date(2020, 11, 23), date(2020, 11, 30))
    # Thanksgiving (26th) is a holiday; 27th is a half day; the weekend is not a session
    assert days == [date(2020, 11, 23), date(2020, 11, 24), date(2020, 11, 25), date(2020, 11, 27),
                    date(2020, 11, 30)]


def _t(day: date, h: int, m: int) -> datetime:
    return datetime(day.year, day.month, day.day, h, m, tzinfo=NY)


def _trade(day, symbol, pnl, reason, entry=(10, 0), exit_=(10, 30)):
    return TradeRecord(symbol=symbol, entry_time=_t(day, *entry), exit_time=_t(day, *exit_), quantity=100,
                       entry_price=10.0, exit_price=10.0 + pnl / 100, stop_price=9.91, target_price=10.18,
                       exit_reason=reason, pnl=pnl, commission=1.0)


def test_metrics_by_hand():
    d1, d2, d3 = date(2020, 11, 17), date(2020, 11, 18), date(2020, 11, 19)
    trades = [_trade(d1, "NIO", 180.0, "target"), _trade(d1, "TSLA", -90.0, "stop", (11, 0), (11, 15)),
              _trade(d2, "NIO", -90.0, "stop"), _trade(d3, "AMD", 30.0, "eod", (15, 0), (15, 45))]
    six_half = 6.5 * 3600
    sessions = [SessionResult(d, [t for t in trades if t.exit_time.date() == d],
                              sum(t.pnl for t in trades if t.exit_time.date() == d), session_seconds=six_half)
                for d in (d1, d2, d3)]
    cap = 10_000.0
    m = compute_metrics(trades, sessions, cap)
    assert m["total_pnl"] == 30.0 and m["total_return"] == pytest.approx(0.003)
    assert m["trades"] == 4 and m["win_rate"] == 0.5
    assert m["avg_win"] == 105.0 and m["avg_loss"] == -90.0
    assert m["profit_factor"] == pytest.approx(210 / 180, abs=1e-4)
    assert m["expectancy"] == 7.5
    # equity after each trade: 10180, 10090, 10000, 10030 -> peak 10180, trough 10000
    assert m["max_drawdown"] == 180.0
    assert m["max_drawdown_pct"] == pytest.approx(180 / 10180, abs=1e-6)
    assert m["max_drawdown_start"] == _t(d1, 10, 30).isoformat()
    assert m["max_drawdown_end"] == _t(d2, 10, 30).isoformat()
    # daily returns 90/10000, -90/10090, 30/10000; Sharpe = mean/std(ddof=1)*sqrt(252)
    r = [90 / 10000, -90 / 10090, 30 / 10000]
    mean = sum(r) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(252), abs=1e-3)
    downside = math.sqrt(sum(min(0.0, x) ** 2 for x in r) / 3)
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(252), abs=1e-3)
    # held 30 + 15 + 30 + 45 minutes of 3 x 390
    assert m["exposure"] == pytest.approx((30 + 15 + 30 + 45) / (3 * 390), abs=1e-6)
    assert m["best_session"] == {"date": "2020-11-17", "pnl": 90.0}
    assert m["worst_session"] == {"date": "2020-11-18", "pnl": -90.0}
    assert m["by_exit_reason"]["stop"] == {"trades": 2, "wins": 0, "pnl": -180.0, "win_rate": 0.0, "avg_pnl": -90.0}
    assert m["by_symbol"]["NIO"]["pnl"] == 90.0 and list(m["by_symbol"])[0] == "NIO"


def test_metrics_against_a_benchmark():
    import pandas as pd

    days = [date(2020, 11, 17) + timedelta(days=i) for i in range(3)]
    sessions = [SessionResult(d, [], p, session_seconds=1.0) for d, p in zip(days, [100.0, -50.0, 25.0], strict=True)]
    r = pd.Series([0.01, -0.005, 0.0025], index=pd.DatetimeIndex([pd.Timestamp(d) for d in days]))
    bench = pd.Series([0.02, -0.01, 0.005], index=r.index, name="QQQ")
    m = compute_metrics([], sessions, 10_000.0, benchmark=bench)
    mine = (1.01 * (1 - 50 / 10100) * (1 + 25 / 10050)) - 1
    theirs = 1.02 * 0.99 * 1.005 - 1
    assert m["benchmark"] == "QQQ"
    assert m["benchmark_return"] == pytest.approx(theirs, abs=1e-6)
    assert m["vs_benchmark"] == pytest.approx(mine - theirs, abs=1e-6)
    assert m["beta"] == pytest.approx(0.5, abs=0.01)
