"""The order book: placement, modification, cancels, fills, OCA and brackets, executions.

The book takes typed requests (:class:`~.requests.PlaceOrder`, an order id to cancel) and reports
what happened as events (:mod:`.context`); the message each event becomes is the protocol
layer's business (:class:`daytrading.sim_gateway.handlers.OrderRequests`), noted below as the
wire effect.

One global book keyed by ``(clientId, orderId)`` survives disconnects (notes §4.4, pitfall 6):
orders belong to the client id that placed them — only that client may modify or cancel
them (another client's cancel gets IB's ``10147 OrderId N that needs to be cancelled is not
found``), its ``reqOpenOrders`` / ``reqExecutions`` / ``reqCompletedOrders`` return only its
own orders and fills, and live openOrder/orderStatus/execDetails/commissionReport go only
to the owner. permIds are unique within a run and start from a per-run base.

Order life (notes §7.1): accepted ⇒ openOrder + orderStatus ``PreSubmitted``; working now ⇒
``Submitted``. An order waits ``PreSubmitted`` while it may not trade yet (MKT or a
non-``outsideRth`` LMT outside 09:30–16:00, a bracket child whose parent has not filled,
an injected outage). Rejections (S8): error 201 (or the injected code), openOrder and
orderStatus ``Inactive``. Cancels (S5): orderStatus ``Cancelled`` then error 202, optionally
after an injected delay with ``PendingCancel`` in between (during which fills still happen;
a fill that completes the order first makes the cancel answer 10148, S7).

Supported: STK only; ``MKT``, ``LMT``, ``STP``; TIF ``DAY`` (∅), ``GTC``, ``IOC`` (``DTC`` = DAY);
``outsideRth``; OCA groups (``ocaType`` 1 cancels the others, 2/3 reduce them; 0 = 1);
parent/child with ``transmit=0`` staging; modification by re-placing a working order.
Short sales: a SELL larger than the long position net of the other working SELLs (an OCA
group counted once, at its largest order: its orders are alternatives) opens a short; for a
non-shortable symbol it is rejected with 201, for a shortable one accepted — both recorded
for the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daytrading.clock import wall_time
from daytrading.sim_gateway.engine.context import (
    EngineContext,
    FillReported,
    OrderChanged,
    OrderError,
    PositionChanged,
)
from daytrading.sim_gateway.engine.fills import commission_for, sell_fees
from daytrading.sim_gateway.engine.requests import PlaceOrder
from daytrading.sim_gateway.engine.units import market_iso, qty_field

if TYPE_CHECKING:
    from daytrading.sim_gateway.engine.account import Account

__all__ = ["Execution", "OrderBook", "SimOrder", "WORKING", "DONE"]

WORKING = frozenset({"PreSubmitted", "Submitted", "PendingCancel"})
DONE = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
ORDER_TYPES = frozenset({"MKT", "LMT", "STP"})


@dataclass
class Execution:
    """One fill. ``time`` market POSIX s; ``commission`` and ``realized`` dollars (None = opening)."""

    exec_id: str
    order: SimOrder
    time: float
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    liquidity: int
    commission: float = 0.0
    realized: float | None = None

    @property
    def side(self) -> str:
        """``BOT`` or ``SLD``."""
        return "BOT" if self.order.action == "BUY" else "SLD"

    def as_dict(self) -> dict[str, Any]:
        """Report form."""
        o = self.order
        return {"exec_id": self.exec_id, "order_id": o.order_id, "perm_id": o.perm_id, "client_id": o.client_id,
                "symbol": o.info.symbol, "side": self.side, "shares": qty_field(self.shares), "price": self.price,
                "time": market_iso(self.time), "cum_qty": qty_field(self.cum_qty), "avg_price": self.avg_price,
                "commission": round(self.commission, 6),
                "realized": None if self.realized is None else round(self.realized, 6), "order_ref": o.order_ref}


@dataclass
class SimOrder:
    """One order in the book (prices dollars, quantities shares, times market POSIX s)."""

    client_id: int
    order_id: int
    perm_id: int
    info: Any
    exchange: str
    action: str
    total_qty: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    oca_type: int
    account: str
    order_ref: str
    parent_id: int
    outside_rth: bool
    transmit: bool
    placed_at: float
    seq: int
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    checked_until: float = 0.0
    stop_triggered: bool = False
    fill_cap: float | None = None
    cancel_due: float | None = None
    cancel_reason: str = ""
    commission: float = 0.0
    value: float = 0.0
    reject_code: int | None = None
    reject_reason: str = ""
    short_sale: bool = False
    executions: list[Execution] = field(default_factory=list)
    done_at: float | None = None

    @property
    def remaining(self) -> float:
        """Shares still to fill."""
        return max(0.0, self.total_qty - self.filled)

    @property
    def working(self) -> bool:
        """Accepted, not staged, not done."""
        return self.status in WORKING

    @property
    def symbol(self) -> str:
        """Data symbol."""
        return self.info.symbol

    def as_dict(self) -> dict[str, Any]:
        """Report form."""
        return {"order_id": self.order_id, "client_id": self.client_id, "perm_id": self.perm_id,
                "symbol": self.info.symbol, "action": self.action, "quantity": qty_field(self.total_qty),
                "order_type": self.order_type, "lmt_price": self.lmt_price, "aux_price": self.aux_price,
                "tif": self.tif, "oca_group": self.oca_group, "outside_rth": self.outside_rth,
                "order_ref": self.order_ref, "parent_id": self.parent_id, "status": self.status,
                "filled": qty_field(self.filled), "remaining": qty_field(self.remaining),
                "avg_fill_price": self.avg_fill_price, "commission": round(self.commission, 6),
                "placed_at": market_iso(self.placed_at), "reject_code": self.reject_code,
                "reject_reason": self.reject_reason, "short_sale": self.short_sale}


class OrderBook:
    """All orders of the run: placement, validation, cancels, fills, OCA and bracket rules.

    The book never sees a connection: it reports what happened as events through ``ctx``
    (:class:`~.context.OrderChanged`, :class:`~.context.OrderError`, :class:`~.context.FillReported`,
    :class:`~.context.PositionChanged`).

    Args:
        ctx: market time, event log and event sink.
        market: the replayed market (last trades for margin checks).
        account: the account (positions, buying power, booking of fills).
        resolve: request contract → the market's contract, or None (error 200).
        faults: injected faults (``take_reject``, ``take_partial``, ``cancel_delay``).
        default_account: account id of orders that name none.
        perm_base: first permId; default ``(wall seconds mod 1e6) × 1000 + 1e8`` so runs differ.

    ``matcher`` (the :class:`~.fills.FillEngine`) is attached after construction.
    """

    def __init__(self, ctx: EngineContext, market: Any, account: Account, resolve: Callable[[Any], Any],
                 faults: Any, *, default_account: str, perm_base: int | None = None) -> None:
        self.ctx = ctx
        self.market = market
        self.account = account
        self.resolve = resolve
        self.faults = faults
        self.default_account = default_account
        self.matcher: Any = None
        self.orders: dict[tuple[int, int], SimOrder] = {}
        self.executions: list[Execution] = []
        self.short_sells: list[dict[str, Any]] = []
        self.rejected_short_sells: list[dict[str, Any]] = []
        base = perm_base if perm_base is not None else 100_000_000 + (int(wall_time()) % 1_000_000) * 1000
        self._perm = base
        self._seq = 0
        self._exec_seq = 0
        self._exec_prefix = f"0000{base % 0xFFFF:04x}.{base & 0xFFFFFFFF:08x}"
        self._max_id: dict[int, int] = {}

    # ------------------------------------------------------------------ ids

    def next_valid_id(self, client_id: int) -> int:
        """One above every order id ``client_id`` has used this run (at least 1)."""
        return self._max_id.get(client_id, 0) + 1

    def _next_perm(self) -> int:
        self._perm += 1
        return self._perm

    def next_exec_id(self) -> str:
        """IB-style unique execution id ``0000xxxx.yyyyyyyy.01.01``-like, unique per run."""
        self._exec_seq += 1
        return f"{self._exec_prefix}.{self._exec_seq:06d}.01"

    # ------------------------------------------------------------------ queries

    def working_orders(self) -> list[SimOrder]:
        """Working orders in placement order."""
        return sorted((o for o in self.orders.values() if o.working), key=lambda o: o.seq)

    def committed_sells(self, symbol: str, new: SimOrder | None = None) -> float:
        """Shares that the working SELL orders in ``symbol`` (plus ``new``, at its full size, in
        place of its own working version when it modifies one) can still sell.

        The orders of one OCA group are alternatives (IB's bracket exit: a profit-target LMT and
        a protective STP for the same shares), so a group counts once, at its largest remaining
        quantity; orders outside any group add up."""
        loose = 0.0
        groups: dict[tuple[str, str], float] = {}
        sells = [o for o in self.orders.values()
                 if o.working and o is not new and o.action == "SELL" and o.info.symbol == symbol]
        sized = [(o, o.remaining) for o in sells] + ([(new, new.total_qty)] if new is not None else [])
        for o, shares in sized:
            if o.oca_group:
                key = (o.account, o.oca_group)
                groups[key] = max(groups.get(key, 0.0), shares)
            else:
                loose += shares
        return loose + sum(groups.values())

    def notify(self, o: SimOrder, *, open_order: bool = True) -> None:
        """Report the order's state to its owner (openOrder when ``open_order``, and orderStatus)."""
        self.matcher.wake()
        self.ctx.emit(OrderChanged(o, open_order))

    # ------------------------------------------------------------------ placeOrder

    def submit(self, client_id: int, req: PlaceOrder) -> SimOrder | None:
        """Place (or modify) an order of ``client_id`` from a typed request; the engine's entry for
        placeOrder. Returns the order in the book, or None when the request was refused (the
        owner, if connected, is told with IB's error)."""
        order_id = req.order_id
        self._max_id[client_id] = max(self._max_id.get(client_id, 0), order_id)
        rc = req.contract
        existing = self.orders.get((client_id, order_id))
        if existing is not None and existing.status != "PendingSubmit":
            self._modify(existing, req)
            return existing
        info = self.resolve(rc)
        if info is None:
            self._error(client_id, order_id, 200, "No security definition has been found for the request")
            self.ctx.log("order_rejected", client_id=client_id, order_id=order_id, code=200, contract=repr(rc))
            return None
        if existing is not None:  # re-sent staged order
            del self.orders[(client_id, order_id)]
        now = self.ctx.now()
        self._seq += 1
        o = SimOrder(
            client_id=client_id, order_id=order_id, perm_id=self._next_perm(), info=info,
            exchange=rc.exchange or "SMART", action=req.action, total_qty=req.total_qty,
            order_type=req.order_type, lmt_price=req.lmt_price, aux_price=req.aux_price,
            tif=req.tif, oca_group=req.oca_group, oca_type=req.oca_type,
            account=req.account or self.default_account, order_ref=req.order_ref,
            transmit=req.transmit, parent_id=req.parent_id, outside_rth=req.outside_rth,
            placed_at=now, seq=self._seq, checked_until=now,
        )
        self.orders[(client_id, order_id)] = o
        problem = self._validate(o, rc.sec_type) or (
            (201, "Order rejected - reason:order conditions are not supported by the sim-gateway")
            if req.conditions else None)
        if problem is not None:
            self.reject(o, *problem)
            return o
        fault = self.faults.take_reject()
        if fault is not None:
            self.reject(o, *fault, injected=True)
            return o
        if not o.transmit:
            self.ctx.log("order_staged", client_id=client_id, order_id=order_id, symbol=info.symbol)
            return o
        group = [o]
        if o.parent_id:
            parent = self.orders.get((client_id, o.parent_id))
            if parent is not None and parent.status == "PendingSubmit":
                group.insert(0, parent)
        group += [c for c in self.orders.values()
                  if c.client_id == client_id and c.status == "PendingSubmit" and c is not o
                  and any(c.parent_id == g.order_id for g in group) and c not in group]
        for g in sorted(group, key=lambda x: x.seq):
            if g is not o and g.status == "PendingSubmit":
                g.checked_until = now
            self._accept(g)
        return o

    def _validate(self, o: SimOrder, sec_type: str) -> tuple[int, str] | None:
        if sec_type not in ("", "STK"):
            return 201, f"Order rejected - reason:security type {sec_type!r} is not supported by the sim-gateway"
        if o.action not in ("BUY", "SELL"):
            return 201, f"Order rejected - reason:invalid action {o.action!r}"
        if not o.total_qty > 0:
            return 201, f"Order rejected - reason:The order size must be positive, got {o.total_qty}"
        if o.order_type not in ORDER_TYPES:
            return 201, f"Order rejected - reason:order type {o.order_type!r} is not supported (MKT, LMT, STP)"
        if o.tif not in ("DAY", "GTC", "IOC"):
            return 201, f"Order rejected - reason:time in force {o.tif!r} is not supported (DAY, GTC, IOC)"
        if o.order_type == "LMT" and (o.lmt_price is None or o.lmt_price <= 0):
            return 201, "Order rejected - reason:a limit order needs a positive limit price"
        if o.order_type == "STP" and (o.aux_price is None or o.aux_price <= 0):
            return 201, "Order rejected - reason:a stop order needs a positive stop price"
        for price in (o.lmt_price, o.aux_price):
            if price is not None and abs(round(price / o.info.min_tick) * o.info.min_tick - price) > 1e-9:
                return 110, "The price does not conform to the minimum price variation for this contract."
        return self._short_check(o) or self._margin_check(o)

    def _margin_check(self, o: SimOrder) -> tuple[int, str] | None:
        """Reject orders whose value exceeds the day-trading buying power (4 × excess liquidity)."""
        if o.action == "SELL" and self.account.position(o.info.symbol) >= o.total_qty:
            return None
        last = self.market.last_trade(o.info.symbol)
        price = o.lmt_price or o.aux_price or (last.price if last is not None else 0.0)
        value = o.total_qty * price
        values = self.account.values()
        power = float(values["BuyingPower"][0])
        if value <= power:
            return None
        ewl = float(values["EquityWithLoanValue"][0])
        return 201, (f"Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED "
                     f"POSITION YOUR EQUITY WITH LOAN VALUE [{ewl:.2f} USD] MUST EXCEED THE INITIAL MARGIN "
                     f"[{0.25 * value:.2f} USD]")

    def _short_check(self, o: SimOrder) -> tuple[int, str] | None:
        if o.action != "SELL":
            return None
        held = self.account.position(o.info.symbol)
        after = held - self.committed_sells(o.info.symbol, new=o)
        if after >= 0:
            return None
        rec = {"symbol": o.info.symbol, "order_id": o.order_id, "client_id": o.client_id, "perm_id": o.perm_id,
               "quantity": qty_field(o.total_qty), "position": qty_field(held), "projected": qty_field(after),
               "shortable": o.info.shortable, "market_time": market_iso(self.ctx.now()), "order_ref": o.order_ref}
        if not o.info.shortable:
            self.rejected_short_sells.append(rec)
            self.ctx.log("short_sale_rejected", **rec)
            return 201, (f"Order rejected - reason:{o.info.symbol} is not available for short sale "
                         f"(position {qty_field(held)}, order would leave {qty_field(after)})")
        o.short_sale = True
        self.short_sells.append(rec)
        self.ctx.log("short_sale_accepted", **rec)
        return None

    def reject(self, o: SimOrder, code: int, message: str, *, injected: bool = False) -> None:
        """S8: error, openOrder + orderStatus ``Inactive``."""
        o.status = "Inactive"
        o.reject_code, o.reject_reason = code, message
        o.done_at = self.ctx.now()
        self.ctx.emit(OrderError(o.client_id, o.order_id, code, message))
        self.ctx.emit(OrderChanged(o))
        self.ctx.log("order_rejected", client_id=o.client_id, order_id=o.order_id, perm_id=o.perm_id,
                    symbol=o.info.symbol, action=o.action, quantity=o.total_qty, code=code, reason=message,
                    injected=injected)

    def _accept(self, o: SimOrder) -> None:
        o.status = "PreSubmitted"
        if self.faults.take_partial(o):
            self.ctx.log("partial_fill_armed", order_id=o.order_id, client_id=o.client_id, cap=o.fill_cap)
        self.notify(o)
        self.ctx.log("order_accepted", client_id=o.client_id, order_id=o.order_id, perm_id=o.perm_id,
                    symbol=o.info.symbol, action=o.action, quantity=o.total_qty, type=o.order_type,
                    lmt=o.lmt_price, aux=o.aux_price, tif=o.tif, oca=o.oca_group, outside_rth=o.outside_rth,
                    parent_id=o.parent_id, ref=o.order_ref)
        self.matcher.activate_if_eligible(o)

    def _error(self, client_id: int, order_id: int, code: int, text: str) -> None:
        """Report IB error ``code`` about ``order_id`` to its client."""
        self.ctx.emit(OrderError(client_id, order_id, code, text))

    def _modify(self, o: SimOrder, req: PlaceOrder) -> None:
        """S4: re-placing a working order changes quantity / prices / flags."""
        if not o.working:
            code, text = (104, "Can't modify a filled order") if o.status == "Filled" else (
                103, f"Duplicate order id {o.order_id}")
            self._error(o.client_id, o.order_id, code, text)
            return
        new_qty = req.total_qty
        if new_qty < o.filled or new_qty <= 0:
            self._error(o.client_id, o.order_id, 201,
                        f"Order rejected - reason:quantity {new_qty} below filled {o.filled}")
            return
        o.total_qty = new_qty
        o.lmt_price = req.lmt_price
        o.aux_price = req.aux_price
        o.outside_rth = req.outside_rth
        o.order_ref = req.order_ref
        o.checked_until = max(o.checked_until, self.ctx.now())
        self.ctx.log("order_modified", client_id=o.client_id, order_id=o.order_id, quantity=new_qty,
                    lmt=o.lmt_price, aux=o.aux_price)
        self.notify(o)

    # ------------------------------------------------------------------ cancel

    def cancel(self, client_id: int, order_id: int) -> None:
        """cancelOrder of ``client_id`` (S5/S6): only the owner may cancel; 10147 / 10148 otherwise."""
        o = self.orders.get((client_id, order_id))
        if o is None:
            foreign = [x for x in self.orders.values() if x.order_id == order_id and x.client_id != client_id]
            self._error(client_id, order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found.")
            self.ctx.log("cancel_not_found", client_id=client_id, order_id=order_id,
                         foreign_owner=[x.client_id for x in foreign])
            return
        if o.status == "PendingSubmit":  # staged, never transmitted
            o.status = "Cancelled"
            o.done_at = self.ctx.now()
            return
        if not o.working:
            self._error(client_id, order_id, 10148,
                        f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {o.status}.")
            return
        if o.status == "PendingCancel":
            return
        self.request_cancel(o, reason="client")

    def global_cancel(self, client_id: int | None) -> None:
        """reqGlobalCancel (58): cancel every working order of every client (S12)."""
        orders = self.working_orders()
        self.ctx.log("global_cancel", client_id=client_id, orders=len(orders))
        for o in orders:
            if o.status != "PendingCancel":
                self.request_cancel(o, reason="global")

    def request_cancel(self, o: SimOrder, reason: str) -> None:
        """Cancel now, or after the injected delay (``PendingCancel`` meanwhile)."""
        self.matcher.wake()
        delay = self.faults.cancel_delay()
        if delay > 0 and reason in ("client", "global"):
            o.status = "PendingCancel"
            o.cancel_due = self.ctx.now() + delay
            o.cancel_reason = reason
            self.ctx.emit(OrderChanged(o, open_order=False))
            self.ctx.log("cancel_delayed", client_id=o.client_id, order_id=o.order_id, seconds=delay)
            return
        self.finish_cancel(o, reason)

    def finish_cancel(self, o: SimOrder, reason: str, *, text: str = "") -> None:
        """orderStatus ``Cancelled`` then error 202 (S5); cascades to bracket children."""
        if o.status in DONE:
            return
        o.status = "Cancelled"
        o.cancel_due = None
        o.done_at = self.ctx.now()
        self.ctx.emit(OrderChanged(o))
        self.ctx.emit(OrderError(o.client_id, o.order_id, 202, f"Order Canceled - reason:{text}"))
        self.ctx.log("order_cancelled", client_id=o.client_id, order_id=o.order_id, perm_id=o.perm_id,
                    symbol=o.info.symbol, reason=reason, filled=o.filled, remaining=o.remaining)
        for child in self.children(o):
            if child.working:
                self.finish_cancel(child, "parent cancelled")

    def children(self, o: SimOrder) -> list[SimOrder]:
        """Bracket children of ``o`` (same client, parentId = its id)."""
        return [c for c in self.orders.values() if c.client_id == o.client_id and c.parent_id == o.order_id
                and c is not o]

    # ------------------------------------------------------------------ fills

    def record_fill(self, o: SimOrder, ts: float, shares: float, price: float, liquidity: int) -> Execution:
        """Book one fill: account, commission, messages (S2/S3), pushes, OCA and bracket effects."""
        month = self.matcher.month_shares
        before = commission_for(o, o.filled, o.value, month_shares=month)
        o.value += shares * price
        o.filled += shares
        o.avg_fill_price = o.value / o.filled
        o.last_fill_price = price
        after = commission_for(o, o.filled, o.value, month_shares=month)
        fee = after - before
        if o.action == "SELL":
            fee += sell_fees(shares, shares * price)
        o.commission += fee
        e = Execution(self.next_exec_id(), o, ts, shares, price, o.filled, o.avg_fill_price, liquidity, fee)
        e.realized = self.account.apply_fill(o.info, e.side, shares, price, fee, order=o)
        o.executions.append(e)
        self.executions.append(e)
        complete = o.remaining <= 1e-9
        if complete:
            o.status = "Filled"
            o.done_at = ts
        self.ctx.emit(FillReported(e, complete))
        self.ctx.log("fill", client_id=o.client_id, order_id=o.order_id, perm_id=o.perm_id, exec_id=e.exec_id,
                    symbol=o.info.symbol, side=e.side, shares=shares, price=price, cum=o.filled,
                    commission=round(fee, 6), fill_time=market_iso(ts))
        self.ctx.emit(PositionChanged(o.info.symbol))
        if complete and o.cancel_due is not None:
            self._error(o.client_id, o.order_id, 10148,
                        f"OrderId {o.order_id} that needs to be cancelled cannot be cancelled, state: Filled.")
        self._after_fill(o, shares)
        return e

    def _after_fill(self, o: SimOrder, shares: float) -> None:
        if o.oca_group:
            self._oca(o, shares)
        if o.status == "Filled":
            for child in self.children(o):
                if child.working:
                    child.checked_until = max(child.checked_until, self.ctx.now())
                    self.matcher.activate_if_eligible(child)
        if o.parent_id:
            parent = self.orders.get((o.client_id, o.parent_id))
            if parent is not None:
                for sib in self.children(parent):
                    if sib is not o and sib.working:
                        self.finish_cancel(sib, "bracket sibling filled")

    def _oca(self, o: SimOrder, shares: float) -> None:
        """S10: ocaType 1 (and 0) cancels the other members; 2/3 reduce them by the filled shares."""
        for other in self.working_orders():
            if other is o or other.oca_group != o.oca_group or other.account != o.account:
                continue
            if o.oca_type not in (0, 1):
                other.total_qty = max(other.filled, other.total_qty - shares)
                if other.remaining > 1e-9:
                    self.notify(other)
                    continue
            self.finish_cancel(other, "oca", text="OCA group filled")

    # ------------------------------------------------------------------ report

    def report(self) -> dict[str, Any]:
        """Orders, open orders, executions and short-sale records for the admin ``report``."""
        ordered = sorted(self.orders.values(), key=lambda x: x.seq)
        return {
            "orders": [o.as_dict() for o in ordered],
            "open_orders": [o.as_dict() for o in ordered if o.working],
            "executions": [e.as_dict() for e in self.executions],
            "short_sells": list(self.short_sells),
            "rejected_short_sells": list(self.rejected_short_sells),
        }
