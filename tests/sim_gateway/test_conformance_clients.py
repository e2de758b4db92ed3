"""Conformance: three unmodified TWS API clients against the gateway, on recorded bars of 2020-11-17.

* ib_async 2.1.0 (offers 157..178 → 178), ib_insync 0.9.86 (157..176 → 176),
* IB's own ``ibapi`` (``ibapi-stable`` 10.50, offers 100..226 → 178), in its own reader thread.

Each connects, qualifies a contract, reads 1-minute history, streams 5-s bars, places and fills a
market and a (marketable) limit order, places a far limit order and cancels it, and reads
positions, executions and commissions. The gateway must have negotiated the expected version,
decoded every placeOrder to its last field, and the client's decoder must not have complained.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import ib_async
import ib_insync
import pytest
from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.execution import ExecutionFilter
from ibapi.order import Order
from ibapi.wrapper import EWrapper

from daytrading.clock import NY
from daytrading.sim_gateway.testing import IbLogGuard, running_gateway, wait_until

pytestmark = pytest.mark.timeout(120)

DAY = date(2020, 11, 17)
WAIT = 20.0


def gateway(minute_data_dir):
    return running_gateway(data=minute_data_dir, session_date=DAY, symbols=["AAPL", "NIO"], speed=60,
                           start=datetime(2020, 11, 17, 10, 0, tzinfo=NY))


def negotiated(gw, client_id: int) -> int:
    [rec] = [e for e in gw.events if e["event"] == "connected" and e["client_id"] == client_id]
    return rec["server_version"]


def assert_orders_decoded(gw) -> None:
    assert not [e for e in gw.events if e["event"] in ("place_order_extra_fields", "order_rejected")]


async def _insync_style(lib: Any, gw, client_id: int) -> None:
    """The scenario through ib_async's or ib_insync's ``IB`` (same API)."""
    ib = lib.IB()
    await ib.connectAsync("127.0.0.1", gw.port, clientId=client_id, timeout=10)
    try:
        [aapl] = await ib.qualifyContractsAsync(lib.Stock("AAPL", "SMART", "USD"))
        assert aapl.conId == gw.market.contract("AAPL").con_id
        bars = await ib.reqHistoricalDataAsync(aapl, "", "1800 S", "1 min", "TRADES", True)
        assert len(bars) >= 25 and all(b.high >= b.low > 0 for b in bars)
        rt = ib.reqRealTimeBars(aapl, 5, "TRADES", False)
        await wait_until(lambda: len(rt) >= 2, WAIT, "two 5-s bars")
        assert rt[-1].time.timestamp() - rt[-2].time.timestamp() == 5
        ib.cancelRealTimeBars(rt)
        mkt = ib.placeOrder(aapl, lib.MarketOrder("BUY", 10))
        last = gw.market.last_trade("AAPL").price
        lmt = ib.placeOrder(aapl, lib.LimitOrder("BUY", 5, round(last * 1.01, 2)))
        far = ib.placeOrder(aapl, lib.LimitOrder("BUY", 5, round(last * 0.8, 2)))
        await wait_until(lambda: mkt.isDone() and lmt.isDone() and far.orderStatus.status == "Submitted", WAIT,
                         "market and limit filled, far limit working")
        assert mkt.orderStatus.status == lmt.orderStatus.status == "Filled"
        ib.cancelOrder(far.order)
        await wait_until(far.isDone, WAIT, "cancel confirmed")
        assert far.orderStatus.status == "Cancelled"
        await wait_until(lambda: [p.position for p in ib.positions() if p.contract.symbol == "AAPL"] == [15], WAIT,
                         "position of 15 shares")
        fills = await ib.reqExecutionsAsync()
        mine = [f for f in fills if f.contract.symbol == "AAPL"]
        assert sum(f.execution.shares for f in mine) == 15
        await wait_until(lambda: all(f.commissionReport.commission > 0 for f in ib.fills()), WAIT, "commissions")
        assert all(f.commissionReport.commission >= 0.35 / 2 for f in ib.fills())
    finally:
        ib.disconnect()


async def test_ib_async_at_178(minute_data_dir):
    with IbLogGuard() as guard:
        async with gateway(minute_data_dir) as gw:
            await _insync_style(ib_async, gw, 21)
            assert negotiated(gw, 21) == 178
            assert_orders_decoded(gw)
    guard.check()


async def test_ib_insync_at_176(minute_data_dir):
    with IbLogGuard(logger="ib_insync") as guard:
        async with gateway(minute_data_dir) as gw:
            await _insync_style(ib_insync, gw, 22)
            assert negotiated(gw, 22) == 176
            assert_orders_decoded(gw)
    guard.check()


class IbapiApp(EWrapper, EClient):
    """IB's reference client: callbacks recorded, one event per awaited answer."""

    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, self)
        self.ready = threading.Event()
        self.done: dict[Any, threading.Event] = {}
        self.next_id = 0
        self.details: list[Any] = []
        self.bars: list[Any] = []
        self.rt_bars: list[Any] = []
        self.status: dict[int, str] = {}
        self.positions: dict[str, Decimal] = {}
        self.executions: list[Any] = []
        self.commissions: list[Any] = []
        self.errors: list[tuple[int, int, str]] = []

    def event(self, key: Any) -> threading.Event:
        return self.done.setdefault(key, threading.Event())

    def nextValidId(self, orderId: int) -> None:  # noqa: N802, N803 - ibapi's callback names
        self.next_id = orderId
        self.ready.set()

    def error(self, reqId, errorTime, errorCode, errorString, advancedOrderRejectJson=""):  # noqa: N802, N803, ANN001
        if errorCode not in (2104, 2106, 2158, 202):
            self.errors.append((reqId, errorCode, errorString))

    def contractDetails(self, reqId, contractDetails):  # noqa: N802, N803, ANN001
        self.details.append(contractDetails)

    def contractDetailsEnd(self, reqId):  # noqa: N802, N803, ANN001
        self.event("details").set()

    def historicalData(self, reqId, bar):  # noqa: N802, N803, ANN001
        self.bars.append(bar)

    def historicalDataEnd(self, reqId, start, end):  # noqa: N802, N803, ANN001
        self.event("history").set()

    def realtimeBar(self, reqId, time, open_, high, low, close, volume, wap, count):  # noqa: N802, N803, ANN001, PLR0913
        self.rt_bars.append((time, open_, high, low, close, volume))
        if len(self.rt_bars) >= 2:
            self.event("rt").set()

    def orderStatus(self, orderId, status, *args):  # noqa: N802, N803, ANN001, ANN002
        self.status[orderId] = status
        self.event((orderId, status)).set()

    def position(self, account, contract, position, avgCost):  # noqa: N802, N803, ANN001
        self.positions[contract.symbol] = position

    def positionEnd(self):  # noqa: N802
        self.event("positions").set()

    def execDetails(self, reqId, contract, execution):  # noqa: N802, N803, ANN001
        if reqId != -1:
            self.executions.append((contract.symbol, execution))

    def execDetailsEnd(self, reqId):  # noqa: N802, N803, ANN001
        self.event("executions").set()

    def commissionAndFeesReport(self, commissionAndFeesReport):  # noqa: N802, N803, ANN001
        self.commissions.append(commissionAndFeesReport)


def _wait(app: IbapiApp, key: Any, what: str) -> None:
    assert app.event(key).wait(WAIT), f"ibapi: timed out waiting for {what}; errors {app.errors}"


def _order(action: str, qty: int, order_type: str, price: float | None = None) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType = action, Decimal(qty), order_type
    if price is not None:
        o.lmtPrice = price
    return o


def _ibapi_scenario(port: int, last: float) -> IbapiApp:  # noqa: PLR0915 - one linear scenario
    app = IbapiApp()
    app.connect("127.0.0.1", port, 23)
    reader = threading.Thread(target=app.run, name="ibapi-reader", daemon=True)
    reader.start()
    try:
        assert app.ready.wait(WAIT), "ibapi: no nextValidId"
        c = Contract()
        c.symbol, c.secType, c.exchange, c.currency = "AAPL", "STK", "SMART", "USD"
        app.reqContractDetails(1, c)
        _wait(app, "details", "contract details")
        c = app.details[0].contract
        app.reqHistoricalData(2, c, "", "1800 S", "1 min", "TRADES", 1, 1, False, [])
        _wait(app, "history", "history")
        app.reqRealTimeBars(3, c, 5, "TRADES", False, [])
        _wait(app, "rt", "two 5-s bars")
        app.cancelRealTimeBars(3)
        ids = app.next_id, app.next_id + 1, app.next_id + 2
        app.placeOrder(ids[0], c, _order("BUY", 10, "MKT"))
        app.placeOrder(ids[1], c, _order("BUY", 5, "LMT", round(last * 1.01, 2)))
        app.placeOrder(ids[2], c, _order("BUY", 5, "LMT", round(last * 0.8, 2)))
        _wait(app, (ids[0], "Filled"), "market order filled")
        _wait(app, (ids[1], "Filled"), "limit order filled")
        _wait(app, (ids[2], "Submitted"), "far limit working")
        from ibapi.order_cancel import OrderCancel

        app.cancelOrder(ids[2], OrderCancel())
        _wait(app, (ids[2], "Cancelled"), "cancel confirmed")
        app.reqPositions()
        _wait(app, "positions", "positions")
        app.reqExecutions(4, ExecutionFilter())
        _wait(app, "executions", "executions")
    finally:
        app.disconnect()
        reader.join(10)
    return app


async def test_ibapi_at_178(minute_data_dir, caplog):
    async with gateway(minute_data_dir) as gw:
        with caplog.at_level(logging.WARNING, logger="ibapi"):
            app = await asyncio.to_thread(_ibapi_scenario, gw.port, gw.market.last_trade("AAPL").price)
        assert negotiated(gw, 23) == 178
        assert_orders_decoded(gw)
    assert not app.errors, app.errors
    assert app.details[0].contract.conId == gw.market.contract("AAPL").con_id
    assert len(app.bars) >= 25 and app.rt_bars[1][0] - app.rt_bars[0][0] == 5
    assert app.positions == {"AAPL": Decimal(15)}
    assert sorted(float(e.shares) for _, e in app.executions) == [5.0, 10.0]
    assert len(app.commissions) >= 2 and all(r.commissionAndFees > 0 for r in app.commissions)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("ibapi")]


async def test_client_below_157_is_answered_with_its_version_and_closed(minute_data_dir):
    async with gateway(minute_data_dir) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        payload = b"v100..150"
        writer.write(b"API\0" + len(payload).to_bytes(4, "big") + payload)
        await writer.drain()
        size = int.from_bytes(await reader.readexactly(4), "big")
        fields = (await reader.readexactly(size)).split(b"\0")
        assert fields[0] == b"150"
        assert await asyncio.wait_for(reader.read(), WAIT) == b"", "the gateway closes the connection"
        writer.close()
        [refused] = [e for e in gw.events if e["event"] == "handshake_refused"]
        assert "100..150" in refused["reason"] and "157" in refused["reason"]
