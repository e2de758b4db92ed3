"""``daytrading liquidate-all`` (emergency flatten) and ``daytrading unfreeze``.

Order of work (architecture invariant 3: liquidate-all takes over the SELLs only after
it has set the global freeze):

1. **freeze**, first through the freeze file beside the database (atomic; works while
   SQLite is locked, full or damaged), then the database flag (giving up after
   :data:`DB_FREEZE_WAIT` seconds; set again at the end when the lock has cleared). If
   neither channel can be set, nothing is sold: the bots could buy straight back.
   Then wait (a few seconds at most) until a live exit-manager's heartbeat (row or
   heartbeat file) says ``frozen``, so it stands down instead of re-placing the
   targets about to be cancelled;
2. connect with ``ib.tools_client_id`` and **cancel every open order of every client**
   (``reqGlobalCancel``), then wait until the broker reports no working order;
3. read the broker's positions (the truth) and send one market order per stock
   position: SELL a long, BUY back a short (``orderRef`` ``dt-liquidate:SYMBOL``);
4. wait for the fills (``--timeout`` wall seconds), check the broker is flat and has
   no working order left (a second global cancel if a late order appeared);
5. **database after the broker**: close each liquidated row with reason
   ``liquidate_all`` at the real average fill price, release ``PENDING_ENTRY`` claims.
   Rows whose position the broker no longer holds are left to the exit-manager's
   reconciliation after ``unfreeze`` (their exit price is unknown here).

The database may be missing, locked or corrupt: the broker part runs anyway (order
rows are written fail-fast, so a lock never delays a SELL) and the report says the
database could not be updated. The exit code is 1 when the broker part failed (no
connection, an order not filled, a position or order left) or no freeze could be set.
The freeze stays set until ``daytrading unfreeze`` (which clears the file and the flag).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ib_async import IB, MarketOrder, Trade

from daytrading.broker.connection import broker_endpoint, connect, qualify_stocks
from daytrading.broker.orders import (
    DONE_STATES,
    LIQUIDATE_REF,
    average_fill_price,
    commission,
    filled_quantity,
    order_ref,
    record_trade,
    wait_done,
)
from daytrading.config import Settings
from daytrading.coordination import Coordinator
from daytrading.coordination import freeze as side
from daytrading.errors import DaytradingError

BOT = "liquidate-all"
#: Longest wait (wall seconds) for a running exit-manager to report ``frozen``.
STAND_DOWN_WAIT = 10.0
#: Longest wait (wall seconds) for the database freeze flag before the broker part (the file already holds).
DB_FREEZE_WAIT = 2.0
#: Longest wait (wall seconds) for one order row during the broker part (written again at the end).
DB_WRITE_WAIT = 0.5
POLL = 0.1


@dataclass
class SymbolAction:
    """What liquidate-all did for one broker position (shares; prices in dollars)."""

    symbol: str
    position: float
    side: str
    quantity: float
    status: str = "not sent"
    filled: float = 0.0
    avg_price: float | None = None
    perm_id: int | None = None
    commission: float = 0.0
    database: str = ""


@dataclass
class LiquidationResult:
    """The outcome; ``broker_ok`` decides the exit code."""

    endpoint: str
    frozen: bool = False
    frozen_file: bool = False
    frozen_db: bool = False
    freeze_error: str | None = None
    exit_manager_stood_down: bool | None = None
    db_error: str | None = None
    broker_error: str | None = None
    open_orders_before: int = 0
    orders_left: list[str] = field(default_factory=list)
    actions: list[SymbolAction] = field(default_factory=list)
    positions_left: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    db_notes: list[str] = field(default_factory=list)

    @property
    def broker_ok(self) -> bool:
        """True when frozen, connected, every order cancelled and every position flat."""
        return (self.frozen and self.broker_error is None and not self.orders_left and not self.positions_left
                and all(a.status == "Filled" for a in self.actions))


# ---------------------------------------------------------------------- database side


def _open_db(settings: Settings) -> tuple[Coordinator | None, str | None]:
    """The coordinator, or ``(None, message)`` when the database is missing or unusable."""
    from daytrading.ops import open_db

    try:
        return open_db(settings, BOT), None
    except Exception as exc:  # noqa: BLE001 - any database failure must not stop the broker part
        return None, f"{type(exc).__name__}: {exc}" if not isinstance(exc, DaytradingError) else str(exc)


def _exit_manager_beat(coord: Coordinator | None, settings: Settings) -> dict[str, Any] | None:
    """The exit-manager's freshest heartbeat: its database row (read fail-fast) or its heartbeat file."""
    beats = []
    if coord is not None:
        with contextlib.suppress(Exception), coord.fail_fast(DB_WRITE_WAIT):  # locked or damaged: the file tells
            beats.append(coord.get_heartbeats().get("exit-manager"))
    beats.append(side.read_heartbeat_files(settings.paths.database).get("exit-manager"))
    beats = [b for b in beats if b]
    for b in beats:
        if isinstance(b["last_seen"], str):
            b["last_seen"] = datetime.fromisoformat(b["last_seen"])
        if b["last_seen"].tzinfo is None:
            b["last_seen"] = b["last_seen"].replace(tzinfo=UTC)
    return max(beats, key=lambda b: b["last_seen"]) if beats else None


async def _await_stand_down(coord: Coordinator | None, settings: Settings, wait: float) -> bool | None:
    """Wait until a live exit-manager's heartbeat says ``frozen``; None when none is running."""
    from daytrading.clock import wall_time

    def beat() -> dict[str, Any] | None:
        return _exit_manager_beat(coord, settings)

    hb = beat()
    if hb is None or hb.get("state") == "stopped" or \
            wall_time() - hb["last_seen"].timestamp() > settings.intervals.health_check:
        return None
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        hb = beat()
        if hb and hb.get("state") in ("frozen", "stopped"):
            return True
        await asyncio.sleep(POLL)
    return False


def _update_database(coord: Coordinator, result: LiquidationResult, trades: list[Trade]) -> None:
    """Record the orders, close the liquidated rows (reason ``liquidate_all``), release dead claims."""
    for trade in trades:
        record_trade(coord, trade, "liquidate_all")
    for a in result.actions:
        if a.side != "SELL" or a.filled <= 0 or a.avg_price is None:
            continue
        row = coord.get_position(a.symbol)
        if row is None:
            a.database = "no row (position unknown to the bots)"
            continue
        trade = coord.close_position(a.symbol, a.avg_price, "liquidate_all", quantity=a.filled,
                                     commission=a.commission, exit_perm_id=a.perm_id)
        a.database = "closed (liquidate_all)" if trade else "already closed"
    for row in coord.get_active_positions():
        if row.status == "PENDING_ENTRY":
            if coord.release_claim(row.symbol, "liquidate-all"):
                result.db_notes.append(f"{row.symbol}: entry claim released")
        elif row.symbol not in result.positions_left:
            result.db_notes.append(
                f"{row.symbol}: {row.status} row but no broker position; the exit-manager reconciles it after "
                "`daytrading unfreeze`")
    coord.record_event("CRITICAL", "liquidate_all",
                       f"liquidate-all: {sum(1 for a in result.actions if a.status == 'Filled')} positions "
                       f"flattened, {result.open_orders_before} open orders cancelled",
                       data={"actions": [a.__dict__ for a in result.actions],
                             "positions_left": result.positions_left, "orders_left": result.orders_left})


# ---------------------------------------------------------------------- broker side


async def _working_orders(ib: IB) -> list[Trade]:
    trades = await ib.reqAllOpenOrdersAsync()
    return [t for t in trades if t.orderStatus.status not in DONE_STATES]


async def cancel_everything(ib: IB, timeout: float) -> tuple[int, list[Trade]]:
    """``reqGlobalCancel`` and wait until no working order remains.

    Returns:
        (orders working before the cancel, orders still working at the deadline).
    """
    before = await _working_orders(ib)
    ib.reqGlobalCancel()
    deadline = time.monotonic() + timeout
    left = before
    while time.monotonic() < deadline:
        left = await _working_orders(ib)
        if not left:
            break
        await asyncio.sleep(0.25)
    return len(before), left


def _describe(t: Trade) -> str:
    o = t.order
    return (f"{t.contract.symbol} {o.action} {o.totalQuantity:g} {o.orderType} (client {o.clientId}, "
            f"order {o.orderId}, {t.orderStatus.status})")


async def _broker_positions(ib: IB, timeout: float) -> tuple[dict[str, float], list[str]]:
    positions = await asyncio.wait_for(ib.reqPositionsAsync(), timeout)
    stocks: dict[str, float] = {}
    other: list[str] = []
    for p in positions:
        if not p.position:
            continue
        if p.contract.secType == "STK":
            stocks[p.contract.symbol] = stocks.get(p.contract.symbol, 0.0) + float(p.position)
        else:
            other.append(f"{p.contract.localSymbol or p.contract.symbol} {p.contract.secType} {p.position:g}")
    return {s: q for s, q in stocks.items() if q}, other


def _record_fast(coord: Coordinator | None, trade: Trade) -> None:
    """The order row, giving up after :data:`DB_WRITE_WAIT` s: a locked database never delays the next SELL."""
    if coord is not None:
        with coord.fail_fast(DB_WRITE_WAIT):
            record_trade(coord, trade, "liquidate_all")


async def _flatten(ib: IB, coord: Coordinator | None, positions: dict[str, float], timeout: float,
                   result: LiquidationResult) -> list[Trade]:
    """One market order per position; returns the trades (their rows are written again at the end)."""
    contracts = await qualify_stocks(ib, sorted(positions))
    trades: list[tuple[SymbolAction, Trade]] = []
    for symbol, qty in sorted(positions.items()):
        action = SymbolAction(symbol, qty, "SELL" if qty > 0 else "BUY", abs(qty))
        result.actions.append(action)
        contract = contracts.get(symbol)
        if contract is None:
            action.status = "not sent: contract unknown"
            continue
        order = MarketOrder(action.side, action.quantity, orderRef=order_ref(LIQUIDATE_REF, symbol), tif="DAY")
        trade = ib.placeOrder(contract, order)
        trades.append((action, trade))
    for _, trade in trades:
        _record_fast(coord, trade)
    await asyncio.gather(*(wait_done(t, timeout) for _, t in trades))
    for action, trade in trades:
        action.status = trade.orderStatus.status if trade.isDone() else f"timeout ({trade.orderStatus.status})"
        action.filled = filled_quantity(trade)
        action.avg_price = average_fill_price(trade)
        action.perm_id = trade.order.permId or trade.orderStatus.permId or None
        action.commission = commission(trade)
        _record_fast(coord, trade)
    return [t for _, t in trades]


async def liquidate_all(settings: Settings, *, timeout: float = 60.0, client_id: int | None = None) -> LiquidationResult:
    """Freeze, cancel everything, flatten every position, then update the database.

    Args:
        timeout: wall seconds for each broker wait (cancels confirmed, fills).
        client_id: API client id (default ``ib.tools_client_id``).

    Never raises for broker or database trouble: the result says what failed.
    """
    result = LiquidationResult(endpoint=str(broker_endpoint(settings)))
    coord = _freeze(settings, result)
    if not result.frozen:
        return result
    result.exit_manager_stood_down = await _await_stand_down(coord, settings, min(STAND_DOWN_WAIT, timeout))
    trades: list[Trade] = []
    try:
        ib = await connect(settings, client_id if client_id is not None else settings.ib.tools_client_id)
    except DaytradingError as exc:
        result.broker_error = str(exc)
        return result
    try:
        result.open_orders_before, left = await cancel_everything(ib, timeout)
        result.orders_left = [_describe(t) for t in left]
        positions, result.skipped = await _broker_positions(ib, timeout)
        if positions:
            trades = await _flatten(ib, coord, positions, timeout, result)
        # a late order (placed before a bot saw the freeze) would be a new risk: cancel again
        late = await _working_orders(ib)
        if late:
            _, left = await cancel_everything(ib, timeout)
        result.orders_left = [_describe(t) for t in left] if late else result.orders_left
        result.positions_left, _ = await _broker_positions(ib, timeout)
    except (ConnectionError, TimeoutError, OSError) as exc:
        result.broker_error = f"broker connection failed during liquidation: {type(exc).__name__}: {exc}"
    finally:
        ib.disconnect()
    if coord is None:  # broker first, database after: try once more (it may have been locked)
        coord, err = _open_db(settings)
        if coord is None:
            result.db_error = err
    if coord is not None:
        try:
            if not result.frozen_db:
                coord.freeze("liquidate-all")
                result.frozen_db = True
            _update_database(coord, result, trades)
            result.db_error = None
        except Exception as exc:  # noqa: BLE001
            result.db_error = f"{type(exc).__name__}: {exc}"
    return result


def _freeze(settings: Settings, result: LiquidationResult) -> Coordinator | None:
    """Set the freeze: the file first, then the database flag (fail-fast). Returns the coordinator or None.

    ``result.frozen`` is True when at least one channel holds the freeze; otherwise
    ``result.freeze_error`` says why and the caller must not sell.
    """
    errors = []
    try:
        side.set_freeze(settings.paths.database, "liquidate-all", BOT)
        result.frozen_file = True
    except OSError as exc:
        errors.append(f"freeze file {side.freeze_file(settings.paths.database)}: {exc}")
    coord, result.db_error = _open_db(settings)
    if coord is not None:
        try:
            with coord.fail_fast(DB_FREEZE_WAIT):
                coord.freeze("liquidate-all")
            result.frozen_db = True
        except Exception as exc:  # noqa: BLE001 - locked (set again at the end), full or damaged
            result.db_error = f"{type(exc).__name__}: {exc}"
            errors.append(f"database flag: {result.db_error}")
    else:
        errors.append(f"database flag: {result.db_error}")
    result.frozen = result.frozen_file or result.frozen_db
    if not result.frozen:
        result.freeze_error = "; ".join(errors)
    return coord


# ---------------------------------------------------------------------- command line


def render_result(result: LiquidationResult) -> Any:
    """Rich renderable: one row per position plus what is left and the database outcome."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    if result.freeze_error:
        parts.append(Text(f"FREEZE could not be set ({result.freeze_error}); NOTHING was cancelled or sold, "
                          "because the bots could buy straight back. Free the disk or fix the folder's permissions, "
                          "then run liquidate-all again (or flatten by hand in TWS)", style="bold red"))
    if result.broker_error:
        parts.append(Text(f"BROKER: {result.broker_error}", style="bold red"))
    table = Table(title=f"liquidate-all at {result.endpoint}: {result.open_orders_before} open orders cancelled")
    for col in ("symbol", "position", "order", "status", "filled", "avg price $", "database"):
        table.add_column(col)
    for a in result.actions:
        table.add_row(a.symbol, f"{a.position:g}", f"{a.side} {a.quantity:g} MKT", a.status, f"{a.filled:g}",
                      "-" if a.avg_price is None else f"{a.avg_price:.4f}", a.database or "-")
    if not result.actions:
        table.caption = "no positions at the broker" if result.broker_error is None else "broker not reached"
    parts.append(table)
    for label, items in (("positions left", [f"{s} {q:g}" for s, q in result.positions_left.items()]),
                         ("orders left", result.orders_left), ("not handled (not stocks)", result.skipped)):
        if items:
            parts.append(Text(f"{label}: " + "; ".join(items), style="bold red"))
    if result.frozen:
        stood = {True: "the exit-manager stood down", False: "the exit-manager did NOT report 'frozen' in time",
                 None: "no exit-manager running"}[result.exit_manager_stood_down]
        channels = " and ".join(c for c, ok in (("freeze file", result.frozen_file), ("database flag", result.frozen_db))
                                if ok)
        parts.append(Text(f"global freeze set ({channels}; {stood}); `daytrading unfreeze` lets the bots trade again",
                          style="yellow"))
    if result.db_error:
        parts.append(Text(
            "DATABASE could not be updated (" + result.db_error + "). The broker part "
            + ("succeeded" if result.broker_ok else "is reported above")
            + "; repair or move the database aside (`daytrading db integrity`), then the exit-manager's "
            "reconciliation closes the rows.", style="bold red"))
    parts.extend(Text(n) for n in result.db_notes)
    parts.append(Text("ALL FLAT, nothing working" if result.broker_ok else "LIQUIDATION INCOMPLETE",
                      style="bold green" if result.broker_ok else "bold red"))
    return Group(*parts)


def _confirm(settings: Settings) -> bool:
    endpoint = broker_endpoint(settings)
    prompt = (f"liquidate-all: FREEZE both bots, cancel EVERY open order and flatten EVERY position at market "
              f"on {endpoint} (mode {settings.mode}). Type 'yes' to continue: ")
    try:
        answer = input(prompt)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading liquidate-all``."""
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="wall seconds to wait for cancels and for fills (default 60)")
    from daytrading.cli import client_id_arg

    parser.add_argument("--client-id", type=client_id_arg, default=None,
                        help="API client id (default ib.tools_client_id)")


def cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading liquidate-all``: 0 when flat with nothing working, 1 when the broker part failed."""
    from daytrading.ops import console

    if args.timeout <= 0:
        print(f"liquidate-all: --timeout must be positive, got {args.timeout}")
        return 2
    if not args.yes and not _confirm(settings):
        print("liquidate-all: not confirmed; nothing done")
        return 1
    result = asyncio.run(liquidate_all(settings, timeout=args.timeout, client_id=args.client_id))
    console().print(render_result(result))
    return 0 if result.broker_ok else 1


def unfreeze_cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading unfreeze``: clear the global freeze, database flag and freeze file (exit 0 whether or
    not it was set). A damaged or locked database is an error (the freeze file is then kept)."""
    from pathlib import Path

    from daytrading.ops import open_db

    if not Path(settings.paths.database).exists():  # liquidate-all may have frozen a database not created yet
        if side.clear_freeze(settings.paths.database):
            print(f"freeze file cleared (no database at {settings.paths.database}); the bots may trade")
        else:
            print("no global freeze was set")
        return 0
    coord = open_db(settings, "unfreeze")
    info = coord.freeze_info()
    if coord.unfreeze():  # the database flag, then the freeze file
        print(f"global freeze cleared (was set by {info.get('set_by') if info else '?'}: "
              f"{info.get('value') if info else ''}); the bots resume trading")
    else:
        print("no global freeze was set")
    return 0
