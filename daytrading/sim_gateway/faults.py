"""Fault injection, session side: fires the scenario on the market clock and carries out faults.

The faults' state and what each action means live in the engine (:mod:`.engine.faults`,
:class:`~.engine.faults.FaultState`: the book and the fill engine ask it). :class:`FaultRunner`
is the part that needs the process: it applies admin commands and scheduled entries to that
state and carries out the effects it returns on the connections and the listener (drop clients,
refuse connections, broadcast 1100/1101/1102, drop market-data subscriptions, let orders held by
an outage trade again). The actions, their parameters and the scenario file (``--faults FILE``)
are described in :mod:`.engine.faults`; admin commands (``sim-gateway-ctl``) and scenario entries
take the same actions.
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
)
from daytrading.sim_gateway.engine.units import market_iso

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
