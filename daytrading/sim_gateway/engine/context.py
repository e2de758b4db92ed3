"""What the engine needs from the process around it, and the events it reports.

:class:`EngineContext` is the whole of the engine's view of the gateway: market time, the event
log, and a sink for events. The server (:class:`daytrading.sim_gateway.server.SimGateway`)
implements it; engine unit tests use a plain object with the same three methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["EngineContext", "FillReported", "OrderChanged", "OrderError", "PositionChanged"]


@runtime_checkable
class EngineContext(Protocol):
    """Market time, event log and event sink of one engine."""

    def now(self) -> float:
        """Market time, POSIX seconds."""
        ...

    def log(self, event: str, **fields: Any) -> None:
        """Record one event-log entry (JSON-able fields) at the current market time."""
        ...

    def emit(self, event: Any) -> None:
        """Report an engine event (e.g. :class:`OrderChanged`) to whoever shows it to clients."""
        ...


@dataclass(frozen=True)
class OrderChanged:
    """An order's state changed (e.g. ``PreSubmitted`` → ``Submitted``); its owner is shown the
    order (openOrder when ``open_order``) and its status."""

    order: Any
    open_order: bool = True


@dataclass(frozen=True)
class OrderError:
    """IB error ``code`` about ``order_id`` for client ``client_id`` (e.g. 201 rejected, 202 cancelled,
    10147 not found)."""

    client_id: int
    order_id: int
    code: int
    text: str


@dataclass(frozen=True)
class FillReported:
    """One execution of ``execution.order``; ``complete`` when it filled the order."""

    execution: Any
    complete: bool


@dataclass(frozen=True)
class PositionChanged:
    """The account's position in ``symbol`` changed (after a fill)."""

    symbol: str
