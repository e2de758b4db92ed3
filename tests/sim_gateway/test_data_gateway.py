"""Market data through the sim-gateway with real, unmodified ib_async on loopback, real recorded data.

Covers: historical bars = recorded bars aggregated (1 min, 5 mins, 30 secs, 1 day), never a bar
after market now, keepUpToDate updates, 5-second real-time bars that add up to the recorded
minute, delayed tickers, the scanner ranking real gap-ups first, IB's pacing (error 162),
halts, unknown contracts (200) and dropping subscriptions on data loss.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ib_async import IB, ScannerSubscription, Stock, TagValue

from daytrading.sim_gateway.testing import running_gateway
from daytrading.clock import NY, monotonic
from daytrading.marketdata import load_bars, load_session

pytestmark = pytest.mark.timeout(120)

CLIENT_IDS = iter(range(100, 10_000))


async def _connect(port: int) -> IB:
    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=next(CLIENT_IDS), timeout=15)
    return ib


async def _until(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``cond`` until true or fail after ``timeout`` wall seconds."""
    deadline = monotonic() + timeout
    while not cond():
        if monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _no_decoder_errors(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r.getMessage() for r in caplog.records if "Error handling fields" in r.getMessage()]
    assert not bad, bad[:3]


def _errors(ib: IB) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, msg, contract: seen.append((req_id, code))
    return seen


async def test_history_equals_recorded_bars(minute_data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    day = date(2020, 11, 17)
    start = datetime(2020, 11, 17, 11, 0, tzinfo=NY)
    rec = load_bars(minute_data_dir, ["TSLA"], start=date(2020, 11, 16), end=day)["TSLA"]
    async with running_gateway(data=minute_data_dir, session_date=day, speed=1.0, start=start) as gw:
        ib = await _connect(gw.port)
        try:
            c = Stock("TSLA", "SMART", "USD")
            await ib.qualifyContractsAsync(c)
            now = pd.Timestamp(gw.clock.now())
            minute = await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", useRTH=False)
            got = pd.DataFrame([(b.date, b.open, b.high, b.low, b.close, b.volume) for b in minute],
                               columns=["date", "open", "high", "low", "close", "volume"]).set_index("date")
            got.index = pd.DatetimeIndex(got.index).tz_convert(NY)
            assert got.index[-1] <= now  # nothing after market now
            today = rec.loc[(rec.index >= pd.Timestamp("2020-11-17 04:00", tz=NY)) & (rec.index < got.index[-1])]
            complete = got.iloc[:-1]  # the last bar may still be forming
            assert list(complete.index) == list(today.index)
            np.testing.assert_array_equal(complete[["open", "high", "low", "close"]].to_numpy(),
                                          today[["open", "high", "low", "close"]].to_numpy())
            np.testing.assert_array_equal(complete["volume"].to_numpy(), today["volume"].to_numpy())

            five = await ib.reqHistoricalDataAsync(c, "20201117 10:30:00 US/Eastern", "3600 S", "5 mins", "TRADES",
                                                   useRTH=True, formatDate=2)
            window = rec.loc[(rec.index >= pd.Timestamp("2020-11-17 09:30", tz=NY))
                             & (rec.index < pd.Timestamp("2020-11-17 10:30", tz=NY))]
            res = window.resample("5min").agg({"open": "first", "high": "max", "low": "min", "close": "last",
                                               "volume": "sum"})
            assert [b.date for b in five] == [t.to_pydatetime().astimezone(five[0].date.tzinfo) for t in res.index]
            assert [(b.open, b.high, b.low, b.close, b.volume) for b in five] == [
                tuple(r) for r in res[["open", "high", "low", "close", "volume"]].itertuples(index=False)]

            days = await ib.reqHistoricalDataAsync(c, "", "2 D", "1 day", "TRADES", useRTH=True)
            assert [b.date for b in days] == [date(2020, 11, 16), date(2020, 11, 17)]
            assert days[1].open == 460.17  # official open of the S&P-inclusion gap day (README)
            prev_rth = rec.loc[(rec.index >= pd.Timestamp("2020-11-16 09:30", tz=NY))
                               & (rec.index < pd.Timestamp("2020-11-16 16:00", tz=NY))]
            assert (days[0].open, days[0].close, days[0].volume) == (
                prev_rth["open"].iloc[0], prev_rth["close"].iloc[-1], prev_rth["volume"].sum())

            thirty = await ib.reqHistoricalDataAsync(c, "20201117 10:00:00 US/Eastern", "600 S", "30 secs",
                                                     "TRADES", useRTH=True)
            assert len(thirty) == 20
            for k in range(0, 20, 2):  # two 30-s bars = the recorded minute (documented intrabar path)
                first, second = thirty[k], thirty[k + 1]
                bar = rec.loc[pd.Timestamp(first.date).tz_convert(NY)]
                assert first.open == bar["open"] and second.close == bar["close"]
                assert max(first.high, second.high) == bar["high"] and min(first.low, second.low) == bar["low"]
                assert first.volume + second.volume == bar["volume"]
        finally:
            ib.disconnect()
    _no_decoder_errors(caplog)


async def test_keep_up_to_date_streams_the_forming_bar(minute_data_dir: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    day = date(2020, 12, 4)
    rec = load_session(minute_data_dir, day, ["LAZR"])["LAZR"]
    async with running_gateway(data=minute_data_dir, session_date=day, speed=60.0,
                               start=datetime(2020, 12, 4, 9, 40, tzinfo=NY)) as gw:
        ib = await _connect(gw.port)
        try:
            c = Stock("LAZR", "SMART", "USD")
            await ib.qualifyContractsAsync(c)
            bars = await ib.reqHistoricalDataAsync(c, "", "1800 S", "1 min", "TRADES", useRTH=True,
                                                   keepUpToDate=True)
            n0, first_last = len(bars), bars[-1].date
            new_bars: list = []
            bars.updateEvent += lambda b, has_new: new_bars.append(b[-1].date) if has_new else None
            await _until(lambda: len(new_bars) >= 3, what="3 new keepUpToDate bars")
            assert len(bars) >= n0 + 3 and bars[n0].date > first_last
            for b in list(bars)[n0:-1]:  # completed streamed bars equal the recording
                r = rec.loc[pd.Timestamp(b.date).tz_convert(NY)]
                assert (b.open, b.high, b.low, b.close, b.volume) == (r.open, r.high, r.low, r.close, r.volume)
            assert pd.Timestamp(bars[-1].date) <= pd.Timestamp(gw.clock.now())
            ib.cancelHistoricalData(bars)
            await _until(lambda: gw.data_service.subscription_counts()["hist"] == 0, what="cancel")
        finally:
            ib.disconnect()
    _no_decoder_errors(caplog)


async def test_real_time_bars_add_up_to_recorded_minutes(minute_data_dir: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    day = date(2020, 11, 17)
    rec = load_session(minute_data_dir, day, ["NIO"])["NIO"]
    async with running_gateway(data=minute_data_dir, session_date=day, speed=120.0,
                               start=datetime(2020, 11, 17, 9, 45, tzinfo=NY)) as gw:
        ib = await _connect(gw.port)
        try:
            c = Stock("NIO", "SMART", "USD")
            await ib.qualifyContractsAsync(c)
            rt = ib.reqRealTimeBars(c, 5, "TRADES", False)
            await _until(lambda: len(rt) >= 12 * 4, what="4 minutes of 5-s bars")
            ib.cancelRealTimeBars(rt)
            times = [b.time.timestamp() for b in rt]
            assert all(t % 5 == 0 for t in times) and np.all(np.diff(times) == 5)  # one bar per 5 s, no gaps
            df = pd.DataFrame([(b.time, b.open_, b.high, b.low, b.close, b.volume) for b in rt],
                              columns=["time", "open", "high", "low", "close", "volume"])
            df["minute"] = pd.DatetimeIndex(df["time"]).tz_convert(NY).floor("1min")
            full = df.groupby("minute").filter(lambda g: len(g) == 12).groupby("minute")
            agg = full.agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
                           close=("close", "last"), volume=("volume", "sum"))
            assert len(agg) >= 2
            for minute, row in agg.iterrows():
                r = rec.loc[minute]
                assert (row.open, row.high, row.low, row.close, row.volume) == (r.open, r.high, r.low, r.close,
                                                                                r.volume)
            assert all(b.time.timestamp() + 5 <= gw.clock.timestamp() for b in rt)
        finally:
            ib.disconnect()
    _no_decoder_errors(caplog)


async def test_delayed_ticker_fills_in(minute_data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    day = date(2020, 11, 17)
    async with running_gateway(data=minute_data_dir, session_date=day, speed=30.0,
                               start=datetime(2020, 11, 17, 10, 0, tzinfo=NY)) as gw:
        ib = await _connect(gw.port)
        try:
            ib.reqMarketDataType(3)
            c = Stock("TSLA", "SMART", "USD")
            await ib.qualifyContractsAsync(c)
            t = ib.reqMktData(c)
            await _until(lambda: t.last == t.last and t.volume == t.volume and t.high == t.high,
                         what="delayed last/volume/high")
            assert t.marketDataType == 3
            assert t.close == 408.09 and t.open == 460.17
            assert t.bid < t.last < t.ask and t.bidSize > 0
            assert {tick.tickType for tick in t.ticks} <= {66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76}
            assert t.low <= t.last <= t.high
            first = t.last
            last_trade = gw.market.last_trade("TSLA")
            assert abs(first - last_trade.price) < 60  # same session, moments apart
            updates: list[float] = []
            t.updateEvent += lambda tk: updates.append(tk.last)
            await _until(lambda: len(updates) > 5 and len(set(updates)) > 1, what="streaming updates")
            ib.cancelMktData(c)
            snap = await ib.reqTickersAsync(Stock("NIO", "SMART", "USD", conId=gw.market.contract("NIO").con_id))
            assert snap[0].last > 0 and snap[0].close > 0
        finally:
            ib.disconnect()
    _no_decoder_errors(caplog)


async def test_scanner_ranks_the_real_gap_ups_first(minute_data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    day = date(2020, 12, 7)  # README: HCAC +28.7 % and LAZR +5.1 % gap-ups at the open
    async with running_gateway(data=minute_data_dir, session_date=day, speed=1.0,
                               start=datetime(2020, 12, 7, 9, 35, tzinfo=NY)) as gw:
        ib = await _connect(gw.port)
        try:
            sub = ScannerSubscription(instrument="STK", locationCode="STK.US.MAJOR", scanCode="TOP_PERC_GAIN",
                                      numberOfRows=5)
            rows = await ib.reqScannerDataAsync(sub)
            syms = [r.contractDetails.contract.symbol for r in rows]
            assert syms[0] == "HCAC" and len(rows) == 5 and [r.rank for r in rows] == list(range(5))
            now = gw.clock.timestamp()
            expect = gw.data_service.scan("TOP_PERC_GAIN", now, rows=5)
            assert [s for s, _ in expect] == syms
            # price filters: HCAC trades at ~17 $: gone above 20 $, alone below 20 $ among gainers ≥ 5 %
            above = await ib.reqScannerDataAsync(
                ScannerSubscription(instrument="STK", locationCode="STK.US.MAJOR", scanCode="TOP_PERC_GAIN",
                                    abovePrice=20.0, numberOfRows=10))
            assert "HCAC" not in {r.contractDetails.contract.symbol for r in above} and above
            below = await ib.reqScannerDataAsync(
                ScannerSubscription(instrument="STK", locationCode="STK.US.MAJOR", scanCode="TOP_PERC_GAIN",
                                    belowPrice=20.0), [TagValue("changePercAbove", "5")])
            assert [r.contractDetails.contract.symbol for r in below] == ["HCAC"]
            # MOST_ACTIVE: shares traded since 04:00, recomputed from the recording
            active = await ib.reqScannerDataAsync(
                ScannerSubscription(instrument="STK", locationCode="STK.US.MAJOR", scanCode="MOST_ACTIVE",
                                    numberOfRows=3, aboveVolume=1000))
            session = load_session(minute_data_dir, day)
            cut = pd.Timestamp(datetime.fromtimestamp(now, NY)).floor("1min")
            vols = {s: f.loc[f.index < cut, "volume"].sum() for s, f in session.items()}
            top = sorted(vols, key=lambda s: -vols[s])[:3]
            assert [r.contractDetails.contract.symbol for r in active][:1] == top[:1]
            hot = await ib.reqScannerDataAsync(
                ScannerSubscription(instrument="STK", locationCode="STK.US.MAJOR", scanCode="HOT_BY_VOLUME",
                                    numberOfRows=10))
            assert len(hot) == 10
            params = await ib.reqScannerParametersAsync()
            assert "TOP_PERC_GAIN" in params and "HOT_BY_VOLUME" in params
            # a streaming subscription is refreshed as market time passes
            live = ib.reqScannerSubscription(sub)
            await _until(lambda: len(live) == 5, what="streamed scanner rows")
            ib.cancelScannerSubscription(live)
        finally:
            ib.disconnect()
    _no_decoder_errors(caplog)


async def test_small_bar_pacing_answers_162(minute_data_dir: Path) -> None:
    day = date(2020, 11, 17)
    async with running_gateway(data=minute_data_dir, session_date=day, speed=1.0,
                               start=datetime(2020, 11, 17, 11, 0, tzinfo=NY)) as gw:
        ib = await _connect(gw.port)
        errors = _errors(ib)
        try:
            c = Stock("MSFT", "SMART", "USD")
            await ib.qualifyContractsAsync(c)
            results = []
            for k in range(6):  # IB: six or more requests for one contract within 2 s is a violation
                results.append(await ib.reqHistoricalDataAsync(c, "", f"{600 + 30 * k} S", "30 secs", "TRADES",
                                                               useRTH=False, timeout=10))
            assert all(len(r) > 0 for r in results[:5]) and len(results[5]) == 0
            assert [code for _, code in errors] == [162]
            # identical request within 15 s
            other = Stock("NVDA", "SMART", "USD")
            await ib.qualifyContractsAsync(other)
            assert await ib.reqHistoricalDataAsync(other, "", "1200 S", "30 secs", "TRADES", useRTH=False)
            assert not await ib.reqHistoricalDataAsync(other, "", "1200 S", "30 secs", "TRADES", useRTH=False)
            assert [code for _, code in errors] == [162, 162]
            # bars above 30 secs are not paced
            for _ in range(8):
                assert await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", useRTH=False)
            # the 60-per-10-minutes budget
            gw.data_service.pacing.max_requests = len(gw.data_service.pacing._all) + 1
            third = Stock("AMD", "SMART", "USD")
            await ib.qualifyContractsAsync(third)
            assert await ib.reqHistoricalDataAsync(third, "", "300 S", "5 secs", "TRADES", useRTH=False)
            assert not await ib.reqHistoricalDataAsync(third, "", "600 S", "5 secs", "TRADES", useRTH=False)
            assert [code for _, code in errors][-1] == 162 and len(errors) == 3
            assert sum(1 for e in gw.events if e["event"] == "history_pacing_violation") == 3
        finally:
            ib.disconnect()


async def test_halt_stops_ticks_and_bars_unknown_symbol_and_data_loss(minute_data_dir: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    day = date(2020, 11, 17)
    async with running_gateway(data=minute_data_dir, session_date=day, speed=60.0,
                               start=datetime(2020, 11, 17, 10, 0, tzinfo=NY)) as gw:
        ib = await _connect(gw.port)
        errors = _errors(ib)
        try:
            c = Stock("LI", "SMART", "USD")
            await ib.qualifyContractsAsync(c)
            rt = ib.reqRealTimeBars(c, 5, "TRADES", False)
            t = ib.reqMktData(c)
            await _until(lambda: len(rt) >= 2 and t.last == t.last, what="bars and ticks")
            gw.market.set_halted("LI", True)
            halted_at = gw.clock.timestamp()
            await _until(lambda: t.halted == 1, what="halted tick")
            n_bars = len(rt)
            after_halt: list[float] = []
            t.updateEvent += lambda tk: after_halt.extend(x.tickType for x in tk.ticks)
            await _until(lambda: gw.clock.timestamp() > halted_at + 60, what="a market minute")
            assert all(b.time.timestamp() + 5 <= halted_at + 5 for b in list(rt)[n_bars:])
            assert len([b for b in rt if b.time.timestamp() > halted_at]) == 0
            assert not [tt for tt in after_halt if tt in (1, 2, 4, 5, 8)]  # no trades/quotes while halted
            gw.market.set_halted("LI", False)
            await _until(lambda: any(b.time.timestamp() > halted_at + 60 for b in rt), what="bars after resume")

            bad = await ib.reqHistoricalDataAsync(Stock("ZZZZ", "SMART", "USD"), "", "1 D", "1 min", "TRADES",
                                                  useRTH=False)
            assert len(bad) == 0 and any(code == 200 for _, code in errors)

            assert gw.data_service.subscription_counts()["rt"] >= 1
            gw.data_service.on_data_lost()
            assert gw.data_service.subscription_counts() == {"mkt": 0, "hist": 0, "rt": 0, "scan": 0}
        finally:
            ib.disconnect()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and "market data step" in r.getMessage()]
