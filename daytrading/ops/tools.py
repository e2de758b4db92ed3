"""Operations tools: ``test-connection``, ``orders``, ``monitor``, ``logs``, ``why``.

Broker access uses :func:`daytrading.broker.connection.connect` with
``ib.tools_client_id`` (99) so a tool never disturbs the bots' client ids (10, 2);
database access goes through the Coordinator. Times are shown in New York time;
prices in dollars; distances and P&L percentages in percent (1.8 = 1.8 %).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

from daytrading.clock import NY
from daytrading.config import Settings
from daytrading.errors import DaytradingError

#: Short connect timeout for tools (wall seconds): a tool should fail fast.
TOOL_CONNECT_TIMEOUT = 5.0
MARKET_DATA_TYPES = {1: "live", 2: "frozen", 3: "delayed", 4: "delayed-frozen"}
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def _hm(ts: datetime | None) -> str:
    return "-" if ts is None else f"{ts.astimezone(NY):%H:%M:%S}"


def _num(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _client_id(args: argparse.Namespace, settings: Settings) -> int:
    cid = getattr(args, "client_id", None)
    return settings.ib.tools_client_id if cid is None else cid


def _add_client_id(parser: argparse.ArgumentParser) -> None:
    from daytrading.cli import client_id_arg

    parser.add_argument("--client-id", type=client_id_arg, default=None,
                        help="API client id (default ib.tools_client_id)")


# ---------------------------------------------------------------------- test-connection


async def connection_report(settings: Settings, client_id: int, timeout: float = TOOL_CONNECT_TIMEOUT) -> dict[str, Any]:
    """Connect read-only and describe the peer.

    Returns:
        ``{"endpoint", "client_id", "server_version", "server_time" (ISO, New York),
        "accounts", "account", "paper" (bool), "mode", "market_data_type" (int and name),
        "net_liquidation" ($ or None), "connect_ms"}``.

    Raises:
        TemporaryBrokerError: nothing listening, handshake timeout, client id in use.
        ConfigError: the account kind does not match ``mode``.
    """
    from daytrading.broker.connection import broker_endpoint, connect, is_paper_account

    t0 = time.monotonic()
    ib = await connect(settings, client_id, timeout=timeout, readonly=True)
    try:
        connect_ms = round((time.monotonic() - t0) * 1000, 1)
        accounts = ib.managedAccounts()
        account = settings.ib.account or (accounts[0] if accounts else "")
        try:
            server_time = (await asyncio.wait_for(ib.reqCurrentTimeAsync(), timeout)).astimezone(NY).isoformat()
        except (TimeoutError, ConnectionError):
            server_time = None
        nlv = None
        for v in ib.accountValues(account):
            if v.tag == "NetLiquidation" and v.currency in ("USD", "BASE", ""):
                with contextlib.suppress(ValueError):
                    nlv = float(v.value)
        mdt = settings.ib.market_data_type
        return {
            "endpoint": str(broker_endpoint(settings)), "client_id": client_id,
            "server_version": ib.client.serverVersion(), "server_time": server_time,
            "accounts": accounts, "account": account, "paper": is_paper_account(account) if account else None,
            "mode": settings.mode, "market_data_type": f"{mdt} ({MARKET_DATA_TYPES.get(mdt, '?')})",
            "net_liquidation": nlv, "connect_ms": connect_ms,
        }
    finally:
        ib.disconnect()


def test_connection_cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading test-connection``."""
    _add_client_id(parser)
    parser.add_argument("--timeout", type=float, default=TOOL_CONNECT_TIMEOUT, help="connect timeout, seconds")
    parser.add_argument("--json", action="store_true")


def test_connection_cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading test-connection``: 0 when connected, 1 with the reason otherwise."""
    from daytrading.ops import console

    try:
        info = asyncio.run(connection_report(settings, _client_id(args, settings), args.timeout))
    except DaytradingError as exc:
        print(f"test-connection: FAILED: {exc}")
        return 1
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    from rich.table import Table

    table = Table(title="broker connection OK", show_header=False)
    table.add_column("what")
    table.add_column("value")
    for key, value in info.items():
        if key == "paper":
            value = {True: "paper", False: "LIVE (real money)", None: "?"}[value]
        table.add_row(key, "-" if value is None else str(value))
    console().print(table)
    return 0


# ---------------------------------------------------------------------- orders


async def broker_open_orders(settings: Settings, client_id: int) -> list[dict[str, Any]]:
    """Working orders of every client at the broker (``reqAllOpenOrders``) as rows.

    Raises:
        TemporaryBrokerError, ConfigError: as :func:`daytrading.broker.connection.connect`.
    """
    from daytrading.broker.connection import connect
    from daytrading.broker.orders import DONE_STATES

    ib = await connect(settings, client_id, timeout=TOOL_CONNECT_TIMEOUT, readonly=True)
    try:
        trades = await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), TOOL_CONNECT_TIMEOUT * 2)
        return [
            {"client_id": t.order.clientId, "order_id": t.order.orderId, "perm_id": t.order.permId,
             "symbol": t.contract.symbol, "side": t.order.action, "type": t.order.orderType,
             "qty": t.order.totalQuantity,
             "limit": t.order.lmtPrice if t.order.orderType == "LMT" else None,
             "status": t.orderStatus.status, "filled": t.orderStatus.filled, "ref": t.order.orderRef}
            for t in trades if t.orderStatus.status not in DONE_STATES
        ]
    finally:
        ib.disconnect()


def orders_cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading orders``."""
    from daytrading.cli import _iso_date

    parser.add_argument("--date", type=_iso_date,
                        help="session date (default: current session, else the latest recorded)")
    parser.add_argument("--no-broker", action="store_true", help="database only: do not ask the broker")
    _add_client_id(parser)
    parser.add_argument("--json", action="store_true")


def orders_cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading orders``: today's orders from the database and working orders at the broker.

    Exit 1 when neither source could be read.
    """
    from rich.table import Table

    from daytrading.ops import console, open_db

    from daytrading.ops.sessions import choose_session

    db_rows: list[dict[str, Any]] | None = None
    problems: list[str] = []
    label = f"session {args.date}" if args.date else "session ?"
    try:
        coord = open_db(settings, "orders")
        choice = choose_session(coord, args.date)
        day, label = choice.day, choice.label
        db_rows = coord.get_orders(day)
    except DaytradingError as exc:
        problems.append(f"database: {exc}")
        day = args.date
    live: list[dict[str, Any]] | None = None
    if not args.no_broker:
        try:
            live = asyncio.run(broker_open_orders(settings, _client_id(args, settings)))
        except DaytradingError as exc:
            problems.append(f"broker: {exc}")
    if args.json:
        print(json.dumps({"session_date": str(day), "session_label": label, "orders": db_rows, "open_at_broker": live,
                          "problems": problems}, default=str, indent=2))
        return 0 if (db_rows is not None or live is not None) else 1
    con = console()
    if live is not None:
        t = Table(title=f"working at the broker ({len(live)})")
        for col in ("client", "order", "perm", "symbol", "side", "type", "qty", "limit", "status", "filled", "ref"):
            t.add_column(col)
        for o in live:
            t.add_row(str(o["client_id"]), str(o["order_id"]), str(o["perm_id"] or "-"), o["symbol"], o["side"],
                      o["type"], f"{o['qty']:g}", _num(o["limit"]), o["status"], f"{o['filled']:g}", o["ref"] or "")
        con.print(t)
    if db_rows is not None:
        t = Table(title=f"orders of session {day} ({len(db_rows)})", caption=f"shown: {label}")
        for col in ("time", "bot", "client", "order", "perm", "symbol", "side", "type", "qty", "limit",
                    "status", "filled", "avg $", "purpose"):
            t.add_column(col)
        for o in db_rows:
            t.add_row(_hm(o["created_at"]), o["bot"], str(o["client_id"]), str(o["order_id"]),
                      str(o["perm_id"] or "-"), o["symbol"], o["side"], o["order_type"], f"{o['quantity']:g}",
                      _num(o["limit_price"]), o["status"], f"{o['filled_quantity']:g}", _num(o["avg_fill_price"]),
                      o["purpose"] or "")
        con.print(t)
    for p in problems:
        con.print(f"[yellow]{p}[/yellow]")
    return 0 if (db_rows is not None or live is not None) else 1


# ---------------------------------------------------------------------- monitor


def position_rows(positions: list[Any], prices: dict[str, float | None]) -> list[dict[str, Any]]:
    """Monitor rows: P&L and distances for each active position.

    ``pnl`` = (last − entry) × shares in dollars; ``pnl_pct`` = (last / entry − 1) × 100;
    ``to_target_pct`` = (target / last − 1) × 100 (positive: target above the price);
    ``to_stop_pct`` = (last / stop − 1) × 100 (positive: price above the stop).
    """
    rows = []
    for p in positions:
        last = prices.get(p.symbol)
        ok = last is not None and last > 0
        entry, tgt, stp = p.entry_price, p.profit_target_price, p.stop_loss_price
        rows.append({
            "symbol": p.symbol, "status": p.status, "quantity": p.quantity, "entry": entry, "last": last,
            "pnl": round((last - entry) * p.quantity, 2) if ok and entry else None,
            "pnl_pct": round((last / entry - 1) * 100, 3) if ok and entry else None,
            "target": tgt, "to_target_pct": round((tgt / last - 1) * 100, 3) if ok and tgt else None,
            "stop": stp, "to_stop_pct": round((last / stp - 1) * 100, 3) if ok and stp else None,
            "since": p.entry_timestamp,
        })
    return rows


def render_monitor(rows: list[dict[str, Any]], title: str) -> Any:
    """The monitor table (rich)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title)
    for col in ("symbol", "status", "qty", "entry $", "last $", "P&L $", "P&L %", "target $", "to target %",
                "stop $", "to stop %", "since"):
        t.add_column(col, justify="right" if col not in ("symbol", "status") else "left")
    for r in rows:
        style = "" if r["pnl"] is None else ("green" if r["pnl"] >= 0 else "red")
        t.add_row(r["symbol"], r["status"], f"{r['quantity']:g}", _num(r["entry"]), _num(r["last"]),
                  Text(_num(r["pnl"], "+,.2f"), style=style), Text(_num(r["pnl_pct"], "+.2f"), style=style),
                  _num(r["target"]), _num(r["to_target_pct"], "+.2f"), _num(r["stop"]), _num(r["to_stop_pct"], "+.2f"),
                  _hm(r["since"]))
    if not rows:
        t.caption = "no active positions"
    return t


class PriceFeed:
    """Last prices from the broker: streaming market data, the portfolio's mark as fallback."""

    def __init__(self, ib: Any) -> None:
        self.ib = ib
        self.tickers: dict[str, Any] = {}

    async def watch(self, symbols: list[str]) -> None:
        """Subscribe market data for symbols not yet watched (unknown symbols are skipped)."""
        from daytrading.broker.connection import qualify_stocks

        new = [s for s in symbols if s not in self.tickers]
        if not new:
            return
        for symbol, contract in (await qualify_stocks(self.ib, new)).items():
            self.tickers[symbol] = self.ib.reqMktData(contract, "", False, False)

    def prices(self) -> dict[str, float | None]:
        """``{symbol: last price}`` (ticker's market price, else the portfolio's market price)."""
        out: dict[str, float | None] = {}
        for item in self.ib.portfolio():
            if item.marketPrice and not math.isnan(item.marketPrice):
                out[item.contract.symbol] = float(item.marketPrice)
        for symbol, ticker in self.tickers.items():
            price = ticker.marketPrice()
            if price is None or math.isnan(price) or price <= 0:
                price = ticker.last if ticker.last and not math.isnan(ticker.last) else ticker.close
            if price is not None and not math.isnan(price) and price > 0:
                out[symbol] = float(price)
        return out


async def monitor(settings: Settings, *, once: bool, interval: float, broker: bool, client_id: int,
                  out: Any) -> int:
    """Show the monitor table (``once``: a single snapshot, waiting ≤ 5 s for prices)."""
    from rich.live import Live

    from daytrading.broker.connection import connect
    from daytrading.ops import open_db

    coord = open_db(settings, "monitor")
    feed = None
    note = ""
    if broker:
        try:
            feed = PriceFeed(await connect(settings, client_id, timeout=TOOL_CONNECT_TIMEOUT, readonly=True))
        except DaytradingError as exc:
            note = f" — broker not reached: {exc}"

    async def snapshot(wait: float) -> Any:
        positions = coord.get_active_positions()
        prices: dict[str, float | None] = {}
        if feed is not None:
            await feed.watch([p.symbol for p in positions])
            deadline = time.monotonic() + wait
            while True:
                prices = feed.prices()
                if all(p.symbol in prices for p in positions) or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.1)
        title = f"positions at {coord.clock.now():%Y-%m-%d %H:%M:%S} New York{note}"
        return render_monitor(position_rows(positions, prices), title)

    try:
        if once:
            out.print(await snapshot(5.0))
            return 0
        with Live(await snapshot(2.0), console=out, refresh_per_second=2) as live:
            while True:
                await asyncio.sleep(interval)
                live.update(await snapshot(0.0))
    finally:
        if feed is not None:
            feed.ib.disconnect()


def monitor_cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading monitor``."""
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")
    parser.add_argument("--interval", type=float, default=2.0, help="refresh period, wall seconds")
    parser.add_argument("--no-broker", action="store_true", help="database only (no prices)")
    _add_client_id(parser)


def monitor_cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading monitor``: live table until Ctrl+C (``--once`` for one snapshot)."""
    from daytrading.ops import console

    if args.interval <= 0:
        print(f"monitor: --interval must be positive, got {args.interval}")
        return 2
    return asyncio.run(monitor(settings, once=args.once, interval=args.interval, broker=not args.no_broker,
                               client_id=_client_id(args, settings), out=console()))


# ---------------------------------------------------------------------- logs


def _matches(rec: dict[str, Any], bot: str | None, symbol: str | None, level: int, grep: str | None) -> bool:
    if bot and rec.get("bot") != bot:
        return False
    if LEVELS.get(str(rec.get("level", "INFO")).upper(), 20) < level:
        return False
    if symbol:
        symbols = rec.get("symbols") if isinstance(rec.get("symbols"), list) else []
        if rec.get("symbol") != symbol and symbol not in symbols and symbol not in str(rec.get("msg", "")).split():
            return False
    return not grep or grep.lower() in json.dumps(rec, default=str).lower()


def read_log_records(log_dir: Path, *, bot: str | None = None, symbol: str | None = None,
                     level: str = "DEBUG", grep: str | None = None) -> list[dict[str, Any]]:
    """Every matching JSON-lines record in ``log_dir/*.jsonl``, oldest first (by ``time``).

    Lines that are not JSON objects are skipped. ``level`` is the minimum level.
    """
    records = []
    threshold = LEVELS[level.upper()]
    for path in sorted(Path(log_dir).glob("*.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                rec = _parse(line)
                if rec is not None and _matches(rec, bot, symbol.upper() if symbol else None, threshold, grep):
                    records.append(rec)
    records.sort(key=lambda r: str(r.get("time", "")))
    return records


def _parse(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line:
        return None
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


_SHOWN = {"time", "level", "bot", "logger", "msg", "market_time", "exc"}


def format_record(rec: dict[str, Any]) -> str:
    """One line: ``time level bot [market time] message key=value…``."""
    extras = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in rec.items() if k not in _SHOWN)
    market = f" [{rec['market_time']}]" if rec.get("market_time") else ""
    text = f"{rec.get('time', '')} {rec.get('level', ''):<8} {rec.get('bot', ''):<12}{market} {rec.get('msg', '')}"
    text += f"  {extras}" if extras else ""
    if rec.get("exc"):
        text += "\n" + str(rec["exc"])
    return text


def _follow(log_dir: Path, filters: dict[str, Any], raw: bool, poll: float = 0.25) -> Iterator[str]:
    """Yield new matching lines appended to any ``*.jsonl`` in ``log_dir`` (files may appear later)."""
    offsets = {p: p.stat().st_size for p in Path(log_dir).glob("*.jsonl")}
    threshold = LEVELS[filters["level"].upper()]
    symbol = filters["symbol"].upper() if filters["symbol"] else None
    while True:
        for path in sorted(Path(log_dir).glob("*.jsonl")):
            size = path.stat().st_size
            start = offsets.get(path, 0)
            if size < start:  # truncated or rotated
                start = 0
            if size == start:
                continue
            with path.open("rb") as fh:
                fh.seek(start)
                data = fh.read(size - start)
            end = data.rfind(b"\n")
            if end < 0:  # a line still being written
                offsets[path] = start
                continue
            offsets[path] = start + end + 1
            for line in data[: end + 1].decode("utf-8", errors="replace").splitlines():
                rec = _parse(line)
                if rec is not None and _matches(rec, filters["bot"], symbol, threshold, filters["grep"]):
                    yield json.dumps(rec, default=str) if raw else format_record(rec)
        time.sleep(poll)


def logs_cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading logs``."""
    parser.add_argument("--bot", help="only this bot (exit-manager, day-trader, supervisor…)")
    parser.add_argument("--symbol", help="only records about this symbol")
    parser.add_argument("--level", default="DEBUG", type=str.upper, choices=list(LEVELS), help="minimum level")
    parser.add_argument("--grep", help="only records containing this text (case-insensitive)")
    parser.add_argument("-n", "--lines", type=int, default=50, help="show the last N matching records (0 = all)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new records (Ctrl+C stops)")
    parser.add_argument("--json", action="store_true", help="print the raw JSON records")


def logs_cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading logs``: exit 1 when the log folder does not exist."""
    log_dir = Path(settings.paths.log_dir)
    if not log_dir.is_dir():
        print(f"logs: no log folder {log_dir} (paths.log_dir / --log-dir); nothing has run here yet")
        return 1
    if args.lines < 0:
        print(f"logs: --lines must be >= 0, got {args.lines}")
        return 2
    records = read_log_records(log_dir, bot=args.bot, symbol=args.symbol, level=args.level, grep=args.grep)
    for rec in records[-args.lines:] if args.lines else records:
        print(json.dumps(rec, default=str) if args.json else format_record(rec), flush=True)
    if args.follow:
        filters = {"bot": args.bot, "symbol": args.symbol, "level": args.level, "grep": args.grep}
        try:
            for line in _follow(log_dir, filters, args.json):
                print(line, flush=True)
        except KeyboardInterrupt:
            return 0
    return 0


# ---------------------------------------------------------------------- why


def why_symbol(coord: Any, symbol: str, day: date | None, limit: int) -> dict[str, Any]:
    """What the system knows about ``symbol`` in a session: position, close, latest gate decisions.

    ``day`` None = :func:`daytrading.ops.sessions.choose_session`'s default (said in the result).
    """
    from daytrading.ops.sessions import choose_session

    choice = choose_session(coord, day)
    day = choice.day
    pos = coord.get_position(symbol)
    closed = [r for r in coord.get_closed_today(day) if r["symbol"] == symbol.upper()]
    return {
        "symbol": symbol.upper(), **choice.as_dict(),
        "position": asdict(pos) if pos else None, "closed_today": closed[0] if closed else None,
        "decisions": coord.get_gate_decisions(symbol, day, limit),
    }


def why_summary(coord: Any, day: date | None) -> dict[str, Any]:
    """Per gate: rejections, symbols rejected, the commonest reason; and each symbol's latest verdict.

    ``day`` None = :func:`daytrading.ops.sessions.choose_session`'s default (said in the result).
    """
    from daytrading.ops.sessions import choose_session

    choice = choose_session(coord, day)
    day = choice.day
    decisions = coord.get_gate_decisions(None, day, 100_000)
    gates: dict[str, dict[str, Any]] = {}
    latest: dict[str, dict[str, Any]] = {}
    for d in decisions:  # newest first
        latest.setdefault(d["symbol"], d)
        if d["passed"]:
            continue
        g = gates.setdefault(d["gate"], {"rejections": 0, "symbols": set(), "reasons": {}})
        g["rejections"] += 1
        g["symbols"].add(d["symbol"])
        g["reasons"][d["reason"]] = g["reasons"].get(d["reason"], 0) + 1
    by_gate = sorted(
        ({"gate": k, "rejections": v["rejections"], "symbols": len(v["symbols"]),
          "top_reason": max(v["reasons"].items(), key=lambda kv: kv[1])[0]} for k, v in gates.items()),
        key=lambda r: -r["rejections"])
    return {**choice.as_dict(), "by_gate": by_gate,
            "latest": sorted(latest.values(), key=lambda d: d["symbol"])}


def why_cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading why``."""
    from daytrading.cli import _iso_date

    parser.add_argument("symbol", nargs="?", help="the symbol to explain")
    parser.add_argument("--summary", action="store_true", help="rejections by gate for every symbol")
    parser.add_argument("--date", type=_iso_date,
                        help="session date (default: current session, else the latest recorded)")
    parser.add_argument("--limit", type=int, default=30, help="decisions to show for the symbol")
    parser.add_argument("--json", action="store_true")


def _print_why_summary(con: Any, data: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"gate rejections, {data['session_label']}")
    for col in ("gate", "rejections", "symbols", "commonest reason"):
        t.add_column(col)
    for r in data["by_gate"]:
        t.add_row(r["gate"], str(r["rejections"]), str(r["symbols"]), r["top_reason"])
    if not data["by_gate"]:
        t.caption = "no rejections recorded"
    con.print(t)
    t = Table(title="latest verdict per symbol")
    for col in ("symbol", "time", "gate", "verdict", "reason"):
        t.add_column(col)
    for d in data["latest"]:
        t.add_row(d["symbol"], _hm(d["ts"]), d["gate"], "pass" if d["passed"] else "REJECT", d["reason"])
    con.print(t)


def why_cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading why SYMBOL`` / ``why --summary``; exit 2 when neither is given."""
    from rich.table import Table

    from daytrading.ops import console, open_db

    if not args.symbol and not args.summary:
        print("why: give a SYMBOL or --summary")
        return 2
    coord = open_db(settings, "why")
    data = why_summary(coord, args.date) if args.summary else why_symbol(coord, args.symbol, args.date, args.limit)
    if args.json:
        print(json.dumps(data, default=str, indent=2))
        return 0
    con = console()
    if args.summary:
        _print_why_summary(con, data)
        return 0
    pos, closed = data["position"], data["closed_today"]
    if pos:
        con.print(f"{data['symbol']}: {pos['status']} {pos['quantity']:g} sh @ {_num(pos['entry_price'])} "
                  f"(target {_num(pos['profit_target_price'])}, stop {_num(pos['stop_loss_price'])})")
    if closed:
        con.print(f"{data['symbol']}: closed today at {_hm(closed['timestamp'])} ({closed['exit_reason']}) — "
                  "no re-entry this session")
    if not pos and not closed:
        con.print(f"{data['symbol']}: no position and not closed in {data['session_label']}")
    t = Table(title=f"latest gate decisions for {data['symbol']}, {data['session_label']}")
    for col in ("time", "gate", "verdict", "reason", "values"):
        t.add_column(col)
    for d in data["decisions"]:
        t.add_row(_hm(d["ts"]), d["gate"], "pass" if d["passed"] else "REJECT", d["reason"],
                  json.dumps(d["compared"], default=str) if d["compared"] else "")
    if not data["decisions"]:
        t.caption = "no decisions recorded (not scanned, or no bar evaluated yet)"
    con.print(t)
    return 0
