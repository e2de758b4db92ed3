"""Injected faults and latency settings: their state, the scenario file, and what each action does.

:class:`FaultState` is engine state: the book and the fill engine ask it (``take_reject``,
``take_partial``, ``cancel_delay``, ``outage_active``); :meth:`FaultState.apply` changes it and
**returns** what the process around the engine must do about connections and the listener
(:class:`DropClients`, :class:`StopListening`, :class:`ResumeListening`, :class:`Broadcast`,
:class:`MarketDataLost`, :class:`OutageEnded`), which :mod:`daytrading.sim_gateway.faults`
carries out. The engine never sees a connection.

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
``latency`` (KEY=MS…)   set injected latencies (:class:`Latency`: ``positions_ms``,
                        ``order_ack_ms``, ``executions_ms``, ``market_data_ms``); without
                        keys it only reports them
======================  =====================================================================

Scenario file (``--faults FILE``): an optional ``[latency]`` table in force from the start
(keys of :class:`Latency`, milliseconds of market time; the delay line that applies them is
:mod:`daytrading.sim_gateway.latency`), and ``[[fault]]`` entries::

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

import math
import tomllib
from dataclasses import asdict, dataclass
from datetime import datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daytrading.clock import NY
from daytrading.errors import ConfigError
from daytrading.sim_gateway.engine.context import EngineContext
from daytrading.sim_gateway.engine.units import market_iso

if TYPE_CHECKING:
    from daytrading.sim_gateway.engine.book import SimOrder
    from daytrading.sim_gateway.engine.market import ReplayMarket

__all__ = [
    "ACTIONS",
    "LATENCY_KEYS",
    "NOTICES",
    "Broadcast",
    "DropClients",
    "Effect",
    "FaultState",
    "Latency",
    "MarketDataLost",
    "OutageEnded",
    "ResumeListening",
    "ScheduledFault",
    "StopListening",
    "parse_scenario",
]

NOTICES = {
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
}
ACTIONS = ("drop", "refuse", "outage", "notice", "reject", "delay_cancel", "partial", "halt", "resume",
           "shortable", "latency")
#: Top-level keys of a scenario file.
SCENARIO_KEYS = ("fault", "latency")


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class DropClients:
    """Close every client connection now (orders stay in the book)."""


@dataclass(frozen=True)
class StopListening:
    """Stop accepting connections (until :class:`ResumeListening`)."""


@dataclass(frozen=True)
class ResumeListening:
    """Accept connections again on the same port."""


@dataclass(frozen=True)
class Broadcast:
    """Send the system notice ``code`` (reqId -1) with ``text`` to every ready client."""

    code: int
    text: str


@dataclass(frozen=True)
class MarketDataLost:
    """An outage lost data (1101): every market-data subscription of every client is dropped."""


@dataclass(frozen=True)
class OutageEnded:
    """Orders held by the outage may trade again from market time ``at`` (POSIX s)."""

    at: float


Effect = DropClients | StopListening | ResumeListening | Broadcast | MarketDataLost | OutageEnded


# --------------------------------------------------------------------------- latency settings


#: The settable latency keys (milliseconds of market time).
LATENCY_KEYS = ("positions_ms", "order_ack_ms", "executions_ms", "market_data_ms")


@dataclass
class Latency:
    """Current latency settings, milliseconds of market time (module docstring)."""

    positions_ms: float = 0.0
    order_ack_ms: float = 0.0
    executions_ms: float = 0.0
    market_data_ms: float = 0.0

    def update(self, values: dict[str, Any], source: str = "latency") -> dict[str, float]:
        """Validate and apply ``{key: ms}``; returns every setting after the change.

        Raises:
            ValueError: an unknown key or a value that is not a finite number ≥ 0 (both named).
        """
        clean: dict[str, float] = {}
        for key, value in values.items():
            if key not in LATENCY_KEYS:
                raise ValueError(f"{source}: unknown latency key {key!r}; known: {', '.join(LATENCY_KEYS)}")
            try:
                ms = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{source}: {key} must be milliseconds (a number >= 0), got {value!r}") from None
            if isinstance(value, bool) or not math.isfinite(ms) or ms < 0:
                raise ValueError(f"{source}: {key} must be milliseconds (a number >= 0), got {value!r}")
            clean[key] = ms
        for key, ms in clean.items():
            setattr(self, key, ms)
        return self.as_dict()

    def seconds(self, key: str) -> float:
        """One setting in market seconds."""
        return float(getattr(self, key)) / 1000.0

    def as_dict(self) -> dict[str, float]:
        """Every setting, milliseconds."""
        return asdict(self)


# --------------------------------------------------------------------------- scenario


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
    """Current injected faults of one gateway (see the module docstring).

    Args:
        ctx: market time (``now``) and the event log (``log``); see :class:`.context.EngineContext`.
        market: the replayed market (halts and shortability are set on it).

    Attributes:
        latency: the injected :class:`Latency` settings (read by the session side's delay line).
        scheduled: the scenario's entries, by market time. history: fired faults (admin ``report``).
    """

    def __init__(self, ctx: EngineContext, market: ReplayMarket) -> None:
        self.ctx = ctx
        self.market = market
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
            entries = parse_scenario(data, self.market.session_date, source)
            if table:
                self.latency.update(table)
                self.ctx.log("latency", source=source, **self.latency.as_dict())
        else:
            entries = parse_scenario(data, self.market.session_date, source)
        self.scheduled += entries
        self.scheduled.sort(key=lambda f: f.at)

    def next_due(self) -> float | None:
        """Market time of the next scheduled fault or the end of a timed one; None if none."""
        times = [f.at for f in self.scheduled if not f.fired]
        times += [t for t in (self.outage_until, self.refuse_until) if t is not None]
        return min(times) if times else None

    def take_due(self, now: float) -> list[ScheduledFault]:
        """The scheduled faults due at market time ``now``, in scenario order, marked fired."""
        due = [f for f in self.scheduled if not f.fired and f.at <= now]
        for f in due:
            f.fired = True
        return due

    def expire(self, now: float) -> list[Effect]:
        """End the timed faults whose time has come at ``now``: an outage (1101 with data loss,
        else 1102) and a refusal to accept connections; returns the effects, in order."""
        out: list[Effect] = []
        if self.outage_until is not None and now >= self.outage_until:
            code = 1101 if self.outage_data_lost else 1102
            self.outage_until = None
            if code == 1101:
                out.append(MarketDataLost())
            out += [Broadcast(code, NOTICES[code]), OutageEnded(now)]
            self.ctx.log("fault_end", action="outage", code=code)
        if self.refuse_until is not None and now >= self.refuse_until:
            self.refuse_until = None
            out.append(ResumeListening())
            self.ctx.log("fault_end", action="refuse")
        return out

    # ------------------------------------------------------------------ actions

    def apply(self, action: str, **params: Any) -> tuple[dict[str, Any], list[Effect]]:
        """Apply one fault to the state now: ``(result, effects)`` — a short description and what
        the process around the engine must carry out (in order). Record it with :meth:`record`
        once carried out. Raises ValueError on an unknown action or bad params (named)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown fault {action!r}; known: {', '.join(ACTIONS)}")
        try:
            return getattr(self, f"_do_{action}")(**params)
        except TypeError as exc:
            raise ValueError(f"bad parameters for {action!r}: {exc}") from exc

    def record(self, action: str, params: dict[str, Any], result: dict[str, Any], *, scheduled: bool = False,
               scheduled_at: str | None = None) -> None:
        """Add an applied fault to :attr:`history` and the event log (market time now)."""
        rec = {"action": action, **params, "scheduled": scheduled, "scheduled_at": scheduled_at, **result}
        self.history.append({"market_time": market_iso(self.ctx.now()), **rec})
        self.ctx.log("fault", **rec)

    def _do_drop(self) -> tuple[dict[str, Any], list[Effect]]:
        return {}, [DropClients()]

    def _do_refuse(self, seconds: float, drop: bool = False) -> tuple[dict[str, Any], list[Effect]]:
        seconds = _positive(seconds, "seconds")
        self.refuse_until = self.ctx.now() + seconds
        return {"until": market_iso(self.refuse_until), "dropped": 0}, [StopListening(), *([DropClients()] if drop else [])]

    def _do_outage(self, seconds: float, data_lost: bool = False, drop: bool = False
                   ) -> tuple[dict[str, Any], list[Effect]]:
        seconds = _positive(seconds, "seconds")
        self.outage_until = self.ctx.now() + seconds
        self.outage_data_lost = bool(data_lost)
        effects: list[Effect] = [Broadcast(1100, NOTICES[1100]), *([DropClients()] if drop else [])]
        return {"until": market_iso(self.outage_until), "dropped": 0}, effects

    def _do_notice(self, code: int) -> tuple[dict[str, Any], list[Effect]]:
        code = int(code)
        if code not in NOTICES:
            raise ValueError(f"notice code must be 1100, 1101 or 1102, got {code}")
        return {}, [*([MarketDataLost()] if code == 1101 else []), Broadcast(code, NOTICES[code])]

    def _do_reject(self, count: int = 1, code: int = 201, message: str = "") -> tuple[dict[str, Any], list[Effect]]:
        self.reject_count = int(count)
        self.reject_code = int(code)
        self.reject_message = str(message)
        return {}, []

    def _do_delay_cancel(self, seconds: float) -> tuple[dict[str, Any], list[Effect]]:
        s = float(seconds)
        if s < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        self.cancel_delay_s = s
        return {}, []

    def _do_partial(self, fraction: float | None = None, quantity: float | None = None,
                    count: int = 1) -> tuple[dict[str, Any], list[Effect]]:
        if fraction is not None and not 0 < float(fraction) < 1:
            raise ValueError(f"fraction must be between 0 and 1, got {fraction!r}")
        for _ in range(int(count)):
            self.partial_pending.append({"fraction": 0.5 if fraction is None else float(fraction),
                                         "quantity": quantity})
        return {}, []

    def _do_latency(self, **values: Any) -> tuple[dict[str, Any], list[Effect]]:
        return self.latency.update(values), []

    def _do_halt(self, symbol: str, halted: bool = True) -> tuple[dict[str, Any], list[Effect]]:
        self.market.set_halted(symbol, bool(halted))
        return {}, []

    def _do_resume(self, symbol: str) -> tuple[dict[str, Any], list[Effect]]:
        self.market.set_halted(symbol, False)
        return {}, []

    def _do_shortable(self, symbol: str, shortable: bool = True) -> tuple[dict[str, Any], list[Effect]]:
        self.market.set_shortable(symbol, bool(shortable))
        return {}, []


def _positive(value: Any, name: str) -> float:
    v = float(value)
    if not v > 0:
        raise ValueError(f"{name} must be > 0 market seconds, got {value!r}")
    return v


