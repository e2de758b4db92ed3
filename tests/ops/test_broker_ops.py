"""liquidate-all, test-connection, orders and monitor against a real sim-gateway subprocess
replaying real recorded bars, with positions and working orders placed by separate ib_async
clients (as the bots would) and database rows written through the Coordinator."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from contextlib import asynccontextmanager

import pytest
from ib_async import IB, LimitOrder, Stock

from daytrading.sim_gateway.testing import GatewayProcess
from tests.bots._harness import bot_settings, buy_at_market, coordinator, wait_for
from tests.ops._util import DAY, ROOT, at, run_cli

#: the only symbols these tests trade: the sim-gateway loads just these (a shorter start-up)
GATEWAY_SYMBOLS = ["AAPL", "AMD", "TSLA"]

pytestmark = pytest.mark.timeout(180)


def gw_env(tmp_path, gw) -> dict[str, str]:
    """Environment for a `python -m daytrading` subprocess on ``gw``'s port and replay clock."""
    return {"DAYTRADING_MODE": "sim", "DAYTRADING_SIM__PORT": str(gw.port),
            "DAYTRADING_SIM__START": gw.start.isoformat(), "DAYTRADING_SIM__EPOCH": str(gw.epoch),
            "DAYTRADING_SIM__SPEED": str(gw.speed),
            "DAYTRADING_PATHS__DATABASE": str(tmp_path / "trading.db"),
            "DAYTRADING_PATHS__LOG_DIR": str(tmp_path / "logs"),
            "DAYTRADING_PATHS__BACKUP_DIR": str(tmp_path / "backups"),
            "DAYTRADING_PATHS__REPORT_DIR": str(tmp_path / "reports"),
            "DAYTRADING_PATHS__WATCHLIST": str(tmp_path / "watchlist.json")}


async def run_async(*argv, env, cwd, input=None, timeout=120):
    """run_cli without blocking the event loop (the test's own ib_async clients stay served)."""
    return await asyncio.to_thread(run_cli, *argv, env=env, cwd=cwd, input=input, timeout=timeout)


@asynccontextmanager
async def client(port: int, client_id: int):
    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=client_id, timeout=10)
    try:
        yield ib
    finally:
        ib.disconnect()


async def working_limit(ib: IB, symbol: str, action: str, qty: int, price: float, ref: str):
    [contract] = await ib.qualifyContractsAsync(Stock(symbol, "SMART", "USD"))
    trade = ib.placeOrder(contract, LimitOrder(action, qty, round(price, 2), orderRef=ref, tif="DAY"))
    await wait_for(lambda: trade.orderStatus.status in ("Submitted", "PreSubmitted"), 15, f"{symbol} working")
    return trade


def open_row(coord, symbol, qty, entry):
    assert coord.claim_entry(symbol, qty).ok
    coord.confirm_entry(symbol, qty, entry)


def never_short(report):
    assert not report.get("shorts"), report.get("shorts")
    assert all(q >= 0 for q in report.get("min_position", {}).values()), report.get("min_position")


def held(report):
    return {s: q for s, q in report["positions"].items() if q}


async def test_liquidate_all_flattens_cancels_freezes_and_closes_rows(tmp_path, minute_data_dir):
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=DAY, speed=60.0, start=at(10, 0)) as gw:
        settings = bot_settings(tmp_path, gw)
        coord = coordinator(settings, "day-trader")
        aapl, _ = await buy_at_market(gw.port, "AAPL", 10)
        amd, _ = await buy_at_market(gw.port, "AMD", 20)
        open_row(coord, "AAPL", 10, aapl)
        open_row(coord, "AMD", 20, amd)
        assert coord.claim_entry("TSLA", 5).ok  # an entry in flight
        async with client(gw.port, 10) as em, client(gw.port, 2) as dt:
            await working_limit(em, "AAPL", "SELL", 10, aapl * 1.5, "dt-target:AAPL")
            await working_limit(em, "AMD", "SELL", 20, amd * 1.5, "dt-target:AMD")
            await working_limit(dt, "TSLA", "BUY", 5, 10.0, "dt-entry:TSLA")
            assert len(gw.report()["open_orders"]) == 3
            env = gw_env(tmp_path, gw)
            res = await run_async("liquidate-all", "--yes", "--timeout", "30", env=env, cwd=tmp_path)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "ALL FLAT" in res.stdout and "3 open orders cancelled" in res.stdout
        report = gw.report()
        assert held(report) == {} and report["open_orders"] == []
        never_short(report)
        assert coord.is_frozen() and coord.freeze_info()["set_by"] == "liquidate-all"
        assert coord.get_active_positions() == []  # rows closed, claim released
        trades = {t.symbol: t for t in coord.get_trades_by_date(DAY)}
        assert set(trades) == {"AAPL", "AMD"}
        sold = {}
        for e in report["executions"]:
            if e["side"] in ("SLD", "SELL"):
                sold.setdefault(e["symbol"], []).append(e)
        for symbol, qty in (("AAPL", 10), ("AMD", 20)):
            t = trades[symbol]
            assert t.exit_reason == "liquidate_all" and t.quantity == qty and t.exit_bot == "liquidate-all"
            assert sum(e["shares"] for e in sold[symbol]) == qty
            vwap = sum(e["shares"] * e["price"] for e in sold[symbol]) / qty
            assert t.exit_price == pytest.approx(vwap, abs=1e-6)
        orders = [o for o in coord.get_orders(DAY) if o["purpose"] == "liquidate_all"]
        assert {(o["symbol"], o["side"], o["status"]) for o in orders} == {("AAPL", "SELL", "Filled"),
                                                                            ("AMD", "SELL", "Filled")}
        res = await run_async("unfreeze", env=env, cwd=tmp_path)
        assert res.returncode == 0 and "freeze cleared" in res.stdout and not coord.is_frozen()


async def test_liquidate_all_with_corrupt_database_still_flattens(tmp_path, minute_data_dir):
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=DAY, speed=60.0, start=at(10, 0)) as gw:
        await buy_at_market(gw.port, "AAPL", 7)
        async with client(gw.port, 10) as em:
            await working_limit(em, "AAPL", "SELL", 7, 500.0, "dt-target:AAPL")
            (tmp_path / "trading.db").write_bytes(b"garbage, not SQLite " * 500)
            res = await run_async("liquidate-all", "--yes", "--timeout", "30", env=gw_env(tmp_path, gw), cwd=tmp_path)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "DATABASE could not be updated" in res.stdout and "cannot be opened" in res.stdout
        assert "ALL FLAT" in res.stdout and "Traceback" not in res.stdout + res.stderr
        report = gw.report()
        assert held(report) == {} and report["open_orders"] == []
        never_short(report)
        assert (tmp_path / "trading.db").read_bytes().startswith(b"garbage")  # nothing overwritten


async def test_liquidate_all_stands_the_exit_manager_down(tmp_path, minute_data_dir):
    """A running exit-manager has placed its target; liquidate-all freezes it first, then flattens,
    and the exit-manager places nothing afterwards."""
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=DAY, speed=30.0, start=at(10, 0)) as gw:
        settings = bot_settings(tmp_path, gw)
        coord = coordinator(settings, "day-trader")
        price, _ = await buy_at_market(gw.port, "AAPL", 10)
        open_row(coord, "AAPL", 10, price)
        env = gw_env(tmp_path, gw)
        import os

        bot = subprocess.Popen([sys.executable, "-m", "daytrading", "exit-manager"], cwd=tmp_path,
                               env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await wait_for(lambda: [o for o in gw.report()["open_orders"] if o["symbol"] == "AAPL"
                                    and o["action"] == "SELL"], 60, "exit-manager target")
            res = await run_async("liquidate-all", "--yes", "--timeout", "30", env=env, cwd=tmp_path)
            assert res.returncode == 0, res.stdout + res.stderr
            assert "the exit-manager stood down" in res.stdout
            assert coord.get_heartbeats()["exit-manager"]["state"] == "frozen"
            # two more heartbeats of the frozen bot: it places nothing
            seen = coord.get_heartbeats()["exit-manager"]["last_seen"]
            await wait_for(lambda: coord.get_heartbeats()["exit-manager"]["last_seen"] > seen, 30, "heartbeat")
            report = gw.report()
            assert held(report) == {} and report["open_orders"] == []
            never_short(report)
            [trade] = coord.get_trades_by_date(DAY)
            assert trade.exit_reason == "liquidate_all"
        finally:
            bot.terminate()
            bot.wait(30)


async def test_tools_against_the_gateway(tmp_path, minute_data_dir):
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=DAY, speed=10.0, start=at(11, 0)) as gw:
        settings = bot_settings(tmp_path, gw)
        coord = coordinator(settings, "day-trader")
        price, _ = await buy_at_market(gw.port, "AMD", 15)
        open_row(coord, "AMD", 15, price)
        env = gw_env(tmp_path, gw)
        res = await run_async("test-connection", "--json", env=env, cwd=tmp_path)
        assert res.returncode == 0, res.stdout + res.stderr
        info = json.loads(res.stdout)
        assert info["paper"] is True and info["account"].startswith("D") and info["server_version"] >= 100
        assert info["client_id"] == 99 and info["endpoint"] == f"127.0.0.1:{gw.port}"
        async with client(gw.port, 10) as em:
            await working_limit(em, "AMD", "SELL", 15, price * 1.5, "dt-target:AMD")
            res = await run_async("orders", "--json", env=env, cwd=tmp_path)
        assert res.returncode == 0, res.stdout + res.stderr
        data = json.loads(res.stdout)
        assert [(o["symbol"], o["side"], o["client_id"]) for o in data["open_at_broker"]] == [("AMD", "SELL", 10)]
        res = await run_async("monitor", "--once", env=env, cwd=tmp_path)
        assert res.returncode == 0, res.stdout + res.stderr
        line = next(line for line in res.stdout.splitlines() if "AMD" in line)
        cells = [c.strip() for c in line.split("│") if c.strip()]
        last = float(cells[4])
        assert abs(last / price - 1) < 0.05  # a real price of that minute, near the fill
        res = await run_async("diagnose", "--json", env=env, cwd=tmp_path)
        checks = {c["name"]: c for c in json.loads(res.stdout)}
        assert checks["broker connection"]["status"] == "OK"
