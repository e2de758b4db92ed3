"""Shared test harness for the bots: a real sim-gateway subprocess on recorded data,
settings that share its replay clock, a real SQLite file, and ib_async helper clients."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ib_async import IB, MarketOrder, Stock

from daytrading.broker.orders import execution_of
from daytrading.config import Settings, load_settings
from daytrading.coordination import Coordinator
from daytrading.runtime import build_clock, open_coordinator


def bot_settings(tmp_path: Path, gw: Any, **overrides: Any) -> Settings:
    """Settings for a bot talking to ``gw`` (GatewayProcess) with the same replay clock."""
    base: dict[str, Any] = {
        "mode": "sim",
        "sim": {"port": gw.port, "start": gw.start.isoformat(), "epoch": gw.epoch, "speed": gw.speed},
        "paths": {"database": str(tmp_path / "trading.db"), "log_dir": str(tmp_path / "logs"),
                  "backup_dir": str(tmp_path / "backups"), "watchlist": str(tmp_path / "watchlist.json"),
                  "report_dir": str(tmp_path / "reports")},
        "ib": {"connect_timeout": 10},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return load_settings(None, base, env_file=None)


def bot_env(settings: Settings, gw: Any, **extra: str) -> dict[str, str]:
    """Environment for a bot subprocess sharing ``gw``'s replay clock and ``settings``' files."""
    return {
        **os.environ,
        "DAYTRADING_MODE": "sim",
        "DAYTRADING_SIM__PORT": str(gw.port),
        "DAYTRADING_SIM__START": gw.start.isoformat(),
        "DAYTRADING_SIM__EPOCH": repr(gw.epoch),
        "DAYTRADING_SIM__SPEED": repr(gw.speed),
        "DAYTRADING_PATHS__DATABASE": str(settings.paths.database),
        "DAYTRADING_PATHS__LOG_DIR": str(settings.paths.log_dir),
        "DAYTRADING_PATHS__WATCHLIST": str(settings.paths.watchlist),
        **extra,
    }


def coordinator(settings: Settings, bot: str = "test") -> Coordinator:
    """A coordinator on the test database with the run's replay clock."""
    return open_coordinator(settings, bot, build_clock(settings))


async def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``predicate`` (sync or async) until truthy; fail with ``what`` after ``timeout`` wall s.

    Used only for state that lives in another process or the database, where no event
    can be awaited across the process boundary.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


async def buy_at_market(port: int, symbol: str, qty: int, client_id: int = 2,
                        journal: Coordinator | None = None) -> tuple[float, Any]:
    """Buy ``qty`` shares through a separate ib_async client; returns (avg fill price, perm id).

    With ``journal``, the fills (with their commissions) are recorded in the execution
    ledger, as the day-trader records its own.
    """
    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=client_id, timeout=10)
    try:
        [contract] = await ib.qualifyContractsAsync(Stock(symbol, "SMART", "USD"))
        trade = ib.placeOrder(contract, MarketOrder("BUY", qty, orderRef=f"dt-entry:{symbol}"))
        while not trade.isDone():
            await trade.statusEvent
        assert trade.orderStatus.status == "Filled", trade.log
        if journal is not None:
            await wait_for(lambda: all(f.commissionReport.execId for f in trade.fills), what="commission reports")
            journal.record_executions([execution_of(f) for f in trade.fills])
        return trade.orderStatus.avgFillPrice, trade.order.permId
    finally:
        ib.disconnect()


@asynccontextmanager
async def running(bot: Any) -> AsyncIterator[Any]:
    """Run ``bot`` (its real ``run()`` loop) for the ``async with`` block, then stop it."""
    task = asyncio.create_task(bot.run(install_signals=False))
    try:
        yield bot
    finally:
        bot.stop()
        await asyncio.wait_for(task, 30)


def running_exit_manager(settings: Settings) -> Any:
    """``async with running_exit_manager(settings) as bot``: an in-process exit-manager."""
    from daytrading.bots.exit_manager import ExitManager

    clock = build_clock(settings)
    return running(ExitManager(settings, open_coordinator(settings, "exit-manager", clock), clock))


def never_short(report: dict[str, Any]) -> None:
    """Fail when a gateway report shows a short sale or a position that went below zero."""
    assert not report.get("shorts"), report.get("shorts")
    for symbol, qty in report.get("min_position", {}).items():
        assert qty >= 0, f"{symbol} went short: {qty}"


async def last_price(port: int, symbol: str, client_id: int = 77) -> float:
    """The gateway's last trade price for ``symbol`` via a 1-minute historical request."""
    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=client_id, timeout=10)
    try:
        [contract] = await ib.qualifyContractsAsync(Stock(symbol, "SMART", "USD"))
        bars = await ib.reqHistoricalDataAsync(contract, "", "600 S", "1 min", "TRADES", False)
        return float(bars[-1].close)
    finally:
        ib.disconnect()


def sells(report: dict[str, Any], symbol: str) -> list[dict[str, Any]]:
    """SELL executions for ``symbol`` in a gateway report."""
    return [e for e in report.get("executions", []) if e.get("symbol") == symbol and e.get("side") in ("SLD", "SELL")]
