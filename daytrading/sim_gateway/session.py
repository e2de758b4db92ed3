"""One API session per connection: the handshake, ``startApi``, and dispatch of each request.

:class:`Connection` is the socket of one client (send, errors at the negotiated version, abort);
:class:`Session` runs it: version negotiation (:func:`.protocol.versions.negotiate`), ``startApi``
(duplicate client id ⇒ error 326 and close; else ``managedAccounts``, ``nextValidId`` and the farm
notices), then every message to the handler the gateway registered for its id. No trading logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import TYPE_CHECKING, Any

from daytrading.sim_gateway.protocol import messages
from daytrading.sim_gateway.protocol.messages import ib_time
from daytrading.sim_gateway.protocol.requests import DECODERS, RequestError, StartApi
from daytrading.sim_gateway.protocol.versions import MAX_SERVER_VERSION, negotiate
from daytrading.sim_gateway.protocol.wire import HandshakeError, encode_message, read_handshake, read_message

if TYPE_CHECKING:
    from daytrading.sim_gateway.server import SimGateway

__all__ = ["FARM_NOTICES", "MAX_BUFFER", "Connection", "Session"]

log = logging.getLogger("daytrading.sim_gateway")

#: Farm notices real IB Gateway sends after every connect (notes §4.6).
FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)

#: startApi's message id: the only request served before the session is ready.
START_API = 71

#: Output buffer above which a client that does not read is disconnected (bytes).
MAX_BUFFER = 64 * 1024 * 1024


class Connection:
    """One API client connection.

    Attributes:
        client_id: from ``startApi``; None until then.
        server_version: negotiated in the handshake (157–178, :mod:`.protocol.versions`).
        gateway: the owning :class:`SimGateway`.
        closed: True once the socket is closed.
        conn_id: sequence number of the connection within this gateway run.
        market_data_type: last ``reqMarketDataType`` (1 live … 4 delayed-frozen).
        positions_sub: subscribed with ``reqPositions``.
        account_sub: subscribed with ``reqAccountUpdates``.
        account_values_sent: the account values (6) this connection was last sent, tag →
            (value text, currency): later pushes carry only the values that differ.
        summary_reqs: open ``reqAccountSummary`` request ids → tag list (None = all).
        multi_reqs: open ``reqAccountUpdatesMulti`` request ids.
        pnl_reqs: open ``reqPnL`` request ids.
        state: free-form per-connection state for services (e.g. DATA's subscriptions).
    """

    def __init__(self, gateway: SimGateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn_id: int) -> None:
        self.gateway = gateway
        self.reader = reader
        self.writer = writer
        self.conn_id = conn_id
        self.client_id: int | None = None
        self.server_version = MAX_SERVER_VERSION
        self.closed = False
        self.ready = False
        self.market_data_type = 1
        self.positions_sub = False
        self.account_sub = False
        self.account_values_sent: dict[str, tuple[str, str]] = {}
        self.summary_reqs: dict[int, list[str] | None] = {}
        self.multi_reqs: set[int] = set()
        self.pnl_reqs: set[int] = set()
        self.state: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Connection(#{self.conn_id}, clientId={self.client_id})"

    def send(self, *fields: Any) -> None:
        """Send one message (fields encoded by :func:`~.wire.encode_message`); no-op when closed."""
        if self.closed:
            return
        self._write(encode_message(fields))

    def send_many(self, messages: list[list[Any]]) -> None:
        """Send ``messages`` (each a field list as for :meth:`send`) in one socket write: the same
        bytes as one :meth:`send` each, read by the client in one go; no-op when closed."""
        if self.closed or not messages:
            return
        self._write(b"".join([encode_message(m) for m in messages]))

    def _write(self, data: bytes) -> None:
        try:
            self.writer.write(data)
        except (ConnectionError, RuntimeError) as exc:
            log.info("send failed, closing %r: %s", self, exc)
            self.abort()
            return
        transport = self.writer.transport
        if transport is not None and transport.get_write_buffer_size() > MAX_BUFFER:
            log.warning("client %r does not read; disconnecting", self)
            self.abort()

    def send_error(self, req_id: int, code: int, message: str) -> None:
        """Error/notice message at the connection's version (:func:`.protocol.messages.error`)."""
        self.send(*messages.error(self.server_version, req_id, code, message))

    def abort(self) -> None:
        """Close the socket now (the read loop then runs the close listeners)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.writer.close()


class Session:
    """Runs one :class:`Connection` of ``gateway`` until it closes (module docstring)."""

    def __init__(self, gateway: SimGateway, conn: Connection) -> None:
        self.gw = gateway
        self.conn = conn

    async def run(self) -> None:
        """Handshake, then read and dispatch messages until the connection closes."""
        conn = self.conn
        try:
            if not await self._handshake(conn, conn.reader, conn.writer):
                return
            while not conn.closed:
                fields = await read_message(conn.reader)
                if not fields:
                    continue
                await self._dispatch(conn, fields)
        except (asyncio.IncompleteReadError, ConnectionError, HandshakeError) as exc:
            if isinstance(exc, HandshakeError):
                log.warning("bad handshake: %s", exc)
        except asyncio.CancelledError:
            pass
        finally:
            conn.abort()
            self.gw.connection_closed(conn)

    async def _handshake(self, conn: Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read the client's version range and answer it (:func:`.protocol.versions.negotiate`);
        False when the session must close."""
        vmin, vmax, _ = await read_handshake(reader)
        deal = negotiate(vmin, vmax)
        conn.server_version = deal.version
        conn.send(deal.version, ib_time(self.gw.now()))
        if not deal.accepted:
            log.warning("sim-gateway: %s", deal.reason)
            self.gw.log("handshake_refused", client_min=vmin, client_max=vmax, reason=deal.reason)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            return False
        if deal.reason:
            log.info("sim-gateway: %s", deal.reason)
        self.gw.log("handshake", client_min=vmin, client_max=vmax, server_version=deal.version)
        return True

    async def _dispatch(self, conn: Connection, fields: list[str]) -> None:
        """Decode one message at the connection's version (:func:`.protocol.requests.decode_request`)
        and hand the typed request to its handler. A message that does not match its layout is
        answered with error 321 naming the field (for the request's id when it was readable)."""
        try:
            msg_id = int(fields[0])
        except ValueError:
            log.warning("non-numeric message id from %r: %r", conn, fields[:3])
            return
        if msg_id != START_API and not conn.ready:
            log.debug("ignoring message %s before startApi", msg_id)
            return
        handler = self._start_api if msg_id == START_API else self.gw.handler_for(msg_id)
        if handler is None or msg_id not in DECODERS:
            log.debug("no handler for message %s from %r: %r", msg_id, conn, fields[:6])
            return
        name, decoder = DECODERS[msg_id]
        try:
            request = decoder(fields, conn.server_version)
        except RequestError as exc:
            self._refuse(conn, name, exc)
            return
        try:
            result = handler(conn, request)
            if inspect.isawaitable(result):
                await result
        except Exception:  # noqa: BLE001 - a bad request must not kill the connection
            log.exception("handler for message %s failed on %r", msg_id, fields[:20])

    def _refuse(self, conn: Connection, name: str, exc: RequestError) -> None:
        """Error 321 for a malformed request, as IB Gateway answers one; startApi also closes."""
        conn.send_error(exc.req_id, 321, f"Error validating request:-'{name}' : cause - {exc}")
        self.gw.log("order_rejected" if name == "placeOrder" else "request_rejected", client_id=conn.client_id,
                    request=name, order_id=exc.req_id, code=321, reason=str(exc))
        if name == "startApi":
            conn.abort()

    def _start_api(self, conn: Connection, req: StartApi) -> None:
        client_id = req.client_id
        if self.gw.connection_for(client_id) is not None:
            conn.send_error(-1, 326, "Unable to connect as the client id is already in use. "
                                     "Retry with a unique client id.")
            self.gw.log("duplicate_client_id", client_id=client_id)
            conn.abort()
            return
        conn.client_id = client_id
        conn.ready = True
        conn.send(15, 1, self.gw.account_id)
        conn.send(9, 1, self.gw.orders.next_valid_id(client_id))
        for code, text in FARM_NOTICES:
            conn.send_error(-1, code, text)
        self.gw.log("connected", client_id=client_id, conn=conn.conn_id, server_version=conn.server_version)
        self.gw.fault_runner.on_connect(conn)
