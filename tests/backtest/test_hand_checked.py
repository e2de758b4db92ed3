"""One symbol, one entry and its stop exit, checked by hand against the recorded bars.

TSLA on 2020-11-17, 09:20-09:40 (the shared window of ``conftest.tsla_window``): the day-trader
buys at the open and the exit-manager's stop takes it out a minute later. Everything below is
recomputed here from the recorded minute bars walked along the documented 1-s intrabar path
(docs/fill-model.md), the settings' fractions and the report's definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from daytrading.backtest.metrics import compute_metrics
from daytrading.marketdata.loader import load_session
from tests.backtest.conftest import DAY, at


@pytest.fixture(scope="module")
def path(minute_data_dir):
    """(times, prices) of TSLA's trades that day: the 1-s straight-line path, built here by hand."""
    frame = load_session(minute_data_dir, DAY, ["TSLA"])["TSLA"]
    times, prices = [], []
    for start, o, h, lo, c in zip(frame.index, frame["open"], frame["high"], frame["low"], frame["close"],
                                  strict=True):
        first, second = (h, lo) if abs(o - h) <= abs(o - lo) else (lo, h)
        anchors_at, anchors = [0, 20, 39, 59], [o, first, second, c]  # round(59/3)=20, round(118/3)=39
        for k in range(60):
            j = min(2, max(i for i in range(3) if anchors_at[i] <= k))
            f = (k - anchors_at[j]) / (anchors_at[j + 1] - anchors_at[j])
            p = anchors[j] + f * (anchors[j + 1] - anchors[j])
            p = anchors[anchors_at.index(k)] if k in anchors_at else min(max(round(p, 2), math.ceil(lo * 100 - 1e-6) / 100),
                                                                         math.floor(h * 100 + 1e-6) / 100)
            times.append(start.timestamp() + k)
            prices.append(p)
    return np.array(times), np.array(prices)


def test_entry_stop_exit_pnl_and_metrics_by_hand(tsla_window, path):
    times, prices = path
    result = tsla_window[0]
    [trade] = result.trades
    buy, sell = result.fills
    # the entry filled at a recorded-path trade after the open, within the marketable limit
    i = int(np.searchsorted(times, buy.time))
    assert times[i] == buy.time and prices[i] == pytest.approx(buy.price)
    assert buy.time >= at(9, 30).timestamp()
    # size: a quarter of the 100,000 $ account over at most 4 positions, in whole shares
    assert trade.quantity == math.floor(100_000 * 0.25 / 4 / buy.price) or \
        trade.quantity * buy.price <= 6_250 * 1.002
    # stop = entry x (1 - 0.009), to the cent
    stop = round(buy.price * (1 - 0.009), 2)
    assert trade.stop_price == stop and trade.target_price == round(buy.price * 1.018, 2)
    # the first trade at or below the stop after the entry...
    after = np.flatnonzero((times > buy.time) & (prices <= stop))
    t_cross = times[after[0]]
    # ... and the SELL: a market order reaching the book 50 ms after the exit-manager sends it,
    # filled at the next path trade: within a few market seconds of the crossing, at that trade's price
    assert t_cross < sell.time <= t_cross + 5
    j = int(np.searchsorted(times, sell.time))
    assert times[j] == sell.time and prices[j] == pytest.approx(sell.price)
    assert trade.exit_price == pytest.approx(sell.price) and trade.exit_reason == "stop"
    # P&L: shares x (exit - entry) minus both orders' commissions
    gross = trade.quantity * (sell.price - buy.price)
    assert trade.pnl == pytest.approx(gross - trade.commission, abs=0.01)
    # IBKR tiered: 0.35 $ minimum per order at this size (buy and sell), plus the sell's SEC fee
    # (0.0000207 x value) and FINRA TAF (0.000119 x shares)
    sell_fees = 0.0000207 * trade.quantity * sell.price + 0.000119 * trade.quantity
    assert trade.commission == pytest.approx(0.35 + 0.35 + sell_fees, abs=0.01)
    # metrics of that one trade on 100,000 $
    m = compute_metrics(result.trades, [result], 100_000.0)
    assert m["total_pnl"] == round(trade.pnl, 2) and m["total_return"] == pytest.approx(trade.pnl / 100_000, abs=1e-6)
    assert m["trades"] == 1 and m["win_rate"] == 0.0 and m["avg_loss"] == round(trade.pnl, 2)
    assert m["max_drawdown"] == round(-trade.pnl, 2)
    assert m["max_drawdown_pct"] == pytest.approx(-trade.pnl / 100_000, abs=1e-6)
    assert m["exposure"] == pytest.approx((sell.time - buy.time) / (6.5 * 3600), abs=2 / (6.5 * 3600))
    assert m["by_exit_reason"] == {"stop": {"trades": 1, "wins": 0, "pnl": round(trade.pnl, 2), "win_rate": 0.0,
                                            "avg_pnl": round(trade.pnl, 2)}}
