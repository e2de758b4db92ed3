"""The exit-manager's decisions as pure functions: ``plan(rows, snapshot, ledger, now, settings)``.

The exit-manager takes a broker :class:`Snapshot` first (positions, our working orders,
quotes), reads the rows and the execution ledger, then :func:`plan` decides and the
run loop only carries the returned :class:`Action` objects out. Tests drive :func:`plan`
directly, without a gateway (``tests/bots/test_exit_plan.py``).

Trading state (one :class:`OrderGate`, after NautilusTrader's RiskEngine ``TradingState``):

* ``ACTIVE`` — every order allowed;
* ``REDUCING`` — after the EOD flatten time: only orders that shrink a position (market
  exits, covers, cancels), no new targets;
* ``HALTED`` — the global freeze (liquidate-all owns the account): no order at all.

A symbol in back-off (rejected targets) gets no new target before its retry time.

Held shares (what a SELL may be sized to) never come from the position stream alone:
:func:`held` takes the smaller of the broker's position and the ledger's
``bought − sold`` (:func:`daytrading.coordination.ledger.held_estimate`). ``bought`` is the
ledger's BUYs or, when those are missing (a hand-opened position, a day-trader that died
before journalling), the largest broker position seen before the lot's first SELL.

Units: shares, dollars per share; ``stop_loss`` / ``profit_target`` / ``disaster_stop`` are
fractions of the entry price; times are tz-aware (market clock), durations market seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from daytrading.clock import calendar
from daytrading.config import Settings
from daytrading.coordination.ledger import BOUGHT, SOLD, Execution, held_estimate, lot
from daytrading.db.models import PositionStatus

class TradingState(StrEnum):
    """What the order gate lets through (see the module docstring)."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


@dataclass(frozen=True)
class OrderGate:
    """The one place that says whether an order may be sent.

    Attributes:
        state: :class:`TradingState`.
        reason: why (``frozen``, ``after flatten``, ``active``).
        backoff_until: symbol → market time before which no new target is placed for it
            (reducing orders keep their own retry limits in the executor).
    """

    state: TradingState
    reason: str
    backoff_until: Mapping[str, datetime] = field(default_factory=dict)

    def allows(self, symbol: str, *, reducing: bool, now: datetime) -> bool:
        """True when an order for ``symbol`` may go out now; ``reducing`` orders only shrink a position."""
        if self.state is TradingState.HALTED:
            return False
        if reducing:
            return True  # a market exit or cover has its own retry limits
        if self.state is TradingState.REDUCING:
            return False
        until = self.backoff_until.get(symbol)
        return until is None or now >= until


def order_gate(*, frozen: bool, after_flatten: bool, backoff_until: Mapping[str, datetime] | None = None) -> OrderGate:
    """The gate for this moment: frozen → HALTED, after the flatten time → REDUCING, else ACTIVE."""
    backoff = dict(backoff_until or {})
    if frozen:
        return OrderGate(TradingState.HALTED, "frozen", backoff)
    if after_flatten:
        return OrderGate(TradingState.REDUCING, "after flatten", backoff)
    return OrderGate(TradingState.ACTIVE, "active", backoff)


def after_flatten(now: datetime, settings: Settings) -> bool:
    """True at or after ``close − eod_flatten_minutes`` of an XNYS session (early closes included)."""
    cal = calendar()
    day = now.date()
    return cal.is_session(day) and now >= cal.flatten_time(day, settings.eod_flatten_minutes)


# ---------------------------------------------------------------------- the snapshot


@dataclass(frozen=True)
class WorkingOrder:
    """One of this client's working SELL orders (``kind``: ``target``, ``disaster`` or ``exit``)."""

    order_id: int
    symbol: str
    kind: str
    quantity: float  # total shares of the order
    filled: float
    price: float | None  # limit (target) or stop (disaster) price, dollars
    pending_cancel: bool = False
    oca_group: str = ""  # IB's ocaGroup ("" when the order is in none)

    @property
    def remaining(self) -> float:
        """Shares still to fill."""
        return max(0.0, self.quantity - self.filled)


@dataclass(frozen=True)
class Quote:
    """A price for a stop decision: ``price`` dollars at market time ``time``; ``delayed`` when
    the ticker's market data type is 3 or 4 (15–20 minutes late at IB)."""

    price: float
    time: datetime
    delayed: bool = False


@dataclass(frozen=True)
class Snapshot:
    """The broker's state, taken before any decision.

    Attributes:
        positions: symbol → (signed shares, average cost $) as the broker reports them.
        orders: this client's working SELL orders.
        quotes: symbol → latest :class:`Quote`.
        exiting: symbols with an exit in flight in this process (the in-memory exit lock).
        bought_floor: symbol → the last broker-based ``bought`` figure (see the module docstring).
        traded_today: symbols the system traded (rows, closes, executions) this session.
        frozen: the global freeze is set.
        reconcile: first snapshot after a (re)connect (close vanished rows at once).
    """

    positions: Mapping[str, tuple[float, float]]
    orders: Sequence[WorkingOrder] = ()
    quotes: Mapping[str, Quote] = field(default_factory=dict)
    exiting: frozenset[str] = frozenset()
    bought_floor: Mapping[str, float] = field(default_factory=dict)
    traded_today: frozenset[str] = frozenset()
    frozen: bool = False
    reconcile: bool = False
    backoff_until: Mapping[str, datetime] = field(default_factory=dict)


# ---------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Action:
    """Base of every decision; ``symbol`` it concerns."""

    symbol: str


@dataclass(frozen=True)
class Adopt(Action):
    """Insert an OPEN row (agent ``adopted``) for a broker position without one."""

    quantity: float
    avg_cost: float


@dataclass(frozen=True)
class Confirm(Action):
    """Mark a claim OPEN: its entry filled ``quantity`` at ``price`` (its day-trader did not)."""

    quantity: float
    price: float


@dataclass(frozen=True)
class ReleaseClaim(Action):
    """Delete a long-dead claim that never filled."""

    reason: str


@dataclass(frozen=True)
class SetQuantity(Action):
    """Store the held quantity on the row."""

    quantity: float


@dataclass(frozen=True)
class PlaceProtection(Action):
    """Place the profit target (SELL LMT) for ``quantity`` and, when ``disaster_price`` is set,
    the broker-side disaster STP in one OCA group with it."""

    quantity: float
    target_price: float
    disaster_price: float | None


@dataclass(frozen=True)
class PlaceDisaster(Action):
    """Place the broker-side disaster STP SELL for ``quantity`` shares at ``price`` dollars in the
    working target's OCA group ``oca_group`` (it went missing: cancelled or rejected at IB)."""

    quantity: float
    price: float
    oca_group: str


@dataclass(frozen=True)
class Resize(Action):
    """Change a working order to ``quantity`` total shares at ``price``."""

    order_id: int
    quantity: float
    price: float


@dataclass(frozen=True)
class Cancel(Action):
    """Cancel a working order."""

    order_id: int
    why: str


@dataclass(frozen=True)
class Watch(Action):
    """Watch the bot-monitored stop at ``stop`` dollars."""

    stop: float


@dataclass(frozen=True)
class Exit(Action):
    """Exit at market: cancel our working SELLs, then sell what is held (``reason`` stop/eod/…)."""

    reason: str
    resume: bool = False  # the row is already EXITING (an exit from before a restart)
    trigger_price: float | None = None


@dataclass(frozen=True)
class Cover(Action):
    """BUY at market ``quantity`` shares to close a short the system made."""

    quantity: float


@dataclass(frozen=True)
class Close(Action):
    """The broker position is gone: close the row from its fills."""

    reason: str | None


@dataclass(frozen=True)
class Raise(Action):
    """Record an event (``level`` INFO/WARNING/CRITICAL, ``kind``, ``message``)."""

    level: str
    kind: str
    message: str


# ---------------------------------------------------------------------- pure helpers


@dataclass(frozen=True)
class Held:
    """Held-share figures of one symbol: ``bought``/``sold`` from the ledger (and the settled
    broker floor), ``broker`` the reported position, ``quantity`` what may be sold."""

    bought: float
    sold: float
    broker: float
    quantity: float
    entry_price: float | None  # average of the lot's BUYs, else None


def held(symbol: str, row: Any, snapshot: Snapshot, executions: Sequence[Execution], now: datetime) -> Held:
    """What a SELL for ``symbol`` may be sized to now (see the module docstring)."""
    since = getattr(row, "claimed_at", None) or getattr(row, "entry_timestamp", None) if row is not None else None
    fills = lot(executions, symbol, since)
    buys = [e for e in fills if e.side == BOUGHT]
    sells = [e for e in fills if e.side == SOLD]
    ledger_bought = sum(e.shares for e in buys)
    sold = sum(e.shares for e in sells)
    broker = snapshot.positions.get(symbol, (0.0, 0.0))[0]
    floor = snapshot.bought_floor.get(symbol, 0.0)
    if not sells:
        # before any SELL a broker position can only lag BUYs (under-state): safe to trust. After
        # one, a position push may lag it by any time on a loaded machine: the floor stays put.
        floor = max(floor, broker)
    bought = max(ledger_bought, floor)
    entry = sum(e.shares * e.price for e in buys) / ledger_bought if ledger_bought > 0 else None
    return Held(bought, sold, broker, held_estimate(bought, sold, broker), entry)


def disaster_price(entry: float, settings: Settings) -> float | None:
    """Broker-side stop price: ``entry × (1 − disaster_stop)`` (default 2 × ``stop_loss``), cents;
    ``None`` when switched off (``disaster_stop_enabled = false``)."""
    if not settings.disaster_stop_enabled:
        return None
    frac = settings.disaster_stop if settings.disaster_stop is not None else 2 * settings.stop_loss
    return round(entry * (1 - frac), 2)


def stop_decision(stop: float | None, quote: Quote | None, now: datetime, settings: Settings) -> str | None:
    """Why a stop exit must start now (``"stop"``), or ``None``.

    A quote older than ``max_price_age`` market seconds, or a delayed one without
    ``stop_on_delayed_data``, is not used.
    """
    if stop is None or quote is None or not quote.price > 0 or math.isnan(quote.price):
        return None
    if (now - quote.time).total_seconds() > settings.max_price_age:
        return None
    if quote.delayed and not settings.stop_on_delayed_data:
        return None
    return "stop" if quote.price <= stop else None


def _grace(settings: Settings, speed: float) -> float:
    """Market seconds a claim's day-trader gets to confirm its own fill before the exit-manager does."""
    return max(60.0, 2 * settings.entry.order_timeout, 10.0 * speed)


def recent_window(speed: float) -> float:
    """Market seconds after a row's last update during which a vanished broker position is not
    yet believed (the position stream may lag the row): ``max(5, 5 × speed)``."""
    return max(5.0, 5.0 * speed)


def next_wake(rows: Mapping[str, Any], snapshot: Snapshot, swept_at: datetime, settings: Settings, *,
              speed: float = 1.0) -> datetime:
    """Market time (tz-aware, the clock's zone) of the next sweep that no broker event announces.

    Broker events (fills, position and portfolio pushes, order status, disconnects), exit tasks
    ending and a flip of the freeze file wake the exit-manager by themselves; a crossed stop acts
    on the price event itself. What is left are timers, computed from the sweep at ``swept_at``:

    * the safety sweep, ``intervals.exit_poll`` market seconds later (it also picks up rows other
      processes changed in the database: SQLite tells no other connection);
    * the EOD flatten time (``close − eod_flatten_minutes``, XNYS early closes included);
    * a target's back-off retry time (``snapshot.backoff_until``);
    * a claim's confirm grace and its release (10 × the grace) after ``claimed_at``;
    * the end of :func:`recent_window` after a row's last update (a close deferred by it).

    Only times after ``swept_at`` count (earlier ones were decided by that sweep), so a
    timer that fell due while the sweep ran gives an immediate next sweep and none is lost.
    """
    due = [swept_at + timedelta(seconds=settings.intervals.exit_poll)]
    cal = calendar()
    day = swept_at.date()
    if cal.is_session(day):
        due.append(cal.flatten_time(day, settings.eod_flatten_minutes))
    due += list(snapshot.backoff_until.values())
    grace = timedelta(seconds=_grace(settings, speed))
    recent = timedelta(seconds=recent_window(speed))
    for row in rows.values():
        if row.status == PositionStatus.PENDING_ENTRY and row.claimed_at is not None:
            due += [row.claimed_at + grace, row.claimed_at + 10 * grace]
        updated = row.last_updated or row.entry_timestamp
        if updated is not None:
            due.append(updated + recent)
    return min(t for t in due if t > swept_at)


# ---------------------------------------------------------------------- plan


def plan(  # noqa: C901 - one decision table, case by case as the docstring lists them
    rows: Mapping[str, Any],
    snapshot: Snapshot,
    ledger: Mapping[str, Sequence[Execution]],
    now: datetime,
    settings: Settings,
    *,
    speed: float = 1.0,
) -> list[Action]:
    """Every action this sweep must take, in order.

    Args:
        rows: symbol → :class:`daytrading.coordination.PositionView` (active rows).
        snapshot: the broker's state (:class:`Snapshot`), taken first.
        ledger: symbol → that symbol's executions this session (database ∪ this process's fills).
        now: market time.
        settings: profit target, stop loss, disaster stop, max price age.
        speed: the clock's speed (a replay's claim grace has a wall-time floor).

    Cases, per symbol: frozen → nothing; a short → cover it (if the system traded the
    symbol) and a CRITICAL event; a position without a row → adopt and protect; a claim
    with a fill → protect at once (confirm after the grace); a row whose position is gone →
    close from fills; an EXITING row without an exit in flight → resume; after the flatten
    time → exit every long position the system traded today; else one target (and disaster
    stop) for the held quantity, the stop watched and checked against the latest quote; a
    disaster stop missing beside a working target is placed again in the target's OCA group.
    """
    gate = order_gate(frozen=snapshot.frozen, after_flatten=after_flatten(now, settings),
                      backoff_until=snapshot.backoff_until)
    if gate.state is TradingState.HALTED:
        return []
    actions: list[Action] = []
    orders: dict[str, list[WorkingOrder]] = {}
    for o in snapshot.orders:
        orders.setdefault(o.symbol, []).append(o)
    protected: set[str] = set()
    symbols = sorted(set(rows) | {s for s, (q, _) in snapshot.positions.items() if q})
    for symbol in symbols:
        row = rows.get(symbol)
        qty, avg_cost = snapshot.positions.get(symbol, (0.0, 0.0))
        execs = ledger.get(symbol, ())
        if qty < 0:
            actions += _short(symbol, qty, row, snapshot, orders.get(symbol, []), gate, now)
            continue
        if symbol in snapshot.exiting:
            protected.add(symbol)
            continue
        h = held(symbol, row, snapshot, execs, now)
        if row is None:
            actions.append(Adopt(symbol, qty, avg_cost))
            entry = avg_cost
        elif row.status == PositionStatus.PENDING_ENTRY:
            if h.quantity <= 0:
                age = (now - (row.claimed_at or now)).total_seconds()
                if age >= 10 * _grace(settings, speed):
                    actions.append(ReleaseClaim(symbol, "no broker position long after the claim"))
                continue
            entry = h.entry_price or avg_cost
            age = (now - (row.claimed_at or now)).total_seconds()
            if age >= _grace(settings, speed):
                actions.append(Confirm(symbol, h.quantity, entry))
        else:
            if qty <= 0:
                actions.append(Close(symbol, row.exit_reason))
                continue
            if row.status == PositionStatus.EXITING:
                actions.append(Exit(symbol, row.exit_reason or "stop", resume=True))
                protected.add(symbol)
                continue
            entry = row.entry_price or h.entry_price or avg_cost
            if row.quantity != h.quantity and h.quantity > 0 and h.sold == 0:
                actions.append(SetQuantity(symbol, h.quantity))
        if h.quantity <= 0:
            continue
        protected.add(symbol)
        if gate.state is TradingState.REDUCING:
            if gate.allows(symbol, reducing=True, now=now):
                actions.append(Exit(symbol, "eod"))
            continue
        target_price = row.profit_target_price if row is not None and row.profit_target_price else None
        stop_price = row.stop_loss_price if row is not None and row.stop_loss_price else None
        if target_price is None or row is None or row.status == PositionStatus.PENDING_ENTRY:
            target_price = round(entry * (1 + settings.profit_target), 2)
            stop_price = round(entry * (1 - settings.stop_loss), 2)
        why = stop_decision(stop_price, snapshot.quotes.get(symbol), now, settings)
        if why and gate.allows(symbol, reducing=True, now=now):
            actions.append(Exit(symbol, why, trigger_price=snapshot.quotes[symbol].price))
            continue  # the exit cancels the target and the disaster stop first
        actions += _protection(symbol, h, entry, target_price, orders.get(symbol, []), gate, now, settings)
        if stop_price is not None:
            actions.append(Watch(symbol, stop_price))
    # our orders for symbols no longer protected (closed, short, gone)
    for symbol, working in orders.items():
        if symbol in protected or symbol in snapshot.exiting:
            continue
        if snapshot.positions.get(symbol, (0.0, 0.0))[0] < 0:
            continue  # handled with the short
        actions += [Cancel(symbol, o.order_id, "orphan") for o in working if not o.pending_cancel and o.kind != "exit"]
    if gate.state is TradingState.REDUCING:
        # the flatten also covers positions in symbols the system traded today but holds no row for
        for symbol, (qty, _) in snapshot.positions.items():
            if (qty > 0 and symbol not in symbols and symbol in snapshot.traded_today
                    and symbol not in snapshot.exiting and gate.allows(symbol, reducing=True, now=now)):
                actions.append(Exit(symbol, "eod"))
    return actions


def _short(symbol: str, qty: float, row: Any, snapshot: Snapshot, working: list[WorkingOrder],
           gate: OrderGate, now: datetime) -> list[Action]:
    """A short position: cancel our SELLs, cover it when the system traded the symbol, raise CRITICAL."""
    out: list[Action] = [Cancel(symbol, o.order_id, "short position") for o in working if not o.pending_cancel]
    ours = row is not None or symbol in snapshot.traded_today
    if ours and symbol not in snapshot.exiting and gate.allows(symbol, reducing=True, now=now):
        out.append(Cover(symbol, -qty))
        out.append(Raise(symbol, "CRITICAL", "short_covered",
                         f"{symbol}: broker shows a SHORT position of {qty:g}; buying {-qty:g} back at market"))
    elif not ours:
        out.append(Raise(symbol, "CRITICAL", "short_position",
                         f"{symbol}: broker shows a SHORT position of {qty:g} in a symbol this system did not trade"))
    return out


def _protection(symbol: str, h: Held, entry: float, target_price: float, working: list[WorkingOrder],
                gate: OrderGate, now: datetime, settings: Settings) -> list[Action]:
    """One target (and one disaster stop) for the held quantity; never sized above it."""
    out: list[Action] = []
    live = [o for o in working if not o.pending_cancel]
    targets = sorted((o for o in live if o.kind == "target"), key=lambda o: o.order_id)
    disasters = sorted((o for o in live if o.kind == "disaster"), key=lambda o: o.order_id)
    out += [Cancel(symbol, o.order_id, "duplicate") for o in targets[1:] + disasters[1:]]
    stop_px = disaster_price(entry, settings)
    if not targets:
        if gate.allows(symbol, reducing=False, now=now):
            out += [Cancel(symbol, o.order_id, "re-placed with a new target") for o in disasters[:1]]
            out.append(PlaceProtection(symbol, h.quantity, round(target_price, 2), stop_px))
        return out
    if stop_px is not None and not disasters and gate.allows(symbol, reducing=False, now=now):
        # the disaster stop is gone (cancelled or rejected) while the target works: put it back in the
        # target's OCA group; a target in none is re-placed with it (two lone SELLs could both fill)
        if targets[0].oca_group:
            out.append(PlaceDisaster(symbol, h.quantity, stop_px, targets[0].oca_group))
        else:
            out.append(Cancel(symbol, targets[0].order_id, "re-placed with its disaster stop"))
            return out
    for order, price in ((targets[0], round(target_price, 2)), (disasters[0] if disasters else None, stop_px)):
        if order is None or price is None:
            continue
        want = order.filled + h.quantity  # remaining = held: never more than the ledger allows
        if not math.isclose(order.quantity, want) or not math.isclose(order.price or 0.0, price):
            out.append(Resize(symbol, order.order_id, want, price))
    return out
