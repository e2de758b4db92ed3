"""``daytrading sim-gateway`` and ``daytrading sim-gateway-ctl``.

``daytrading sim-gateway --data PATH --date YYYY-MM-DD [--speed N] [--port 4002]
[--admin-port P] [--account DU0000001] [--cash 100000] [--faults FILE] [--start T]
[--epoch S] [--symbols A,B] [--seed 7] [--slippage 0.0] [--log-dir DIR]``

* ``--data``: a folder of bar files or one file (the recorded-data formats of :mod:`daytrading.marketdata`). Without
  it a seeded synthetic session is generated, and the log and every report say so.
* Replay clock: market time = ``start + (wall − epoch) × speed``. ``--start`` is an ISO
  datetime (naive = New York) or ``HH:MM[:SS]`` on ``--date`` (default 09:25); ``--epoch``
  is wall POSIX seconds (default: the moment the gateway starts listening, after the data
  are loaded). Bots of the same run use the same three values.
* Listens on 127.0.0.1 only; the admin port defaults to ``port + 1``.

Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 2 for bad input (missing file, unknown
date, bad columns, bars out of order, bad options) with one clear message.

``daytrading sim-gateway-ctl [--admin-port P | --port API_PORT] COMMAND [key=value ...]``
sends one admin command (see :mod:`.admin`; values are parsed as JSON when possible, e.g.
``reject count=2 code=201``, ``outage seconds=60 data_lost=true``, ``latency positions_ms=700``)
and prints the JSON
result; exit 1 when the gateway is unreachable or refuses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from daytrading.clock import NY, ReplayClock, wall_time
from daytrading.errors import DaytradingError

__all__ = ["build_gateway", "ctl_main", "main", "parse_start"]

log = logging.getLogger("daytrading.sim_gateway")

DEFAULT_SYNTHETIC_DATE = date(2020, 11, 17)


def parse_start(value: str | datetime | None, session_date: date) -> datetime:
    """Replay start: ISO datetime (naive = New York), ``HH:MM[:SS]`` on ``session_date``, or 09:25.

    Raises:
        ValueError: unparseable value (message names it).
    """
    if value is None or value == "":
        return datetime.combine(session_date, time(9, 25), tzinfo=NY)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=NY)
    text = str(value).strip()
    if len(text) <= 8 and ":" in text:
        try:
            parts = [int(p) for p in text.split(":")]
            return datetime.combine(session_date, time(*parts), tzinfo=NY)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"--start {value!r}: expected HH:MM[:SS] or an ISO datetime") from exc
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"--start {value!r}: expected HH:MM[:SS] or an ISO datetime") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=NY)


def build_gateway(
    *,
    data: str | Path | None,
    session_date: date | None,
    speed: float = 390.0,
    start: str | datetime | None = None,
    epoch: float | None = None,
    symbols: Sequence[str] | None = None,
    cash: float = 100_000.0,
    account: str = "DU0000001",
    port: int = 0,
    admin_port: int | None = 0,
    faults: str | Path | Mapping[str, Any] | list[dict[str, Any]] | None = None,
    shortable: Mapping[str, bool] | None = None,
    seed: int = 7,
    slippage: float = 0.0,
    log_dir: str | Path | None = None,
    perm_base: int | None = None,
    clock: Any = None,
    skipped: list[dict[str, object]] | None = None,
    path_step_s: float | None = None,
    order_latency_ms: float | None = None,
) -> Any:
    """Load the market and construct (not start) a :class:`SimGateway`.

    The clock's epoch defaults to "now" measured *after* the data are loaded, so market time
    ``start`` coincides with the gateway becoming ready. ``clock`` replaces the replay clock
    (the backtest passes its :class:`~daytrading.clock.LoopClock`; ``speed``/``start``/
    ``epoch`` are then ignored). ``skipped``: unusable files and bars are left out and
    described there instead of raising (see :func:`daytrading.marketdata.load_bars`).
    ``path_step_s``: market seconds between trades of the intrabar path (default 15: the
    four-point path); ``order_latency_ms``: market ms between a placeOrder/cancelOrder and
    its effect at the book (the ``order_ack_ms`` latency; default 0). See docs/fill-model.md.

    Raises:
        DataError: the data cannot be loaded (missing file, unknown date, bad columns, order).
        ConfigError: bad fault scenario. ValueError: bad speed/start.
    """
    from daytrading.sim_gateway.engine.market import ReplayMarket
    from daytrading.sim_gateway.server import SimGateway

    if not speed > 0:
        raise ValueError(f"--speed must be > 0, got {speed!r}")
    if session_date is None:
        if data is not None:
            raise ValueError("--date is required with --data")
        session_date = DEFAULT_SYNTHETIC_DATE
    start_dt = parse_start(start, session_date)
    provisional = ReplayClock(start_dt, wall_time() if epoch is None else float(epoch), speed)
    market = ReplayMarket.from_source(data, session_date, clock or provisional,
                                      symbols=[s.upper() for s in symbols] if symbols else None,
                                      seed=seed, shortable=shortable, skipped=skipped,
                                      **({"path_step_s": path_step_s} if path_step_s is not None else {}))
    if epoch is None and clock is None:
        market.clock = ReplayClock(start_dt, wall_time(), speed)
    scenario_file = faults if isinstance(faults, (str, Path)) else None
    gw = SimGateway(market, port=port, admin_port=admin_port, account=account, cash=cash, slippage=slippage,
                    faults_file=scenario_file, log_dir=log_dir, perm_base=perm_base)
    if faults is not None and scenario_file is None:
        gw.faults.add_scenario(faults)  # type: ignore[arg-type]
    if order_latency_ms is not None:
        gw.faults.latency.update({"order_ack_ms": order_latency_ms}, source="order_latency_ms")
    return gw


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="daytrading sim-gateway",
                                description="Simulated IB Gateway (TWS API server versions 157-178) replaying recorded bars.")
    p.add_argument("--data", help="folder of bar files or one file; omitted = seeded SYNTHETIC session")
    p.add_argument("--date", help="session date YYYY-MM-DD (New York)")
    p.add_argument("--speed", type=float, default=390.0, help="market seconds per wall second (default 390)")
    p.add_argument("--port", type=int, default=4002, help="API port on 127.0.0.1 (default 4002)")
    p.add_argument("--admin-port", type=int, default=None, help="admin port (default port + 1)")
    p.add_argument("--account", default="DU0000001")
    p.add_argument("--cash", type=float, default=100_000.0, help="starting cash, dollars")
    p.add_argument("--faults", help="fault scenario TOML file")
    p.add_argument("--start", help="market time at the epoch: ISO datetime or HH:MM[:SS] (default 09:25)")
    p.add_argument("--epoch", type=float, help="wall POSIX seconds of the replay start (default: when ready)")
    p.add_argument("--symbols", help="comma-separated symbols to load (default: all in the data)")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic session")
    p.add_argument("--slippage", type=float, default=0.0, help="dollars per share on market fills")
    p.add_argument("--log-dir", help="folder of the JSON-lines event log")
    p.add_argument("--path-step", type=float, default=None, metavar="SECONDS",
                   help="market seconds between trades of the intrabar path (default 15: the four points; "
                        "the supervisor's sim mode passes sim.path_step_s, 1 s, as the backtest does)")
    p.add_argument("--order-latency-ms", type=float, default=None, metavar="MS",
                   help="market ms before a placeOrder/cancelOrder reaches the book (default 0; the supervisor's "
                        "sim mode passes sim.order_latency_ms, 50 ms, as the backtest does)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gateway until SIGINT/SIGTERM; see the module docstring for options and exit codes."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        stream=sys.stderr)
    logging.getLogger("daytrading.sim_gateway").setLevel(logging.WARNING)
    try:
        session_date = date.fromisoformat(args.date) if args.date else None
    except ValueError:
        print(f"sim-gateway: error: --date {args.date!r} is not YYYY-MM-DD", file=sys.stderr)
        return 2
    if args.path_step is not None and not 0 < args.path_step <= 60:
        print(f"sim-gateway: error: --path-step must be above 0 and at most 60 market seconds, got {args.path_step:g}",
              file=sys.stderr)
        return 2
    if args.order_latency_ms is not None and not 0 <= args.order_latency_ms <= 60_000:
        print(f"sim-gateway: error: --order-latency-ms must be 0-60000, got {args.order_latency_ms:g}", file=sys.stderr)
        return 2
    if args.data and not Path(args.data).exists():
        print(f"sim-gateway: error: --data {args.data}: no such file or folder", file=sys.stderr)
        return 2
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()] if args.symbols else None
    try:
        gw = build_gateway(data=args.data, session_date=session_date, speed=args.speed, start=args.start,
                           epoch=args.epoch, symbols=symbols, cash=args.cash, account=args.account,
                           port=args.port, admin_port=args.admin_port, faults=args.faults, seed=args.seed,
                           slippage=args.slippage, log_dir=args.log_dir, path_step_s=args.path_step,
                           order_latency_ms=args.order_latency_ms)
    except (DaytradingError, ValueError) as exc:
        print(f"sim-gateway: error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(gw))
    except OSError as exc:
        print(f"sim-gateway: error: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0


async def _serve(gw: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: KeyboardInterrupt still works
            loop.add_signal_handler(sig, stop.set)
    from daytrading.sim_gateway.server import settle_heap

    await gw.start()
    settle_heap()
    clock = gw.clock
    kind = "SYNTHETIC (seeded random, NOT recorded data)" if gw.market.synthetic else "recorded"
    print(f"sim-gateway listening on 127.0.0.1:{gw.port} (admin {gw.admin_port}); {kind} session "
          f"{gw.market.session_date}, {len(gw.market.symbols)} symbols; replay start "
          f"{clock.start.isoformat()} epoch {clock.epoch!r} speed {clock.speed!r}", flush=True)
    try:
        await stop.wait()
    finally:
        await gw.stop()


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def ctl_main(argv: Sequence[str] | None = None) -> int:
    """``daytrading sim-gateway-ctl``: one admin command, JSON result on stdout."""
    from daytrading.sim_gateway.admin import AdminError, request

    p = argparse.ArgumentParser(prog="daytrading sim-gateway-ctl",
                                description="Send an admin command (faults, report, clock) to a sim-gateway.")
    p.add_argument("--admin-port", type=int, help="admin port (default: API port + 1)")
    p.add_argument("--port", type=int, default=4002, help="the gateway's API port (default 4002)")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("command", help="report, clock, status, events, drop, refuse, outage, notice, reject, "
                                   "delay_cancel, partial, halt, resume, shortable, latency "
                                   "(latency positions_ms=700 order_ack_ms=0 executions_ms=0 "
                                   "market_data_ms=0: milliseconds of market time)")
    p.add_argument("params", nargs="*", help="key=value (values parsed as JSON when possible)")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    params: dict[str, Any] = {}
    for item in args.params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"sim-gateway-ctl: error: parameter {item!r} is not key=value", file=sys.stderr)
            return 2
        params[key] = _value(value)
    port = args.admin_port or args.port + 1
    try:
        result = request(port, args.command, timeout=args.timeout, **params)
    except AdminError as exc:
        print(f"sim-gateway-ctl: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0
