"""SQLAlchemy 2 models of the shared database (the only channel between the bots).

Conventions:

* Every timestamp column is stored as ISO-8601 text in UTC (:class:`UTCDateTime`) and
  read back tz-aware; ``session_date`` / ``close_date`` are XNYS session dates
  (America/New_York), never the machine's local date.
* Prices are US dollars per share, quantities are shares, ``pnl`` is dollars and
  ``pnl_pct`` / ``profit_loss_pct`` are **percent** (1.8 means +1.8 %).
* Only :mod:`daytrading.coordination` writes these tables.
"""

from __future__ import annotations

import json
from datetime import date, datetime, UTC
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A tz-aware datetime stored as ISO-8601 UTC text (sorts correctly as text).

    Raises:
        ValueError: on write, when the datetime is naive.
    """

    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; use a tz-aware value")
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def process_result_value(self, value: str | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return datetime.fromisoformat(value)


#: ``json.dumps(value, default=str, sort_keys=True)`` builds this encoder on every call; one is enough
_JSON_ENCODER = json.JSONEncoder(default=str, sort_keys=True)


class JSONText(TypeDecorator[Any]):
    """JSON stored as text (``None`` stays NULL)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else _JSON_ENCODER.encode(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


class Base(DeclarativeBase):
    """Declarative base of every table."""


class PositionStatus:
    """Values of ``active_positions.status`` (architecture invariant 6)."""

    PENDING_ENTRY = "PENDING_ENTRY"
    OPEN = "OPEN"
    EXITING = "EXITING"
    CLOSED = "CLOSED"  # never stored: a closed position leaves active_positions


class ActivePosition(Base):
    """One row per symbol that is claimed, held or being exited."""

    __tablename__ = "active_positions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(16), unique=True, nullable=False)
    quantity: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    requested_quantity: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    entry_price: Mapped[float | None] = mapped_column(Float)
    entry_timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime)
    agent_name: Mapped[str] = mapped_column(String(32), nullable=False)
    profit_target_price: Mapped[float | None] = mapped_column(Float)
    stop_loss_price: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONText)
    session_date: Mapped[date] = mapped_column(Date, nullable=False)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    claim_pid: Mapped[int | None] = mapped_column(Integer)
    entry_client_id: Mapped[int | None] = mapped_column(Integer)
    entry_order_id: Mapped[int | None] = mapped_column(Integer)
    entry_perm_id: Mapped[int | None] = mapped_column(Integer)
    target_order_id: Mapped[int | None] = mapped_column(Integer)
    target_perm_id: Mapped[int | None] = mapped_column(Integer)
    exit_order_id: Mapped[int | None] = mapped_column(Integer)
    exit_perm_id: Mapped[int | None] = mapped_column(Integer)
    exit_reason: Mapped[str | None] = mapped_column(String(16))
    exit_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exit_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class ClosedPositionToday(Base):
    """Symbols closed in a session: no re-entry in that session (invariant 2)."""

    __tablename__ = "closed_positions_today"
    __table_args__ = (UniqueConstraint("symbol", "close_date", name="uq_closed_symbol_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(16), nullable=False)
    close_date: Mapped[date] = mapped_column(Date, nullable=False)
    quantity: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    entry_price: Mapped[float | None] = mapped_column(Float)
    exit_price: Mapped[float | None] = mapped_column(Float)
    exit_reason: Mapped[str] = mapped_column(String(16), nullable=False)
    profit_loss_pct: Mapped[float | None] = mapped_column(Float)
    agent_name: Mapped[str] = mapped_column(String(32), nullable=False)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Trade(Base):
    """Every closed position, with P&L (dollars and percent) and the exit reason."""

    __tablename__ = "trades"
    __table_args__ = (
        Index("ix_trades_session_date", "session_date"),
        Index("ix_trades_symbol_session", "symbol", "session_date"),
        Index("ix_trades_exit_reason", "exit_reason", "session_date"),
        Index("ix_trades_bot_exit_time", "bot", "exit_time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(16), nullable=False)
    session_date: Mapped[date] = mapped_column(Date, nullable=False)
    quantity: Mapped[float] = mapped_column(Float, nullable=False)
    entry_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    entry_price: Mapped[float | None] = mapped_column(Float)
    exit_time: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    exit_price: Mapped[float] = mapped_column(Float, nullable=False)
    pnl: Mapped[float | None] = mapped_column(Float)
    pnl_pct: Mapped[float | None] = mapped_column(Float)
    commission: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    exit_reason: Mapped[str] = mapped_column(String(16), nullable=False)
    bot: Mapped[str] = mapped_column(String(32), nullable=False)
    exit_bot: Mapped[str | None] = mapped_column(String(32))
    entry_perm_id: Mapped[int | None] = mapped_column(Integer)
    exit_perm_id: Mapped[int | None] = mapped_column(Integer)


class OrderRecord(Base):
    """Every order a bot or tool sent, keyed by IB's permId once known."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_client_order", "client_id", "order_id"),
        Index("ix_orders_perm_id", "perm_id"),
        Index("ix_orders_symbol_session", "symbol", "session_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_date: Mapped[date] = mapped_column(Date, nullable=False)
    client_id: Mapped[int] = mapped_column(Integer, nullable=False)
    order_id: Mapped[int] = mapped_column(Integer, nullable=False)
    perm_id: Mapped[int | None] = mapped_column(Integer)
    symbol: Mapped[str] = mapped_column(String(16), nullable=False)
    side: Mapped[str] = mapped_column(String(4), nullable=False)
    order_type: Mapped[str] = mapped_column(String(8), nullable=False)
    quantity: Mapped[float] = mapped_column(Float, nullable=False)
    limit_price: Mapped[float | None] = mapped_column(Float)
    time_in_force: Mapped[str] = mapped_column(String(4), nullable=False, default="DAY")
    order_ref: Mapped[str | None] = mapped_column(String(64))
    purpose: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    filled_quantity: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    avg_fill_price: Mapped[float | None] = mapped_column(Float)
    bot: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Heartbeat(Base):
    """Liveness of each bot (the supervisor's hang detector). ``last_seen`` is wall time."""

    __tablename__ = "heartbeats"

    bot: Mapped[str] = mapped_column(String(32), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    detail: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    market_time: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GateDecision(Base):
    """One gate's verdict on one candidate: "why no trade?" is a query over this."""

    __tablename__ = "gate_decisions"
    __table_args__ = (
        Index("ix_gate_symbol_time", "symbol", "ts"),
        Index("ix_gate_session_gate", "session_date", "gate"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    session_date: Mapped[date] = mapped_column(Date, nullable=False)
    symbol: Mapped[str] = mapped_column(String(16), nullable=False)
    gate: Mapped[str] = mapped_column(String(32), nullable=False)
    passed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    compared: Mapped[dict[str, Any] | None] = mapped_column("values", JSONText)


class Flag(Base):
    """Global flags; ``freeze`` set by liquidate-all stops every order."""

    __tablename__ = "flags"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)
    set_by: Mapped[str | None] = mapped_column(String(32))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Event(Base):
    """Notable and critical events (failed exits, prolonged outages, corrections)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_session_level", "session_date", "level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    session_date: Mapped[date] = mapped_column(Date, nullable=False)
    bot: Mapped[str] = mapped_column(String(32), nullable=False)
    level: Mapped[str] = mapped_column(String(10), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    symbol: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONText)


class ExecutionRecord(Base):
    """The execution ledger: one row per IB execution (``execId``), entries and exits alike.

    Written idempotently by execId from ``execDetails`` / ``commissionReport`` and from
    ``reqExecutions`` after every (re)connect, by the bot that owns the order (IB sends an
    order's executions only to the client that placed it). ``side`` is IB's ``BOT`` / ``SLD``;
    ``shares`` positive; ``price`` and ``commission`` dollars (``commission`` NULL until IB's
    commission report arrives); ``realized_pnl`` is the report's ``realizedPNL`` in dollars
    (NULL for an opening execution). ``time`` is the execution time (UTC).
    """

    __tablename__ = "executions"
    __table_args__ = (
        UniqueConstraint("exec_id", name="uq_executions_exec_id"),
        Index("ix_executions_symbol_session", "symbol", "session_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    exec_id: Mapped[str] = mapped_column(String(64), nullable=False)
    session_date: Mapped[date] = mapped_column(Date, nullable=False)
    symbol: Mapped[str] = mapped_column(String(16), nullable=False)
    side: Mapped[str] = mapped_column(String(4), nullable=False)
    shares: Mapped[float] = mapped_column(Float, nullable=False)
    price: Mapped[float] = mapped_column(Float, nullable=False)
    commission: Mapped[float | None] = mapped_column(Float)
    realized_pnl: Mapped[float | None] = mapped_column(Float)
    time: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    perm_id: Mapped[int | None] = mapped_column(Integer)
    order_id: Mapped[int | None] = mapped_column(Integer)
    client_id: Mapped[int | None] = mapped_column(Integer)
    order_ref: Mapped[str | None] = mapped_column(String(64))
    account: Mapped[str | None] = mapped_column(String(32))
    bot: Mapped[str] = mapped_column(String(32), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
