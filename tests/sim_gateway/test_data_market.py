"""ReplayMarket on real recorded bars: intrabar path, ticks, halts, contracts, bar building."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from daytrading.sim_gateway.engine.market import HARD_TO_BORROW, ReplayMarket, con_id_for
from daytrading.clock import NY, ManualClock

DAY = date(2020, 11, 17)


@pytest.fixture(scope="module")
def market(minute_data_dir: Path) -> ReplayMarket:
    clock = ManualClock(datetime(2020, 11, 17, 12, 0, tzinfo=NY))
    return ReplayMarket.from_source(minute_data_dir, DAY, clock, symbols=["TSLA", "NIO", "LI", "MSFT", "VIG"])


def _ts(text: str) -> float:
    return pd.Timestamp(text, tz=NY).timestamp()


def test_intrabar_path_reproduces_every_recorded_bar(market: ReplayMarket) -> None:
    for sym in ("TSLA", "NIO", "VIG"):
        frame = market.frame(sym)
        ticks = market.ticks_between(sym, _ts("2020-11-17 03:59"), _ts("2020-11-17 20:00"))
        df = pd.DataFrame({"ts": [t.ts for t in ticks], "px": [t.price for t in ticks], "sz": [t.size for t in ticks]})
        df["minute"] = (df["ts"] // 60) * 60
        g = df.groupby("minute")
        rebuilt = pd.DataFrame({"open": g["px"].first(), "high": g["px"].max(), "low": g["px"].min(),
                                "close": g["px"].last(), "volume": g["sz"].sum()})
        expected = frame.copy()
        expected.index = expected.index.as_unit("ns").asi8 // 10**9
        assert list(rebuilt.index.astype(np.int64)) == list(expected.index)
        np.testing.assert_array_equal(rebuilt[["open", "high", "low", "close"]].to_numpy(),
                                      expected[["open", "high", "low", "close"]].to_numpy())
        np.testing.assert_array_equal(rebuilt["volume"].to_numpy(), expected["volume"].to_numpy())


def test_path_order_open_nearer_extreme_other_close(market: ReplayMarket) -> None:
    bar = market.frame("TSLA").loc[pd.Timestamp("2020-11-17 09:30", tz=NY)]  # open 460.17 high 460.5 low 454.68
    t0 = _ts("2020-11-17 09:30")
    ticks = market.ticks_between("TSLA", t0 - 1e-6, t0 + 59)
    assert [t.ts - t0 for t in ticks] == [0, 15, 30, 45]
    nearer, other = (bar["high"], bar["low"]) if abs(bar["open"] - bar["high"]) <= abs(bar["open"] - bar["low"]) else (bar["low"], bar["high"])
    assert [t.price for t in ticks] == [bar["open"], nearer, other, bar["close"]]
    assert sum(t.size for t in ticks) == bar["volume"]


def test_ticks_between_half_open_and_last_trade(market: ReplayMarket) -> None:
    t0 = _ts("2020-11-17 09:30")
    assert [t.ts for t in market.ticks_between("TSLA", t0, t0 + 30)] == [t0 + 15, t0 + 30]
    last = market.last_trade("TSLA", at=t0 + 20)
    assert last is not None and last.ts == t0 + 15
    assert market.last_trade("TSLA", at=_ts("2020-11-17 03:00")) is None
    assert market.last_trade("ZZZZ") is None and market.ticks_between("ZZZZ", 0, 1e12) == []
    assert market.previous_close("TSLA") == 408.09


def test_halt_hides_trades_until_resumed(minute_data_dir: Path) -> None:
    clock = ManualClock(datetime(2020, 11, 17, 10, 0, tzinfo=NY))
    m = ReplayMarket.from_source(minute_data_dir, DAY, clock, symbols=["NIO"], history_days=0)
    before = m.last_trade("NIO")
    m.set_halted("NIO", True)
    clock.advance(120)
    assert m.is_halted("NIO")
    assert m.ticks_between("NIO", clock.timestamp() - 120, clock.timestamp()) == []
    assert m.last_trade("NIO") == before
    m.set_halted("NIO", False)
    clock.advance(60)
    assert not m.is_halted("NIO")
    after = m.ticks_between("NIO", clock.timestamp() - 180, clock.timestamp())
    assert after and all(t.ts >= clock.timestamp() - 60 for t in after)
    assert m.halted_during("NIO", clock.timestamp() - 150, clock.timestamp() - 140)
    with pytest.raises(KeyError):
        m.set_halted("ZZZZ", True)


def test_contract_table(market: ReplayMarket) -> None:
    tsla, li, vig = market.contract("tsla"), market.contract("LI"), market.contract("VIG")
    assert tsla is not None and li is not None and vig is not None
    assert (tsla.primary_exchange, vig.primary_exchange) == ("NASDAQ", "ARCA")
    assert tsla.shortable and not li.shortable and "LI" in HARD_TO_BORROW
    assert tsla.con_id == con_id_for("TSLA") == market.contract_by_id(tsla.con_id).con_id
    assert len({market.contract(s).con_id for s in market.symbols}) == len(market.symbols)
    assert market.contract("ZZZZ") is None and market.contract_by_id(1) is None
    market.set_shortable("LI", True)
    assert market.contract("LI").shortable
    market.set_shortable("LI", False)


def test_five_second_grid_adds_up_to_the_minute(market: ReplayMarket) -> None:
    grid = market.grid_bars("TSLA", 5)
    bar = market.frame("TSLA").loc[pd.Timestamp("2020-11-17 10:15", tz=NY)]
    i0 = int((_ts("2020-11-17 10:15") - grid.t0) // 5)
    sl = slice(i0, i0 + 12)
    assert grid.open[i0] == bar["open"] and grid.close[i0 + 11] == bar["close"]
    assert grid.high[sl].max() == bar["high"] and grid.low[sl].min() == bar["low"]
    assert grid.volume[sl].sum() == bar["volume"] and grid.count[sl].sum() == 4
    quiet = [i for i in range(i0, i0 + 12) if grid.count[i] == 0]
    assert quiet and all(grid.volume[i] == 0 and grid.open[i] == grid.close[i - 1] for i in quiet)


def test_aggregate_minutes_days_and_rth(market: ReplayMarket, minute_data_dir: Path) -> None:
    from daytrading.marketdata import load_bars

    t1 = _ts("2020-11-17 11:59:59")
    five = market.aggregate("TSLA", 300, _ts("2020-11-16 00:00"), t1)
    src = load_bars(minute_data_dir, ["TSLA"], start=date(2020, 11, 16), end=DAY)["TSLA"]
    src = src.loc[src.index < pd.Timestamp("2020-11-17 12:00", tz=NY)]
    res = src.resample("5min").agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).dropna()
    np.testing.assert_array_equal(five["start"], res.index.as_unit("ns").asi8 // 10**9)
    np.testing.assert_array_equal(five["close"], res["close"].to_numpy())
    np.testing.assert_array_equal(five["volume"], res["volume"].to_numpy())
    daily = market.aggregate("TSLA", 86400, _ts("2020-11-16 00:00"), t1, rth=True)
    assert list(daily["open"]) == [src.loc[pd.Timestamp("2020-11-16 09:30", tz=NY), "open"], 460.17]
    assert daily["close"][0] == src.loc[src.index < pd.Timestamp("2020-11-16 16:00", tz=NY), "close"].iloc[-1]


def test_real_time_bar_frames_are_the_fields_ib_async_reads(market: ReplayMarket) -> None:
    """Every 5-s bar of a recorded session, framed in chunks, is byte for byte the message built
    field by field with the wire's own encoder (``50|3|reqId|time|o|h|l|c|volume|wap|count``),
    in whatever order the buckets are first asked for."""
    from daytrading.sim_gateway.protocol.messages import RealTimeBarFrames, _wire_num
    from daytrading.sim_gateway.protocol.wire import encode_message

    grid = market.grid_bars("NIO", 5)
    frames = RealTimeBarFrames(grid)
    header = RealTimeBarFrames.header(4007)
    n = len(grid)
    assert n > 2 * RealTimeBarFrames.CHUNK
    order = [n - 1, RealTimeBarFrames.CHUNK + 3, *range(n)]  # the end, mid-chunk, then every bucket
    for i in order:
        want = encode_message([50, 3, 4007, int(grid.t0 + 5 * i), _wire_num(float(grid.open[i])),
                               _wire_num(float(grid.high[i])), _wire_num(float(grid.low[i])),
                               _wire_num(float(grid.close[i])), int(grid.volume[i]),
                               _wire_num(round(float(grid.wap[i]), 6)), int(grid.count[i])])
        assert frames.frame(header, i) == want, i
    fresh, parts = RealTimeBarFrames(grid), []  # the streaming step's way: parts of many bars, one write
    fresh.frames_into(parts, header, n - 5, n)
    fresh.frames_into(parts, header, 0, RealTimeBarFrames.CHUNK + 2)
    assert b"".join(parts) == b"".join(frames.frame(header, i) for i in [*range(n - 5, n),
                                                                        *range(RealTimeBarFrames.CHUNK + 2)])
    assert fresh.due(grid.t0 + 5 * 7 - 1e-6) == 6 and fresh.due(grid.t0 + 5 * 7) == 7 and fresh.due(2e9) == n
    assert _wire_num(12.0) == "12" and _wire_num(-0.0) == "0" and _wire_num(float("nan")) == "0"
    assert _wire_num(12.25) == "12.25" and _wire_num(1e15) == "1000000000000000.0"


def test_history_day_profile_is_the_history_by_minute_of_day(market: ReplayMarket) -> None:
    hist = market.history["TSLA"]
    minutes, volume, days = market.history_day_profile("TSLA")
    assert days == len(set(hist.index.date)) >= 1
    assert list(minutes[:3]) == [t.hour * 60 + t.minute for t in hist.index[:3]]
    assert volume.sum() == hist["volume"].sum() and market.history_day_profile("TSLA")[0] is minutes
    assert market.history_day_profile("NOPE") is None
