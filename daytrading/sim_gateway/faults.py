"""Fault injection, session side: fires the scenario on the market clock and carries out faults.

The faults' state and what each action means live in the engine (:mod:`.engine.faults`,
:class:`~.engine.faults.FaultState`: the book and the fill engine ask it). :class:`FaultRunner`
is the part that needs the process: it applies admin commands and scheduled entries to that
state and carries out the effects it returns on the connections and the listener (drop clients,
refuse connections, broadcast 1100/1101/1102, drop market-data subscriptions, let orders held by
an outage trade again). The table below is what an admin command or a scenario entry can do.

All durations are **market seconds** on the gateway's replay clock (at speed 60, 60 s is one
wall second). Every fault is logged in the event log with the market time it fired.

======================  =====================================================================
action (params)         effect
======================  =====================================================================
``drop``                close every client connection (orders stay in the book)
``refuse`` (seconds,    stop listening: new connections are refused for ``seconds``;
drop=false)             ``drop`` also closes the existing ones
``outage`` (seconds,    error 1100 to every client; no fills and held orders/cancels while it
data_lost=false,        lasts; then 1101 (``data_lost``: market-data subscriptions dropped)
drop=false)             or 1102. ``drop`` also closes the connections at its start
``notice`` (code)       send 1100, 1101 or 1102 now (1101 drops market-data subscriptions)
``reject`` (count=1,    the next ``count`` orders are rejected with ``code`` (S8 messages)
code=201, message)
``delay_cancel``        cancel confirmations arrive ``seconds`` later (``PendingCancel``
(seconds)               meanwhile; the order can still fill); 0 switches it off
``partial`` (fraction   the next order fills only ``quantity`` shares (or ``fraction`` of its
=0.5, quantity)         size, at least 1 share); the rest stays working
``halt`` (symbol,       halt (or resume) a symbol: no trades, no fills, no ticks
halted=true)
``resume`` (symbol)     end a halt
``shortable`` (symbol,  change a symbol's shortability
shortable)
``latency`` (KEY=MS…)   set injected latencies (:mod:`.latency`: ``positions_ms``,
                        ``order_ack_ms``, ``executions_ms``, ``market_data_ms``); without
                        keys it only reports them
======================  =====================================================================

Scenario file (``--faults FILE``): an optional ``[latency]`` table in force from the start
(keys of :mod:`.latency`, milliseconds of market time), and ``[[fault]]`` entries::

    [latency]
    positions_ms = 700

    [[fault]]
    at = "10:30"          # market time on the session date (HH:MM[:SS]) or an ISO datetime
    action = "outage"
    seconds = 60
    data_lost = true

    [[fault]]
    at = "11:00:30"
    action = "reject"
    count = 2
    code = 201
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from daytrading.sim_gateway.engine.faults import (
    ACTIONS,
    NOTICES,
    Broadcast,
    DropClients,
    Effect,
    FaultState,
    MarketDataLost,
    OutageEnded,
    ResumeListening,
    StopListening,
    market_iso,
)

if TYPE_CHECKING:
    from daytrading.sim_gateway.server import Connection, SimGateway

__all__ = ["ACTIONS", "FaultRunner"]


class FaultRunner:
    """Applies faults to the gateway's :class:`~.engine.faults.FaultState` and carries out their effects.

    Args:
        gateway: the server (connections, listener, market-data service, fill engine).
        state: the engine's fault state (``gateway.faults``).
    """

    def __init__(self, gateway: SimGateway, state: FaultState) -> None:
        self.gw = gateway
        self.state = state
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Re-plan the fault loop (a scenario or a timed fault was added)."""
        self._wake.set()

    def on_connect(self, conn: Connection) -> None:
        """A client connecting during an outage is told so (1100)."""
        if self.state.outage_active():
            conn.send_error(-1, 1100, NOTICES[1100])

    async def apply(self, action: str, *, scheduled: bool = False, scheduled_at: str | None = None,
                    **params: Any) -> dict[str, Any]:
        """Apply one fault now and carry out its effects; returns a short description (with
        ``dropped``: connections closed). Raises ValueError on bad params (named)."""
        result, effects = self.state.apply(action, **params)
        for effect in effects:
            result.update(await self._carry_out(effect))
        self.state.record(action, params, result, scheduled=scheduled, scheduled_at=scheduled_at)
        self.wake()
        for svc in (getattr(self.gw, "fills", None), getattr(self.gw, "data_service", None)):
            if svc is not None and hasattr(svc, "wake"):
                svc.wake()
        return result

    async def _carry_out(self, effect: Effect) -> dict[str, Any]:
        """Do what one engine effect asks of the process; returns what to add to the result."""
        gw = self.gw
        if isinstance(effect, DropClients):
            return {"dropped": gw.drop_all()}
        if isinstance(effect, StopListening):
            await gw.stop_listening()
        elif isinstance(effect, ResumeListening):
            await gw.resume_listening()
        elif isinstance(effect, Broadcast):
            gw.broadcast_error(effect.code, effect.text)
        elif isinstance(effect, MarketDataLost):
            svc = gw.data_service
            if svc is not None and hasattr(svc, "on_data_lost"):
                svc.on_data_lost()
        elif isinstance(effect, OutageEnded):
            gw.fills.resume_after_outage(effect.at)
        else:
            raise TypeError(f"not a fault effect: {effect!r}")
        return {}

    async def run(self) -> None:
        """Fire scheduled faults and end timed ones on the market clock; sleeps until the
        next of them (:meth:`FaultState.next_due`) or a :meth:`wake`, never on a fixed period."""
        state = self.state
        while True:
            now = self.gw.now()
            for f in state.take_due(now):
                try:
                    await self.apply(f.action, scheduled=True, scheduled_at=market_iso(f.at), **f.params)
                except Exception as exc:  # noqa: BLE001 - a bad scenario entry must not stop the gateway
                    self.gw.log("fault_failed", action=f.action, error=str(exc))
            for effect in state.expire(now):
                await self._carry_out(effect)
            due = state.next_due()
            self._wake.clear()
            timeout = None
            if due is not None:
                speed = max(float(getattr(self.gw.clock, "speed", 1.0)), 1e-9)
                timeout = max(0.0, (due - self.gw.now()) / speed) + 1e-6
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
