"""Incremental VWAP / RSI / ATR against the ``ta`` library on real recorded bars."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import ta

from daytrading.clock import NY, calendar
from daytrading.signals.bars import Bar
from daytrading.signals.indicators import ATR, RSI, IndicatorSet, SessionVWAP, Snapshot
from tests.signals._data import day, load_minute, to_bars

REL = 1e-9


def rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-300)))


def as_array(snaps: list[Snapshot], field: str) -> np.ndarray:
    return np.array([np.nan if getattr(s, field) is None else getattr(s, field) for s in snaps])


@pytest.fixture(scope="module")
def tsla(minute_data_dir):
    return load_minute(minute_data_dir, "TSLA")


# Liquid (TSLA, NIO), dividend-adjusted (AAPL), thin with missing minutes (MKSI), and
# HCAC (malformed file: floats for volume, an error line at the end).
@pytest.mark.parametrize("symbol", ["TSLA", "NIO", "AAPL", "MKSI", "HCAC"])
def test_rsi_atr_equal_ta_on_whole_recorded_file(minute_data_dir, symbol):
    df = load_minute(minute_data_dir, symbol)
    assert len(df) > 5000
    ind = IndicatorSet(symbol, periods=14)
    snaps = [ind.update(b) for b in to_bars(df)]
    rsi_ref = ta.momentum.RSIIndicator(df["close"], window=14).rsi().to_numpy()
    atr_ref = ta.volatility.AverageTrueRange(df["high"], df["low"], df["close"], window=14).average_true_range().to_numpy()
    rsi, atr, atr_pct = as_array(snaps, "rsi"), as_array(snaps, "atr"), as_array(snaps, "atr_pct")
    # None exactly while ta has no value (ta writes NaN for RSI, 0.0 for ATR, before bar 14)
    assert np.isnan(rsi[:13]).all() and np.isnan(atr[:13]).all()
    assert not np.isnan(rsi[13:]).any() and not np.isnan(atr[13:]).any()
    assert [s.ready for s in snaps[12:15]] == [False, True, True]
    assert rel_err(rsi[13:], rsi_ref[13:]) <= REL
    assert rel_err(atr[13:], atr_ref[13:]) <= REL
    assert rel_err(atr_pct[13:], atr_ref[13:] / df["close"].to_numpy()[13:]) <= REL
    assert snaps[-1].bars_seen == len(df)


@pytest.mark.parametrize("period", [2, 5, 21])
def test_other_periods_equal_ta(tsla, period):
    df = day(tsla, date(2020, 11, 17))
    rsi, atr = RSI(period), ATR(period)
    r = np.array([np.nan if (v := rsi.update(c)) is None else v for c in df["close"]])
    a = np.array([np.nan if (v := atr.update(h, lo, c)) is None else v
                  for h, lo, c in zip(df["high"], df["low"], df["close"], strict=True)])
    r_ref = ta.momentum.RSIIndicator(df["close"], window=period).rsi().to_numpy()
    a_ref = ta.volatility.AverageTrueRange(df["high"], df["low"], df["close"], window=period).average_true_range().to_numpy()
    assert np.isnan(r[: period - 1]).all()
    assert rel_err(r[period - 1:], r_ref[period - 1:]) <= REL
    assert rel_err(a[period - 1:], a_ref[period - 1:]) <= REL


def test_rsi_is_100_without_losses_like_ta():
    closes = pd.Series([10.0 + 0.01 * i for i in range(20)])
    rsi = RSI(14)
    ours = [rsi.update(c) for c in closes]
    ref = ta.momentum.RSIIndicator(closes, window=14).rsi().to_numpy()
    assert ours[13:] == list(ref[13:]) == [100.0] * 7


def _ta_anchored_vwap(rows: pd.DataFrame) -> np.ndarray:
    """ta's VWAP with the window covering everything since the anchor (cumulative)."""
    ref = ta.volume.VolumeWeightedAveragePrice(
        rows["high"], rows["low"], rows["close"], rows["volume"], window=len(rows), fillna=True
    ).volume_weighted_average_price()
    return ref.to_numpy()


@pytest.mark.parametrize("symbol", ["TSLA", "NIO", "QQQ"])
def test_session_vwap_equals_ta_anchored_at_open_each_day(minute_data_dir, symbol):
    df = load_minute(minute_data_dir, symbol)
    cal = calendar()
    days = sorted(set(df.index.date))[:15] + [date(2020, 11, 27), date(2020, 12, 24)]  # incl. half days
    ind = IndicatorSet(symbol)
    checked = 0
    for d in days:
        rows = day(df, d)
        snaps = [ind.update(b) for b in to_bars(rows)]
        s = cal.session(d)
        start = rows.index.to_series()
        pre = (start < s.open).to_numpy()
        reg = ((start >= s.open) & (start < s.close)).to_numpy()
        post = (start >= s.close).to_numpy()
        vwap, pvwap = as_array(snaps, "vwap"), as_array(snaps, "premarket_vwap")
        # regular session: cumulative from 09:30, equal to ta
        assert rel_err(vwap[reg], _ta_anchored_vwap(rows[reg])) <= REL
        # pre-market: its own VWAP; no session VWAP yet
        assert np.isnan(vwap[pre]).all()
        if pre.any():
            assert rel_err(pvwap[pre], _ta_anchored_vwap(rows[pre])) <= REL
            # reset at the open: the session VWAP does not include pre-market volume
            assert vwap[reg][0] == pytest.approx((rows[reg].iloc[0][["high", "low", "close"]].sum() / 3), rel=1e-12)
        # after the close (13:00 on half days) nothing is added
        if post.any():
            assert (vwap[post] == vwap[reg][-1]).all()
        assert [snaps[i].phase for i in np.flatnonzero(reg)[:1]] == ["regular"]
        checked += reg.sum()
    assert checked > 5000


def test_vwap_resets_on_a_new_day_and_ignores_non_sessions():
    v = SessionVWAP()
    t = datetime(2020, 11, 16, 15, 59, tzinfo=NY)
    v.update(Bar(t, 10, 11, 9, 10, 100))
    assert v.vwap == pytest.approx(10.0) and v.phase == "regular"
    v.update(Bar(t + timedelta(hours=14), 20, 20, 20, 20, 50))  # 2020-11-17 05:59
    assert v.vwap is None and v.premarket_vwap == 20.0 and v.phase == "pre"
    v.update(Bar(datetime(2020, 11, 21, 10, 0, tzinfo=NY), 5, 5, 5, 5, 10))  # a Saturday
    assert v.phase == "closed" and v.vwap is None and v.premarket_vwap is None


def test_indicator_set_drops_out_of_order_bars_and_keeps_state(tsla, caplog):
    rows = day(tsla, date(2020, 11, 17)).iloc[:200]
    bars = to_bars(rows)
    clean = IndicatorSet("TSLA")
    ref = clean.warm(bars)
    noisy = IndicatorSet("TSLA")
    with caplog.at_level(logging.WARNING, logger="daytrading.signals.indicators"):
        for i, b in enumerate(bars):
            snap = noisy.update(b)
            if i in (50, 120):
                assert noisy.update(b) is snap  # duplicate
                assert noisy.update(bars[i - 3]) is snap  # out of order
                assert noisy.update(object()) is snap  # unreadable
    assert noisy.rejected == 6
    assert noisy.last == ref and noisy.bars_seen == 200
    assert sum("indicator input dropped" in r.getMessage() for r in caplog.records) == 6


def test_snapshot_to_dict_and_periods_validation(tsla):
    snap = IndicatorSet("TSLA", 3, atr_period=5).warm(to_bars(day(tsla, date(2020, 11, 17)).iloc[:4]))
    d = snap.to_dict()
    assert d["symbol"] == "TSLA" and d["time"].endswith("-05:00") and d["bars_seen"] == 4
    assert d["rsi"] is not None and d["atr"] is None and d["ready"] is False  # ATR(5) needs 5 bars
    with pytest.raises(ValueError, match="RSI period"):
        IndicatorSet("X", 0)
    with pytest.raises(ValueError, match="ATR period"):
        IndicatorSet("X", 14, atr_period=1.5)  # type: ignore[arg-type]


def test_restart_warm_from_backfill_then_live_equals_an_uninterrupted_run(tsla):
    """The day-trader may be killed at any bar: a fresh IndicatorSet warmed from the
    history (as IB backfill BarData) and fed the remaining bars ends in the same state."""
    from ib_async import BarData

    from daytrading.signals.bars import bars_from_ib

    rows = tsla[(tsla.index.date >= date(2020, 11, 16)) & (tsla.index.date <= date(2020, 11, 17))]
    bars = to_bars(rows)
    whole = IndicatorSet("TSLA")
    whole.warm(bars)
    for cut in (20, 700, len(bars) - 300):  # before ready, mid-session, next day's regular hours
        history = [BarData(date=b.time, open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume)
                   for b in bars[:cut]]
        again = IndicatorSet("TSLA")
        again.warm(bars_from_ib(history))
        for b in bars[cut:]:
            again.update(b)
        assert again.last == whole.last
