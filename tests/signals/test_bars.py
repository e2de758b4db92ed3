"""30-second bars from real Lean 1-second trades, through 5-second IB real-time bars."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import ta
from ib_async import BarData, RealTimeBar

from daytrading.clock import NY
from daytrading.signals.bars import Bar, BarAggregator, _rt_fields, as_bar, bars_from_ib
from daytrading.signals.indicators import IndicatorSet
from tests.signals._data import load_lean_seconds, load_minute, to_bars

OHLCV = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def resample(df: pd.DataFrame, rule: str) -> pd.DataFrame:
    return df.resample(rule, label="left", closed="left").agg(OHLCV).dropna(subset=["open"])


def aggregate(bars, seconds: int) -> list[Bar]:
    agg = BarAggregator(seconds)
    out = [b for b in (agg.add(x) for x in bars) if b is not None]
    last = agg.flush()
    return out + ([last] if last is not None else [])


def frame(bars: list[Bar]) -> pd.DataFrame:
    return pd.DataFrame(
        {"open": [b.open for b in bars], "high": [b.high for b in bars], "low": [b.low for b in bars],
         "close": [b.close for b in bars], "volume": [b.volume for b in bars]},
        index=pd.DatetimeIndex([b.time for b in bars]),
    )


def realtime_bars(sec: pd.DataFrame) -> list[RealTimeBar]:
    """IB-style 5-second real-time bars (ib_async objects, UTC times as ib_async makes
    them) from real 1-second trades; wap = Σ close·volume / Σ volume of the seconds."""
    g = sec.assign(pv=sec["close"] * sec["volume"]).resample("5s", label="left", closed="left")
    five = g.agg({**OHLCV, "pv": "sum"}).dropna(subset=["open"])
    five["n"] = g.size()[five.index]
    return [
        RealTimeBar(time=t.to_pydatetime().astimezone(UTC), endTime=-1, open_=r.open, high=r.high, low=r.low,
                    close=r.close, volume=r.volume, wap=r.pv / r.volume, count=int(r.n))
        for t, r in five.iterrows()
    ]


@pytest.mark.parametrize(("symbol", "d"), [("SPY", date(2013, 10, 10)), ("BAC", date(2013, 10, 8))])
def test_30s_bars_from_real_5s_bars_equal_pandas_resample(market_data_dir, symbol, d):
    sec = load_lean_seconds(market_data_dir, symbol, d)
    rt = realtime_bars(sec)
    assert len(rt) > 2000
    ours = aggregate(rt, 30)
    ref = resample(sec, "30s")
    got = frame(ours)
    assert len(got) == len(ref) > 500
    assert got.index.equals(ref.index)
    assert (got.index.second % 30 == 0).all() and str(ours[0].time.tzinfo) == "America/New_York"
    pd.testing.assert_frame_equal(got, ref, check_exact=True, check_freq=False, check_names=False)
    # VWAP of the bar = Σ wap·vol / Σ vol of the 5-s bars = Σ price·vol / Σ vol of the trades
    pv = (sec["close"] * sec["volume"]).resample("30s", label="left", closed="left").sum()
    wap_ref = (pv / sec["volume"].resample("30s", label="left", closed="left").sum())[ref.index]
    np.testing.assert_allclose([b.wap for b in ours], wap_ref.to_numpy(), rtol=1e-12)
    cnt = sec["volume"].resample("30s", label="left", closed="left").size()[ref.index]
    assert [b.count for b in ours] == list(cnt)


def test_indicators_on_aggregated_30s_bars_equal_ta(market_data_dir):
    sec = load_lean_seconds(market_data_dir, "SPY", date(2013, 10, 10))
    ours = aggregate(realtime_bars(sec), 30)
    ref = resample(sec, "30s")
    ind = IndicatorSet("SPY")
    snaps = [ind.update(b) for b in ours]
    rsi = np.array([s.rsi for s in snaps[13:]])
    atr = np.array([s.atr for s in snaps[13:]])
    rsi_ref = ta.momentum.RSIIndicator(ref["close"], 14).rsi().to_numpy()[13:]
    atr_ref = ta.volatility.AverageTrueRange(ref["high"], ref["low"], ref["close"], 14).average_true_range().to_numpy()[13:]
    assert np.max(np.abs(rsi - rsi_ref) / rsi_ref) <= 1e-9
    assert np.max(np.abs(atr - atr_ref) / atr_ref) <= 1e-9
    reg = ref.between_time("09:30", "15:59:59")
    vwap_ref = ta.volume.VolumeWeightedAveragePrice(reg["high"], reg["low"], reg["close"], reg["volume"],
                                                    window=len(reg), fillna=True).volume_weighted_average_price()
    vwap = np.array([s.vwap for s in snaps if s.phase == "regular"])
    assert len(vwap) == len(reg) > 700
    assert np.max(np.abs(vwap - vwap_ref.to_numpy()) / vwap_ref.to_numpy()) <= 1e-9


def test_missing_5s_bars_are_tolerated(market_data_dir):
    sec = load_lean_seconds(market_data_dir, "IBM", date(2013, 10, 9))
    rt = realtime_bars(sec)
    kept = [b for i, b in enumerate(rt) if i % 3 != 1]  # a third of the 5-s bars never arrive
    ours = aggregate(kept, 30)
    five = pd.DataFrame({"open": [b.open_ for b in kept], "high": [b.high for b in kept], "low": [b.low for b in kept],
                         "close": [b.close for b in kept], "volume": [b.volume for b in kept]},
                        index=pd.DatetimeIndex([b.time for b in kept]).tz_convert(NY))
    pd.testing.assert_frame_equal(frame(ours), resample(five, "30s"), check_exact=True, check_freq=False,
                                  check_names=False)


def test_duplicates_out_of_order_late_and_bad_bars_are_dropped_with_a_warning(market_data_dir, caplog):
    sec = load_lean_seconds(market_data_dir, "SPY", date(2013, 10, 10))
    rt = realtime_bars(sec)[:400]
    clean = aggregate(rt, 30)
    agg = BarAggregator(30, symbol="SPY")
    out = []
    with caplog.at_level(logging.WARNING, logger="daytrading.signals.bars"):
        for i, b in enumerate(rt):
            out.append(agg.add(b))
            if i in (10, 200):
                assert agg.add(b) is None  # duplicate
                assert agg.add(rt[i - 2]) is None  # out of order
                assert agg.add(RealTimeBar(time=b.time + timedelta(seconds=1), open_=1.0, high=0.5, low=2.0,
                                           close=1.0, volume=1.0)) is None  # high < low
                assert agg.add("garbage") is None
    out.append(agg.flush())
    assert [b for b in out if b is not None] == clean
    assert agg.rejected == 8
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("duplicate" in m for m in msgs) == 2 and sum("out-of-order" in m for m in msgs) == 2
    assert sum("high" in m and "below low" in m for m in msgs) == 2


def test_poll_waits_a_grace_for_the_missing_last_bar_then_emits_and_rejects_late_bars():
    t0 = datetime(2021, 1, 4, 9, 30, tzinfo=NY)
    agg = BarAggregator(30)
    assert agg.add(Bar(t0, 10, 11, 9, 10.5, 100, wap=10.2, count=3)) is None
    assert agg.add(Bar(t0 + timedelta(seconds=5), 10.5, 12, 10, 11, 300, wap=11.0, count=5)) is None
    assert agg.poll(t0 + timedelta(seconds=29.9)) is None and agg.pending
    assert agg.poll(t0 + timedelta(seconds=34.9)) is None and agg.pending  # the :25 bar may still come
    bar = agg.poll(t0 + timedelta(seconds=35))
    assert bar == Bar(t0, 10, 12, 9, 11, 400, wap=(10.2 * 100 + 11.0 * 300) / 400, count=8)
    assert not agg.pending and agg.flush() is None
    assert agg.add(Bar(t0 + timedelta(seconds=25), 11, 11, 11, 11, 1)) is None  # late for an emitted bar
    assert agg.rejected == 1
    # a 5-s bar without a WAP (or a zero-volume bucket) gives a bar without a WAP
    agg.add(Bar(t0 + timedelta(seconds=30), 11, 11, 11, 11, 0, wap=None))
    assert agg.flush().wap is None


def test_bar_validation_names_the_field():
    t = datetime(2021, 1, 4, 9, 30, tzinfo=NY)
    with pytest.raises(ValueError, match="timezone-aware"):
        Bar(datetime(2021, 1, 4, 9, 30), 1, 1, 1, 1, 1)  # noqa: DTZ001
    with pytest.raises(ValueError, match="'close' must be finite"):
        Bar(t, 1, 1, 1, float("nan"), 1)
    with pytest.raises(ValueError, match="'volume' must be ≥ 0"):
        Bar(t, 1, 1, 1, 1, -5)
    with pytest.raises(ValueError, match="bar_seconds"):
        BarAggregator(7)
    assert Bar(t.astimezone(UTC), 1, 1, 1, 1, 1).time.tzinfo is NY


def test_bars_from_ib_converts_historical_bardata(minute_data_dir):
    df = load_minute(minute_data_dir, "NIO").iloc[:300]
    ib_bars = [BarData(date=t.to_pydatetime(), open=r.open, high=r.high, low=r.low, close=r.close,
                       volume=r.volume, average=(r.high + r.low + r.close) / 3, barCount=7)
               for t, r in df.iterrows()]
    ib_bars[5] = BarData(date=ib_bars[5].date, open=1.0, high=1.0, low=2.0, close=1.0)  # bad row: skipped
    ib_bars[6].average = -1.0  # IB: no WAP
    got = bars_from_ib(ib_bars)
    assert len(got) == 299
    assert [b.close for b in got] == [b.close for b in to_bars(df.drop(df.index[5]))]
    assert got[0].time == df.index[0].to_pydatetime() and got[0].count == 7
    assert got[5].wap is None and got[6].wap is not None
    naive = as_bar(BarData(date=datetime(2021, 1, 4, 9, 30), open=1, high=1, low=1, close=1))  # noqa: DTZ001
    assert naive.time == datetime(2021, 1, 4, 9, 30, tzinfo=NY)
    daily = as_bar(BarData(date=date(2021, 1, 4), open=1, high=1, low=1, close=1))
    assert daily.time == datetime(2021, 1, 4, tzinfo=NY)


def test_the_bar_that_ends_a_bucket_closes_it_even_though_it_arrives_after_the_buckets_end():
    """IB sends the 5-s bar stamped :25 just after :30: a poll at :30 must not close the 30-s
    bar without it (its close would be 5 s stale and the :25 bar dropped as late)."""
    t0 = datetime(2021, 1, 4, 9, 30, tzinfo=NY)
    agg = BarAggregator(30)
    fives = [Bar(t0 + timedelta(seconds=5 * i), 10 + i, 10.5 + i, 9.5 + i, 10.2 + i, 100) for i in range(6)]
    for b in fives[:5]:
        assert agg.add(b) is None
    assert agg.poll(t0 + timedelta(seconds=30.2)) is None  # the :25 bar is on its way
    bar = agg.add(fives[5])  # ... and closes the bucket on arrival, without waiting for a next bar
    assert bar == Bar(t0, 10, 15.5, 9.5, 15.2, 600, wap=None, count=None)
    assert agg.rejected == 0 and not agg.pending
    assert agg.poll(t0 + timedelta(seconds=40)) is None


def test_input_and_grace_seconds_are_validated_naming_the_argument():
    with pytest.raises(ValueError, match="input_seconds"):
        BarAggregator(30, input_seconds=7)
    with pytest.raises(ValueError, match="grace_seconds"):
        BarAggregator(30, grace_seconds=-1)


def test_real_time_bars_take_the_fast_path_with_the_same_bars_and_the_same_rejections(market_data_dir, caplog):
    """ib_async's RealTimeBar is aggregated without building a Bar per input: the 30-s bars are
    those of the same input as validated :class:`Bar` objects, and every bad value is still
    rejected with the field named (NaN, infinite, negative, high < low, a WAP of inf)."""
    rt = realtime_bars(load_lean_seconds(market_data_dir, "SPY", date(2013, 10, 10)))[:600]
    as_plain = [RealTimeBar(time=b.time, endTime=-1, open_=float(b.open_), high=float(b.high), low=float(b.low),
                            close=float(b.close), volume=float(b.volume), wap=float(b.wap), count=b.count)
                for b in rt]  # ib_async's own value types (float, int), as its decoder makes them
    assert all(_rt_fields(b) is not None for b in as_plain)  # all on the fast path
    assert aggregate(as_plain, 30) == aggregate([as_bar(b) for b in as_plain], 30) == aggregate(rt, 30)
    t = as_plain[-1].time
    bad = {
        "close": dict(close=float("nan")), "high": dict(high=float("inf")), "volume": dict(volume=-1.0),
        "below low": dict(high=0.5, low=2.0), "wap": dict(wap=float("inf")),
    }
    agg = BarAggregator(30, symbol="SPY")
    with caplog.at_level(logging.WARNING, logger="daytrading.signals.bars"):
        for i, (word, fields) in enumerate(bad.items()):
            ok = dict(time=t + timedelta(seconds=5 * (i + 1)), endTime=-1, open_=1.0, high=2.0, low=1.0,
                      close=1.5, volume=10.0, wap=1.2, count=1)
            assert agg.add(RealTimeBar(**{**ok, **fields})) is None
            assert word in caplog.records[-1].getMessage()
    assert agg.rejected == len(bad) and not agg.pending
    # zero or negative WAP and a negative count mean "none", as for a Bar
    later = datetime.fromtimestamp((t.timestamp() // 30 + 2) * 30, UTC)
    agg.add(RealTimeBar(time=later, endTime=-1, open_=1.0, high=1.0, low=1.0, close=1.0, volume=0.0, wap=0.0,
                        count=-1))
    done = agg.flush()
    assert done.wap is None and done.count is None and done.time == later and done.time.tzinfo is NY
