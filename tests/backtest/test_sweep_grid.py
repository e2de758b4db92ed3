"""The --sweep grid parser and the walk-forward window arithmetic (pure, no backtest run)."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from daytrading.backtest.sweep_grid import (
    build_grid,
    parse_sweep,
    parse_walk_forward,
    score,
    walk_forward_windows,
)
from daytrading.errors import ConfigError


def test_list_and_range_values_are_exact_strings():
    assert parse_sweep("profit_target=0.02,0.03").values == ("0.02", "0.03")
    spec = parse_sweep("stop_loss=0.005:0.015:0.005")
    assert spec.values == ("0.005", "0.010", "0.015")
    assert spec.numeric
    assert parse_sweep("entry.rsi_max=50:60:5").values == ("50", "55", "60")
    # STOP not on the step: the range stops below it (inclusive only when it lands on it)
    assert parse_sweep("entry.rsi_max=50:59:5").values == ("50", "55")
    assert not parse_sweep("log_level=INFO,DEBUG").numeric


def test_grid_is_the_cross_product_first_key_slowest():
    grid = build_grid([parse_sweep("profit_target=0.02,0.03"), parse_sweep("stop_loss=0.005,0.01")])
    assert grid == [
        {"profit_target": "0.02", "stop_loss": "0.005"},
        {"profit_target": "0.02", "stop_loss": "0.01"},
        {"profit_target": "0.03", "stop_loss": "0.005"},
        {"profit_target": "0.03", "stop_loss": "0.01"},
    ]


@pytest.mark.parametrize(
    ("option", "named"),
    [
        ("profit_target", "KEY=V1,V2"),
        ("profit_target=", "no values for profit_target"),
        ("profit_target=0.02,,0.03", "empty value"),
        ("profit_target=0.02,0.02", "'0.02' is given twice"),
        ("profit target=0.02", "'profit target' is not a settings key"),
        ("profit_target=0.01:0.03", "START:STOP:STEP"),
        ("profit_target=0.01:x:0.01", "must be numbers"),
        ("profit_target=0.01:0.03:0", "STEP for profit_target must be positive"),
        ("profit_target=0.03:0.01:0.01", "START 0.03 is above STOP 0.01"),
        ("profit_target=0:1:0.00001", "more than"),
    ],
)
def test_bad_sweep_syntax_names_the_problem(option, named):
    with pytest.raises(ConfigError) as err:
        parse_sweep(option)
    assert named in str(err.value)
    assert repr(option) in str(err.value)


def test_key_swept_twice_is_refused():
    with pytest.raises(ConfigError, match="stop_loss is swept twice"):
        build_grid([parse_sweep("stop_loss=0.01"), parse_sweep("stop_loss=0.02")])


def test_score_ranks_drawdown_smaller_first_and_nan_last():
    assert score({"max_drawdown": 100.0}, "max_drawdown") > score({"max_drawdown": 250.0}, "max_drawdown")
    assert score({"sharpe": 1.5}, "sharpe") > score({"sharpe": 0.5}, "sharpe")
    assert score({"sharpe": math.nan}, "sharpe") == -math.inf
    assert score({"sharpe": None}, "sharpe") == -math.inf
    with pytest.raises(ConfigError, match="'trades': not a metric that ranks"):
        score({"trades": 3}, "trades")


def test_walk_forward_windows_roll_by_the_test_length():
    # 12 hand-made sessions on weekdays, given out of order and with a duplicate
    days = [date(2020, 11, 2) + timedelta(days=d) for d in (0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 14, 15)]
    shuffled = days[6:] + days[:6] + [days[3]]
    windows = walk_forward_windows(shuffled, train=5, test=2)
    # starts 0, 2, 4 fit (4 + 5 + 2 = 11 <= 12); start 6 would need 13 sessions
    assert [w.index for w in windows] == [0, 1, 2]
    assert windows[0].train == tuple(days[0:5]) and windows[0].test == tuple(days[5:7])
    assert windows[1].train == tuple(days[2:7]) and windows[1].test == tuple(days[7:9])
    assert windows[2].train == tuple(days[4:9]) and windows[2].test == tuple(days[9:11])
    # the test windows tile the sessions after the first training span without overlap
    tested = [d for w in windows for d in w.test]
    assert tested == days[5:11]
    assert all(max(w.train) < min(w.test) for w in windows)
    # exactly train + test sessions: one window
    assert len(walk_forward_windows(days[:7], 5, 2)) == 1


def test_walk_forward_needs_enough_sessions_and_good_syntax():
    days = [date(2020, 11, 2), date(2020, 11, 3)]
    with pytest.raises(ConfigError, match="needs at least 3 sessions, the selection has 2"):
        walk_forward_windows(days, 2, 1)
    assert parse_walk_forward("20:5") == (20, 5)
    for bad in ("20", "20:0", "a:5", "20:5:1", "-1:5"):
        with pytest.raises(ConfigError, match=f"--walk-forward '{bad}'"):
            parse_walk_forward(bad)
