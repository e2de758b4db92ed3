"""liquidate-all while another process holds the database's write lock: the freeze file
holds the freeze at once, the SELLs go out while the lock is still held, and the database
rows (freeze flag, orders, closed trades) land when the lock clears.

Real sim-gateway subprocess replaying recorded bars, real liquidate-all subprocess, a real
second process holding the SQLite write lock.
"""

from __future__ import annotations

import asyncio

import pytest

from daytrading.sim_gateway.testing import GatewayProcess
from daytrading.coordination import freeze as side
from tests._dbtrouble import write_lock
from tests.bots._harness import bot_settings, buy_at_market, coordinator, wait_for
from tests.ops._util import DAY, at, run_cli
from tests.ops.test_broker_ops import gw_env, held, never_short, open_row

#: the only symbols these tests trade: the sim-gateway loads just these (a shorter start-up)
GATEWAY_SYMBOLS = ["AAPL", "TSLA"]

pytestmark = pytest.mark.timeout(180)


async def test_liquidate_all_sells_under_a_write_lock_with_the_freeze_file(tmp_path, minute_data_dir):
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=minute_data_dir, session_date=DAY, speed=60.0, start=at(10, 0)) as gw:
        settings = bot_settings(tmp_path, gw)
        coord = coordinator(settings, "day-trader")
        price, _ = await buy_at_market(gw.port, "AAPL", 10)
        open_row(coord, "AAPL", 10, price)
        env = gw_env(tmp_path, gw)
        db = tmp_path / "trading.db"
        with write_lock(db) as holder:
            run = asyncio.ensure_future(asyncio.to_thread(
                run_cli, "liquidate-all", "--yes", "--timeout", "30", env=env, cwd=tmp_path, timeout=150))
            await wait_for(lambda: side.freeze_file(db).exists(), 30, "freeze file")
            assert coord.is_frozen() and coord.claim_entry("TSLA", 5).reason == "frozen"
            await wait_for(lambda: not held(gw.report()), 60, "AAPL sold while the lock is held")
            assert holder.poll() is None, "the lock was still held when AAPL was sold"
            assert not run.done()  # liquidate-all waits for the lock to write the database
        res = await asyncio.wait_for(run, 120)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "ALL FLAT" in res.stdout and "freeze file and database flag" in res.stdout
        never_short(gw.report())
        assert coord.freeze_info()["set_by"] == "liquidate-all" and "source" not in coord.freeze_info()
        [trade] = coord.get_trades_by_date(DAY)
        assert trade.symbol == "AAPL" and trade.exit_reason == "liquidate_all" and trade.quantity == 10
        res = run_cli("unfreeze", env=env, cwd=tmp_path)
        assert res.returncode == 0 and "freeze cleared" in res.stdout
        assert not side.freeze_file(db).exists() and not coord.is_frozen()


def test_liquidate_all_never_sells_without_a_freeze(tmp_path):
    """Neither channel can be set (the database's folder is missing): nothing is sent, the message says why."""
    env = {"DAYTRADING_MODE": "sim", "DAYTRADING_SIM__PORT": "1",
           "DAYTRADING_PATHS__DATABASE": str(tmp_path / "missing" / "trading.db")}
    res = run_cli("liquidate-all", "--yes", env=env, cwd=tmp_path)
    assert res.returncode == 1
    assert "FREEZE could not be set" in res.stdout and "NOTHING was cancelled or sold" in res.stdout
    assert "connection refused" not in res.stdout  # it did not even try the broker
    assert "Traceback" not in res.stdout + res.stderr
