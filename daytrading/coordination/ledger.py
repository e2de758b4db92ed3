"""The execution ledger as pure functions: what a position bought, sold, paid and made.

Every entry and exit execution is one :class:`Execution`, keyed by IB's ``execId`` (the
``executions`` table; :meth:`daytrading.coordination.Coordinator.record_executions` writes
it idempotently). A position's *lot* is the executions of its symbol since it was claimed
(:func:`lot`); :func:`summarize` turns a lot into the figures of its ``trades`` row, and
:func:`held_estimate` is the upper bound on held shares that exits are sized against.

Why a ledger: IB sends an order's ``execDetails`` (and ``orderStatus``) to its owner at
once, but the position stream separately and often later. Right after a SELL fill the
stream still shows the shares as held; sizing a SELL from it sells them twice.

Units: shares (positive), dollars per share, commissions and P&L in dollars; times
tz-aware UTC. ``side`` is IB's ``BOT`` (bought) or ``SLD`` (sold).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

BOUGHT, SOLD = "BOT", "SLD"


@dataclass(frozen=True)
class Execution:
    """One IB execution (a fill). ``commission`` is ``None`` until IB's commission report arrives."""

    exec_id: str
    symbol: str
    side: str
    shares: float
    price: float
    time: datetime
    commission: float | None = None
    realized_pnl: float | None = None
    perm_id: int | None = None
    order_id: int | None = None
    client_id: int | None = None
    order_ref: str | None = None
    account: str | None = None

    def __post_init__(self) -> None:
        if self.side not in (BOUGHT, SOLD):
            raise ValueError(f"execution {self.exec_id}: side must be BOT or SLD, got {self.side!r}")
        if not self.shares > 0:
            raise ValueError(f"execution {self.exec_id}: shares must be positive, got {self.shares!r}")

    @property
    def signed(self) -> float:
        """Shares with sign: + bought, − sold."""
        return self.shares if self.side == BOUGHT else -self.shares


@dataclass(frozen=True)
class LotSummary:
    """A position's executions summed up (the ``trades`` row's figures).

    Attributes:
        bought, sold: shares.
        avg_entry, avg_exit: volume-weighted prices in dollars (``None`` without such fills).
        commission: every commission of the lot in dollars, both legs (reports not yet in count 0).
        pnl: realised P&L in dollars of the sold shares, all commissions deducted: Σ sells −
            sold × average entry − commission (IB's ``realizedPNL`` summed over a round trip
            equals it). ``None`` when the entry price is unknown.
    """

    bought: float
    sold: float
    avg_entry: float | None
    avg_exit: float | None
    commission: float
    pnl: float | None

    @property
    def net(self) -> float:
        """Bought minus sold, shares."""
        return self.bought - self.sold


def lot(executions: Iterable[Execution], symbol: str, since: datetime | None) -> list[Execution]:
    """The executions of ``symbol`` at or after ``since`` (less one second of clock skew), by time.

    ``since`` is the position's claim (or adoption) time; ``None`` takes every execution given.
    """
    start = since - timedelta(seconds=1) if since is not None else None
    out = [e for e in executions if e.symbol == symbol and (start is None or e.time >= start)]
    return sorted(out, key=lambda e: (e.time, e.exec_id))


def summarize(executions: Iterable[Execution], entry_price: float | None = None) -> LotSummary:
    """Bought, sold, average prices, commissions and realised P&L of one lot.

    ``entry_price`` (dollars) is used when the lot holds no BUY (a position bought by hand or
    before the ledger existed); the lot's own BUYs win otherwise.
    """
    bought = sold = buy_value = sell_value = fees = 0.0
    for e in executions:
        fees += e.commission or 0.0
        if e.side == BOUGHT:
            bought += e.shares
            buy_value += e.shares * e.price
        else:
            sold += e.shares
            sell_value += e.shares * e.price
    avg_entry = buy_value / bought if bought > 0 else entry_price
    avg_exit = sell_value / sold if sold > 0 else None
    pnl = None
    if avg_entry is not None and not math.isnan(avg_entry):
        pnl = round(sell_value - sold * avg_entry - fees, 6)
    return LotSummary(bought, sold, avg_entry, avg_exit, round(fees, 6), pnl)


def held_estimate(bought: float, sold: float, broker: float | None) -> float:
    """Shares that can be sold without going short: ``min(bought − sold, broker)``, at least 0.

    Args:
        bought: the larger of the ledger's BUY shares and the last broker position known to
            include every SELL of the lot (see :class:`daytrading.bots.exit_plan.Snapshot`).
        sold: the ledger's SELL shares (this process's own executions arrive before the
            position stream moves, so this is never behind our own sells).
        broker: the broker's reported position (may lag behind recent fills); ``None`` if unknown.

    Both figures only over-state what is held when they lag (a SELL not yet seen); the
    smaller of the two is therefore the safe one.
    """
    ledger = bought - sold
    value = ledger if broker is None else min(ledger, broker)
    return max(0.0, value)
