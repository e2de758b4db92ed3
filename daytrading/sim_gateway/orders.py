"""The order book: placeOrder / cancelOrder / reqGlobalCancel, open orders, executions.

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
Short sales (rule of the issue): a SELL larger than the long position net of the other
working SELLs opens a short; for a non-shortable symbol it is rejected with 201, for a
shortable one accepted — both recorded for the report.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daytrading.sim_gateway.protocol import messages
from daytrading.sim_gateway.protocol.messages import qty_field
from daytrading.sim_gateway.protocol.requests import (
    PlaceOrder,
    RequestError,
    decode_cancel_order,
    decode_executions,
    decode_place_order,
)
from daytrading.sim_gateway.protocol.versions import MAX_SERVER_VERSION
from daytrading.clock import NY, wall_time

if TYPE_CHECKING:
    from daytrading.sim_gateway.server import Connection, SimGateway

__all__ = ["Execution", "OrderBook", "SimOrder", "WORKING", "DONE"]

WORKING = frozenset({"PreSubmitted", "Submitted", "PendingCancel"})
DONE = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
ORDER_TYPES = frozenset({"MKT", "LMT", "STP"})


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=NY).isoformat(timespec="seconds")


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
                "time": _iso(self.time), "cum_qty": qty_field(self.cum_qty), "avg_price": self.avg_price,
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
                "placed_at": _iso(self.placed_at), "reject_code": self.reject_code,
                "reject_reason": self.reject_reason, "short_sale": self.short_sale}


class OrderBook:
    """All orders of the run and their protocol messages.

    Args:
        gateway: the owning gateway.
        perm_base: first permId; default ``(wall seconds mod 1e6) × 1000 + 1e8`` so runs differ.
    """

    def __init__(self, gateway: SimGateway, perm_base: int | None = None) -> None:
        self.gw = gateway
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

    def install(self) -> None:
        """Register order request handlers (placeOrder, cancelOrder and reqGlobalCancel through
        the ``order_ack_ms`` latency, :mod:`.latency`)."""
        r = self.gw.register
        r(3, self._after_ack_latency(self.place_order))
        r(4, self._after_ack_latency(self.cancel_order))
        r(58, self._after_ack_latency(self.global_cancel))
        r(5, self.req_open_orders)
        r(16, self.req_all_open_orders)
        r(99, self.req_completed_orders)
        r(7, self.req_executions)

    def _after_ack_latency(self, handler: Callable[[Connection, list[str]], None]
                           ) -> Callable[[Connection, list[str]], None]:
        """``handler`` run ``order_ack_ms`` after the request arrived, requests kept in order."""

        def delayed(conn: Connection, fields: list[str]) -> None:
            if fields and fields[0] == "3" and conn.client_id is not None and len(fields) > 1:
                with contextlib.suppress(ValueError):  # ids are used at once; a bad one is refused later
                    order_id = int(float(fields[1]))
                    self._max_id[conn.client_id] = max(self._max_id.get(conn.client_id, 0), order_id)
            delay = self.gw.faults.latency.seconds("order_ack_ms")
            self.gw.delays.submit("orders", delay, lambda: handler(conn, fields))

        return delayed

    def _send_later(self, conn: Connection, channel: str, delay: float, messages: list[list[Any]]) -> None:
        def send() -> None:
            for m in messages:
                conn.send(*m)

        self.gw.delays.submit(channel, delay, send)

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

    def owner(self, order: SimOrder) -> Connection | None:
        """The owner's live connection, if connected."""
        return self.gw.connection_for(order.client_id)

    def working_sells(self, symbol: str, exclude: SimOrder | None = None) -> float:
        """Shares of working SELL orders in ``symbol`` still to fill."""
        return sum(o.remaining for o in self.orders.values()
                   if o.working and o is not exclude and o.action == "SELL" and o.info.symbol == symbol)

    # ------------------------------------------------------------------ messages

    @staticmethod
    def open_order_msg(o: SimOrder, status: str | None = None, *, version: int = MAX_SERVER_VERSION) -> list[Any]:
        """openOrder (5) at ``version`` (:func:`.protocol.messages.open_order`)."""
        return messages.open_order(version, o, status)

    @staticmethod
    def status_msg(o: SimOrder, status: str | None = None) -> list[Any]:
        """orderStatus (3) (:func:`.protocol.messages.order_status`)."""
        return messages.order_status(o, status)

    @staticmethod
    def exec_msg(e: Execution, req_id: int = -1, *, version: int = MAX_SERVER_VERSION) -> list[Any]:
        """execDetails (11) at ``version`` (:func:`.protocol.messages.exec_details`)."""
        return messages.exec_details(version, e, req_id)

    @staticmethod
    def commission_msg(e: Execution) -> list[Any]:
        """commissionReport (59) (:func:`.protocol.messages.commission_report`)."""
        return messages.commission_report(e)

    def notify(self, o: SimOrder, *, open_order: bool = True) -> None:
        """Send the order's openOrder (optional) and orderStatus to its owner, if connected."""
        self.gw.fills.wake()
        conn = self.owner(o)
        if conn is None:
            return
        if open_order:
            conn.send(*self.open_order_msg(o, version=conn.server_version))
        conn.send(*self.status_msg(o))

    # ------------------------------------------------------------------ placeOrder

    def place_order(self, conn: Connection, fields: list[str]) -> None:
        """placeOrder (3), decoded at the connection's version by :func:`.protocol.requests.decode_place_order`."""
        assert conn.client_id is not None
        req = self._decode_place(conn, fields)
        if req is not None:
            self.submit(conn.client_id, req)

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
        info = self.gw.contracts.resolve(rc)
        if info is None:
            self._error(client_id, order_id, 200, "No security definition has been found for the request")
            self.gw.log("order_rejected", client_id=client_id, order_id=order_id, code=200, contract=repr(rc))
            return None
        if existing is not None:  # re-sent staged order
            del self.orders[(client_id, order_id)]
        now = self.gw.now()
        self._seq += 1
        o = SimOrder(
            client_id=client_id, order_id=order_id, perm_id=self._next_perm(), info=info,
            exchange=rc.exchange or "SMART", action=req.action, total_qty=req.total_qty,
            order_type=req.order_type, lmt_price=req.lmt_price, aux_price=req.aux_price,
            tif=req.tif, oca_group=req.oca_group, oca_type=req.oca_type,
            account=req.account or self.gw.account_id, order_ref=req.order_ref,
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
        fault = self.gw.faults.take_reject()
        if fault is not None:
            self.reject(o, *fault, injected=True)
            return o
        if not o.transmit:
            self.gw.log("order_staged", client_id=client_id, order_id=order_id, symbol=info.symbol)
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

    def _decode_place(self, conn: Connection, fields: list[str]) -> PlaceOrder | None:
        """The typed placeOrder, or None after answering a malformed one with error 321."""
        try:
            req = decode_place_order(fields, conn.server_version)
        except RequestError as exc:
            order_id = int(fields[1]) if len(fields) > 1 and fields[1].lstrip("-").isdigit() else -1
            conn.send_error(order_id, 321, f"Error validating request:-'placeOrder' : cause - {exc}")
            self.gw.log("order_rejected", client_id=conn.client_id, order_id=order_id, code=321, reason=str(exc))
            return None
        if req.unread:
            self.gw.log("place_order_extra_fields", client_id=conn.client_id, order_id=req.order_id,
                        unread=req.unread, version=conn.server_version)
        return req

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
        if o.action == "SELL" and self.gw.account.position(o.info.symbol) >= o.total_qty:
            return None
        last = self.gw.market.last_trade(o.info.symbol)
        price = o.lmt_price or o.aux_price or (last.price if last is not None else 0.0)
        value = o.total_qty * price
        values = self.gw.account.values()
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
        held = self.gw.account.position(o.info.symbol)
        after = held - self.working_sells(o.info.symbol, exclude=o) - o.total_qty
        if after >= 0:
            return None
        rec = {"symbol": o.info.symbol, "order_id": o.order_id, "client_id": o.client_id, "perm_id": o.perm_id,
               "quantity": qty_field(o.total_qty), "position": qty_field(held), "projected": qty_field(after),
               "shortable": o.info.shortable, "market_time": _iso(self.gw.now()), "order_ref": o.order_ref}
        if not o.info.shortable:
            self.rejected_short_sells.append(rec)
            self.gw.log("short_sale_rejected", **rec)
            return 201, (f"Order rejected - reason:{o.info.symbol} is not available for short sale "
                         f"(position {qty_field(held)}, order would leave {qty_field(after)})")
        o.short_sale = True
        self.short_sells.append(rec)
        self.gw.log("short_sale_accepted", **rec)
        return None

    def reject(self, o: SimOrder, code: int, message: str, *, injected: bool = False) -> None:
        """S8: error, openOrder + orderStatus ``Inactive``."""
        o.status = "Inactive"
        o.reject_code, o.reject_reason = code, message
        o.done_at = self.gw.now()
        conn = self.owner(o)
        if conn is not None:
            conn.send_error(o.order_id, code, message)
            conn.send(*self.open_order_msg(o, version=conn.server_version))
            conn.send(*self.status_msg(o))
        self.gw.log("order_rejected", client_id=o.client_id, order_id=o.order_id, perm_id=o.perm_id,
                    symbol=o.info.symbol, action=o.action, quantity=o.total_qty, code=code, reason=message,
                    injected=injected)

    def _accept(self, o: SimOrder) -> None:
        o.status = "PreSubmitted"
        if self.gw.faults.take_partial(o):
            self.gw.log("partial_fill_armed", order_id=o.order_id, client_id=o.client_id, cap=o.fill_cap)
        self.notify(o)
        self.gw.log("order_accepted", client_id=o.client_id, order_id=o.order_id, perm_id=o.perm_id,
                    symbol=o.info.symbol, action=o.action, quantity=o.total_qty, type=o.order_type,
                    lmt=o.lmt_price, aux=o.aux_price, tif=o.tif, oca=o.oca_group, outside_rth=o.outside_rth,
                    parent_id=o.parent_id, ref=o.order_ref)
        self.gw.fills.activate_if_eligible(o)

    def _error(self, client_id: int, order_id: int, code: int, text: str) -> None:
        """IB error ``code`` about ``order_id`` to its client, if connected."""
        conn = self.gw.connection_for(client_id)
        if conn is not None:
            conn.send_error(order_id, code, text)

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
        o.checked_until = max(o.checked_until, self.gw.now())
        self.gw.log("order_modified", client_id=o.client_id, order_id=o.order_id, quantity=new_qty,
                    lmt=o.lmt_price, aux=o.aux_price)
        self.notify(o)

    # ------------------------------------------------------------------ cancel

    def cancel_order(self, conn: Connection, fields: list[str]) -> None:
        """cancelOrder ``4|1|orderId|manualOrderCancelTime`` (S5/S6)."""
        assert conn.client_id is not None
        order_id = decode_cancel_order(fields, conn.server_version).order_id
        o = self.orders.get((conn.client_id, order_id))
        if o is None:
            foreign = [x for x in self.orders.values() if x.order_id == order_id and x.client_id != conn.client_id]
            conn.send_error(order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found.")
            self.gw.log("cancel_not_found", client_id=conn.client_id, order_id=order_id,
                        foreign_owner=[x.client_id for x in foreign])
            return
        if o.status == "PendingSubmit":  # staged, never transmitted
            o.status = "Cancelled"
            o.done_at = self.gw.now()
            return
        if not o.working:
            conn.send_error(order_id, 10148,
                            f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {o.status}.")
            return
        if o.status == "PendingCancel":
            return
        self.request_cancel(o, reason="client")

    def global_cancel(self, conn: Connection, fields: list[str]) -> None:
        """reqGlobalCancel (58): cancel every working order of every client (S12)."""
        orders = self.working_orders()
        self.gw.log("global_cancel", client_id=conn.client_id, orders=len(orders))
        for o in orders:
            if o.status != "PendingCancel":
                self.request_cancel(o, reason="global")

    def request_cancel(self, o: SimOrder, reason: str) -> None:
        """Cancel now, or after the injected delay (``PendingCancel`` meanwhile)."""
        self.gw.fills.wake()
        delay = self.gw.faults.cancel_delay()
        if delay > 0 and reason in ("client", "global"):
            o.status = "PendingCancel"
            o.cancel_due = self.gw.now() + delay
            o.cancel_reason = reason
            conn = self.owner(o)
            if conn is not None:
                conn.send(*self.status_msg(o))
            self.gw.log("cancel_delayed", client_id=o.client_id, order_id=o.order_id, seconds=delay)
            return
        self.finish_cancel(o, reason)

    def finish_cancel(self, o: SimOrder, reason: str, *, text: str = "") -> None:
        """orderStatus ``Cancelled`` then error 202 (S5); cascades to bracket children."""
        if o.status in DONE:
            return
        o.status = "Cancelled"
        o.cancel_due = None
        o.done_at = self.gw.now()
        conn = self.owner(o)
        if conn is not None:
            conn.send(*self.open_order_msg(o, version=conn.server_version))
            conn.send(*self.status_msg(o))
            conn.send_error(o.order_id, 202, f"Order Canceled - reason:{text}")
        self.gw.log("order_cancelled", client_id=o.client_id, order_id=o.order_id, perm_id=o.perm_id,
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
        from daytrading.sim_gateway.engine.fills import commission_for

        month = self.gw.fills.month_shares
        before = commission_for(o, o.filled, o.value, month_shares=month)
        o.value += shares * price
        o.filled += shares
        o.avg_fill_price = o.value / o.filled
        o.last_fill_price = price
        after = commission_for(o, o.filled, o.value, month_shares=month)
        fee = after - before
        if o.action == "SELL":
            from daytrading.sim_gateway.engine.fills import sell_fees

            fee += sell_fees(shares, shares * price)
        o.commission += fee
        e = Execution(self.next_exec_id(), o, ts, shares, price, o.filled, o.avg_fill_price, liquidity, fee)
        e.realized = self.gw.account.apply_fill(o.info, e.side, shares, price, fee, order=o)
        o.executions.append(e)
        self.executions.append(e)
        complete = o.remaining <= 1e-9
        if complete:
            o.status = "Filled"
            o.done_at = ts
        conn = self.owner(o)
        if conn is not None:
            delay = self.gw.faults.latency.seconds("executions_ms")
            if delay <= 0 and not self.gw.delays.pending("executions"):
                conn.send(*self.exec_msg(e, version=conn.server_version))
                if complete:
                    conn.send(*self.open_order_msg(o, version=conn.server_version))
                conn.send(*self.status_msg(o))
                conn.send(*self.commission_msg(e))
            else:  # orderStatus now, execDetails + commissionReport later (:mod:`.latency`)
                if complete:
                    conn.send(*self.open_order_msg(o, version=conn.server_version))
                conn.send(*self.status_msg(o))
                self._send_later(conn, "executions", delay, [self.exec_msg(e, version=conn.server_version), self.commission_msg(e)])
        self.gw.log("fill", client_id=o.client_id, order_id=o.order_id, perm_id=o.perm_id, exec_id=e.exec_id,
                    symbol=o.info.symbol, side=e.side, shares=shares, price=price, cum=o.filled,
                    commission=round(fee, 6), fill_time=_iso(ts))
        self.gw.account.push_position(o.info.symbol)
        if complete and o.cancel_due is not None and conn is not None:
            conn.send_error(o.order_id, 10148,
                            f"OrderId {o.order_id} that needs to be cancelled cannot be cancelled, state: Filled.")
        self._after_fill(o, shares)
        return e

    def _after_fill(self, o: SimOrder, shares: float) -> None:
        if o.oca_group:
            self._oca(o, shares)
        if o.status == "Filled":
            for child in self.children(o):
                if child.working:
                    child.checked_until = max(child.checked_until, self.gw.now())
                    self.gw.fills.activate_if_eligible(child)
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

    # ------------------------------------------------------------------ queries from clients

    def req_open_orders(self, conn: Connection, fields: list[str]) -> None:
        """reqOpenOrders (5): this client's working orders (5 then 3 each), then 53."""
        for o in self.working_orders():
            if o.client_id == conn.client_id:
                conn.send(*self.open_order_msg(o, version=conn.server_version))
                conn.send(*self.status_msg(o))
        conn.send(53, 1)

    def req_all_open_orders(self, conn: Connection, fields: list[str]) -> None:
        """reqAllOpenOrders (16): every client's working orders, then 53."""
        for o in self.working_orders():
            conn.send(*self.open_order_msg(o, version=conn.server_version))
            conn.send(*self.status_msg(o))
        conn.send(53, 1)

    def req_completed_orders(self, conn: Connection, fields: list[str]) -> None:
        """reqCompletedOrders (99): this client's done orders as completedOrder (101), then 102."""
        for o in sorted(self.orders.values(), key=lambda x: x.seq):
            if o.client_id == conn.client_id and o.status in DONE and o.perm_id:
                conn.send(*messages.completed_order(conn.server_version, o))
        conn.send(102)

    def req_executions(self, conn: Connection, fields: list[str]) -> None:
        """reqExecutions ``7|3|reqId|clientId|acct|time|symbol|secType|exchange|side`` → (11, 59)…, 55.

        Only this client's executions (IB: non-master clients see their own); the filter's
        symbol and side (``BUY``/``SELL``) are applied, the time filter is ignored.
        """
        req = decode_executions(fields, conn.server_version)
        req_id, symbol, side = req.req_id, req.symbol, req.side
        out: list[list[Any]] = []
        for e in self.executions:
            o = e.order
            if o.client_id != conn.client_id:
                continue
            if symbol and o.info.symbol != symbol.replace(" ", "-"):
                continue
            if side and side != o.action and side != e.side:
                continue
            out += [self.exec_msg(e, req_id, version=conn.server_version), self.commission_msg(e)]
        self._send_later(conn, "executions", 0.0, [*out, [55, 1, req_id]])

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
