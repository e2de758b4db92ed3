"""Pre-written SQL of the coordination hot path: claim, confirm, exit lock, close, gate decisions.

:class:`daytrading.coordination.api.Coordinator` runs these on the DBAPI (``sqlite3``)
connection of a SQLAlchemy ``Connection``, inside the transaction SQLAlchemy opened
(``BEGIN IMMEDIATE`` from the engine's hook) and commits: per-statement SQLAlchemy
execution cost several times SQLite's own work (``benchmarks/bench_coordination.py``).
Kept next to the models; column lists are spelled as ORM attribute names and turned into
column names here, so a renamed or removed column fails at import, and
``tests/foundation/test_lifecycle_sql.py`` prepares every statement against a schema
built from the ORM metadata and checks each column name against it.

Parameters are positional (``?``) and must already be encoded the way the models'
column types store them — use :func:`utc_text`, :func:`json_text` and
``date.isoformat()`` (SQLAlchemy's SQLite ``Date`` stores ``YYYY-MM-DD``); read back with
:func:`utc_value`, :func:`json_value`, ``date.fromisoformat`` or :func:`decode_position`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Mapper

from daytrading.db.models import (
    ActivePosition,
    ClosedPositionToday,
    ExecutionRecord,
    GateDecision,
    JSONText,
    Trade,
    UTCDateTime,
)

_UTC = UTCDateTime()
_JSON = JSONText()
_QUOTE = sqlite.dialect().identifier_preparer.quote  # quotes a column name only where SQLite needs it


def utc_text(value: datetime | None) -> str | None:
    """Encode like :class:`UTCDateTime` (ISO-8601 UTC, microseconds). Raises ValueError on a naive value."""
    return _UTC.process_bind_param(value, None)


def utc_value(text: str | None) -> datetime | None:
    """Decode a :class:`UTCDateTime` column (tz-aware UTC)."""
    return _UTC.process_result_value(text, None)


def json_text(value: Any) -> str | None:
    """Encode like :class:`JSONText` (``None`` stays NULL)."""
    return _JSON.process_bind_param(value, None)


def json_value(text: str | None) -> Any:
    """Decode a :class:`JSONText` column."""
    return _JSON.process_result_value(text, None)


def _cols(model: type, *attrs: str) -> tuple[str, ...]:
    """Column names of ORM attributes (``ActivePosition.meta`` is column ``metadata``)."""
    mapper: Mapper[Any] = model.__mapper__  # type: ignore[attr-defined]
    return tuple(mapper.attrs[a].columns[0].name for a in attrs)


def _insert(model: type, attrs: tuple[str, ...], tail: str = "") -> str:
    names = _cols(model, *attrs)
    table = model.__tablename__  # type: ignore[attr-defined]
    return f"INSERT INTO {table} ({', '.join(map(_QUOTE, names))}) VALUES ({', '.join('?' * len(names))}){tail}"


# ---------------------------------------------------------------- claim_entry
# (flag name, symbol, symbol, session date) → (1 | NULL, active id | NULL, closed id | NULL)
CLAIM_CHECK = (
    "SELECT (SELECT 1 FROM flags WHERE name = ?),"
    " (SELECT id FROM active_positions WHERE symbol = ?),"
    " (SELECT id FROM closed_positions_today WHERE symbol = ? AND close_date = ?)"
)
CLAIM_ATTRS = (
    "symbol", "quantity", "requested_quantity", "agent_name", "status", "last_updated", "meta",
    "session_date", "claimed_at", "claimed_by", "claim_pid", "exit_attempts",
)
CLAIM_INSERT = _insert(ActivePosition, CLAIM_ATTRS)

# ---------------------------------------------------------------- confirm_entry
# the row's id, then the fields of PositionView in this order
POSITION_ATTRS = (
    "symbol", "status", "quantity", "requested_quantity", "entry_price", "entry_timestamp", "agent_name",
    "profit_target_price", "stop_loss_price", "session_date", "claimed_at", "claimed_by", "claim_pid",
    "entry_client_id", "entry_order_id", "entry_perm_id", "target_order_id", "target_perm_id",
    "exit_order_id", "exit_perm_id", "exit_reason", "exit_started_at", "exit_attempts", "last_updated", "meta",
)
POSITION_BY_SYMBOL = (
    f"SELECT id, {', '.join(_cols(ActivePosition, *POSITION_ATTRS))} FROM active_positions WHERE symbol = ?"
)
_UTC_AT = tuple(i + 1 for i, a in enumerate(POSITION_ATTRS) if isinstance(
    ActivePosition.__table__.c[_cols(ActivePosition, a)[0]].type, UTCDateTime))
_DATE_AT = POSITION_ATTRS.index("session_date") + 1
_JSON_AT = POSITION_ATTRS.index("meta") + 1


def decode_position(row: tuple[Any, ...]) -> list[Any]:
    """A :data:`POSITION_BY_SYMBOL` row as Python values (the id, then PositionView's fields)."""
    values = list(row)
    for i in _UTC_AT:
        values[i] = utc_value(values[i])
    values[_DATE_AT] = date.fromisoformat(values[_DATE_AT])
    values[_JSON_AT] = json_value(values[_JSON_AT])
    return values


# (status, quantity, entry_price, entry_timestamp, profit_target_price, stop_loss_price,
#  entry_perm_id, last_updated, id)
CONFIRM_UPDATE = (
    "UPDATE active_positions SET status = ?, quantity = ?, entry_price = ?, entry_timestamp = ?,"
    " profit_target_price = ?, stop_loss_price = ?, entry_perm_id = ?, last_updated = ? WHERE id = ?"
)

# ---------------------------------------------------------------- take_exit_lock
# (new status, exit_reason, exit_started_at, last_updated, symbol, required status)
EXIT_LOCK = (
    "UPDATE active_positions SET status = ?, exit_reason = ?, exit_started_at = ?,"
    " exit_attempts = exit_attempts + 1, last_updated = ? WHERE symbol = ? AND status = ?"
)

# ---------------------------------------------------------------- close_position
# (symbol) → the removed row's (quantity, entry_price, entry_timestamp, agent_name, entry_perm_id, exit_perm_id,
#  claimed_at)
CLOSE_DELETE = (
    "DELETE FROM active_positions WHERE symbol = ?"
    " RETURNING quantity, entry_price, entry_timestamp, agent_name, entry_perm_id, exit_perm_id, claimed_at"
)
TRADE_ATTRS = (
    "symbol", "session_date", "quantity", "entry_time", "entry_price", "exit_time", "exit_price", "pnl",
    "pnl_pct", "commission", "exit_reason", "bot", "exit_bot", "entry_perm_id", "exit_perm_id",
)
TRADE_INSERT = _insert(Trade, TRADE_ATTRS)
CLOSED_ATTRS = (
    "symbol", "close_date", "quantity", "entry_price", "exit_price", "exit_reason", "profit_loss_pct",
    "agent_name", "timestamp",
)
# a second close of the symbol in the same session keeps the first row, updating the exit
CLOSED_UPSERT = _insert(
    ClosedPositionToday,
    CLOSED_ATTRS,
    " ON CONFLICT (symbol, close_date) DO UPDATE SET exit_price = excluded.exit_price,"
    " exit_reason = excluded.exit_reason, timestamp = excluded.timestamp",
)

# ---------------------------------------------------------------- the execution ledger
EXECUTION_ATTRS = (
    "exec_id", "session_date", "symbol", "side", "shares", "price", "commission", "realized_pnl", "time",
    "perm_id", "order_id", "client_id", "order_ref", "account", "bot", "recorded_at",
)
# idempotent by execId: a second sight of an execution only fills in what the first lacked
# (the commission report arrives after execDetails)
EXECUTION_UPSERT = _insert(
    ExecutionRecord,
    EXECUTION_ATTRS,
    " ON CONFLICT (exec_id) DO UPDATE SET commission = COALESCE(excluded.commission, executions.commission),"
    " realized_pnl = COALESCE(excluded.realized_pnl, executions.realized_pnl),"
    " perm_id = COALESCE(executions.perm_id, excluded.perm_id),"
    " order_ref = COALESCE(executions.order_ref, excluded.order_ref)",
)
# (symbol, session date) → executions in EXECUTION_ATTRS order
EXECUTIONS_OF_SYMBOL = (
    f"SELECT {', '.join(_cols(ExecutionRecord, *EXECUTION_ATTRS))} FROM executions"
    " WHERE symbol = ? AND session_date = ? ORDER BY time, exec_id"
)

# ---------------------------------------------------------------- gate decisions
# (ts, session date, symbol, gate, passed 1 | 0, reason, compared JSON); column "values" is quoted
GATE_ATTRS = ("ts", "session_date", "symbol", "gate", "passed", "reason", "compared")
GATE_INSERT = _insert(GateDecision, GATE_ATTRS)

#: every statement as SQL text, by name (for the schema test and the benchmark)
STATEMENTS = {
    "CLAIM_CHECK": CLAIM_CHECK,
    "CLAIM_INSERT": CLAIM_INSERT,
    "POSITION_BY_SYMBOL": POSITION_BY_SYMBOL,
    "CONFIRM_UPDATE": CONFIRM_UPDATE,
    "EXIT_LOCK": EXIT_LOCK,
    "CLOSE_DELETE": CLOSE_DELETE,
    "TRADE_INSERT": TRADE_INSERT,
    "CLOSED_UPSERT": CLOSED_UPSERT,
    "EXECUTION_UPSERT": EXECUTION_UPSERT,
    "EXECUTIONS_OF_SYMBOL": EXECUTIONS_OF_SYMBOL,
    "GATE_INSERT": GATE_INSERT,
}
