"""liquidate-all: wall time from the command to "all flat" against the sim-gateway.

N positions (recorded symbols of 2020-11-17, bought by a client with id 2) each with a
working profit-target SELL LMT from client 10 (the exit-manager's id); then
``liquidate_all()`` (freeze, global cancel, market orders, fills, database closes) is timed
phase by phase, beside one bare market round trip (place → filled) of one client for scale.

    python benchmarks/bench_liquidate.py [--positions 2 8] [--speed 60]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

from ib_async import IB, LimitOrder, MarketOrder, Stock

from daytrading.sim_gateway.testing import GatewayProcess
from daytrading.clock import NY
from daytrading.config import load_settings
from daytrading.ops.liquidate import liquidate_all
from daytrading.runtime import build_clock, open_coordinator

DAY = date(2020, 11, 17)
SYMBOLS = ["AAPL", "AMD", "TSLA", "NIO", "MSFT", "INTC", "NVDA", "BABA", "JD", "QQQ", "FB", "PDD"]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "market" / "alphavantage_1min"


async def setup(gw: GatewayProcess, n: int, coord) -> float:
    buyer, em = IB(), IB()
    await buyer.connectAsync("127.0.0.1", gw.port, clientId=2, timeout=10)
    await em.connectAsync("127.0.0.1", gw.port, clientId=10, timeout=10)
    round_trip = 0.0
    try:
        contracts = await buyer.qualifyContractsAsync(*(Stock(s, "SMART", "USD") for s in SYMBOLS[:n]))
        for c in contracts:
            t0 = time.perf_counter()
            trade = buyer.placeOrder(c, MarketOrder("BUY", 10))
            while not trade.isDone():
                await trade.statusEvent
            round_trip = max(round_trip, time.perf_counter() - t0)
            price = trade.orderStatus.avgFillPrice
            assert coord.claim_entry(c.symbol, 10).ok
            coord.confirm_entry(c.symbol, 10, price)
            em.placeOrder(c, LimitOrder("SELL", 10, round(price * 1.5, 2), orderRef=f"dt-target:{c.symbol}"))
        await asyncio.sleep(0.5)
    finally:
        buyer.disconnect()
        em.disconnect()
    return round_trip


def run(n: int, speed: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, GatewayProcess(data=DATA, session_date=DAY, speed=speed,
                                                              start=datetime(2020, 11, 17, 10, 0, tzinfo=NY)) as gw:
        settings = load_settings(None, {
            "mode": "sim", "sim": {"port": gw.port, "start": gw.start.isoformat(), "epoch": gw.epoch, "speed": gw.speed},
            "paths": {"database": f"{tmp}/t.db", "backup_dir": f"{tmp}/b"}}, env_file=None)
        coord = open_coordinator(settings, "day-trader", build_clock(settings))
        rt = asyncio.run(setup(gw, n, coord))
        t0 = time.perf_counter()
        result = asyncio.run(liquidate_all(settings, timeout=60))
        took = time.perf_counter() - t0
        report = gw.report()
        flat = not any(report["positions"].values()) and not report["open_orders"]
        print(f"positions={n:2d}: liquidate-all {took * 1000:7.0f} ms (ok={result.broker_ok}, flat={flat}, "
              f"{result.open_orders_before} orders cancelled, {len(coord.get_trades_by_date(DAY))} rows closed) | "
              f"slowest single market round trip {rt * 1000:6.1f} ms | ratio {took / rt:5.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--positions", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--speed", type=float, default=60.0)
    args = ap.parse_args()
    for n in args.positions:
        run(min(n, len(SYMBOLS)), args.speed)


if __name__ == "__main__":
    main()
