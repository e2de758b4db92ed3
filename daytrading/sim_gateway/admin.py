"""Admin port: JSON-lines commands on a second loopback port (faults, report, clock).

Protocol: the client sends one line ``{"command": "<name>", "params": {...}}`` and gets one
line back: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "<message>"}``. A
connection may send several commands. Commands:

* ``report`` — positions (symbol → signed shares), ``min_position`` (lowest position per
  symbol in the run: the "never short" check), ``shorts`` (events where a position went
  below zero), ``short_sells`` / ``rejected_short_sells`` (SELL orders beyond the long
  position, accepted for shortable symbols / rejected with 201), ``orders`` (every order),
  ``open_orders`` (working ones), ``executions``, cash / net liquidation / P&L /
  commissions, ``faults`` (fired faults with market time), ``latency`` (current settings,
  ms), ``synthetic`` (True when the data are synthetic) and ``clock``.
* ``clock`` — ``start`` (ISO market time at the epoch), ``epoch`` (wall POSIX s), ``speed``,
  ``now`` (market time), ``session_date``.
* ``status`` — connections and counts. ``events`` (``limit``) — recent event-log records.
* every fault action of :mod:`.faults` (``drop``, ``refuse``, ``outage``, ``notice``,
  ``reject``, ``delay_cancel``, ``partial``, ``halt``, ``resume``, ``shortable``), and
  ``latency`` (``positions_ms``, ``order_ack_ms``, ``executions_ms``, ``market_data_ms``:
  milliseconds of market time, :mod:`.latency`; returns every setting after the change).

:func:`request` is the blocking client used by ``daytrading sim-gateway-ctl``, the test
helpers and the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daytrading.sim_gateway.faults import ACTIONS
from daytrading.clock import NY

if TYPE_CHECKING:
    from daytrading.sim_gateway.server import SimGateway

__all__ = ["AdminError", "AdminServer", "request"]


class AdminError(RuntimeError):
    """The gateway answered a command with an error, or could not be reached."""


class AdminServer:
    """The admin listener of one gateway."""

    def __init__(self, gateway: SimGateway) -> None:
        self.gw = gateway
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 = ephemeral); returns the bound port."""
        self._server = await asyncio.start_server(self._on_client, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    msg = json.loads(line)
                    if not isinstance(msg, dict):
                        raise ValueError("request must be a JSON object")
                    result = await self.execute(str(msg.get("command", "")), dict(msg.get("params") or {}))
                    reply = {"ok": True, "result": result}
                except Exception as exc:  # noqa: BLE001 - every problem goes back to the caller
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write((json.dumps(reply, default=str) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def execute(self, command: str, params: dict[str, Any]) -> Any:
        """Run one admin command (module docstring). Raises ValueError for unknown commands."""
        if command == "report":
            return self.report()
        if command == "clock":
            return self.clock()
        if command == "status":
            return {"connections": [{"client_id": c.client_id, "conn": c.conn_id} for c in self.gw.connections
                                    if c.ready], "orders": len(self.gw.orders.orders),
                    "executions": len(self.gw.orders.executions), "accepting": self.gw.accepting,
                    "outage": self.gw.faults.outage_active()}
        if command == "events":
            return self.gw.events[-int(params.get("limit", 200)):]
        if command in ACTIONS:
            return await self.gw.fault_runner.apply(command, **params)
        raise ValueError(f"unknown command {command!r}; known: report, clock, status, events, {', '.join(ACTIONS)}")

    def clock(self) -> dict[str, Any]:
        """Replay clock settings and market now."""
        c = self.gw.clock
        now = self.gw.now()
        start = getattr(c, "start", None)
        return {"start": start.isoformat() if start is not None else None, "epoch": getattr(c, "epoch", None),
                "speed": getattr(c, "speed", 1.0), "now": datetime.fromtimestamp(now, tz=NY).isoformat(),
                "now_ts": now, "session_date": str(self.gw.market.session_date)}

    def report(self) -> dict[str, Any]:
        """The run's positions, orders, executions and short-sale records."""
        acct = self.gw.account
        values = acct.values()
        return {
            "synthetic": bool(getattr(self.gw.market, "synthetic", False)),
            "session_date": str(self.gw.market.session_date),
            "account": acct.account,
            "clock": self.clock(),
            "positions": {s: _num(p.qty) for s, p in sorted(acct.positions.items())},
            "avg_cost": {s: p.avg_cost for s, p in sorted(acct.positions.items()) if p.qty},
            "min_position": {s: _num(p.min_qty) for s, p in sorted(acct.positions.items())},
            "shorts": list(acct.shorts),
            "cash": round(acct.cash, 6),
            "net_liquidation": float(values["NetLiquidation"][0]),
            "realized_pnl": round(acct.realized, 6),
            "commissions": round(acct.commissions, 6),
            **self.gw.orders.report(),
            "faults": list(self.gw.faults.history),
            "latency": self.gw.faults.latency.as_dict(),
        }


def _num(q: float) -> int | float:
    return int(q) if float(q).is_integer() else float(q)


def request(port: int, command: str, *, host: str = "127.0.0.1", timeout: float = 10.0, **params: Any) -> Any:
    """Send one admin command to the gateway's admin ``port`` and return its result.

    Raises:
        AdminError: the gateway is unreachable, or it reported an error for the command.
    """
    payload = (json.dumps({"command": command, "params": params}) + "\n").encode()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(payload)
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
    except OSError as exc:
        raise AdminError(f"sim-gateway admin port {host}:{port} unreachable: {exc}") from exc
    if not buf:
        raise AdminError(f"sim-gateway admin port {host}:{port} closed without answering {command!r}")
    reply = json.loads(buf)
    if not reply.get("ok"):
        raise AdminError(f"sim-gateway refused {command!r}: {reply.get('error')}")
    return reply.get("result")
