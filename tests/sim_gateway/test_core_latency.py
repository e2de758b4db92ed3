"""Injected latency (``[latency]`` in the scenario, ``latency`` admin command) and the partial-fill
fault, against an in-process gateway replaying recorded bars, with unmodified ib_async clients.

Every timing assertion is a lower bound the gateway guarantees (a held-back message cannot be
sent before its due market time), so a loaded machine cannot make them fail."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Stock

from daytrading.sim_gateway.engine.faults import Latency
from daytrading.sim_gateway.testing import running_gateway, wait_until
from daytrading.errors import ConfigError
from tests.sim_gateway._util import at, ctl

pytestmark = pytest.mark.timeout(90)

DAY = date(2020, 11, 17)
SYMBOLS = ["AAPL", "NIO"]


def gateway(minute_data_dir, **kw):
    kw.setdefault("speed", 60)
    kw.setdefault("start", at(10, 0))
    return running_gateway(data=minute_data_dir, session_date=DAY, symbols=SYMBOLS, **kw)


async def connect(gw, client_id: int = 3) -> IB:
    ib = IB()
    await ib.connectAsync("127.0.0.1", gw.port, clientId=client_id, timeout=5)
    return ib


async def test_position_push_lags_the_fill_and_partial_rest_fills_later(minute_data_dir):
    """The issue's scenario: a SELL LMT under the partial fault with positions 700 ms late.

    When the first (capped) execution arrives the position stream still shows the old
    quantity; the rest of the order fills on later trades; the report never goes short."""
    scenario = {"latency": {"positions_ms": 700}, "fault": []}
    async with gateway(minute_data_dir, faults=scenario) as gw:
        ib = await connect(gw)
        try:
            [nio] = await ib.qualifyContractsAsync(Stock("NIO", "SMART", "USD"))
            buy = ib.placeOrder(nio, MarketOrder("BUY", 300))
            await wait_until(lambda: buy.isDone() and ib.positions() and ib.positions()[0].position == 300, 10,
                             "long 300 shown by the position stream")
            seen: list[tuple[float, float, float]] = []  # (execution shares, streamed position, market now)
            pushes: list[tuple[float, float]] = []
            ib.execDetailsEvent += lambda trade, fill: seen.append(
                (fill.execution.shares, sum(p.position for p in ib.positions() if p.contract.symbol == "NIO"),
                 gw.now()))
            ib.positionEvent += lambda p: pushes.append((p.position, gw.now()))
            await ctl(gw, "partial", quantity=100)
            limit = round(gw.market.last_trade("NIO").price * 0.995, 2)  # marketable: fills on the next trades
            sell = ib.placeOrder(nio, LimitOrder("SELL", 300, limit))
            await wait_until(sell.isDone, 20, "SELL LMT 300 completely filled")
            await wait_until(lambda: pushes and pushes[-1][0] == 0, 10, "flat position pushed")
        finally:
            ib.disconnect()
        shares = [f.execution.shares for f in sell.fills]
        assert shares[0] == 100 and sum(shares) == 300 and len(shares) >= 2
        times = [f.execution.time for f in sell.fills]
        assert times[1] > times[0], "the rest fills on a later trade"
        assert seen[0][:2] == (100, 300), "at the first execution the stream still says 300"
        fill_time = times[0].timestamp()
        assert pushes[0][0] == 200 and pushes[0][1] >= fill_time + 0.7
        report = await ctl(gw, "report")
        assert report["positions"]["NIO"] == 0 and report["min_position"]["NIO"] == 0
        assert [e["shares"] for e in report["executions"] if e["side"] == "SLD"] == shares
        assert report["latency"]["positions_ms"] == 700


async def test_executions_order_ack_and_market_data_latency_at_run_time(minute_data_dir):
    async with gateway(minute_data_dir) as gw:
        ib = await connect(gw)
        try:
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            got = await ctl(gw, "latency", executions_ms=3000, order_ack_ms=6000)
            assert got == {"positions_ms": 0.0, "order_ack_ms": 6000.0, "executions_ms": 3000.0,
                           "market_data_ms": 0.0}
            # order_ack_ms: the order reaches the book (and is acknowledged) 6 market s later
            placed = gw.now()
            acks: list[tuple[str, float]] = []
            far = round(gw.market.last_trade("AAPL").price * 0.8, 2)
            resting = ib.placeOrder(aapl, LimitOrder("BUY", 1, far))
            resting.statusEvent += lambda t: acks.append((t.orderStatus.status, gw.now()))
            await wait_until(lambda: resting.orderStatus.status == "Submitted", 10, "acknowledged")
            assert acks and acks[0][1] >= placed + 6
            cancelled = gw.now()
            ib.cancelOrder(resting.order)
            await wait_until(resting.isDone, 10, "cancel confirmed")
            assert acks[-1][0] == "Cancelled" and acks[-1][1] >= cancelled + 6
            # executions_ms: orderStatus Filled first, execDetails 3 market s after the fill
            await ctl(gw, "latency", order_ack_ms=0)
            status_at: list[tuple[str, int]] = []
            buy = ib.placeOrder(aapl, MarketOrder("BUY", 2))
            buy.statusEvent += lambda t: status_at.append((t.orderStatus.status, len(t.fills)))
            await wait_until(lambda: buy.fills, 10, "execution delivered")
            arrived = gw.now()
            assert ("Filled", 0) in status_at, "orderStatus Filled arrived before the execution"
            assert arrived >= buy.fills[0].execution.time.timestamp() + 3
            await wait_until(lambda: buy.fills[0].commissionReport.commission > 0, 10, "commission report")
            # market_data_ms: 5-s bars arrive one market minute late
            await ctl(gw, "latency", market_data_ms=60_000, executions_ms=0)
            lags: list[float] = []
            bars = ib.reqRealTimeBars(aapl, 5, "TRADES", False)
            bars.updateEvent += lambda b, has_new: lags.append(gw.now() - (b[-1].time.timestamp() + 5))
            await wait_until(lambda: len(lags) >= 3, 15, "three 5-s bars")
            assert min(lags) >= 60
        finally:
            ib.disconnect()


def test_latency_settings_and_scenario_are_validated(minute_data_dir):
    lat = Latency()
    assert lat.update({"positions_ms": 700})["positions_ms"] == 700
    for bad in ({"position_ms": 1}, {"positions_ms": -1}, {"executions_ms": "soon"}, {"order_ack_ms": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            lat.update(bad)
    assert lat.positions_ms == 700  # a refused update changes nothing

    async def scenario(data):
        async with gateway(minute_data_dir, faults=data):
            pass

    with pytest.raises(ConfigError, match=r"\[latency\].*positions_ms.*-5"):
        asyncio.run(scenario({"latency": {"positions_ms": -5}}))
    with pytest.raises(ConfigError, match="latencies"):
        asyncio.run(scenario({"latencies": {"positions_ms": 5}}))
