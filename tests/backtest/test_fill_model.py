"""The fill model the backtest runs on: the intrabar path keeps every bar's OHLCV, and order
latency decides which trade an order can meet."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

import numpy as np
import pytest
from ib_async import IB, MarketOrder, Stock

from daytrading.clock import NY, LoopClock
from daytrading.marketdata.loader import load_session

DAY = date(2020, 11, 17)


@pytest.mark.parametrize("step", [1.0, 15.0, 7.0])
def test_intrabar_path_reproduces_every_bar(minute_data_dir, step):
    from daytrading.sim_gateway.engine.market import SeriesArrays

    bars = load_session(minute_data_dir, DAY, ["NIO", "TSLA", "MKSI"])
    for symbol, frame in bars.items():
        s = SeriesArrays(frame, step)
        n = max(4, round(60 / step))
        px, sz = s.tick_px.reshape(-1, n), s.tick_sz.reshape(-1, n)
        assert (px[:, 0] == frame["open"].to_numpy()).all(), symbol
        assert (px[:, -1] == frame["close"].to_numpy()).all(), symbol
        assert (px.max(axis=1) == frame["high"].to_numpy()).all(), symbol
        assert (px.min(axis=1) == frame["low"].to_numpy()).all(), symbol
        assert (sz.sum(axis=1) == frame["volume"].to_numpy()).all(), symbol
        anchors = [0, round((n - 1) / 3), round(2 * (n - 1) / 3), n - 1]
        between = np.delete(px, anchors, axis=1)
        assert np.allclose(between, np.round(between, 2)), "interpolated trades at whole cents"
        ts = s.tick_ts.reshape(-1, n)
        assert np.allclose(np.diff(ts, axis=1), 60 / n), "one trade per step"
        if step == 1.0:
            # straight lines: consecutive trades inside a segment move by at most one step of the line (+ a cent)
            rng = (frame["high"] - frame["low"]).to_numpy()
            assert (np.abs(np.diff(px, axis=1)).max(axis=1) <= rng / 19 + 0.011).all(), symbol


async def _fill_price(minute_data_dir, latency_ms: float, place_at: float) -> tuple[float, float]:
    from daytrading.sim_gateway import build_gateway
    from daytrading.sim_gateway.testing import wait_until

    loop = asyncio.get_running_loop()
    start = datetime.fromtimestamp(place_at - 5, tz=NY)
    clock = LoopClock(start)
    gw = build_gateway(data=minute_data_dir, session_date=DAY, symbols=["NIO"], clock=clock, port=0, admin_port=0,
                       perm_base=1000, path_step_s=1.0, order_latency_ms=latency_ms)
    await gw.start()
    ib = IB()
    try:
        await ib.connectAsync("127.0.0.1", gw.port, clientId=5, timeout=10)
        [contract] = await ib.qualifyContractsAsync(Stock("NIO", "SMART", "USD"))
        await asyncio.sleep(clock.loop_time_at(datetime.fromtimestamp(place_at, tz=NY)) - loop.time())
        trade = ib.placeOrder(contract, MarketOrder("BUY", 10))
        await wait_until(lambda: trade.isDone(), 30, "market order filled")
        return trade.fills[0].execution.price, trade.fills[0].execution.time.timestamp()
    finally:
        ib.disconnect()
        await gw.stop()


def test_order_latency_makes_an_order_miss_the_trade_it_would_meet(minute_data_dir):
    """A market BUY sent 20 ms before a trade meets that trade with 0 latency; with 50 ms it
    reaches the book after it and fills at the next trade, one second later."""
    import looptime

    from daytrading.sim_gateway.engine.market import SeriesArrays

    frame = load_session(minute_data_dir, DAY, ["NIO"])["NIO"]
    s = SeriesArrays(frame, 1.0)
    t10 = datetime(2020, 11, 17, 10, 0, tzinfo=NY).timestamp()
    i = int(np.searchsorted(s.tick_ts, t10))
    while s.tick_px[i] == s.tick_px[i + 1] or s.tick_sz[i] < 10 or s.tick_sz[i + 1] < 10:
        i += 1  # a trade whose successor has another price, both with size
    place_at = float(s.tick_ts[i]) - 0.02
    results = {}
    for latency in (0.0, 50.0):
        loop = looptime.new_event_loop(start=0.0, noop_cycles=5)
        try:
            results[latency] = loop.run_until_complete(_fill_price(minute_data_dir, latency, place_at))
        finally:
            loop.close()
    assert results[0.0] == (pytest.approx(float(s.tick_px[i])), pytest.approx(float(s.tick_ts[i]), abs=1))
    assert results[50.0][0] == pytest.approx(float(s.tick_px[i + 1]))
    assert results[50.0][1] == pytest.approx(float(s.tick_ts[i + 1]), abs=1)
    assert results[50.0][0] != results[0.0][0]


def test_sim_mode_uses_the_backtests_fill_model(tmp_path, monkeypatch, minute_data_dir):
    """The supervisor starts its sim-gateway with sim.path_step_s and sim.order_latency_ms (the values the
    backtest hands to build_gateway), and the sim-gateway CLI passes them on."""
    from daytrading.bots import supervisor as sup_mod
    from daytrading.config import load_settings
    from daytrading.sim_gateway import cli as gw_cli

    settings = load_settings(None, {"mode": "sim", "sim": {"session_date": "2020-11-17", "port": 4999, "data": str(minute_data_dir)},
                                    "paths": {"database": str(tmp_path / "t.db"), "log_dir": str(tmp_path / "logs")}},
                             env_file=None)
    sup = sup_mod.Supervisor(settings, sim=True)
    sup._prepare_env()
    seen: list[list[str]] = []

    class Stop(Exception):
        pass

    def popen(argv, out):  # noqa: ARG001 - Supervisor._popen's signature
        out.close()
        seen.append(argv)
        raise Stop

    monkeypatch.setattr(sup, "_popen", popen)
    monkeypatch.setattr(sup_mod, "_check_port_free", lambda port: None)
    with pytest.raises(Stop):
        sup._start_gateway()
    argv = seen[0]
    assert argv[argv.index("--path-step") + 1] == repr(settings.sim.path_step_s) == "1.0"
    assert argv[argv.index("--order-latency-ms") + 1] == repr(settings.sim.order_latency_ms) == "50.0"

    given = {}

    def build(**kw):
        given.update(kw)
        raise ValueError("stop here")

    monkeypatch.setattr(gw_cli, "build_gateway", build)
    assert gw_cli.main(argv[argv.index("sim-gateway") + 1:]) == 2
    assert given["path_step_s"] == 1.0 and given["order_latency_ms"] == 50.0
    assert gw_cli.main(["--path-step", "0"]) == 2  # refused before anything is built
