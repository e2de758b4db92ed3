"""Request handlers and event rendering: the session-side half of orders and the account.

Each handler takes a connection and the typed request the session decoded at the connection's
server version (:mod:`.protocol.requests`; handlers never see fields), and calls the engine
(:class:`~.engine.book.OrderBook`, :class:`~.engine.account.Account`). The engine's events come
back through :meth:`OrderRequests.show` and are turned into messages (:mod:`.protocol.messages`)
for the connection of the client concerned, through the injected latencies (:mod:`.latency`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daytrading.clock import NY
from daytrading.sim_gateway.engine.account import PUSH_EVERY, Position
from daytrading.sim_gateway.engine.book import DONE, Execution
from daytrading.sim_gateway.engine.context import FillReported, OrderChanged, OrderError
from daytrading.sim_gateway.engine.units import qty_field
from daytrading.sim_gateway.protocol import messages
from daytrading.sim_gateway.protocol.messages import money
from daytrading.sim_gateway.protocol.requests import (
    Cancel,
    CancelOrder,
    NoArgs,
    PlaceOrder,
    ReqAccountSummary,
    ReqAccountUpdates,
    ReqAccountUpdatesMulti,
    ReqCompletedOrders,
    ReqExecutions,
    ReqPnL,
    ReqPnLSingle,
)

if TYPE_CHECKING:
    from daytrading.sim_gateway.server import SimGateway
    from daytrading.sim_gateway.session import Connection

__all__ = ["AccountRequests", "OrderRequests"]


class OrderRequests:
    """placeOrder, cancelOrder, reqGlobalCancel, reqOpenOrders, reqAllOpenOrders, reqCompletedOrders,
    reqExecutions; and the messages of the book's events."""

    def __init__(self, gateway: SimGateway) -> None:
        self.gw = gateway
        self.book = gateway.orders

    def install(self) -> None:
        """Register the order request handlers (placeOrder, cancelOrder and reqGlobalCancel through
        the ``order_ack_ms`` latency, :mod:`.latency`)."""
        r = self.gw.register
        r(3, self._after_ack_latency(self.place_order))
        r(4, self._after_ack_latency(self.cancel_order))
        r(58, self._after_ack_latency(self.global_cancel))
        r(5, self.req_open_orders)
        r(16, self.req_all_open_orders)
        r(99, self.req_completed_orders)
        r(7, self.req_executions)

    def _after_ack_latency(self, handler: Callable[[Connection, Any], None]) -> Callable[[Connection, Any], None]:
        """``handler`` run ``order_ack_ms`` after the request arrived, requests kept in order."""

        def delayed(conn: Connection, req: Any) -> None:
            if isinstance(req, PlaceOrder) and conn.client_id is not None:
                # ids are used at once; a bad one is refused later
                self.book._max_id[conn.client_id] = max(self.book._max_id.get(conn.client_id, 0), req.order_id)
            delay = self.gw.faults.latency.seconds("order_ack_ms")
            self.gw.delays.submit("orders", delay, lambda: handler(conn, req))

        return delayed

    def _send_later(self, conn: Connection, channel: str, delay: float, messages: list[list[Any]]) -> None:
        def send() -> None:
            for m in messages:
                conn.send(*m)

        self.gw.delays.submit(channel, delay, send)

    def place_order(self, conn: Connection, req: PlaceOrder) -> None:
        """placeOrder (3), decoded at the connection's version by :func:`.protocol.requests.decode_place_order`."""
        assert conn.client_id is not None
        if req.unread:
            self.gw.log("place_order_extra_fields", client_id=conn.client_id, order_id=req.order_id,
                        unread=req.unread, version=conn.server_version)
        self.book.submit(conn.client_id, req)

    def cancel_order(self, conn: Connection, req: CancelOrder) -> None:
        """cancelOrder ``4|1|orderId[|manualOrderCancelTime]`` (S5/S6)."""
        assert conn.client_id is not None
        self.book.cancel(conn.client_id, req.order_id)

    def global_cancel(self, conn: Connection, req: NoArgs) -> None:  # noqa: ARG002 - no content
        """reqGlobalCancel (58): every working order of every client (S12)."""
        self.book.global_cancel(conn.client_id)

    def req_open_orders(self, conn: Connection, req: NoArgs) -> None:  # noqa: ARG002 - no content
        """reqOpenOrders (5): this client's working orders (5 then 3 each), then 53."""
        for o in self.book.working_orders():
            if o.client_id == conn.client_id:
                conn.send(*messages.open_order(conn.server_version, o))
                conn.send(*messages.order_status(o))
        conn.send(53, 1)

    def req_all_open_orders(self, conn: Connection, req: NoArgs) -> None:  # noqa: ARG002 - no content
        """reqAllOpenOrders (16): every client's working orders, then 53."""
        for o in self.book.working_orders():
            conn.send(*messages.open_order(conn.server_version, o))
            conn.send(*messages.order_status(o))
        conn.send(53, 1)

    def req_completed_orders(self, conn: Connection, req: ReqCompletedOrders) -> None:  # noqa: ARG002
        """reqCompletedOrders (99): this client's done orders as completedOrder (101), then 102."""
        for o in sorted(self.book.orders.values(), key=lambda x: x.seq):
            if o.client_id == conn.client_id and o.status in DONE and o.perm_id:
                conn.send(*messages.completed_order(conn.server_version, o))
        conn.send(102)

    def req_executions(self, conn: Connection, req: ReqExecutions) -> None:
        """reqExecutions ``7|3|reqId|clientId|acct|time|symbol|secType|exchange|side`` → (11, 59)…, 55.

        Only this client's executions (IB: non-master clients see their own); the filter's
        symbol and side (``BUY``/``SELL``) are applied, the time filter is ignored.
        """
        req_id, symbol, side = req.req_id, req.symbol, req.side
        out: list[list[Any]] = []
        for e in self.book.executions:
            o = e.order
            if o.client_id != conn.client_id:
                continue
            if symbol and o.info.symbol != symbol.replace(" ", "-"):
                continue
            if side and side != o.action and side != e.side:
                continue
            out += [messages.exec_details(conn.server_version, e, req_id), messages.commission_report(e)]
        self._send_later(conn, "executions", 0.0, [*out, [55, 1, req_id]])

    # ------------------------------------------------------------------ events → messages

    def show(self, event: Any) -> None:
        """Send what an engine event means to the connection of the client concerned, if connected."""
        if isinstance(event, OrderChanged):
            conn = self.gw.connection_for(event.order.client_id)
            if conn is not None:
                if event.open_order:
                    conn.send(*messages.open_order(conn.server_version, event.order))
                conn.send(*messages.order_status(event.order))
        elif isinstance(event, OrderError):
            conn = self.gw.connection_for(event.client_id)
            if conn is not None:
                conn.send_error(event.order_id, event.code, event.text)
        elif isinstance(event, FillReported):
            self._show_fill(event.execution, event.complete)
        else:
            raise TypeError(f"not an order event: {event!r}")

    def _show_fill(self, e: Execution, complete: bool) -> None:
        """execDetails, openOrder (when done), orderStatus, commissionReport; with ``executions_ms``
        latency the orderStatus goes now and execDetails + commissionReport later."""
        o = e.order
        conn = self.gw.connection_for(o.client_id)
        if conn is None:
            return
        v = conn.server_version
        delay = self.gw.faults.latency.seconds("executions_ms")
        if delay <= 0 and not self.gw.delays.pending("executions"):
            conn.send(*messages.exec_details(v, e))
            if complete:
                conn.send(*messages.open_order(v, o))
            conn.send(*messages.order_status(o))
            conn.send(*messages.commission_report(e))
            return
        if complete:
            conn.send(*messages.open_order(v, o))
        conn.send(*messages.order_status(o))
        self._send_later(conn, "executions", delay, [messages.exec_details(v, e), messages.commission_report(e)])


class AccountRequests:
    """reqPositions, reqAccountUpdates(Multi), reqAccountSummary, reqPnL(Single), and the position,
    portfolio, account-value and P&L pushes after fills (through ``positions_ms``) and once a
    market minute."""

    def __init__(self, gateway: SimGateway) -> None:
        self.gw = gateway
        self.acct = gateway.account

    def install(self) -> None:
        """Register the account request handlers."""
        r = self.gw.register
        r(61, self._req_positions)
        r(64, self._cancel_positions)
        r(6, self._req_account_updates)
        r(76, self._req_account_updates_multi)
        r(77, self._cancel_multi)
        r(62, self._req_account_summary)
        r(63, self._cancel_summary)
        r(92, self._req_pnl)
        r(93, self._cancel_pnl)
        r(94, self._req_pnl_single)
        r(95, self._cancel_pnl_single)


    def position_msg(self, p: Position) -> list[Any]:
        """position (61) (:func:`.protocol.messages.position`)."""
        return messages.position(self.acct.account, p)

    def portfolio_msg(self, p: Position) -> list[Any]:
        """updatePortfolio (7) marked at the last trade (:func:`.protocol.messages.portfolio`)."""
        return messages.portfolio(self.acct.account, p, self.acct.mark(p) if p.qty else 0.0)

    def _value_msgs(self, conn: Connection, values: dict[str, tuple[str, str]], *, full: bool = False) -> list[list[Any]]:
        """The account values (6) of ``values`` (:meth:`Account.values`) that differ from what
        ``conn`` was last sent (all of them when ``full``), then the account time (8); nothing at
        all when no value differs. As IB, which sends an account value when it changes: the
        client's account values end the same as with every value resent."""
        sent = conn.account_values_sent
        if full:
            sent.clear()
        account = self.acct.account
        out: list[list[Any]] = []
        for key, value_cur in values.items():
            if sent.get(key) != value_cur:
                sent[key] = value_cur
                out.append([6, 2, key, value_cur[0], value_cur[1], account])
        if out or full:
            out.append([8, 1, datetime.fromtimestamp(self.gw.now(), tz=NY).strftime("%H:%M")])
        return out

    def push_position(self, symbol: str) -> None:
        """After a fill: position (61) to reqPositions subscribers, portfolio (7) + changed values
        (6) + time (8) to reqAccountUpdates subscribers, PnL (94/95) to reqPnL subscribers.

        The messages are built now (they show the position right after this fill) and sent
        ``executions_ms + positions_ms`` market milliseconds later (:mod:`.latency`)."""
        p = self.acct.positions.get(symbol)
        out: list[tuple[Connection, list[Any]]] = []
        values: dict[str, tuple[str, str]] | None = None
        for conn in list(self.gw.connections):
            if not conn.ready or conn.closed:
                continue
            if p is not None and conn.positions_sub:
                out.append((conn, self.position_msg(p)))
            if conn.account_sub:
                if p is not None:
                    out.append((conn, self.portfolio_msg(p)))
                if values is None:
                    values = self.acct.values()
                out += [(conn, m) for m in self._value_msgs(conn, values)]
            out += [(conn, m) for m in self._pnl_msgs(conn)]
        lat = self.gw.faults.latency
        self._deliver(out, lat.seconds("executions_ms") + lat.seconds("positions_ms"))

    def _deliver(self, out: list[tuple[Connection, list[Any]]], delay: float = 0.0) -> None:
        """Send ``(connection, message)`` pairs through the ``positions`` channel of the delay line."""
        if not out:
            return

        def send() -> None:
            by_conn: dict[int, tuple[Connection, list[list[Any]]]] = {}
            for conn, msg in out:  # one write per connection, messages in their order
                by_conn.setdefault(id(conn), (conn, []))[1].append(msg)
            for conn, msgs in by_conn.values():
                conn.send_many(msgs)

        self.gw.delays.submit("positions", delay, send)

    def _pnl_msgs(self, conn: Connection) -> list[list[Any]]:
        """PnL (94) and PnL single (95) messages for ``conn``'s open requests."""
        out: list[list[Any]] = []
        if conn.pnl_reqs:
            daily, unreal, real = self.acct.pnl()
            out += [[94, req_id, money(daily), money(unreal), money(real)] for req_id in conn.pnl_reqs]
        for req_id, con_id in conn.state.get("pnl_single", {}).items():
            info = self.gw.market.contract_by_id(con_id)
            p = self.acct.positions.get(info.symbol) if info else None
            if p is None:
                out.append([95, req_id, 0, 0.0, 0.0, 0.0, 0.0])
                continue
            m = self.acct.mark(p)
            unreal = p.qty * (m - p.avg_cost)
            out.append([95, req_id, qty_field(p.qty), money(unreal + p.realized), money(unreal),
                        money(p.realized), money(p.qty * m)])
        return out

    async def run(self) -> None:
        """Refresh marks to subscribers once per market minute (at most 4 times a wall second):
        portfolio entries of held positions, the account values that changed (:meth:`_value_msgs`),
        P&L."""
        while True:
            # one market minute, but at most 4 times a wall second (clock.speed market s per wall s)
            speed = max(float(getattr(self.gw.clock, "speed", 1.0)), 1e-9)
            await asyncio.sleep(max(PUSH_EVERY / speed, 0.25))
            out: list[tuple[Connection, list[Any]]] = []
            values: dict[str, tuple[str, str]] | None = None
            for conn in list(self.gw.connections):
                if not conn.ready or conn.closed:
                    continue
                if conn.account_sub:
                    out += [(conn, self.portfolio_msg(p)) for p in self.acct.positions.values() if p.qty]
                    if values is None:
                        values = self.acct.values()
                    out += [(conn, m) for m in self._value_msgs(conn, values)]
                out += [(conn, m) for m in self._pnl_msgs(conn)]
            self._deliver(out)

    # ------------------------------------------------------------------ handlers

    def _req_positions(self, conn: Connection, req: NoArgs) -> None:  # noqa: ARG002 - no content
        """``61|1`` → 61 per held position, then 62 (queued behind held-back pushes)."""
        conn.positions_sub = True
        out = [(conn, self.position_msg(p)) for p in self.acct.positions.values() if p.qty]
        self._deliver([*out, (conn, [62, 1])])

    def _cancel_positions(self, conn: Connection, req: NoArgs) -> None:  # noqa: ARG002 - no content
        conn.positions_sub = False

    def _req_account_updates(self, conn: Connection, req: ReqAccountUpdates) -> None:
        """``6|2|subscribe|account`` → 6…, 7…, 8, 54 (notes §4.2 row 4)."""
        conn.account_sub = req.subscribe
        if not req.subscribe:
            return
        out = [(conn, m) for m in self._value_msgs(conn, self.acct.values(), full=True)]
        out += [(conn, self.portfolio_msg(p)) for p in self.acct.positions.values() if p.qty]
        self._deliver([*out, (conn, [54, 1, self.acct.account])])

    def _req_account_updates_multi(self, conn: Connection, req: ReqAccountUpdatesMulti) -> None:
        """``76|1|reqId|account|modelCode|ledgerAndNLV`` → 73… then 74."""
        conn.multi_reqs.add(req.req_id)
        for key, (value, cur) in self.acct.values().items():
            conn.send(73, 1, req.req_id, self.acct.account, "", key, value, cur)
        conn.send(74, 1, req.req_id)

    def _cancel_multi(self, conn: Connection, req: Cancel) -> None:
        conn.multi_reqs.discard(req.req_id)

    def _req_account_summary(self, conn: Connection, req: ReqAccountSummary) -> None:
        """``62|1|reqId|group|tags`` → 63 per (account, tag) then 64."""
        values = self.acct.values()
        wanted = [t for t in req.tags if t in values] if req.tags and "All" not in req.tags else list(values)
        conn.summary_reqs[req.req_id] = wanted
        for tag in wanted:
            value, cur = values[tag]
            conn.send(63, 1, req.req_id, self.acct.account, tag, value, cur)
        conn.send(64, 1, req.req_id)

    def _cancel_summary(self, conn: Connection, req: Cancel) -> None:
        conn.summary_reqs.pop(req.req_id, None)

    def _req_pnl(self, conn: Connection, req: ReqPnL) -> None:
        """``92|reqId|account|modelCode`` → 94 now and after every change / market minute."""
        conn.pnl_reqs.add(req.req_id)
        daily, unreal, real = self.acct.pnl()
        self._deliver([(conn, [94, req.req_id, money(daily), money(unreal), money(real)])])

    def _cancel_pnl(self, conn: Connection, req: Cancel) -> None:
        conn.pnl_reqs.discard(req.req_id)

    def _req_pnl_single(self, conn: Connection, req: ReqPnLSingle) -> None:
        """``94|reqId|account|modelCode|conId`` → 95 pushes."""
        conn.state.setdefault("pnl_single", {})[req.req_id] = req.con_id
        self._deliver([(conn, m) for m in self._pnl_msgs(conn)])

    def _cancel_pnl_single(self, conn: Connection, req: Cancel) -> None:
        conn.state.get("pnl_single", {}).pop(req.req_id, None)
