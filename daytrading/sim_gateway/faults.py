"""Fault injection: the admin commands and the scenario file (TOML) act on :class:`FaultState`.

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
import math
import tomllib
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daytrading.sim_gateway.latency import Latency
from daytrading.clock import NY
from daytrading.errors import ConfigError

if TYPE_CHECKING:
    from daytrading.sim_gateway.engine.book import SimOrder
    from daytrading.sim_gateway.server import Connection, SimGateway

__all__ = ["ACTIONS", "FaultState", "ScheduledFault", "parse_scenario"]

NOTICES = {
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
}
ACTIONS = ("drop", "refuse", "outage", "notice", "reject", "delay_cancel", "partial", "halt", "resume",
           "shortable", "latency")
#: Top-level keys of a scenario file.
SCENARIO_KEYS = ("fault", "latency")


@dataclass
class ScheduledFault:
    """One scenario entry: fire ``action`` with ``params`` at market time ``at`` (POSIX s)."""

    at: float
    action: str
    params: dict[str, Any]
    fired: bool = False


def _parse_at(value: Any, session_date: Any, where: str) -> float:
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=NY)
        return dt.timestamp()
    if isinstance(value, time):
        return datetime.combine(session_date, value, tzinfo=NY).timestamp()
    text = str(value).strip()
    try:
        if "T" in text or "-" in text:
            dt = datetime.fromisoformat(text)
            return (dt if dt.tzinfo else dt.replace(tzinfo=NY)).timestamp()
        parts = [int(p) for p in text.split(":")]
        if not 2 <= len(parts) <= 3:
            raise ValueError(text)
        return datetime.combine(session_date, time(*parts), tzinfo=NY).timestamp()
    except ValueError as exc:
        raise ConfigError(f"{where}: 'at' must be HH:MM[:SS] or an ISO datetime, got {value!r}") from exc


def parse_scenario(data: dict[str, Any] | list[dict[str, Any]], session_date: Any,
                   source: str = "scenario") -> list[ScheduledFault]:
    """Validate scenario entries (``{"fault": [...]}`` or a list) into scheduled faults.

    Raises:
        ConfigError: naming the entry and the bad field/value.
    """
    entries = data.get("fault", []) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'fault' must be an array of tables")
    out = []
    for i, entry in enumerate(entries):
        where = f"{source}: fault #{i + 1}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a table, got {entry!r}")
        params = dict(entry)
        action = params.pop("action", None)
        if action not in ACTIONS:
            raise ConfigError(f"{where}: action must be one of {', '.join(ACTIONS)}, got {action!r}")
        if "at" not in params:
            raise ConfigError(f"{where}: missing 'at' (market time)")
        at = _parse_at(params.pop("at"), session_date, where)
        out.append(ScheduledFault(at, action, params))
    out.sort(key=lambda f: f.at)
    return out


class FaultState:
    """Current injected faults of one gateway (see the module docstring)."""

    def __init__(self, gateway: SimGateway) -> None:
        self.gw = gateway
        self._wake = asyncio.Event()
        self.reject_count = 0
        self.reject_code = 201
        self.reject_message = ""
        self.cancel_delay_s = 0.0
        self.partial_pending: list[dict[str, Any]] = []
        self.outage_until: float | None = None
        self.outage_data_lost = False
        self.refuse_until: float | None = None
        self.scheduled: list[ScheduledFault] = []
        self.history: list[dict[str, Any]] = []
        self.latency = Latency()

    # ------------------------------------------------------------------ queries used by the engine

    def take_reject(self) -> tuple[int, str] | None:
        """Consume one injected rejection: ``(code, message)`` or None."""
        if self.reject_count <= 0:
            return None
        self.reject_count -= 1
        text = self.reject_message or f"Order rejected - reason:injected fault (sim-gateway), code {self.reject_code}"
        return self.reject_code, text

    def cancel_delay(self) -> float:
        """Current cancel-confirmation delay, market seconds (0 = none)."""
        return self.cancel_delay_s

    def take_partial(self, order: SimOrder) -> bool:
        """Arm the pending partial fill on ``order`` (sets ``order.fill_cap``); True if armed."""
        if not self.partial_pending:
            return False
        spec = self.partial_pending.pop(0)
        if spec.get("quantity") is not None:
            cap = float(spec["quantity"])
        else:
            cap = max(1.0, math.floor(order.total_qty * float(spec.get("fraction", 0.5))))
        order.fill_cap = min(cap, order.total_qty)
        return True

    def outage_active(self) -> bool:
        """True between an injected 1100 and its restoration."""
        return self.outage_until is not None

    def on_connect(self, conn: Connection) -> None:
        """A client connecting during an outage is told so (1100)."""
        if self.outage_active():
            conn.send_error(-1, 1100, NOTICES[1100])

    # ------------------------------------------------------------------ scenario

    def load_scenario(self, path: str | Path) -> None:
        """Read a TOML scenario file.

        Raises:
            ConfigError: missing file, bad TOML, or a bad entry (named).
        """
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"faults file not found: {p}")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"faults file {p}: invalid TOML: {exc}") from exc
        self.add_scenario(data, source=str(p))

    def add_scenario(self, data: dict[str, Any] | list[dict[str, Any]], source: str = "scenario") -> None:
        """Apply a scenario's ``[latency]`` table and schedule its entries (parsed TOML or a list of dicts).

        Raises:
            ConfigError: an unknown top-level key, a bad latency key or value, or a bad entry (named).
        """
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(SCENARIO_KEYS))
            if unknown:
                raise ConfigError(f"{source}: unknown key {unknown[0]!r}; a scenario has "
                                  f"{' and '.join(SCENARIO_KEYS)}")
            table = data.get("latency", {})
            if not isinstance(table, dict):
                raise ConfigError(f"{source}: 'latency' must be a table of KEY = milliseconds, got {table!r}")
            probe = Latency(**self.latency.as_dict())
            try:
                probe.update(table, source=f"{source}: [latency]")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            entries = parse_scenario(data, self.gw.market.session_date, source)
            if table:
                self.latency.update(table)
                self.gw.log("latency", source=source, **self.latency.as_dict())
            self.scheduled += entries
            self.scheduled.sort(key=lambda f: f.at)
            self.wake()
            return
        self.scheduled += parse_scenario(data, self.gw.market.session_date, source)
        self.scheduled.sort(key=lambda f: f.at)
        self.wake()

    def next_due(self) -> float | None:
        """Market time of the next scheduled fault or the end of a timed one; None if none."""
        times = [f.at for f in self.scheduled if not f.fired]
        times += [t for t in (self.outage_until, self.refuse_until) if t is not None]
        return min(times) if times else None

    def wake(self) -> None:
        """Re-plan the fault loop (a scenario or a timed fault was added)."""
        self._wake.set()

    async def run(self) -> None:
        """Fire scheduled faults and end timed ones on the market clock; sleeps until the
        next of them (:meth:`next_due`) or a :meth:`wake`, never on a fixed period."""
        while True:
            now = self.gw.now()
            for f in self.scheduled:
                if not f.fired and f.at <= now:
                    f.fired = True
                    try:
                        await self.apply(f.action, scheduled=True, scheduled_at=_iso(f.at), **f.params)
                    except Exception as exc:  # noqa: BLE001 - a bad scenario entry must not stop the gateway
                        self.gw.log("fault_failed", action=f.action, error=str(exc))
            if self.outage_until is not None and now >= self.outage_until:
                self._restore()
            if self.refuse_until is not None and now >= self.refuse_until:
                self.refuse_until = None
                await self.gw.resume_listening()
                self.gw.log("fault_end", action="refuse")
            due = self.next_due()
            self._wake.clear()
            timeout = None
            if due is not None:
                speed = max(float(getattr(self.gw.clock, "speed", 1.0)), 1e-9)
                timeout = max(0.0, (due - self.gw.now()) / speed) + 1e-6
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    # ------------------------------------------------------------------ actions

    async def apply(self, action: str, *, scheduled: bool = False, scheduled_at: str | None = None,
                    **params: Any) -> dict[str, Any]:
        """Apply one fault now; returns a short description. Raises ValueError on bad params."""
        if action not in ACTIONS:
            raise ValueError(f"unknown fault {action!r}; known: {', '.join(ACTIONS)}")
        try:
            result = await getattr(self, f"_do_{action}")(**params)
        except TypeError as exc:
            raise ValueError(f"bad parameters for {action!r}: {exc}") from exc
        rec = {"action": action, **params, "scheduled": scheduled, "scheduled_at": scheduled_at, **result}
        self.history.append({"market_time": datetime.fromtimestamp(self.gw.now(), tz=NY).isoformat(
            timespec="seconds"), **rec})
        self.gw.log("fault", **rec)
        self.wake()
        for svc in (getattr(self.gw, "fills", None), getattr(self.gw, "data_service", None)):
            if svc is not None and hasattr(svc, "wake"):
                svc.wake()
        return result

    async def _do_drop(self) -> dict[str, Any]:
        return {"dropped": self.gw.drop_all()}

    async def _do_refuse(self, seconds: float, drop: bool = False) -> dict[str, Any]:
        seconds = _positive(seconds, "seconds")
        await self.gw.stop_listening()
        self.refuse_until = self.gw.now() + seconds
        dropped = self.gw.drop_all() if drop else 0
        return {"until": _iso(self.refuse_until), "dropped": dropped}

    async def _do_outage(self, seconds: float, data_lost: bool = False, drop: bool = False) -> dict[str, Any]:
        seconds = _positive(seconds, "seconds")
        self.gw.broadcast_error(1100, NOTICES[1100])
        self.outage_until = self.gw.now() + seconds
        self.outage_data_lost = bool(data_lost)
        dropped = self.gw.drop_all() if drop else 0
        return {"until": _iso(self.outage_until), "dropped": dropped}

    def _restore(self) -> None:
        code = 1101 if self.outage_data_lost else 1102
        self.outage_until = None
        if code == 1101:
            self._data_lost()
        self.gw.broadcast_error(code, NOTICES[code])
        self.gw.log("fault_end", action="outage", code=code)
        now = self.gw.now()
        for o in self.gw.orders.working_orders():
            o.checked_until = max(o.checked_until, now)
            self.gw.fills.activate_if_eligible(o)
        self.gw.fills.wake()

    def _data_lost(self) -> None:
        svc = self.gw.data_service
        if svc is not None and hasattr(svc, "on_data_lost"):
            svc.on_data_lost()

    async def _do_notice(self, code: int) -> dict[str, Any]:
        code = int(code)
        if code not in NOTICES:
            raise ValueError(f"notice code must be 1100, 1101 or 1102, got {code}")
        if code == 1101:
            self._data_lost()
        self.gw.broadcast_error(code, NOTICES[code])
        return {}

    async def _do_reject(self, count: int = 1, code: int = 201, message: str = "") -> dict[str, Any]:
        self.reject_count = int(count)
        self.reject_code = int(code)
        self.reject_message = str(message)
        return {}

    async def _do_delay_cancel(self, seconds: float) -> dict[str, Any]:
        s = float(seconds)
        if s < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        self.cancel_delay_s = s
        return {}

    async def _do_partial(self, fraction: float | None = None, quantity: float | None = None,
                          count: int = 1) -> dict[str, Any]:
        if fraction is not None and not 0 < float(fraction) < 1:
            raise ValueError(f"fraction must be between 0 and 1, got {fraction!r}")
        for _ in range(int(count)):
            self.partial_pending.append({"fraction": 0.5 if fraction is None else float(fraction),
                                         "quantity": quantity})
        return {}

    async def _do_latency(self, **values: Any) -> dict[str, Any]:
        return self.latency.update(values)

    async def _do_halt(self, symbol: str, halted: bool = True) -> dict[str, Any]:
        self.gw.market.set_halted(symbol, bool(halted))
        return {}

    async def _do_resume(self, symbol: str) -> dict[str, Any]:
        self.gw.market.set_halted(symbol, False)
        return {}

    async def _do_shortable(self, symbol: str, shortable: bool = True) -> dict[str, Any]:
        self.gw.market.set_shortable(symbol, bool(shortable))
        return {}


def _positive(value: Any, name: str) -> float:
    v = float(value)
    if not v > 0:
        raise ValueError(f"{name} must be > 0 market seconds, got {value!r}")
    return v


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=NY).isoformat(timespec="seconds")
