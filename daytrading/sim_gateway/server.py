"""The sim-gateway server: TCP listener, handler registry, background tasks, event log.

:class:`SimGateway` listens on 127.0.0.1 and speaks the TWS API at server versions 157–178,
negotiated per connection like IB Gateway (:mod:`.protocol.versions`; "notes" below means
``docs/tws-protocol.md``), so that unmodified ib_async, ib_insync and ibapi clients connect
to it exactly as to IB Gateway. It owns the replay market (DATA's :class:`ReplayMarket`),
the account, the order book and fill engine, the fault state, and DATA's market-data
service.

Handlers: every request type is served by a handler registered with
:meth:`SimGateway.register`. The session decodes each message at the connection's server
version into its typed request (:data:`.protocol.requests.DECODERS`) and calls
``handler(conn, request)``; a message that does not match its layout is answered with error
321 before any handler runs. A handler may return an awaitable, which is awaited before the
connection reads its next message (so keep long waits in background tasks). An exception in
a handler is logged and the connection carries on, as a real gateway would.

Sessions (one per connection: handshake, startApi, dispatch) are in :mod:`.session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from daytrading.sim_gateway.engine.context import PositionChanged
from daytrading.sim_gateway.engine.units import market_iso
from daytrading.sim_gateway.protocol.requests import NoArgs, ReqIds
from daytrading.sim_gateway.session import Connection, Session
from daytrading.clock import Clock

log = logging.getLogger("daytrading.sim_gateway")

__all__ = ["Connection", "Handler", "SimGateway", "settle_heap"]

#: ``handler(conn, request)``: the typed request of :mod:`.protocol.requests` (never fields).
Handler = Callable[["Connection", Any], Awaitable[None] | None]

def settle_heap() -> None:
    """Move everything alive now (the loaded market: frames, trade paths, 5-s grids) out of the
    garbage collector's reach: one full collection, then :func:`gc.freeze`.

    Call once per process after the market is built, in a process that serves one replay (the
    ``sim-gateway`` command). Without it the collector's full passes walk the whole replayed
    market again and again: measured in ``benchmarks/bench_sim_gateway.py``, a 100-symbol
    gateway paused up to ~0.2 s per pass (16 bars of lag at 390×). Objects freed later by
    reference counting are still freed; only cyclic garbage made before the call stays.
    """
    gc.collect()
    gc.freeze()


class SimGateway:
    """A simulated IB Gateway on 127.0.0.1.

    Args:
        market: the replay market (DATA's ``ReplayMarket``); its clock is the gateway clock.
        port: API port (0 = ephemeral; the bound port is in :attr:`port` after start).
        admin_port: admin (fault/report) port; 0 = ephemeral, None = ``port + 1``.
        account: the single managed account id (paper style ``DU…``).
        cash: starting cash, dollars.
        slippage: dollars per share added to BUY / subtracted from SELL market fills.
        faults_file: scenario TOML (see :mod:`.faults`).
        log_dir: where the JSON-lines event log ``sim_gateway_events.jsonl`` goes (None = memory only).
        perm_base: first permId (default: derived from the wall clock at start, so permIds
            are unique per run and differ between runs).
        host: listen address; loopback only.

    Attributes:
        clock, market, connections, faults (engine fault state), fault_runner (carries faults out),
        account, orders, port, admin_port, events.
    """

    def __init__(
        self,
        market: Any,
        *,
        port: int = 0,
        admin_port: int | None = 0,
        account: str = "DU0000001",
        cash: float = 100_000.0,
        slippage: float = 0.0,
        faults_file: str | Path | None = None,
        log_dir: str | Path | None = None,
        perm_base: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        from daytrading.sim_gateway.contracts import ContractService
        from daytrading.sim_gateway.engine.account import Account
        from daytrading.sim_gateway.engine.book import OrderBook
        from daytrading.sim_gateway.engine.fills import FillEngine
        from daytrading.sim_gateway.engine.faults import FaultState
        from daytrading.sim_gateway.faults import FaultRunner
        from daytrading.sim_gateway.handlers import AccountRequests, OrderRequests
        from daytrading.sim_gateway.latency import DelayLine

        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"sim-gateway listens on loopback only, got host={host!r}")
        self.market = market
        self.clock: Clock = market.clock
        self.host = host
        self.port = port
        self.admin_port = admin_port
        self.account_id = account
        self.connections: list[Connection] = []
        self.events: list[dict[str, Any]] = []
        self._handlers: dict[int, Handler] = {}
        self._close_listeners: list[Callable[[Connection], None]] = []
        self._server: asyncio.base_events.Server | None = None
        self._admin: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._conn_seq = 0
        self._log_file: TextIO | None = None
        self.log_dir = Path(log_dir) if log_dir else None
        self.accepting = True
        self.started = False

        self.contracts = ContractService(self)
        self.faults = FaultState(self, market)
        self.fault_runner = FaultRunner(self, self.faults)
        self.account = Account(self, market, account, cash)
        self.orders = OrderBook(self, market, self.account, self.contracts.resolve, self.faults,
                                default_account=account, perm_base=perm_base)
        self.fills = FillEngine(self, market, self.orders, lambda: self.faults.outage_active(), slippage=slippage,
                                speed=lambda: float(getattr(self.clock, "speed", 1.0)))
        self.orders.matcher = self.fills
        self.delays = DelayLine(self.now, lambda: float(getattr(self.clock, "speed", 1.0)))
        self.order_requests = OrderRequests(self)
        self.account_requests = AccountRequests(self)
        if faults_file:
            self.faults.load_scenario(faults_file)
        self._register_core()
        self.contracts.install()
        self.account_requests.install()
        self.order_requests.install()
        from daytrading.sim_gateway.marketdata import MarketDataService

        self.data_service: Any = MarketDataService(market, self.clock, latency=self.faults.latency, log=self.log)
        self.data_service.install(self.register)
        self.add_close_listener(self.data_service.on_connection_closed)

    # ------------------------------------------------------------------ API for services

    def register(self, msg_id: int, handler: Handler) -> None:
        """Serve request type ``msg_id`` with ``handler(conn, fields)`` (module docstring)."""
        self._handlers[int(msg_id)] = handler

    def add_close_listener(self, fn: Callable[[Connection], None]) -> None:
        """Call ``fn(conn)`` whenever a connection closes (drop subscriptions there)."""
        self._close_listeners.append(fn)

    def broadcast(self, *fields: Any) -> None:
        """Send one message to every ready connection."""
        for conn in list(self.connections):
            if conn.ready:
                conn.send(*fields)

    def broadcast_error(self, code: int, message: str) -> None:
        """Send a system notice (reqId −1) to every ready connection."""
        for conn in list(self.connections):
            if conn.ready:
                conn.send_error(-1, code, message)

    def connection_for(self, client_id: int) -> Connection | None:
        """The open connection of ``client_id``, if any."""
        for conn in self.connections:
            if conn.client_id == client_id and conn.ready and not conn.closed:
                return conn
        return None

    def now(self) -> float:
        """Market time, POSIX seconds."""
        return self.clock.timestamp()

    def emit(self, event: Any) -> None:
        """Show an engine event to the clients concerned (:mod:`.engine.context`)."""
        if isinstance(event, PositionChanged):
            self.account_requests.push_position(event.symbol)
        else:
            self.order_requests.show(event)

    def log(self, event: str, **fields: Any) -> None:
        """Record one event (JSON line with market time) in memory, the event log and logging."""
        ts = self.now()
        rec = {"event": event, "market_time": market_iso(ts), **fields}
        self.events.append(rec)
        if len(self.events) > 20_000:
            del self.events[:10_000]
        line = json.dumps(rec, default=str)
        if self._log_file is not None:
            self._log_file.write(line + "\n")
            self._log_file.flush()
        log.info(line)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind the API and admin ports and start the background tasks."""
        from daytrading.sim_gateway.admin import AdminServer

        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_dir / "sim_gateway_events.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        await self._listen()
        admin_port = self.port + 1 if self.admin_port is None else self.admin_port
        self._admin = AdminServer(self)
        self.admin_port = await self._admin.start(self.host, admin_port)
        self.started = True
        self._tasks.append(asyncio.create_task(self.fills.run(), name="sim-fills"))
        self._tasks.append(asyncio.create_task(self.account_requests.run(), name="sim-account"))
        self._tasks.append(asyncio.create_task(self.fault_runner.run(), name="sim-faults"))
        self._tasks.append(asyncio.create_task(self.delays.run(), name="sim-delays"))
        if self.data_service is not None and hasattr(self.data_service, "run"):
            self._tasks.append(asyncio.create_task(self.data_service.run(), name="sim-marketdata"))
        for t in self._tasks:
            t.add_done_callback(self._task_done)
        kind = "SYNTHETIC" if getattr(self.market, "synthetic", False) else "recorded"
        self.log("started", port=self.port, admin_port=self.admin_port, data=kind,
                 session=str(self.market.session_date), symbols=len(self.market.symbols),
                 speed=getattr(self.clock, "speed", 1.0))
        if kind == "SYNTHETIC":
            log.warning("*** SYNTHETIC market data: seeded random session, not a recording ***")

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._on_client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.accepting = True

    async def stop_listening(self) -> None:
        """Close the listening socket (new connections are refused)."""
        self.accepting = False
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def resume_listening(self) -> None:
        """Listen again on the same port after :meth:`stop_listening`."""
        if self._server is None:
            await self._listen()

    def drop_all(self) -> int:
        """Close every client connection (orders stay in the book); returns how many."""
        conns = [c for c in self.connections if not c.closed]
        for conn in conns:
            conn.abort()
        return len(conns)

    async def stop(self) -> None:
        """Close everything: listener, admin port, connections, background tasks."""
        await self.stop_listening()
        if self._admin is not None:
            await self._admin.stop()
        self.drop_all()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    async def __aenter__(self) -> SimGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ connections

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.close()
            return
        self._conn_seq += 1
        conn = Connection(self, reader, writer, self._conn_seq)
        self.connections.append(conn)
        await Session(self, conn).run()

    def handler_for(self, msg_id: int) -> Handler | None:
        """The handler registered for request type ``msg_id``, if any."""
        return self._handlers.get(msg_id)

    def connection_closed(self, conn: Connection) -> None:
        """Forget a closed connection and run the close listeners."""
        if conn in self.connections:
            self.connections.remove(conn)
        if conn.client_id is not None and conn.ready:
            self.log("disconnected", client_id=conn.client_id)
        for fn in self._close_listeners:
            try:
                fn(conn)
            except Exception:  # noqa: BLE001 - one listener must not break the others
                log.exception("close listener failed")

    # ------------------------------------------------------------------ core requests

    def _register_core(self) -> None:
        self.register(49, self._req_current_time)
        self.register(17, self._req_managed_accounts)
        self.register(8, self._req_ids)
        self.register(15, lambda conn, req: None)  # reqAutoOpenOrders: accepted, ignored

    def _req_current_time(self, conn: Connection, req: NoArgs) -> None:  # noqa: ARG002 - no content
        """``49|1`` → ``49|1|<market time, integer POSIX seconds>``."""
        conn.send(49, 1, int(self.now()))

    def _req_managed_accounts(self, conn: Connection, req: NoArgs) -> None:  # noqa: ARG002 - no content
        conn.send(15, 1, self.account_id)

    def _req_ids(self, conn: Connection, req: ReqIds) -> None:  # noqa: ARG002 - IB answers one id
        assert conn.client_id is not None
        conn.send(9, 1, self.orders.next_valid_id(conn.client_id))
