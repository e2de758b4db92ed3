"""exit-manager against a real sim-gateway subprocess replaying real recorded bars.

Positions are opened by a separate ib_async client (as the day-trader would) and the
database rows are written through the Coordinator; the exit-manager runs in-process
(its real ``run()`` loop, real ib_async) except where a SIGKILL needs a process.

Trigger prices are chosen relative to the replayed market price: an entry price
above the market makes the stop trade at once, one below it makes the target
marketable, so each test is about the exit-manager, not about waiting for the tape.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import date, datetime, timedelta

import pytest

from daytrading.sim_gateway.testing import GatewayProcess
from daytrading.clock import NY
from daytrading.runtime import build_clock
from tests.bots._harness import (
    bot_env, bot_settings, buy_at_market, coordinator, never_short, running_exit_manager, sells, wait_for,
)

#: the only symbols these tests trade: the sim-gateway loads just these (a shorter start-up)
GATEWAY_SYMBOLS = ["AAPL", "AMD", "INTC", "MSFT", "TSLA"]

pytestmark = pytest.mark.timeout(180)

DAY = date(2020, 11, 17)
# Tests that put the entry above the market (so the bot-monitored stop trades at once) keep the
# broker-side disaster stop below the market, so that the bot's own exit is what they watch.
WIDE_NET = {"disaster_stop": 0.05}


def at(hh: int, mm: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY)


def open_row(coord, symbol: str, qty: float, entry: float) -> None:
    """What the day-trader does: claim, then confirm the fill."""
    assert coord.claim_entry(symbol, qty).ok
    coord.confirm_entry(symbol, qty, entry)


def gw_at(data, start, speed=60.0, **kw):
    return GatewayProcess(symbols=GATEWAY_SYMBOLS, data=data, session_date=start.date(), speed=speed, start=start, **kw)


async def test_target_fill_closes_position_once(tmp_path, minute_data_dir):
    with gw_at(minute_data_dir, at(10, 0)) as gw:
        settings = bot_settings(tmp_path, gw)
        coord = coordinator(settings, "day-trader")
        price, _ = await buy_at_market(gw.port, "AAPL", 10)
        open_row(coord, "AAPL", 10, price * 0.98)  # target 0.9976 × price: marketable
        async with running_exit_manager(settings) as bot:
            await wait_for(lambda: coord.get_position("AAPL") is None, what="AAPL closed")
            assert bot.stats.targets_placed == 1
        [trade] = coord.get_trades_by_date(DAY)
        assert trade.exit_reason == "target" and trade.quantity == 10
        assert trade.exit_price >= round(price * 0.98 * 1.018, 2) - 1e-9
        report = gw.report()
        assert sum(e["shares"] for e in sells(report, "AAPL")) == 10
        assert report["positions"].get("AAPL", 0) == 0
        never_short(report)
        assert coord.was_closed_today("AAPL")


async def test_stop_sells_at_market_after_target_cancel(tmp_path, minute_data_dir):
    with gw_at(minute_data_dir, at(10, 0)) as gw:
        settings = bot_settings(tmp_path, gw, **WIDE_NET)
        coord = coordinator(settings, "day-trader")
        price, _ = await buy_at_market(gw.port, "AAPL", 12)
        open_row(coord, "AAPL", 12, price * 1.02)  # stop 1.0108 × price: trading through now
        async with running_exit_manager(settings):
            await wait_for(lambda: coord.get_position("AAPL") is None, what="AAPL stopped out")
        [trade] = coord.get_trades_by_date(DAY)
        assert trade.exit_reason == "stop" and trade.quantity == 12
        report = gw.report()
        sold = sells(report, "AAPL")
        assert sum(e["shares"] for e in sold) == 12
        assert report["positions"].get("AAPL", 0) == 0
        assert not [o for o in report["open_orders"] if o["symbol"] == "AAPL"]
        never_short(report)


async def test_target_fills_while_stop_waits_for_cancel(tmp_path, minute_data_dir):
    # TSLA 2020-11-17 from 13:06: +3.3 % within 20 minutes (checked in the recorded bars).
    # The stop triggers at once; the cancel of the target is delayed 30 market minutes,
    # during which the target trades: that fill is the exit, and no SELL MKT follows.
    with gw_at(minute_data_dir, at(13, 6)) as gw:
        settings = bot_settings(tmp_path, gw)
        coord = coordinator(settings, "day-trader")
        price, _ = await buy_at_market(gw.port, "TSLA", 5)
        entry = price / 0.991 * 1.001  # stop just above the market, target ≈ +2.9 %
        gw.ctl("delay_cancel", seconds=1800)
        open_row(coord, "TSLA", 5, entry)
        async with running_exit_manager(settings) as bot:
            await wait_for(lambda: coord.get_position("TSLA") is None, timeout=90, what="TSLA closed")
            assert bot.stats.exits_sent == 0, "a SELL MKT was sent although the target filled"
        [trade] = coord.get_trades_by_date(DAY)
        assert trade.exit_reason == "target"
        report = gw.report()
        assert sum(e["shares"] for e in sells(report, "TSLA")) == 5
        never_short(report)


async def test_partial_entry_target_sized_to_broker_quantity(tmp_path, minute_data_dir):
    with gw_at(minute_data_dir, at(10, 0)) as gw:
        settings = bot_settings(tmp_path, gw)
        coord = coordinator(settings, "day-trader")
        price, _ = await buy_at_market(gw.port, "MSFT", 4)
        assert coord.claim_entry("MSFT", 10).ok
        coord.confirm_entry("MSFT", 10, price)  # the row says 10, the broker holds 4
        async with running_exit_manager(settings):
            def target():
                return [o for o in gw.report()["open_orders"]
                        if o["symbol"] == "MSFT" and o["action"] == "SELL" and o["order_type"] == "LMT"]
            [order] = await wait_for(target, what="MSFT target")
            assert order["quantity"] == 4
            assert order["lmt_price"] == pytest.approx(round(price * 1.018, 2))
            await wait_for(lambda: coord.get_position("MSFT").quantity == 4, what="quantity corrected")


async def test_hand_opened_position_is_adopted_and_protected(tmp_path, minute_data_dir):
    with gw_at(minute_data_dir, at(10, 0)) as gw:
        settings = bot_settings(tmp_path, gw)
        coord = coordinator(settings, "test")
        price, _ = await buy_at_market(gw.port, "AMD", 7, client_id=5)  # bought in "TWS", no row
        async with running_exit_manager(settings):
            row = await wait_for(lambda: coord.get_position("AMD"), what="AMD adopted")
            assert row.agent_name == "adopted" and row.quantity == 7 and row.status == "OPEN"
            assert row.entry_price == pytest.approx(price, rel=1e-3)

            def protection():
                orders = [o for o in gw.report()["open_orders"] if o["symbol"] == "AMD" and o["action"] == "SELL"]
                return orders if len(orders) == 2 else None
            orders = await wait_for(protection, what="AMD target and disaster stop")
            [order] = [o for o in orders if o["order_type"] == "LMT"]
            [disaster] = [o for o in orders if o["order_type"] == "STP"]
            assert order["quantity"] == 7 and order["client_id"] == settings.ib.exit_manager_client_id
            assert disaster["quantity"] == 7 and disaster["oca_group"] and disaster["oca_group"] == order["oca_group"]
            assert disaster["aux_price"] == pytest.approx(round(row.entry_price * (1 - 2 * settings.stop_loss), 2))
        assert any(e["kind"] == "adopted" for e in coord.get_events())


async def test_row_without_broker_position_is_closed_reconciled(tmp_path, minute_data_dir):
    with gw_at(minute_data_dir, at(10, 0)) as gw:
        settings = bot_settings(tmp_path, gw)
        coord = coordinator(settings, "day-trader")
        open_row(coord, "INTC", 50, 45.0)  # nothing at the broker
        async with running_exit_manager(settings):
            await wait_for(lambda: coord.get_position("INTC") is None, what="INTC closed")
        [trade] = coord.get_trades_by_date(DAY)
        assert trade.exit_reason == "reconciled"
        assert not sells(gw.report(), "INTC")


async def test_freeze_is_respected(tmp_path, minute_data_dir):
    with gw_at(minute_data_dir, at(10, 0)) as gw:
        settings = bot_settings(tmp_path, gw, **WIDE_NET)
        coord = coordinator(settings, "liquidate-all")
        price, _ = await buy_at_market(gw.port, "AAPL", 10)
        open_row(coord, "AAPL", 10, price * 1.02)  # would stop out at once
        coord.freeze("test freeze")
        async with running_exit_manager(settings) as bot:
            await wait_for(lambda: coord.get_heartbeats().get("exit-manager", {}).get("state") == "frozen",
                           what="exit-manager frozen")
            clock = build_clock(settings)
            t0 = clock.now()
            await wait_for(lambda: clock.now() > t0 + timedelta(minutes=5), what="5 market minutes")
            assert bot.stats.exits_sent == 0 and bot.stats.targets_placed == 0
            assert not [o for o in gw.report()["open_orders"] if o["symbol"] == "AAPL"]
            coord.unfreeze()
            await wait_for(lambda: coord.get_position("AAPL") is None, what="stop after unfreeze")
        assert coord.get_trades_by_date(DAY)[0].exit_reason == "stop"


async def test_short_sale_rejections_are_bounded(tmp_path, minute_data_dir):
    with gw_at(minute_data_dir, at(10, 0)) as gw:
        settings = bot_settings(tmp_path, gw, **WIDE_NET, exit_max_retries=3)
        coord = coordinator(settings, "day-trader")
        price, _ = await buy_at_market(gw.port, "AAPL", 10)
        gw.ctl("reject", count=1000, code=201)
        open_row(coord, "AAPL", 10, price * 1.02)
        async with running_exit_manager(settings):
            await wait_for(lambda: [e for e in coord.get_events(level="CRITICAL") if e["kind"] == "exit_failed"],
                           what="critical exit_failed event")
            clock = build_clock(settings)
            t0 = clock.now()
            await wait_for(lambda: clock.now() > t0 + timedelta(minutes=20), what="20 market minutes")
        rejected = [o for o in gw.report()["orders"]
                    if o["symbol"] == "AAPL" and o["order_type"] == "MKT" and o["action"] == "SELL"]
        assert len(rejected) == 3, rejected
        never_short(gw.report())
        assert coord.get_position("AAPL") is not None  # still held; a human must act


@pytest.mark.parametrize(
    ("start", "flatten"),
    [(at(15, 38), at(15, 45)), (at(12, 38, date(2020, 11, 27)), at(12, 45, date(2020, 11, 27)))],
    ids=["regular-day", "early-close-day"],
)
async def test_eod_flatten(tmp_path, minute_data_dir, start, flatten):
    with gw_at(minute_data_dir, start) as gw:
        settings = bot_settings(tmp_path, gw)
        coord = coordinator(settings, "day-trader")
        price, _ = await buy_at_market(gw.port, "AAPL", 10)
        open_row(coord, "AAPL", 10, price)
        async with running_exit_manager(settings):
            await wait_for(lambda: coord.get_position("AAPL") is None, what="EOD flatten")
        [trade] = coord.get_trades_by_date(start.date())
        assert trade.exit_reason in ("eod", "target", "stop")
        if trade.exit_reason == "eod":
            assert flatten <= trade.exit_time.astimezone(NY) < flatten + timedelta(minutes=10)
        report = gw.report()
        assert report["positions"].get("AAPL", 0) == 0
        assert not [o for o in report["open_orders"] if o["symbol"] == "AAPL"]
        never_short(report)


async def test_outage_in_the_middle_of_a_stop(tmp_path, minute_data_dir):
    with gw_at(minute_data_dir, at(10, 0)) as gw:
        settings = bot_settings(tmp_path, gw, **WIDE_NET, intervals={"reconnect": 10})
        coord = coordinator(settings, "day-trader")
        price, _ = await buy_at_market(gw.port, "AAPL", 10)
        async with running_exit_manager(settings) as bot:
            # protected first (target working), then the stop and an outage during its cancel
            open_row(coord, "AAPL", 10, price * 0.999)
            await wait_for(lambda: bot.stats.targets_placed == 1, what="target placed")
            gw.ctl("delay_cancel", seconds=30)
            coord.confirm_entry("AAPL", 10, price * 1.02)  # moves the stop above the market
            await wait_for(lambda: coord.get_position("AAPL").status == "EXITING", what="stop started")
            gw.ctl("refuse", seconds=60, drop=True)
            await wait_for(lambda: coord.get_position("AAPL") is None, timeout=90, what="exit after outage")
            assert bot.stats.reconciliations >= 2
        [trade] = coord.get_trades_by_date(DAY)
        assert trade.exit_reason == "stop"
        report = gw.report()
        assert sum(e["shares"] for e in sells(report, "AAPL")) == 10
        never_short(report)


async def test_sigkill_while_exiting_then_restart_sells_once(tmp_path, minute_data_dir):
    with gw_at(minute_data_dir, at(10, 0)) as gw:
        settings = bot_settings(tmp_path, gw, **WIDE_NET)
        coord = coordinator(settings, "day-trader")
        price, _ = await buy_at_market(gw.port, "AAPL", 10)
        gw.ctl("delay_cancel", seconds=600)  # keep the exit in flight
        open_row(coord, "AAPL", 10, price * 1.02)
        env = bot_env(settings, gw, DAYTRADING_DISASTER_STOP=str(WIDE_NET["disaster_stop"]))
        argv = [sys.executable, "-m", "daytrading", "exit-manager"]
        first = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await wait_for(lambda: (coord.get_position("AAPL") or None) and coord.get_position("AAPL").status == "EXITING",
                           timeout=60, what="EXITING")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            second = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                await wait_for(lambda: coord.get_position("AAPL") is None, timeout=120, what="exit after restart")
            finally:
                second.terminate()
                second.wait(20)
        finally:
            if first.poll() is None:
                first.kill()
        trades = coord.get_trades_by_date(DAY)
        assert len(trades) == 1 and trades[0].exit_reason == "stop"
        report = gw.report()
        market_sells = [o for o in report["orders"] if o["symbol"] == "AAPL" and o["order_type"] == "MKT"
                        and o["action"] == "SELL" and o.get("filled", 0) > 0]
        assert len(market_sells) == 1
        assert sum(e["shares"] for e in sells(report, "AAPL")) == 10
        never_short(report)
