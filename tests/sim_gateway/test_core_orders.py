"""Orders and fills with real, unmodified ib_async against the sim-gateway on recorded bars of
2020-11-17 (AAPL, NIO, TSLA, LI). Expected prices come from the gateway's own replayed trades
(DATA's intrabar path), so each assertion ties a fill to the tape."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Stock

from daytrading.sim_gateway.engine.fills import commission_for, sell_fees
from daytrading.sim_gateway.testing import IbLogGuard, running_gateway, wait_until
from daytrading.clock import NY

pytestmark = pytest.mark.timeout(90)

DAY = date(2020, 11, 17)
SYMBOLS = ["AAPL", "NIO", "TSLA", "LI"]


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2020, 11, 17, hh, mm, ss, tzinfo=NY)


def gateway(minute_data_dir, **kw):
    kw.setdefault("speed", 60)
    kw.setdefault("start", at(10, 0))
    return running_gateway(data=minute_data_dir, session_date=DAY, symbols=SYMBOLS, **kw)


async def connect(gw, client_id: int) -> IB:
    ib = IB()
    await ib.connectAsync("127.0.0.1", gw.port, clientId=client_id, timeout=3)
    return ib


def errors(ib: IB) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, msg, contract: seen.append((req_id, code))
    return seen


def complete(trade) -> bool:
    """Done, and every fill has its commission report."""
    return trade.isDone() and all(f.commissionReport.execId for f in trade.fills)


def sim_order(gw, ib: IB, trade):
    return gw.orders.orders[(ib.client.clientId, trade.order.orderId)]


async def test_market_orders_fill_at_next_trade_with_slippage_and_ib_commission(minute_data_dir):
    with IbLogGuard() as guard:
        async with gateway(minute_data_dir, slippage=0.02) as gw:
            ib = await connect(gw, 2)
            try:
                [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
                buy = ib.placeOrder(aapl, MarketOrder("BUY", 10))
                await wait_until(lambda: complete(buy), 10, "buy fill")
                o = sim_order(gw, ib, buy)
                tick = gw.market.ticks_between("AAPL", o.placed_at, o.placed_at + 120)[0]
                [fill] = buy.fills
                assert fill.execution.price == pytest.approx(tick.price + 0.02)
                assert fill.execution.time.timestamp() == pytest.approx(int(tick.ts), abs=1)
                assert fill.execution.side == "BOT" and fill.execution.lastLiquidity == 2
                # tiered minimum: 0.35 + clearing 10 × 0.0002 + pass-through 0.35 × (0.000175 + 0.00056)
                assert fill.commissionReport.commission == pytest.approx(0.35 + 0.002 + 0.35 * 0.000735, abs=1e-6)
                assert [s.status for s in [e for e in buy.log]][-1] == "Filled"
                sell = ib.placeOrder(aapl, MarketOrder("SELL", 10))
                await wait_until(lambda: complete(sell), 10, "sell fill")
                o2 = sim_order(gw, ib, sell)
                tick2 = gw.market.ticks_between("AAPL", o2.placed_at, o2.placed_at + 120)[0]
                [f2] = sell.fills
                assert f2.execution.price == pytest.approx(tick2.price - 0.02)
                fee = commission_for(o2, 10, 10 * f2.execution.price) + sell_fees(10, 10 * f2.execution.price)
                assert f2.commissionReport.commission == pytest.approx(fee, abs=1e-6)
                avg_cost = fill.execution.price + fill.commissionReport.commission / 10
                assert f2.commissionReport.realizedPNL == pytest.approx(
                    10 * (f2.execution.price - avg_cost) - f2.commissionReport.commission, abs=1e-4)
                # permIds and execIds unique
                assert buy.order.permId != sell.order.permId
                assert fill.execution.execId != f2.execution.execId
            finally:
                ib.disconnect()
    guard.check()


async def test_large_order_fills_partially_over_several_trades(minute_data_dir):
    # AAPL pre-market at 07:30: about 900 shares a trade, so 2,000 shares need several trades
    async with gateway(minute_data_dir, start=at(7, 30)) as gw:
        ib = await connect(gw, 2)
        try:
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            qty = 2000
            lmt = round(gw.market.last_trade("AAPL").price * 1.02, 2)
            statuses: list[tuple[str, float, float]] = []
            ib.orderStatusEvent += lambda t: statuses.append(
                (t.orderStatus.status, t.orderStatus.filled, t.orderStatus.remaining))
            trade = ib.placeOrder(aapl, LimitOrder("BUY", qty, lmt, outsideRth=True))
            await wait_until(lambda: complete(trade), 20, "AAPL filled")
            o = sim_order(gw, ib, trade)
            ticks = gw.market.ticks_between("AAPL", o.placed_at, o.placed_at + 600)
            n = next(i for i in range(len(ticks)) if sum(t.size for t in ticks[:i + 1]) >= qty) + 1
            assert [f.execution.price for f in trade.fills] == [t.price for t in ticks[:n]]
            assert [f.execution.shares for f in trade.fills][:-1] == [t.size for t in ticks[:n - 1]]
            assert sum(f.execution.shares for f in trade.fills) == qty
            cum = [sum(t.size for t in ticks[:i + 1]) for i in range(n - 1)]
            partial = [(st, f, r) for st, f, r in statuses if st == "Submitted" and f > 0]
            assert [f for _, f, _ in partial] == cum and all(f + r == qty for _, f, r in partial)
            assert statuses[-1] == ("Filled", qty, 0)
            vwap = sum(f.execution.shares * f.execution.price for f in trade.fills) / qty
            assert trade.orderStatus.avgFillPrice == pytest.approx(vwap, abs=1e-4)
            # the per-order minimum/maximum apply once: the fills' commissions add up to the order's
            total = sum(f.commissionReport.commission for f in trade.fills)
            assert total == pytest.approx(commission_for(None, qty, vwap * qty), abs=1e-5)
        finally:
            ib.disconnect()


async def test_order_beyond_buying_power_is_rejected(minute_data_dir):
    async with gateway(minute_data_dir) as gw:
        ib = await connect(gw, 2)
        seen = errors(ib)
        try:
            [tsla] = await ib.qualifyContractsAsync(Stock("TSLA", "SMART", "USD"))
            trade = ib.placeOrder(tsla, MarketOrder("BUY", 5000))  # ~2.2 M$ on a 100 k$ account
            await wait_until(trade.isDone, 5, "rejected")
            assert (trade.order.orderId, 201) in seen and not trade.fills
        finally:
            ib.disconnect()


async def test_limit_rests_until_the_market_trades_through(minute_data_dir):
    async with gateway(minute_data_dir, speed=240) as gw:
        ib = await connect(gw, 2)
        try:
            [tsla] = await ib.qualifyContractsAsync(Stock("TSLA", "SMART", "USD"))
            now = gw.now()
            last = gw.market.last_trade("TSLA").price
            window = [x for x in gw.market.ticks_between("TSLA", now + 30, now + 600)]
            low = min(x.price for x in window)
            assert low < last - 0.05, "the tape must dip in the next 10 minutes"
            lmt = round(low + 0.03, 2)
            trade = ib.placeOrder(tsla, LimitOrder("BUY", 3, lmt, tif="GTC"))
            await wait_until(lambda: trade.orderStatus.status == "Submitted", 5, "working")
            assert trade in ib.openTrades() and not trade.fills
            await wait_until(lambda: complete(trade), 20, "limit fill")
            o = sim_order(gw, ib, trade)
            first_through = next(x for x in gw.market.ticks_between("TSLA", o.placed_at, now + 600)
                                 if x.price < lmt)
            [fill] = trade.fills
            assert fill.execution.price == lmt and fill.execution.lastLiquidity == 1
            assert fill.execution.time.timestamp() == pytest.approx(int(first_through.ts), abs=1)
        finally:
            ib.disconnect()


async def test_ioc_gtc_oca_cancel_and_foreign_cancel(minute_data_dir):
    async with gateway(minute_data_dir) as gw:
        owner = await connect(gw, 10)
        other = await connect(gw, 2)
        owner_errors, other_errors = errors(owner), errors(other)
        try:
            [aapl] = await owner.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            last = gw.market.last_trade("AAPL").price
            far = round(last * 0.8, 2)
            # IOC that cannot fill is cancelled; a marketable IOC fills
            ioc = owner.placeOrder(aapl, LimitOrder("BUY", 5, far, tif="IOC"))
            await wait_until(ioc.isDone, 10, "IOC done")
            assert ioc.orderStatus.status == "Cancelled" and ioc.orderStatus.filled == 0
            ioc2 = owner.placeOrder(aapl, LimitOrder("BUY", 5, round(last * 1.05, 2), tif="IOC"))
            await wait_until(ioc2.isDone, 10, "IOC2 done")
            assert ioc2.orderStatus.status == "Filled"
            # OCA: the marketable member fills, the other is cancelled by the gateway
            a = LimitOrder("SELL", 5, round(last * 0.95, 2))
            b = LimitOrder("SELL", 5, round(last * 1.2, 2))
            oca = owner.oneCancelsAll([a, b], "oca-test", 1)
            ta, tb = owner.placeOrder(aapl, oca[0]), owner.placeOrder(aapl, oca[1])
            await wait_until(lambda: ta.isDone() and tb.isDone(), 10, "OCA resolved")
            assert ta.orderStatus.status == "Filled" and tb.orderStatus.status == "Cancelled"
            # another client cannot cancel the owner's order: IB's 10147, order keeps working
            gtc = owner.placeOrder(aapl, LimitOrder("BUY", 5, far, tif="GTC"))
            await wait_until(lambda: gtc.orderStatus.status == "Submitted", 5, "GTC working")
            other.client.cancelOrder(gtc.order.orderId, "")
            await wait_until(lambda: (gtc.order.orderId, 10147) in other_errors, 5, "10147")
            assert sim_order(gw, owner, gtc).status == "Submitted" and not gtc.isDone()
            # the owner can
            owner.cancelOrder(gtc.order)
            await wait_until(gtc.isDone, 5, "cancelled")
            assert gtc.orderStatus.status == "Cancelled"
            assert (gtc.order.orderId, 202) in owner_errors
            # reqGlobalCancel from any client cancels every client's working orders
            w1 = owner.placeOrder(aapl, LimitOrder("BUY", 1, far))
            [aapl2] = await other.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            w2 = other.placeOrder(aapl2, LimitOrder("BUY", 1, far))
            await wait_until(lambda: w1.orderStatus.status == w2.orderStatus.status == "Submitted", 5, "working")
            other.reqGlobalCancel()
            await wait_until(lambda: w1.isDone() and w2.isDone(), 5, "global cancel")
            assert w1.orderStatus.status == w2.orderStatus.status == "Cancelled"
            assert not gw.orders.working_orders()
        finally:
            owner.disconnect()
            other.disconnect()


async def test_session_rules_premarket_open_and_day_expiry(minute_data_dir):
    async with gateway(minute_data_dir, speed=60, start=at(9, 29, 0)) as gw:
        ib = await connect(gw, 2)
        try:
            [nio] = await ib.qualifyContractsAsync(Stock("NIO", "SMART", "USD"))
            last = gw.market.last_trade("NIO").price
            mkt = ib.placeOrder(nio, MarketOrder("BUY", 10))
            ext = ib.placeOrder(nio, LimitOrder("BUY", 10, round(last * 1.05, 2), outsideRth=True))
            rth = ib.placeOrder(nio, LimitOrder("BUY", 10, round(last * 1.05, 2)))
            await wait_until(lambda: complete(ext), 10, "outsideRth fill pre-market")
            assert ext.fills[0].execution.time.astimezone(NY) < at(9, 30)
            assert mkt.orderStatus.status == "PreSubmitted" and rth.orderStatus.status == "PreSubmitted"
            await wait_until(lambda: complete(mkt) and complete(rth), 10, "fills at the open")
            opening = gw.market.ticks_between("NIO", at(9, 29, 59).timestamp(), at(9, 31).timestamp())[0]
            assert opening.ts == at(9, 30).timestamp()
            assert mkt.fills[0].execution.price == opening.price
            assert mkt.fills[0].execution.time.astimezone(NY) == at(9, 30)
        finally:
            ib.disconnect()
    async with gateway(minute_data_dir, speed=120, start=at(15, 59, 0)) as gw:
        ib = await connect(gw, 2)
        try:
            [nio] = await ib.qualifyContractsAsync(Stock("NIO", "SMART", "USD"))
            far = round(gw.market.last_trade("NIO").price * 0.7, 2)
            day = ib.placeOrder(nio, LimitOrder("BUY", 1, far))
            gtc = ib.placeOrder(nio, LimitOrder("BUY", 1, far, tif="GTC"))
            ext = ib.placeOrder(nio, LimitOrder("BUY", 1, far, outsideRth=True))
            await wait_until(day.isDone, 10, "DAY order expired at the close")
            assert day.orderStatus.status == "Cancelled" and gw.now() >= at(16, 0).timestamp()
            assert not gtc.isDone() and not ext.isDone()
        finally:
            ib.disconnect()


async def test_short_sales_shortable_allowed_otherwise_201_and_recorded(minute_data_dir):
    async with gateway(minute_data_dir) as gw:
        ib = await connect(gw, 10)
        seen = errors(ib)
        try:
            aapl, li = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"), Stock("LI", "SMART", "USD"))
            short = ib.placeOrder(aapl, MarketOrder("SELL", 5))
            await wait_until(lambda: complete(short), 10, "AAPL short")
            assert short.orderStatus.status == "Filled"
            rejected = ib.placeOrder(li, MarketOrder("SELL", 5))
            await wait_until(rejected.isDone, 5, "LI rejected")
            assert (rejected.order.orderId, 201) in seen
            assert sim_order(gw, ib, rejected).status == "Inactive"
            # a SELL that exceeds the long position net of another working SELL is a short sale too
            buy = ib.placeOrder(li, MarketOrder("BUY", 10))
            await wait_until(lambda: complete(buy), 10, "LI bought")
            target = ib.placeOrder(li, LimitOrder("SELL", 10, round(gw.market.last_trade("LI").price * 1.5, 2)))
            await wait_until(lambda: target.orderStatus.status == "Submitted", 5, "target working")
            dup = ib.placeOrder(li, MarketOrder("SELL", 10))
            await wait_until(dup.isDone, 5, "duplicate SELL rejected")
            assert dup.orderStatus.status in ("Cancelled", "Inactive") and not dup.fills
            report = gw._admin.report()
            assert report["positions"]["AAPL"] == -5 and report["min_position"]["AAPL"] == -5
            assert [s["symbol"] for s in report["shorts"]] == ["AAPL"]
            assert [s["symbol"] for s in report["short_sells"]] == ["AAPL"]
            assert [s["symbol"] for s in report["rejected_short_sells"]] == ["LI", "LI"]
            assert report["positions"]["LI"] == 10 and report["min_position"]["LI"] == 0
        finally:
            ib.disconnect()


async def test_orders_survive_reconnect_with_executions_and_completed_orders(minute_data_dir):
    async with gateway(minute_data_dir) as gw:
        ib = await connect(gw, 10)
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        far = round(gw.market.last_trade("AAPL").price * 0.8, 2)
        working = ib.placeOrder(aapl, LimitOrder("BUY", 5, far, orderRef="keep"))
        filled = ib.placeOrder(aapl, MarketOrder("BUY", 7, orderRef="entry"))
        await wait_until(lambda: complete(filled) and working.orderStatus.status == "Submitted", 10, "setup")
        used = {working.order.orderId, filled.order.orderId}
        perm_ids = {working.order.permId, filled.order.permId}
        ib.disconnect()
        await wait_until(lambda: not gw.connections, 5, "disconnected")
        ib2 = await connect(gw, 10)
        try:
            [open_trade] = ib2.openTrades()
            assert (open_trade.order.orderId, open_trade.order.permId) == (working.order.orderId, working.order.permId)
            assert open_trade.order.orderRef == "keep" and open_trade.orderStatus.status == "Submitted"
            [fill] = ib2.fills()
            assert fill.execution.permId == filled.order.permId and fill.execution.shares == 7
            assert fill.commissionReport.commission > 0
            completed = await ib2.reqCompletedOrdersAsync(False)
            assert [(t.order.permId, t.orderStatus.status) for t in completed] == [(filled.order.permId, "Filled")]
            new = ib2.placeOrder(aapl, LimitOrder("BUY", 1, far))
            assert new.order.orderId > max(used)
            await wait_until(lambda: new.orderStatus.status == "Submitted", 5, "new order")
            assert new.order.permId not in perm_ids
            # the reconnected client still owns and can cancel the old order
            ib2.cancelOrder(open_trade.order)
            await wait_until(open_trade.isDone, 5, "old order cancelled")
        finally:
            ib2.disconnect()
