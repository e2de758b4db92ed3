"""Sim-gateway streaming load: 2 ib_async clients × 100 symbols of 5-second real-time bars.

Data: the real 1-minute bars of ``shared/data/market/alphavantage_1min`` for ``--day``.
There are only 39 real symbols, so the 100 symbols are **replicas**: symbol *i* ≥ 39 is
a real symbol's recorded session from an *earlier* date, rebased to ``--day`` (same time
of day) and named ``<SYMBOL>_R<k>`` (README "Many symbols from few recorded series");
nothing is synthesised. The 5-s bars are derived by the gateway's documented intrabar path.

Processes: the gateway runs in its own process pinned to one CPU core
(``os.sched_setaffinity``); each client is a separate process running unmodified
``ib_async.IB`` with ``reqRealTimeBars`` for every symbol. All processes share one
``ReplayClock(start=09:30 on --day, epoch, speed)``.

Printed: bars/s delivered (all clients), lag of each delivered bar behind market time
in bars (``(market now at receipt − bar end) / 5 s``; p50/p99/max) at the gateway (bar end →
written to the socket) and at each kind of client, gateway and client CPU (user+system seconds
per wall second, i.e. fraction of one core), full garbage collections (count, longest pause),
bars the gateway sent, and the load average (the machine is shared: compare figures of one run).

Clients: ib_async keeps every real-time bar of a subscription in memory, so a client's heap
grows by ~8 k bars a second here and its full garbage collections pause it for 0.1–0.7 s,
which is lag the gateway did not cause. By default each client keeps a bot's window of
``--keep-bars`` bars per symbol and turns its collector off while measuring;
``--keep-all-clients N`` makes the first N clients keep everything with the collector on
(ib_async's default), so one run shows both. The gateway process is settled as the
``sim-gateway`` command settles it (:func:`daytrading.sim_gateway.server.settle_heap`);
``--no-settle`` measures it without.

    python benchmarks/bench_sim_gateway.py [--symbols 100] [--clients 2] [--speed 390] [--seconds 30]
        [--keep-bars 120] [--keep-all-clients 0] [--no-settle]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("DAYTRADING_MARKET_DATA", ROOT.parent / "shared" / "data" / "market")) / "alphavantage_1min"


def build_market(day: date, n_symbols: int, clock):  # noqa: ANN001, ANN201
    """ReplayMarket with ``n_symbols`` symbols: the real ones of ``day``, then replicas."""
    import pandas as pd

    from daytrading.sim_gateway.engine.market import ReplayMarket
    from daytrading.clock import NY, calendar
    from daytrading.marketdata import load_bars, load_session, previous_closes

    bars = load_session(DATA, day)
    prev = previous_closes(bars, day, source=DATA)
    real = sorted(bars)
    all_bars = load_bars(DATA, real)
    cal = calendar()
    src_day = day
    k = 0
    while len(bars) < n_symbols:
        k += 1
        src_day = cal.previous_session(src_day)
        for sym in real:
            if len(bars) >= n_symbols:
                break
            frame = all_bars[sym]
            part = frame.loc[frame.index.normalize() == pd.Timestamp(src_day, tz=NY)]
            if part.empty:
                continue
            naive = part.index.tz_localize(None) + pd.Timedelta(days=(day - src_day).days)
            rebased = part.copy()
            rebased.index = naive.tz_localize(NY)
            rebased.attrs = dict(frame.attrs)
            name = f"{sym}_R{k}"
            bars[name] = rebased
            if sym in prev:
                prev[name] = prev[sym]
    return ReplayMarket(bars, clock, day, previous_closes=prev)


# --------------------------------------------------------------------------- gateway process


async def serve(args: argparse.Namespace) -> None:
    from daytrading.sim_gateway.server import SimGateway, settle_heap
    from daytrading.clock import NY, ReplayClock

    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    day = date.fromisoformat(args.day)
    clock = ReplayClock(datetime(day.year, day.month, day.day, 9, 30, tzinfo=NY), args.epoch, args.speed)
    market = build_market(day, args.symbols, clock)
    for sym in market.symbols:  # build the 5-s grids before the clock starts (not timed)
        market.grid_bars(sym, 5)
    gw = SimGateway(market, port=0, admin_port=0)
    step_cpu: list[float] = []
    step = gw.data_service.step

    def timed_step() -> None:  # CPU seconds of each streaming pass: unaffected by preemption
        c = time.thread_time()
        step()
        step_cpu.append(time.thread_time() - c)

    gw.data_service.step = timed_step
    await gw.start()
    if not args.no_settle:
        settle_heap()  # as the sim-gateway command does
    print(json.dumps({"port": gw.port, "symbols": market.symbols}), flush=True)
    while time.time() < args.epoch:
        await asyncio.sleep(0.01)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.time()
    sent0 = gw.data_service.stats["rt_bars"]
    gw.data_service.rt_send_lag.clear()
    step_cpu.clear()
    pauses = GcPauses()
    pauses.start()
    await asyncio.sleep(args.seconds)
    pauses.stop()
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.time()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    send_lag = [x / 5.0 for x in gw.data_service.rt_send_lag]
    print(json.dumps({"cpu_s": cpu, "wall_s": t1 - t0, "preempted": r1.ru_nivcsw - r0.ru_nivcsw, "sent": gw.data_service.stats["rt_bars"] - sent0,
                      "gc": pauses.summary(), "step_ms": [x * 1000 for x in step_cpu],
                      "send_lag": send_lag[:: max(1, len(send_lag) // 20000)]}), flush=True)
    await asyncio.sleep(1.0)
    await gw.stop()


# --------------------------------------------------------------------------- client process


async def client(args: argparse.Namespace) -> None:
    from ib_async import IB, Stock

    from daytrading.clock import NY, ReplayClock

    day = date.fromisoformat(args.day)
    clock = ReplayClock(datetime(day.year, day.month, day.day, 9, 30, tzinfo=NY), args.epoch, args.speed)
    ib = IB()
    await ib.connectAsync("127.0.0.1", args.port, clientId=args.client_id, timeout=20)
    lags: list[float] = []
    window = [args.epoch + 1.0, args.epoch + args.seconds - 0.5]  # steady state only
    keep = args.keep_bars

    def on_bar(bars, has_new: bool) -> None:  # noqa: ANN001
        if not has_new:
            return
        wall = time.time()
        if window[0] <= wall <= window[1]:
            bar = bars[-1]
            lags.append((clock.timestamp() - (bar.time.timestamp() + 5.0)) / 5.0)
        if keep and len(bars) > 2 * keep:
            del bars[:-keep]  # a bot's bounded window; ib_async itself keeps every bar

    symbols = args.symbol_list.split(",")
    for sym in symbols:
        bars = ib.reqRealTimeBars(Stock(sym, "SMART", "USD"), 5, "TRADES", False)
        bars.updateEvent += on_bar
    pauses = GcPauses()
    while time.time() < window[0]:
        await asyncio.sleep(0.05)
    if keep:
        # measure the gateway, not this process's collector: setup is permanent, and with a bounded
        # window every bar is freed by reference counting, so nothing needs the cycle collector here
        gc.freeze()
        gc.disable()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    pauses.start()
    await asyncio.sleep(max(0.0, window[1] - time.time()))
    pauses.stop()
    gc.enable()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    await asyncio.sleep(max(0.0, args.epoch + args.seconds - time.time()))
    ib.disconnect()
    print(json.dumps({"bars": len(lags), "cpu_s": cpu, "preempted": r1.ru_nivcsw - r0.ru_nivcsw, "lags": lags[:: max(1, len(lags) // 20000)],
                      "measured_s": window[1] - window[0], "keep": keep, "gc": pauses.summary()}), flush=True)


class GcPauses:
    """Full (generation-2) garbage collections of this process while started: count, longest (ms)."""

    def __init__(self) -> None:
        self.full: list[float] = []
        self._t = 0.0

    def _cb(self, phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.full.append((time.perf_counter() - self._t) * 1000.0)

    def start(self) -> None:
        gc.callbacks.append(self._cb)

    def stop(self) -> None:
        gc.callbacks.remove(self._cb)

    def summary(self) -> dict:
        return {"full": len(self.full), "max_ms": max(self.full, default=0.0), "total_ms": sum(self.full)}


# --------------------------------------------------------------------------- driver


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["drive", "serve", "client"], default="drive")
    p.add_argument("--day", default="2020-12-04")
    p.add_argument("--symbols", type=int, default=100)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--speed", type=float, default=390.0)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--epoch", type=float, default=0.0)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--client-id", type=int, default=1)
    p.add_argument("--cpu", type=int, default=None)
    p.add_argument("--symbol-list", default="")
    p.add_argument("--keep-bars", type=int, default=120,
                   help="bars each client keeps per symbol, like a bot's window, with its garbage collector off while "
                        "measuring (0 = every bar, ib_async's default, collector on)")
    p.add_argument("--no-settle", action="store_true",
                   help="gateway without settle_heap() (the measurement before it)")
    p.add_argument("--keep-all-clients", type=int, default=0,
                   help="how many of the clients keep every bar instead (the measurement before, in the same run)")
    args = p.parse_args()
    if args.mode == "serve":
        asyncio.run(serve(args))
        return
    if args.mode == "client":
        asyncio.run(client(args))
        return

    ncpu = os.cpu_count() or 1
    load = os.getloadavg()
    epoch = time.time() + 12.0
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--day", args.day, "--speed", str(args.speed), "--seconds", str(args.seconds), "--epoch", repr(epoch)]
    gw = subprocess.Popen([*me, "--mode", "serve", "--symbols", str(args.symbols), "--cpu", "0", *common,
                           *(["--no-settle"] if args.no_settle else [])],
                          stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert gw.stdout is not None
    hello = json.loads(gw.stdout.readline())
    symbols = hello["symbols"]
    clients = []
    for i in range(args.clients):
        env = dict(os.environ)
        keep = 0 if i < args.keep_all_clients else args.keep_bars
        cmd = [*me, "--mode", "client", "--port", str(hello["port"]), "--client-id", str(i + 1),
               "--keep-bars", str(keep),
               "--symbol-list", ",".join(symbols), *common]
        if ncpu > 1:
            cmd = ["taskset", "-c", ",".join(str(c) for c in range(1, ncpu)), *cmd]
        clients.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env))
    results = [json.loads(c.communicate(timeout=args.seconds + 120)[0].strip().splitlines()[-1]) for c in clients]
    gw_stats = json.loads(gw.stdout.readline())
    gw.wait(timeout=30)

    n_real = sum(1 for s in symbols if "_R" not in s)
    total = sum(r["bars"] for r in results)
    measured = results[0]["measured_s"]
    expected = args.clients * len(symbols) * measured * args.speed / 5.0
    print(f"sim-gateway streaming benchmark — {args.day}, speed {args.speed:g}, {args.seconds:g} s wall "
          f"(≈ {args.seconds * args.speed / 3600:.1f} market hours from 09:30); load average at start "
          f"{load[0]:.2f}, at end {os.getloadavg()[0]:.2f}")
    print(f"symbols: {len(symbols)} = {n_real} real + {len(symbols) - n_real} replicas "
          f"(real sessions of earlier dates rebased to {args.day}, named SYMBOL_Rk)")
    print(f"clients: {args.clients} × reqRealTimeBars(5 s) on every symbol; gateway pinned to CPU 0 "
          f"of {ncpu}, clients on the other core(s)")
    print(f"bars delivered: {total:,} in {measured:.1f} s measured → {total / measured:,.0f} bars/s "
          f"(expected at this speed: {expected / measured:,.0f} bars/s; ratio {total / expected:.3f})")
    print(f"gateway CPU: {gw_stats['cpu_s']:.2f} s over {gw_stats['wall_s']:.1f} s wall = "
          f"{gw_stats['cpu_s'] / gw_stats['wall_s']:.0%} of one core; bars sent {gw_stats['sent']:,} "
          f"({gw_stats['sent'] / gw_stats['wall_s']:,.0f}/s); {_gc_text(gw_stats['gc'])}; "
          f"preempted by other processes {gw_stats['preempted'] / gw_stats['wall_s']:.0f}×/s")
    st = gw_stats["step_ms"]
    print(f"gateway CPU per streaming pass ({len(st):,} passes; CPU time, so preemption does not count): "
          f"p50 {_pct(st, 0.5):.2f}  p99 {_pct(st, 0.99):.2f}  max {max(st) if st else float('nan'):.2f} ms")
    sl = gw_stats["send_lag"]
    print(f"gateway-side lag (bar end → sent), in bars: p50 {_pct(sl, 0.5):.2f}  p99 {_pct(sl, 0.99):.2f}  "
          f"max {max(sl) if sl else float('nan'):.2f}  (1 bar = {5 / args.speed * 1000:.1f} ms wall)")
    groups = [("bounded", [r for r in results if r["keep"]]), ("keep-all", [r for r in results if not r["keep"]])]
    p99s = {}
    for name, rs in groups:
        if not rs:
            continue
        lags = [x for r in rs for x in r["lags"]]
        p99s[name] = _pct(lags, 0.99)
        what = (f"keeps {rs[0]['keep']} bars per symbol, collector off while measured" if rs[0]["keep"]
                else "keeps every bar (ib_async's default)")
        cpu = ", ".join(f"{r['cpu_s'] / r['measured_s']:.0%} (preempted {r['preempted'] / r['measured_s']:.0f}×/s)"
                        for r in rs)
        print(f"client-side lag, {len(rs)} client(s) that {what}: p50 {_pct(lags, 0.5):.2f}  "
              f"p99 {p99s[name]:.2f}  max {max(lags) if lags else float('nan'):.2f} bars; CPU {cpu} of a core; "
              + "; ".join(_gc_text(r["gc"]) for r in rs))
    if len(p99s) == 2 and p99s["bounded"] > 0:
        print(f"ratio keep-all / bounded client p99 lag: {p99s['keep-all'] / p99s['bounded']:.1f}x "
              f"(the difference is the client's own full garbage collections, not the gateway)")
    ok = [r for r in results if r["keep"]] or results
    verdict_lag = _pct([x for r in ok for x in r["lags"]], 0.99)
    verdict = "OK" if verdict_lag <= 1.0 else "BEHIND"
    print(f"verdict: {verdict} (target: client-side p99 lag ≤ 1 bar; measured {verdict_lag:.2f})")


def _gc_text(g: dict) -> str:
    return f"{g['full']} full GC(s), longest {g['max_ms']:.0f} ms"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
