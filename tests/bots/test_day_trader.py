"""day-trader against a real sim-gateway subprocess replaying recorded bars.

The watchlist file is the scanner (Polygon is off without a key; the IB scanner runs
against the gateway). Entries are judged on the real tape: TSLA gapped +12.8 % on
2020-11-17 (gap-and-go fires at the open); GOOG on the 2020-12-24 half day never
reaches ATR ≥ 0.3 % of price, so nothing fires there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
from contextlib import asynccontextmanager
from datetime import date, datetime

import pytest
from ib_async import Stock

from daytrading.bots.day_trader import DayTrader
from daytrading.sim_gateway.testing import GatewayProcess
from daytrading.clock import NY
from daytrading.coordination.freeze import heartbeat_dir
from daytrading.runtime import build_clock, open_coordinator
from daytrading.signals.rules import RuleDecision
from tests._dbtrouble import write_lock
from tests.bots._harness import bot_env, bot_settings, coordinator, wait_for

#: the only symbols these tests trade (but the every-symbol test): the sim-gateway loads just these (a shorter start-up)
GATEWAY_SYMBOLS = ["AAPL", "GOOG", "MSFT", "TSLA"]

pytestmark = pytest.mark.timeout(240)


def at(hh: int, mm: int, day: date) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY)


def write_watchlist(settings, symbols) -> None:
    with open(settings.paths.watchlist, "w", encoding="utf-8") as fh:
        json.dump({"symbols": list(symbols)}, fh)


def trader_settings(tmp_path, gw, **kw):
    base = {"scanner": {"ib_scan_codes": []}, "intervals": {"cycle": 30}, "cooldown_minutes": 30}
    base.update(kw)
    return bot_settings(tmp_path, gw, **base)


@asynccontextmanager
async def day_trader(settings, **kw):
    clock = build_clock(settings)
    coord = open_coordinator(settings, "day-trader", clock)
    bot = DayTrader(settings, coord, clock, **kw)
    task = asyncio.create_task(bot.run(install_signals=False))
    try:
        yield bot
    finally:
        bot.stop()
        await asyncio.wait_for(task, 30)


def entry_orders(report, symbol):
    return [o for o in report["orders"] if o["symbol"] == symbol and o["action"] == "BUY"]


async def test_gap_and_go_entry_on_a_real_gap_day(tmp_path, minute_data_dir):
    day = date(2020, 11, 17)
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=day, speed=60, start=at(9, 20, day)) as gw:
        settings = trader_settings(tmp_path, gw)
        write_watchlist(settings, ["TSLA"])
        coord = coordinator(settings)
        async with day_trader(settings) as bot:
            row = await wait_for(lambda: coord.get_position("TSLA"), timeout=120, what="TSLA entry")
            await wait_for(lambda: coord.get_position("TSLA").status == "OPEN", what="TSLA confirmed")
            assert bot.symbols["TSLA"].gap is not None and bot.symbols["TSLA"].gap >= 0.05
            assert len(bot.symbols["TSLA"].rt_bars) == 1  # ib_async's bar list keeps only the newest bar
        row = coord.get_position("TSLA")
        assert row.quantity > 0 and row.agent_name == "day-trader"
        assert (row.meta or {}).get("rule") in ("gap_and_go", "standard")
        report = gw.report()
        [order] = entry_orders(report, "TSLA")
        assert order["order_type"] == "LMT" and order["tif"] == "DAY"
        assert report["positions"]["TSLA"] == row.quantity
        # size: 0.25 × NLV / 4 positions at the entry price, whole shares
        assert row.quantity * row.entry_price <= 0.25 * 100_000 / 4 * 1.01


async def test_no_entry_where_the_rules_do_not_fire(tmp_path, minute_data_dir):
    day = date(2020, 12, 24)
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=day, speed=120, start=at(10, 0, day)) as gw:
        settings = trader_settings(tmp_path, gw)
        write_watchlist(settings, ["GOOG"])
        coord = coordinator(settings)
        clock = build_clock(settings)
        async with day_trader(settings):
            # 45 market minutes of 30-s cycles on top of the backfilled half hour from 09:30
            await wait_for(lambda: clock.now() >= at(10, 45, day), timeout=120, what="45 market minutes")
        assert coord.get_position("GOOG") is None
        assert not entry_orders(gw.report(), "GOOG")
        decisions = coord.get_gate_decisions("GOOG")
        assert decisions and all(d["gate"] == "rule" and not d["passed"] for d in decisions)
        assert any("ATR" in d["reason"] or "atr" in d["reason"].lower() for d in decisions)


async def test_no_reentry_after_close_and_one_claim_per_symbol(tmp_path, minute_data_dir):
    day = date(2020, 11, 17)
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=day, speed=60, start=at(9, 20, day)) as gw:
        settings = trader_settings(tmp_path, gw, cooldown_minutes=0)
        write_watchlist(settings, ["TSLA"])
        coord = coordinator(settings, "exit-manager")
        async with day_trader(settings) as bot:
            await wait_for(lambda: (coord.get_position("TSLA") or None) and coord.get_position("TSLA").status == "OPEN",
                           timeout=120, what="TSLA entry")
            coord.close_position("TSLA", coord.get_position("TSLA").entry_price, "manual")
            # the rule keeps firing on later bars: every attempt must stop at closed_today
            await wait_for(lambda: any(d["gate"] == "closed_today" for d in coord.get_gate_decisions("TSLA")),
                           timeout=120, what="closed_today rejection")
            # two candidates for one symbol in one cycle → one claim
            fired = RuleDecision(True, "standard", "test", {})
            [aapl] = await bot.ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            bot.symbols["AAPL"] = bot.symbols["TSLA"].__class__(
                symbol="AAPL", contract=aapl, aggregator=None, indicators=None,
                snapshot=bot.symbols["TSLA"].snapshot, last_price=120.0)
            from daytrading.bots.day_trader import CycleReport

            report = CycleReport()
            await bot._gate_and_enter([("AAPL", fired), ("AAPL", fired)], build_clock(settings).now(), report, [])
            assert report.entered.count("AAPL") == 1
            assert report.rejected.get("AAPL", "").startswith(("active", "claim"))
        assert len(entry_orders(gw.report(), "TSLA")) == 1
        assert len(entry_orders(gw.report(), "AAPL")) == 1


class _Staleness(threading.Thread):
    """Samples a heartbeat file's age (wall seconds) from a thread of its own, so that a blocked
    event loop cannot hide from it; ``worst`` is the largest age seen."""

    def __init__(self, path) -> None:
        super().__init__(daemon=True)
        self.path, self.worst, self.done = path, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.worst = max(self.worst, time.time() - os.stat(self.path).st_mtime)


async def test_under_a_write_lock_the_entry_is_skipped_and_the_heartbeat_keeps_beating(
        tmp_path, minute_data_dir, caplog):
    # TSLA gaps +12.8 % on 2020-11-17: gap-and-go fires at the open, while another process holds
    # the database's write lock (a SQLite browser with unsaved edits): the claim cannot land
    day = date(2020, 11, 17)
    caplog.set_level(logging.INFO, logger="daytrading.gates")
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=day, speed=60, start=at(9, 27, day)) as gw:
        settings = trader_settings(tmp_path, gw, intervals={"cycle": 30, "heartbeat": 0.25}, cooldown_minutes=0)
        write_watchlist(settings, ["TSLA"])
        coord = coordinator(settings, "exit-manager")
        clock = build_clock(settings)
        bot = DayTrader(settings, open_coordinator(settings, "day-trader", clock), clock)
        beat = heartbeat_dir(settings.paths.database) / "day-trader.json"

        def refused():
            return [r for r in caplog.records if getattr(r, "gate", None) == "claim" and "database" in r.getMessage()]

        with write_lock(settings.paths.database):
            task = asyncio.create_task(bot.run(install_signals=False))
            try:
                await wait_for(beat.exists, what="first heartbeat file")
                stale = _Staleness(beat)
                stale.start()
                await wait_for(refused, timeout=90, what="the claim refused under the lock")
                assert not entry_orders(gw.report(), "TSLA"), "no BUY without a claim that landed"
                stale.done.set()
                stale.join()
                print(f"\n[day-trader lock] heartbeat file at most {stale.worst:.2f} wall s old during the lock")
                assert stale.worst < 4.0, "the day-trader's loop blocked on the database"
            except BaseException:
                bot.stop()
                raise
        try:
            # the lock is gone: the rule fires again on a later bar and the entry goes out with its claim
            row = await wait_for(lambda: coord.get_position("TSLA"), timeout=60, what="an entry after the lock")
            assert row.claimed_by == "day-trader"
            await wait_for(lambda: entry_orders(gw.report(), "TSLA"), what="the BUY")
            await wait_for(lambda: any(d["gate"] == "claim" and "database" in d["reason"]
                                       for d in coord.get_gate_decisions("TSLA")), what="the refusal journalled")
        finally:
            bot.stop()
            await asyncio.wait_for(task, 30)
        assert len(entry_orders(gw.report(), "TSLA")) == 1


@pytest.mark.parametrize("point", ["after_claim", "after_order"])
async def test_sigkill_during_entry_then_restart_resolves_the_claim(tmp_path, minute_data_dir, point):
    day = date(2020, 11, 17)
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=day, speed=60, start=at(9, 20, day)) as gw:
        settings = trader_settings(tmp_path, gw)
        write_watchlist(settings, ["TSLA"])
        coord = coordinator(settings, "test")
        env = bot_env(settings, gw, DAYTRADING_SCANNER__IB_SCAN_CODES="[]", DAYTRADING_TEST_CRASH_AT=point)
        argv = [sys.executable, "-m", "daytrading", "day-trader"]
        first = subprocess.run(argv, env=env, capture_output=True, timeout=150)
        assert first.returncode == -9, first.stderr.decode()[-2000:]
        row = coord.get_position("TSLA")
        assert row is not None and row.status == "PENDING_ENTRY"
        before = len(entry_orders(gw.report(), "TSLA"))
        assert before == (0 if point == "after_claim" else 1)
        # restart (in-process) without the crash hook: the claim is resolved, the order never re-sent
        async with day_trader(settings) as bot:
            # one read per check: the claim may be released between two reads
            await wait_for(lambda: (row := coord.get_position("TSLA")) is None or row.status == "OPEN",
                           timeout=60, what="claim resolved")
            resolved_row = coord.get_position("TSLA")
            if point == "after_order" and resolved_row is not None:
                # the order filled before the crash: confirmed from the broker, not re-sent
                assert resolved_row.quantity == gw.report()["positions"].get("TSLA")
            bot.stop()
        orders = entry_orders(gw.report(), "TSLA")
        if point == "after_claim":
            assert coord.get_events() and any(e["kind"] == "claim_released" for e in coord.get_events())
        else:
            assert orders[0]["order_id"] == entry_orders(gw.report(), "TSLA")[0]["order_id"]
        # at most one order resulted from the crashed attempt; any further order is a fresh entry
        # that went through the gates again, never a resend of the crashed one
        assert len({o["perm_id"] for o in orders}) == len(orders)


async def test_malformed_watchlist_mid_session_keeps_the_last_good_list(tmp_path, minute_data_dir, caplog):
    caplog.set_level(logging.INFO)
    day = date(2020, 11, 17)
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=day, speed=60, start=at(10, 0, day)) as gw:
        settings = trader_settings(tmp_path, gw, intervals={"scanner_refresh": 60, "cycle": 30})
        write_watchlist(settings, ["AAPL", "MSFT"])
        async with day_trader(settings) as bot:
            await wait_for(lambda: set(bot.symbols) == {"AAPL", "MSFT"}, timeout=60, what="watchlist loaded")
            first_refresh = bot.hub.last_refresh
            with open(settings.paths.watchlist, "w", encoding="utf-8") as fh:
                fh.write('{"symbols": ["AAPL", 42')
            await wait_for(lambda: bot.hub.last_refresh != first_refresh, timeout=60, what="next scanner refresh")
            assert {c.symbol for c in bot.hub.candidates} == {"AAPL", "MSFT"}
            assert bot.state == "running"
        assert "watchlist" in caplog.text.lower()
        assert "Scanner refresh" in caplog.text


async def test_tracking_every_recorded_symbol_respects_history_pacing(tmp_path, minute_data_dir):
    day = date(2020, 11, 17)
    from daytrading.marketdata.loader import load_session

    symbols = sorted(load_session(minute_data_dir, day))  # every symbol with bars on that day
    with GatewayProcess(data=minute_data_dir, session_date=day, speed=30, start=at(10, 0, day)) as gw:
        settings = trader_settings(tmp_path, gw, scanner={"ib_scan_codes": [], "max_symbols": 100})
        write_watchlist(settings, [s.replace("-", " ") for s in symbols])
        errors: list[int] = []
        async with day_trader(settings) as bot:
            bot.ib.errorEvent += lambda req, code, msg, contract=None: errors.append(code)
            await wait_for(lambda: len(bot.symbols) >= len(symbols) - 2, timeout=90, what="symbols tracked")
            await wait_for(lambda: bot.pacer.pending == 0 and sum(s.backfilled for s in bot.symbols.values())
                           >= len(bot.symbols) - 2, timeout=120, what="backfills done")
        assert 162 not in errors
