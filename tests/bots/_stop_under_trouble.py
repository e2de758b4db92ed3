"""A crossed stop while the database is full or damaged, in ONE process: the sim-gateway
(a subprocess replaying recorded bars), the real exit-manager in-process with real
ib_async, the real SQLite file.

:func:`stop_under_trouble` is called in-process by the damaged-file test; the full-disk
test runs this module as a script where its small disk is mounted
(``python -m tests.bots._stop_under_trouble DATA FOLDER LOGS``, wrapped by
``tests._dbtrouble.SmallDisk.argv``) and reads the JSON result line it prints.

The scenario: 10 AAPL bought and confirmed, the exit-manager protects them; AAPL is
halted (no ticks) until its last price is older than ``max_price_age``; the row's stop is
raised above the market and the exit-manager watches the new stop; then the trouble
(disk filled, or the file overwritten); then AAPL resumes and its first tick crosses the
stop. The SELL must reach the gateway anyway.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

from daytrading.clock import NY
from daytrading.errors import DaytradingError
from daytrading.sim_gateway.testing import GatewayProcess
from tests._dbtrouble import damage, fill_disk, wal_truncate
from tests.bots._harness import bot_settings, buy_at_market, coordinator, never_short, running_exit_manager, wait_for

#: the only symbols these tests trade: the sim-gateway loads just these (a shorter start-up)
GATEWAY_SYMBOLS = ["AAPL"]

DAY = date(2020, 11, 17)
#: market seconds after which a quote is not used for a stop (short: the halt must outlast it)
PRICE_AGE = 5.0


def _broken(db: Path) -> str:
    """Why a fresh connection cannot write to ``db`` (the trouble is real), or '' when it can."""
    try:
        con = sqlite3.connect(db, timeout=1, isolation_level=None)
        try:
            con.execute("CREATE TABLE IF NOT EXISTS probe (x BLOB)")
            con.execute("INSERT INTO probe VALUES (?)", (b"x" * 65536,))
        finally:
            con.close()
    except sqlite3.Error as exc:
        return str(exc)
    return ""


async def stop_under_trouble(data: Path, folder: Path, logs: Path, trouble: str) -> dict[str, Any]:
    """Run the scenario (``trouble``: ``full`` or ``damaged``); returns what the tests assert on.

    Keys: ``why`` (the error a fresh writer got), ``sell_s`` (wall seconds from the resume to
    the SELL MKT at the gateway), ``position`` (AAPL shares after), ``report`` (gateway
    report), ``journal_pending`` (writes still queued when the SELL filled), ``alive``
    (the bot's loop still ran), and for ``full`` after the disk was freed: ``trade``
    (quantity, exit reason, P&L of the recorded trade) and ``realized`` (the broker's).
    """
    with GatewayProcess(symbols=GATEWAY_SYMBOLS, data=data, session_date=DAY, speed=60.0, start=datetime(2020, 11, 17, 10, 0, tzinfo=NY)) as gw:
        settings = bot_settings(folder, gw, disaster_stop=0.05, max_price_age=PRICE_AGE,
                                paths={"log_dir": str(logs), "backup_dir": str(logs / "backups")})
        db = Path(settings.paths.database)
        coord = coordinator(settings, "day-trader")
        assert coord.claim_entry("AAPL", 10).ok
        price, _ = await buy_at_market(gw.port, "AAPL", 10, journal=coord)
        coord.confirm_entry("AAPL", 10, price)
        out: dict[str, Any] = {}
        async with running_exit_manager(settings) as bot:
            await wait_for(lambda: bot.stats.targets_placed == 1, what="target placed")
            gw.ctl("halt", symbol="AAPL")
            await wait_for(lambda: (q := bot._quotes.get("AAPL")) is not None
                           and (bot.clock.now() - q.time).total_seconds() > 2 * PRICE_AGE, what="AAPL quote stale")
            coord.confirm_entry("AAPL", 10, round(price * 1.02, 2))  # the stop is now above the market
            stop = coord.get_position("AAPL").stop_loss_price
            await wait_for(lambda: bot._stops.get("AAPL") == stop, what="the raised stop watched")
            assert not bot._exit_tasks, "no exit before the trouble (the halted price is stale)"
            wal_truncate(db)
            filler = fill_disk(folder) if trouble == "full" else None
            if trouble == "damaged":
                damage(db, keep=0)
            out["why"] = _broken(db)
            sweeps = bot.stats.sweeps
            resumed = time.monotonic()
            gw.ctl("resume", symbol="AAPL")
            await wait_for(lambda: [o for o in gw.report()["orders"] if o["symbol"] == "AAPL" and o["order_type"] == "MKT"],
                           timeout=30, what="SELL MKT at the gateway")
            out["sell_s"] = time.monotonic() - resumed
            await wait_for(lambda: gw.report()["positions"].get("AAPL", 0) == 0, what="AAPL sold")
            out["journal_pending"] = len(bot.journal)
            if filler is not None:
                filler.unlink()  # the disk has room again: what was journalled lands
                await wait_for(lambda: coord.get_position("AAPL") is None, timeout=60, what="trade journalled")
                [t] = coord.get_trades_by_date(DAY)
                out["trade"] = {"quantity": t.quantity, "exit_reason": t.exit_reason, "pnl": t.pnl}
            await wait_for(lambda: bot.stats.sweeps > sweeps, timeout=30, what="a sweep after the trouble")
            out["alive"] = not bot._stopping.is_set()
        report = gw.report()
        never_short(report)
        out.update(position=report["positions"].get("AAPL", 0), realized=report["realized_pnl"])
        return out


def _main(argv: list[str]) -> int:
    data, folder, logs = (Path(a) for a in argv)
    try:
        result = asyncio.run(stop_under_trouble(data, folder, logs, "full"))
    except (AssertionError, DaytradingError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
