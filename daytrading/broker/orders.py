"""Order helpers shared by the bots: order references, status sets, persisting trades.

Every order this system sends carries an ``orderRef`` that says who sent it and why,
so a restarted bot (or a human in TWS) can tell a profit target from a stop exit:

* ``dt-entry:<SYMBOL>`` — the day-trader's marketable limit BUY,
* ``dt-target:<SYMBOL>`` — the exit-manager's profit-target SELL LMT,
* ``dt-disaster:<SYMBOL>`` — the exit-manager's broker-side disaster STP SELL (OCA with the target),
* ``dt-exit:<SYMBOL>:<reason>`` — the exit-manager's SELL MKT (stop, eod, …) or cover BUY MKT,
* ``dt-liquidate:<SYMBOL>`` — liquidate-all.
"""

from __future__ import annotations

import asyncio
import logging
import math

from collections.abc import Iterable

from ib_async import IB, Fill, Position, Trade

from daytrading.coordination import Coordinator
from daytrading.coordination.ledger import Execution

log = logging.getLogger(__name__)

#: ib_async ``OrderStatus`` values after which an order can never fill again.
DONE_STATES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})

ENTRY_REF = "dt-entry"
TARGET_REF = "dt-target"
EXIT_REF = "dt-exit"
DISASTER_REF = "dt-disaster"
LIQUIDATE_REF = "dt-liquidate"


def order_ref(kind: str, symbol: str, reason: str | None = None) -> str:
    """``kind:SYMBOL[:reason]`` (see the module docstring)."""
    return f"{kind}:{symbol.upper()}" + (f":{reason}" if reason else "")


def parse_order_ref(ref: str | None) -> tuple[str, str, str | None] | None:
    """Inverse of :func:`order_ref`: ``(kind, symbol, reason)`` or ``None`` for foreign orders."""
    if not ref or not ref.startswith("dt-"):
        return None
    parts = ref.split(":")
    if len(parts) < 2:
        return None
    return parts[0], parts[1], parts[2] if len(parts) > 2 else None


def is_done(trade: Trade) -> bool:
    """True when the order is in a terminal state (filled, cancelled, rejected)."""
    return trade.orderStatus.status in DONE_STATES


def filled_quantity(trade: Trade) -> float:
    """Shares filled so far (from the executions, falling back to the order status)."""
    by_fills = sum(f.execution.shares for f in trade.fills)
    return float(max(by_fills, trade.orderStatus.filled or 0.0))


def average_fill_price(trade: Trade) -> float | None:
    """Volume-weighted average fill price in dollars, or ``None`` before any fill."""
    qty = sum(f.execution.shares for f in trade.fills)
    if qty > 0:
        return sum(f.execution.shares * f.execution.price for f in trade.fills) / qty
    price = trade.orderStatus.avgFillPrice
    return float(price) if price and not math.isnan(price) and price > 0 else None


def fill_commission(fill: Fill) -> float:
    """Commission of one fill in dollars; 0 until IB's commission report arrives (IB sends
    ``1.7976931348623157e308``, its "unset" double, before that)."""
    c = fill.commissionReport.commission if fill.commissionReport else 0.0
    return float(c) if c and not math.isnan(c) and c < 1e9 else 0.0


def execution_of(fill: Fill) -> Execution:
    """A fill as a ledger :class:`~daytrading.coordination.ledger.Execution` (commission ``None``
    until IB's commission report for its execId has arrived)."""
    e, report = fill.execution, fill.commissionReport
    fee = fill_commission(fill) if report is not None and report.execId else None
    realized = report.realizedPNL if report is not None and report.execId else None
    if realized is not None and (math.isnan(realized) or abs(realized) > 1e9):
        realized = None
    return Execution(
        exec_id=e.execId, symbol=fill.contract.symbol, side=e.side, shares=float(e.shares), price=float(e.price),
        time=e.time, commission=fee, realized_pnl=realized, perm_id=e.permId or None, order_id=e.orderId,
        client_id=e.clientId, order_ref=e.orderRef or None, account=e.acctNumber or None,
    )


def commission(trade: Trade) -> float:
    """Commissions reported for the trade's fills, in dollars (0 until reports arrive)."""
    return sum(fill_commission(f) for f in trade.fills)


def rejection_reason(trade: Trade) -> str:
    """The broker's last error message for the order (e.g. ``Error 201 …``), or ''."""
    for entry in reversed(trade.log):
        if entry.errorCode:
            return f"Error {entry.errorCode}: {entry.message}"
    return ""


def record_trade(coord: Coordinator, trade: Trade, purpose: str, *, strict: bool = False) -> None:
    """Insert/update the ``orders`` row for ``trade`` (ids, permId, status, fills).

    Never raises: a database hiccup must not stop order handling (it is logged); with
    ``strict`` (a journal that retries until the write lands) the database error is raised.
    """
    o, st = trade.order, trade.orderStatus
    try:
        coord.record_order(
            client_id=o.clientId,
            order_id=o.orderId,
            perm_id=o.permId or st.permId or None,
            symbol=trade.contract.symbol,
            side=o.action,
            order_type=o.orderType,
            quantity=float(o.totalQuantity),
            status=st.status or "PendingSubmit",
            limit_price=float(o.lmtPrice) if o.orderType == "LMT" else None,
            time_in_force=o.tif or "DAY",
            order_ref=o.orderRef or None,
            purpose=purpose,
            filled_quantity=filled_quantity(trade),
            avg_fill_price=average_fill_price(trade),
        )
    except Exception:  # noqa: BLE001 - recording must not break trading
        if strict:
            raise
        log.exception("could not record order", extra={"symbol": trade.contract.symbol, "order_id": o.orderId})


async def wait_done(trade: Trade, timeout: float) -> bool:
    """Wait until ``trade`` is terminal or ``timeout`` wall seconds pass; True when terminal."""
    if is_done(trade):
        return True
    try:
        await asyncio.wait_for(_until_done(trade), timeout)
    except TimeoutError:
        return is_done(trade)
    return True


async def _until_done(trade: Trade) -> None:
    while not is_done(trade):
        await trade.statusEvent


async def fresh_positions(ib: IB, timeout: float = 10.0) -> dict[str, tuple[float, float]]:
    """Ask the broker for its positions now: ``{symbol: (shares, average cost $)}`` (non-zero only).

    Raises:
        TimeoutError: the broker did not answer within ``timeout`` wall seconds.
    """
    return positions_by_symbol(await asyncio.wait_for(ib.reqPositionsAsync(), timeout))


def positions_by_symbol(positions: Iterable[Position]) -> dict[str, tuple[float, float]]:
    """Non-zero stock positions as ``{symbol: (shares, average cost $)}``."""
    return {p.contract.symbol: (float(p.position), float(p.avgCost))
            for p in positions if p.contract.secType == "STK" and p.position}
