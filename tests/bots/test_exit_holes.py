"""The exit-manager's five reproduced holes, each against the sim-gateway replaying recorded bars.

Each test prints the figure it measures (``-s`` shows it): the README's reliability section
quotes them. The exit-manager runs in-process (its real ``run()`` loop, real ib_async);
entries are bought by a separate ib_async client, as the day-trader would, and journalled
in the execution ledger the way the day-trader journals its own fills.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import pytest
from ib_async import IB, MarketOrder, Stock

from daytrading.clock import NY
from daytrading.sim_gateway.testing import GatewayProcess
from tests._dbtrouble import SmallDisk
from tests.bots._stop_under_trouble import stop_under_trouble
from tests.bots._harness import (
    bot_settings, buy_at_market, coordinator, never_short, running_exit_manager, sells, wait_for,
)

#: the only symbols these tests trade: the sim-gateway loads just these (a shorter start-up)
GATEWAY_SYMBOLS = ["AAPL", "LI", "MKSI", "TSLA"]

pytestmark = pytest.mark.timeout(180)


def at(day: date, hh: int, mm: int) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY)


async def buy(port: int, symbol: str, qty: int, coord=None, client_id: int = 2) -> float:
    """BUY at market through another client (journalled in the ledger when ``coord`` is given)."""
    return (await buy_at_market(port, symbol, qty, client_id=client_id, journal=coord))[0]


class _Resized(logging.Handler):
    """Collects the exit-manager's "target resized" quantities."""

    def __init__(self, sizes: list[float]) -> None:
        super().__init__(logging.INFO)
        self.sizes = sizes

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "target resized":
            self.sizes.append(record.to_qty)  # type: ignore[attr-defined]


def protection(report: dict, symbol: str) -> dict[str, dict]:
    """The working target (LMT) and disaster stop (STP) SELLs of ``symbol`` by order type."""
    return {o["order_type"]: o for o in report["open_orders"] if o["symbol"] == symbol and o["action"] == "SELL"}


async def test_partial_target_with_lagging_position_stream_never_goes_short_and_pnl_is_the_brokers(
        tmp_path, minute_data_dir):
    # MKSI 2020-12-10 10:45 trades a few hundred shares a minute: a 500-share target fills in
    # pieces, and every position push comes 700 ms (market) after its fill, as IB may send it.
    day = date(2020, 12, 10)
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=day, speed=60.0, start=at(day, 10, 45)) as gw:
        settings = bot_settings(tmp_path, gw)
        coord = coordinator(settings, "day-trader")
        assert coord.claim_entry("MKSI", 500).ok
        price = await buy(gw.port, "MKSI", 500, coord)
        gw.ctl("latency", positions_ms=700)
        gw.ctl("partial", quantity=150)  # and the target's first fill is 150 shares
        coord.confirm_entry("MKSI", 500, price * 0.985)  # target 1.0027 × price: fills as the tape allows
        sizes: list[float] = []
        handler = _Resized(sizes)
        logger = logging.getLogger("daytrading.exit_manager")
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            async with running_exit_manager(settings):
                await wait_for(lambda: coord.get_position("MKSI") is None, timeout=120, what="MKSI closed")
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        report = gw.report()
        never_short(report)
        pieces = [e["shares"] for e in sells(report, "MKSI")]
        print(f"\n[hole 1] min position {report['min_position']['MKSI']}, target fills {pieces}, "
              f"target resized to {sizes or 'never'}")
        assert len(pieces) > 1, "the target must fill in pieces for this test to mean anything"
        assert all(q <= 500 for q in sizes), "a target was enlarged above the shares held"
        assert sum(pieces) == 500
        [trade] = coord.get_trades_by_date(day)
        assert trade.quantity == 500
        print(f"[ledger] trade P&L {trade.pnl:.2f} vs broker realised {report['realized_pnl']:.2f}; "
              f"commission {trade.commission:.4f} vs {report['commissions']:.4f}")
        assert trade.pnl == pytest.approx(report["realized_pnl"], abs=0.01)
        assert trade.commission == pytest.approx(report["commissions"], abs=0.01)


async def test_target_4_of_10_then_stop_6_trade_row_has_10_shares_and_both_legs_commission(
        tmp_path, minute_data_dir):
    day = date(2020, 11, 17)
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=day, speed=10.0, start=at(day, 10, 0)) as gw:
        settings = bot_settings(tmp_path, gw, disaster_stop=0.05)
        coord = coordinator(settings, "day-trader")
        assert coord.claim_entry("AAPL", 10).ok
        price = await buy(gw.port, "AAPL", 10, coord)
        gw.ctl("partial", quantity=4)
        coord.confirm_entry("AAPL", 10, price * 0.98)  # marketable target; the partial fault caps it at 4
        async with running_exit_manager(settings):
            await wait_for(lambda: sum(e["shares"] for e in sells(gw.report(), "AAPL")) >= 4, what="4 sold")
            gw.ctl("halt", symbol="AAPL")  # no more trades: the target's other 6 cannot fill
            coord.confirm_entry("AAPL", 10, price)  # target 1.8 % above the market, stop still below it
            await wait_for(lambda: protection(gw.report(), "AAPL").get("LMT", {}).get("lmt_price", 0)
                           >= round(price * 1.018, 2) - 0.01, what="target repriced")
            gw.ctl("resume", symbol="AAPL")
            coord.confirm_entry("AAPL", 10, price * 1.02)  # now the stop is above the market: stop out
            await wait_for(lambda: coord.get_position("AAPL") is None, timeout=60, what="AAPL stopped out")
        report = gw.report()
        by_type = {o["order_type"]: o["filled"] for o in report["orders"]
                   if o["symbol"] == "AAPL" and o["action"] == "SELL" and o["filled"]}
        assert by_type == {"LMT": 4, "MKT": 6}, by_type
        [trade] = coord.get_trades_by_date(day)
        print(f"\n[hole 5] trade row {trade.quantity:g} shares, commission {trade.commission:.4f}, P&L {trade.pnl:.2f}; "
              f"broker 10 shares, commission {report['commissions']:.4f}, realised {report['realized_pnl']:.2f}")
        assert trade.quantity == 10 and trade.exit_reason == "stop"
        assert trade.commission == pytest.approx(report["commissions"], abs=0.01)
        assert trade.pnl == pytest.approx(report["realized_pnl"], abs=0.01)
        never_short(report)


async def test_day_trader_killed_right_after_its_buy_position_protected_within_2_s(tmp_path, minute_data_dir):
    day = date(2020, 11, 17)
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=day, speed=60.0, start=at(day, 10, 0)) as gw:
        settings = bot_settings(tmp_path, gw)
        coord = coordinator(settings, "day-trader")
        async with running_exit_manager(settings) as bot:
            await wait_for(lambda: bot.reconciled, what="exit-manager reconciled")
            assert coord.claim_entry("TSLA", 5).ok  # the day-trader claims, buys, and dies: nobody confirms
            await buy(gw.port, "TSLA", 5, client_id=11)
            filled = time.monotonic()
            orders = await wait_for(lambda: (lambda p: p if len(p) == 2 else None)(protection(gw.report(), "TSLA")),
                                    timeout=10, what="TSLA target and disaster stop")
            unprotected = time.monotonic() - filled
            print(f"\n[hole 4] unprotected for {unprotected:.2f} wall s after the fill")
            assert unprotected <= 2.0
            assert orders["LMT"]["quantity"] == 5 and orders["STP"]["quantity"] == 5
            assert orders["LMT"]["oca_group"] == orders["STP"]["oca_group"] != ""
            assert bot._stops.get("TSLA"), "the bot-monitored stop is watched"
            # the disaster stop is cancelled at IB (by hand in TWS, say): it is placed again beside the target
            [stp] = [t for t in bot.ib.openTrades() if t.order.orderType == "STP"]
            bot.ib.cancelOrder(stp.order)
            again = await wait_for(lambda: (lambda p: p if p.get("STP", {}).get("order_id") not in (None, stp.order.orderId)
                                            else None)(protection(gw.report(), "TSLA")),
                                   timeout=10, what="the disaster stop placed again")
            assert again["STP"]["oca_group"] == orders["LMT"]["oca_group"] and again["STP"]["quantity"] == 5
            assert again["LMT"]["order_id"] == orders["LMT"]["order_id"], "the target kept working"


async def test_partial_entry_protected_for_what_is_filled_and_resized_never_above_it(tmp_path, minute_data_dir):
    day = date(2020, 11, 17)
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=day, speed=10.0, start=at(day, 10, 0)) as gw:
        settings = bot_settings(tmp_path, gw)
        coord = coordinator(settings, "day-trader")
        async with running_exit_manager(settings) as bot:
            await wait_for(lambda: bot.reconciled, what="exit-manager reconciled")
            assert coord.claim_entry("LI", 100).ok
            gw.ctl("halt", symbol="LI")
            gw.ctl("partial", quantity=50)
            ib = IB()
            await ib.connectAsync("127.0.0.1", gw.port, clientId=11, timeout=10)
            try:
                [contract] = await ib.qualifyContractsAsync(Stock("LI", "SMART", "USD"))
                entry = ib.placeOrder(contract, MarketOrder("BUY", 100, orderRef="dt-entry:LI"))
                gw.ctl("resume", symbol="LI")
                samples = []

                def sample():
                    report = gw.report()
                    held = report["positions"].get("LI", 0)
                    target = protection(report, "LI").get("LMT", {}).get("quantity", 0)
                    samples.append((held, target))
                    return samples if target == 100 else None

                await wait_for(sample, timeout=30, what="target resized to 100")
                assert entry.orderStatus.status == "Filled"
            finally:
                ib.disconnect()
        over = [(h, t) for h, t in samples if t > h]
        print(f"\n[partial entry] (held, target) seen: {sorted(set(samples))}")
        assert not over, f"target above the shares held: {over}"
        assert (50, 50) in samples, "the first 50 shares were protected before the rest filled"
        never_short(gw.report())


HOLDER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
con.execute("BEGIN IMMEDIATE")
con.execute("UPDATE active_positions SET stop_loss_price = ?, profit_target_price = ? WHERE symbol = 'AAPL'",
            (float(sys.argv[2]), float(sys.argv[3])))
con.execute("COMMIT")
con.execute("BEGIN IMMEDIATE")  # the write lock, held until told or 60 s
print(time.time(), flush=True)
sys.stdin.readline()
con.execute("COMMIT")
"""


async def test_stop_crossed_while_another_process_holds_the_write_lock_sells_within_2_s(tmp_path, minute_data_dir):
    day = date(2020, 11, 17)
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=day, speed=60.0, start=at(day, 10, 0)) as gw:
        settings = bot_settings(tmp_path, gw, disaster_stop=0.05)
        coord = coordinator(settings, "day-trader")
        assert coord.claim_entry("AAPL", 10).ok
        price = await buy(gw.port, "AAPL", 10, coord)
        coord.confirm_entry("AAPL", 10, price)
        async with running_exit_manager(settings) as bot:
            await wait_for(lambda: bot.stats.targets_placed == 1, what="target placed")
            # another process moves the stop above the market and keeps the write lock (60 s at most)
            holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(settings.paths.database),
                                       str(round(price * 1.02, 2)), str(round(price * 1.05, 2))],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                locked_at = float(holder.stdout.readline())

                def market_sell():
                    return [o for o in gw.report()["orders"] if o["symbol"] == "AAPL" and o["order_type"] == "MKT"]
                await wait_for(market_sell, timeout=20, what="SELL MKT at the gateway")
                delay = time.time() - locked_at  # an upper bound: includes this poll's period
                print(f"\n[hole 2] SELL at the gateway at most {delay:.2f} wall s after the lock was taken")
                assert delay <= 2.0
                await wait_for(lambda: gw.report()["positions"].get("AAPL", 0) == 0, what="sold")
                assert coord.get_position("AAPL").status == "OPEN", "nothing written while the lock is held"
                assert not coord.get_trades_by_date(day)
            finally:
                holder.communicate("\n", timeout=70)
            await wait_for(lambda: coord.get_position("AAPL") is None, timeout=30, what="trade journalled")
        [trade] = coord.get_trades_by_date(day)
        report = gw.report()
        assert trade.quantity == 10 and trade.exit_reason == "stop"
        assert trade.pnl == pytest.approx(report["realized_pnl"], abs=0.01)
        never_short(report)


async def test_stop_crossed_on_a_damaged_database_file_still_sells(tmp_path, minute_data_dir):
    result = await stop_under_trouble(minute_data_dir, tmp_path, tmp_path / "logs", "damaged")
    print(f"\n[damaged file] SELL at the gateway {result['sell_s']:.2f} wall s after the stop was crossed "
          f"(writer saw: {result['why']}); {result['journal_pending']} writes left queued")
    assert result["why"], "the file must really be unusable for this test to mean anything"
    assert result["sell_s"] <= 2.0
    assert result["position"] == 0 and result["alive"]


async def test_stop_crossed_on_a_full_disk_still_sells_and_the_trade_lands_once_there_is_room(
        tmp_path, minute_data_dir):
    folder, logs = tmp_path / "disk", tmp_path / "logs"
    logs.mkdir()
    argv = [sys.executable, "-m", "tests.bots._stop_under_trouble", str(minute_data_dir), str(folder), str(logs)]
    with SmallDisk(folder, size="16m") as disk:
        proc = subprocess.Popen(disk.argv(argv), stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
        disk.attach(proc.pid)
        out, _ = proc.communicate(timeout=150)
    result = json.loads(out.strip().splitlines()[-1])
    assert "error" not in result, result
    print(f"\n[full disk] SELL at the gateway {result['sell_s']:.2f} wall s after the stop was crossed "
          f"(writer saw: {result['why']}); trade row after the disk was freed: {result['trade']}")
    assert "full" in result["why"], result["why"]
    assert result["sell_s"] <= 2.0
    assert result["position"] == 0 and result["alive"]
    assert result["trade"]["quantity"] == 10 and result["trade"]["exit_reason"] == "stop"
    assert result["trade"]["pnl"] == pytest.approx(result["realized"], abs=0.01)
