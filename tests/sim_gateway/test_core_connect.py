"""Connection, startup sync, contracts and account against real, unmodified ib_async over loopback,
on recorded bars of 2020-11-17 (TSLA, NIO, AAPL)."""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime

import pytest
from ib_async import IB, MarketOrder, Stock

from daytrading.sim_gateway.testing import IbLogGuard, running_gateway, wait_until
from daytrading.clock import NY

pytestmark = pytest.mark.timeout(60)

DAY = date(2020, 11, 17)
SYMBOLS = ["TSLA", "NIO", "AAPL"]


def at(hh: int, mm: int) -> datetime:
    return datetime(2020, 11, 17, hh, mm, tzinfo=NY)


def gateway(minute_data_dir, **kw):
    kw.setdefault("speed", 60)
    kw.setdefault("start", at(10, 0))
    return running_gateway(data=minute_data_dir, session_date=DAY, symbols=SYMBOLS, **kw)


def notices(ib: IB) -> list[tuple[int, int, str]]:
    seen: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, msg, contract: seen.append((req_id, code, msg))
    return seen


async def test_connect_startup_sync_and_notices(minute_data_dir):
    async with gateway(minute_data_dir) as gw:
        with IbLogGuard(extra=("Error for",)) as guard:
            ib = IB()
            seen = notices(ib)
            t0 = time.monotonic()
            await ib.connectAsync("127.0.0.1", gw.port, clientId=7, timeout=2)
            elapsed = time.monotonic() - t0
            try:
                assert elapsed < 1.0, f"connect took {elapsed:.2f} s: a startup request is not answered"
                assert ib.isConnected() and ib.client.serverVersion() == 178
                assert ib.managedAccounts() == ["DU0000001"]
                values = {v.tag: v.value for v in ib.accountValues()}
                assert float(values["NetLiquidation"]) == 100_000.0
                assert float(values["TotalCashValue"]) == 100_000.0
                assert ib.positions() == [] and ib.openTrades() == [] and ib.fills() == []
                await wait_until(lambda: {c for _, c, _ in seen} >= {2104, 2106, 2158}, 5, "farm notices")
                assert all(r == -1 for r, c, _ in seen if c in (2104, 2106, 2158))
                # currentTime is the replay market time
                t = await ib.reqCurrentTimeAsync()
                assert abs(t.timestamp() - gw.now()) < 2
                assert at(10, 0) <= t.astimezone(NY) < at(10, 5)
            finally:
                ib.disconnect()
            await wait_until(lambda: not gw.connections, 5, "server saw the disconnect")
        guard.check()
        assert not [r for r in guard.records if "timed out" in r.getMessage()]


async def test_duplicate_client_id_gets_326_and_is_closed(minute_data_dir):
    async with gateway(minute_data_dir) as gw:
        first = IB()
        await first.connectAsync("127.0.0.1", gw.port, clientId=10, timeout=2)
        second = IB()
        seen = notices(second)
        with pytest.raises((TimeoutError, asyncio.TimeoutError, ConnectionError)):
            await second.connectAsync("127.0.0.1", gw.port, clientId=10, timeout=1)
        assert any(code == 326 for _, code, _ in seen), seen
        assert not second.isConnected()
        # the first connection is unaffected
        assert first.isConnected()
        t = await first.reqCurrentTimeAsync()
        assert t is not None
        assert [e for e in gw.events if e["event"] == "duplicate_client_id"]
        first.disconnect()


async def test_contracts_qualify_details_and_unknown_symbol(minute_data_dir):
    async with gateway(minute_data_dir) as gw:
        ib = IB()
        seen = notices(ib)
        await ib.connectAsync("127.0.0.1", gw.port, clientId=3, timeout=2)
        try:
            tsla, nio, bogus = await ib.qualifyContractsAsync(
                Stock("TSLA", "SMART", "USD"), Stock("NIO", "SMART", "USD"), Stock("ZZZZ", "SMART", "USD"))
            assert bogus is None
            assert any(code == 200 for _, code, _ in seen)
            assert (tsla.conId, tsla.primaryExchange, tsla.exchange) == (gw.market.contract("TSLA").con_id,
                                                                         "NASDAQ", "SMART")
            assert nio.primaryExchange == "NYSE"
            # conId stable per symbol: a second lookup (by conId) gives the same contract
            [again] = await ib.reqContractDetailsAsync(Stock(conId=tsla.conId))
            assert again.contract.symbol == "TSLA" and again.contract.conId == tsla.conId
            assert again.minTick == 0.01 and again.longName == "TESLA INC"
            assert await ib.reqContractDetailsAsync(Stock("NOPE", "SMART", "USD")) == []
        finally:
            ib.disconnect()


async def test_account_portfolio_positions_summary_and_pnl(minute_data_dir):
    with IbLogGuard() as guard:
        await _account_scenario(minute_data_dir)
    guard.check()


async def _account_scenario(minute_data_dir):
    async with gateway(minute_data_dir) as gw:
        ib = IB()
        await ib.connectAsync("127.0.0.1", gw.port, clientId=4, timeout=2)
        watcher = IB()  # a second client sees positions/portfolio pushes too
        await watcher.connectAsync("127.0.0.1", gw.port, clientId=5, timeout=2)
        try:
            [nio] = await ib.qualifyContractsAsync(Stock("NIO", "SMART", "USD"))
            pnl = ib.reqPnL("DU0000001")
            trade = ib.placeOrder(nio, MarketOrder("BUY", 200))
            await wait_until(lambda: trade.isDone() and all(f.commissionReport.execId for f in trade.fills),
                             10, "NIO fill with commission report")
            fill_px = trade.orderStatus.avgFillPrice
            commission = sum(f.commissionReport.commission for f in trade.fills)
            await wait_until(lambda: ib.portfolio() and watcher.positions(), 5, "portfolio/position pushes")
            [pos] = watcher.positions()
            assert pos.contract.conId == nio.conId and pos.position == 200
            assert pos.avgCost == pytest.approx(fill_px + commission / 200, abs=1e-6)
            [item] = ib.portfolio()
            assert item.position == 200 and item.averageCost == pytest.approx(pos.avgCost)
            mark = item.marketPrice
            assert mark > 0 and item.marketValue == pytest.approx(200 * mark, abs=1e-4)
            assert item.unrealizedPNL == pytest.approx(200 * (mark - pos.avgCost), abs=1e-3)
            values = {v.tag: float(v.value) for v in ib.accountValues() if v.currency == "USD" and v.tag != "Currency"}
            cash = 100_000 - 200 * fill_px - commission
            assert values["TotalCashValue"] == pytest.approx(cash, abs=0.01)
            nlv = values["NetLiquidation"]
            assert nlv == pytest.approx(cash + values["GrossPositionValue"], abs=0.02)
            assert values["BuyingPower"] == pytest.approx(4 * values["ExcessLiquidity"], abs=0.05)
            summary = {v.tag: v.value for v in await ib.accountSummaryAsync()}
            for tag in ("NetLiquidation", "TotalCashValue", "BuyingPower", "AvailableFunds", "ExcessLiquidity"):
                assert tag in summary
            await wait_until(lambda: pnl.unrealizedPnL == pnl.unrealizedPnL and pnl.dailyPnL is not None, 5, "pnl")
            assert pnl.realizedPnL == 0.0
            # closing the position realizes P&L and removes it everywhere
            close = ib.placeOrder(nio, MarketOrder("SELL", 200))
            await wait_until(lambda: close.isDone() and all(f.commissionReport.execId for f in close.fills),
                             10, "NIO close")
            await wait_until(lambda: not watcher.positions() and not ib.portfolio(), 5, "flat everywhere")
            realized = sum(f.commissionReport.realizedPNL for f in close.fills)
            expected = 200 * (close.orderStatus.avgFillPrice - pos.avgCost) - sum(
                f.commissionReport.commission for f in close.fills)
            assert realized == pytest.approx(expected, abs=1e-3)
            await wait_until(lambda: abs(pnl.realizedPnL - realized) < 1e-3, 5, "pnl realized")
            assert gw.account.position("NIO") == 0
        finally:
            ib.disconnect()
            watcher.disconnect()


async def test_minute_pushes_carry_only_the_account_values_that_changed(minute_data_dir):
    """The minute push resends no unchanged account value (as IB), yet the client's values end
    the same as the full set a new subscription gets."""
    async with gateway(minute_data_dir) as gw:
        ib = IB()
        await ib.connectAsync("127.0.0.1", gw.port, clientId=4, timeout=2)
        pushed: list[str] = []
        ib.accountValueEvent += lambda v: pushed.append(v.tag)
        try:
            flat_until = gw.now() + 130  # two minute pushes while flat: nothing changed
            await wait_until(lambda: gw.now() > flat_until, 10, "two minute pushes")
            assert pushed == []
            [nio] = await ib.qualifyContractsAsync(Stock("NIO", "SMART", "USD"))
            buy = ib.placeOrder(nio, MarketOrder("BUY", 200))
            await wait_until(lambda: buy.isDone() and ib.portfolio(), 10, "NIO bought, portfolio pushed")
            held_until = gw.now() + 130
            await wait_until(lambda: gw.now() > held_until, 10, "two minute pushes while held")
            assert "TotalCashValue" in pushed and "NetLiquidation" in pushed
            assert not {"AccountCode", "AccountType", "Currency", "DayTradesRemaining"} & set(pushed)
            sell = ib.placeOrder(nio, MarketOrder("SELL", 200))
            await wait_until(lambda: sell.isDone() and not ib.portfolio(), 10, "NIO sold, flat")
            flat_until = gw.now() + 70
            await wait_until(lambda: gw.now() > flat_until, 10, "a minute push after the close")
            want = {(tag, value, cur) for tag, (value, cur) in gw.account.values().items()}
            assert {(v.tag, v.value, v.currency) for v in ib.accountValues()} == want
        finally:
            ib.disconnect()


async def test_send_many_puts_the_same_bytes_on_the_socket_as_one_send_each():
    import socket

    from daytrading.sim_gateway.protocol.wire import encode_message, read_message
    from daytrading.sim_gateway.session import Connection

    a, b = socket.socketpair()
    _, writer = await asyncio.open_connection(sock=a)
    reader, peer = await asyncio.open_connection(sock=b)
    conn = Connection(None, reader, writer, 1)  # type: ignore[arg-type]
    msgs = [[6, 2, "NetLiquidation", "100000.0", "USD", "DU1"], [8, 1, "10:01"], [94, 7, 1.5, -2.25, 0.0]]
    conn.send_many(msgs)
    conn.send_many([])  # nothing to send: no write
    conn.send(*msgs[0])
    await writer.drain()
    got = [await read_message(reader) for _ in range(4)]
    want = [encode_message(m)[4:].decode().split("\0")[:-1] for m in [*msgs, msgs[0]]]
    assert got == want
    conn.abort()
    conn.send_many(msgs)  # closed: a no-op, no error
    peer.close()
