"""The hot-path SQL (daytrading/db/lifecycle_sql.py) against the models, its encodings, its held connection."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from datetime import datetime, UTC
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc

from daytrading.clock import NY, ManualClock
from daytrading.coordination import Coordinator
from daytrading.db import lifecycle_sql, make_engine, upgrade
from daytrading.db.models import Base
from daytrading.errors import CoordinationError, DatabaseBusyError

TABLE_OF = {
    "CLAIM_INSERT": "active_positions",
    "CONFIRM_UPDATE": "active_positions",
    "EXIT_LOCK": "active_positions",
    "CLOSE_DELETE": "active_positions",
    "TRADE_INSERT": "trades",
    "CLOSED_UPSERT": "closed_positions_today",
    "EXECUTION_UPSERT": "executions",
    "EXECUTIONS_OF_SYMBOL": "executions",
    "GATE_INSERT": "gate_decisions",
}


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "trading_history.db"
    upgrade(path)
    return path


def orm_schema_db(tmp_path: Path) -> Path:
    """A database whose schema comes from the ORM metadata alone (no migrations)."""
    path = tmp_path / "orm.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    return path


def named_columns(sql: str) -> set[str]:
    """Column names a statement writes or returns: INSERT lists, ``col = ?`` / ``col = excluded.col``, RETURNING."""
    names: set[str] = set()
    if m := re.search(r"INSERT INTO \w+ \(([^)]*)\)", sql):
        names |= {c.strip().strip('"') for c in m.group(1).split(",")}
    names |= set(re.findall(r"(\w+) = (?:\?|excluded\.\w+|\w+ \+ 1)", sql))
    if m := re.search(r"RETURNING (.*)$", sql):
        names |= {c.strip() for c in m.group(1).split(",")}
    return names


@pytest.mark.parametrize("name", sorted(lifecycle_sql.STATEMENTS))
def test_statement_prepares_against_the_orm_schema_and_the_migrated_one(name: str, tmp_path: Path, db: Path) -> None:
    sql = lifecycle_sql.STATEMENTS[name]
    for path in (orm_schema_db(tmp_path), db):
        con = sqlite3.connect(path)
        try:
            con.execute(f"EXPLAIN {sql}", (None,) * sql.count("?"))  # SQLite resolves every name
        finally:
            con.close()


@pytest.mark.parametrize("name", sorted(TABLE_OF))
def test_statement_columns_exist_in_the_orm_metadata(name: str) -> None:
    table = Base.metadata.tables[TABLE_OF[name]]
    names = named_columns(lifecycle_sql.STATEMENTS[name])
    assert names, f"{name}: found no column names to check"
    assert names <= set(table.c.keys()), f"{name}: not columns of {table.name}: {names - set(table.c.keys())}"


def test_stored_text_is_what_the_models_column_types_store(db: Path) -> None:
    clock = ManualClock(datetime(2020, 11, 17, 15, 59, 58, 5, tzinfo=NY))
    coord = Coordinator(make_engine(db), "day-trader", clock)
    assert coord.claim_entry("amd", 10, meta={"z": 1, "a": datetime(2020, 1, 2, tzinfo=UTC)}).ok
    pos = coord.confirm_entry("AMD", 10, 80.0, perm_id=42)
    assert pos == coord.get_position("AMD"), "the returned view is what the ORM reads back"
    assert coord.take_exit_lock("AMD", "target")
    late = datetime(2020, 11, 17, 23, 30, 0, 1, tzinfo=NY)  # 04:30 UTC the next day, same session
    trade = coord.close_position("AMD", 81.44, "target", exit_time=late, commission=1.0)
    assert trade is not None and [trade] == coord.get_trades_by_date()

    con = sqlite3.connect(db)
    utc = clock.now().astimezone(UTC).isoformat(timespec="microseconds")
    assert utc == "2020-11-17T20:59:58.000005+00:00"
    row = con.execute("select session_date, entry_time, exit_time, entry_perm_id from trades").fetchone()
    assert row == ("2020-11-17", utc, "2020-11-18T04:30:00.000001+00:00", 42)
    closed = con.execute("select close_date, timestamp, profit_loss_pct from closed_positions_today").fetchone()
    assert closed == ("2020-11-17", "2020-11-18T04:30:00.000001+00:00", 1.8)

    coord.claim_entry("NVDA", 1, meta={"z": 1, "a": [2, 1]})
    text = con.execute("select metadata, claimed_at from active_positions where symbol='NVDA'").fetchone()
    assert text == (json.dumps({"z": 1, "a": [2, 1]}, sort_keys=True, default=str), utc)
    assert text[0].startswith('{"a"'), "keys sorted"


def test_gate_decisions_are_stored_as_the_orm_stores_them(db: Path) -> None:
    from sqlalchemy.orm import Session

    from daytrading.db.models import GateDecision

    when = datetime(2020, 11, 17, 9, 31, 0, 7, tzinfo=NY)
    coord = Coordinator(make_engine(db), "day-trader", ManualClock(when))
    values = {"z": 1.5, "a": when, "rsi": None}
    coord.record_gate_decisions([{"symbol": "nio", "gate": "rule", "passed": False, "reason": "rsi 71 > 70",
                                  "values": values, "when": when},
                                 {"symbol": "TSLA", "gate": "risk", "passed": True, "reason": "ok"}])
    coord.record_gate_decision("LI", "spread", True, "ok", None)
    with Session(make_engine(db)) as s, s.begin():  # the same verdicts through the ORM
        s.add_all([GateDecision(ts=when, session_date=when.date(), symbol="NIO", gate="rule", passed=False,
                                reason="rsi 71 > 70", compared=values),
                   GateDecision(ts=when, session_date=when.date(), symbol="TSLA", gate="risk", passed=True,
                                reason="ok", compared=None),
                   GateDecision(ts=when, session_date=when.date(), symbol="LI", gate="spread", passed=True,
                                reason="ok", compared=None)])
    con = sqlite3.connect(db)
    rows = con.execute('select ts, session_date, symbol, gate, passed, reason, "values" from gate_decisions'
                       " order by id").fetchall()
    assert len(rows) == 6 and rows[:3] == rows[3:]
    assert rows[0][:5] == ("2020-11-17T14:31:00.000007+00:00", "2020-11-17", "NIO", "rule", 0)
    got = coord.get_gate_decisions(day=when.date())
    assert {(g["symbol"], g["passed"]) for g in got} == {("NIO", False), ("TSLA", True), ("LI", True)}
    assert got[-1]["compared"] == json.loads(json.dumps(values, default=str))


def test_held_connection_is_idle_between_calls(db: Path) -> None:
    """Between calls the Coordinator holds no lock: another writer gets BEGIN IMMEDIATE at once."""
    coord = Coordinator(make_engine(db), "day-trader", ManualClock(datetime(2020, 11, 17, 10, tzinfo=NY)))
    assert coord.claim_entry("IDLE", 5).ok
    with pytest.raises(CoordinationError):
        coord.confirm_entry("NONE", 5, 10.0)  # a refused call leaves the connection idle too
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("DELETE FROM active_positions WHERE symbol='IDLE'")
    other.execute("COMMIT")
    other.close()
    assert coord.get_position("IDLE") is None


def test_busy_error_drops_the_connection_and_the_next_call_works(db: Path) -> None:
    engine = make_engine(db)
    # after the engine's pragmas: wait 10 ms for a lock (not 5 s) so the retry budget runs out quickly
    event.listen(engine, "connect", lambda dbapi, _rec: dbapi.execute("PRAGMA busy_timeout=10"))
    coord = Coordinator(engine, "day-trader", ManualClock(datetime(2020, 11, 17, 10, tzinfo=NY)), retry_seconds=0.3)
    assert coord.claim_entry("BUSY", 5).ok
    held = coord._held_connection()
    blocker = sqlite3.connect(db, timeout=1, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(DatabaseBusyError):
        coord.confirm_entry("BUSY", 5, 10.0)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert held.closed, "the connection that met the error went back to the pool"
    assert coord.confirm_entry("BUSY", 5, 10.0).status == "OPEN"


def test_driver_errors_surface_as_sqlalchemy_errors(db: Path) -> None:
    """A non-transient error from a hot-path statement keeps SQLAlchemy's exception type, and nothing half-done."""
    coord = Coordinator(make_engine(db), "day-trader", ManualClock(datetime(2020, 11, 17, 10, tzinfo=NY)))
    assert coord.claim_entry("ERR", 5).ok
    coord.confirm_entry("ERR", 5, 10.0)
    assert coord.take_exit_lock("ERR", "target")
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("ALTER TABLE trades RENAME TO trades_away")
    with pytest.raises(sa_exc.OperationalError, match="no such table: trades"):
        coord.close_position("ERR", 10.5, "target")
    con.execute("ALTER TABLE trades_away RENAME TO trades")
    con.close()
    pos = coord.get_position("ERR")
    assert pos is not None and pos.status == "EXITING", "the DELETE was rolled back with the failed INSERT"
    assert coord.close_position("ERR", 10.5, "target") is not None


def test_threads_sharing_one_coordinator_each_use_their_own_connection(db: Path) -> None:
    coord = Coordinator(make_engine(db), "day-trader", ManualClock(datetime(2020, 11, 17, 10, tzinfo=NY)))
    errors: list[BaseException] = []

    def work(prefix: str) -> None:
        try:
            for i in range(40):
                sym = f"{prefix}{i}"
                assert coord.claim_entry(sym, 1).ok
                coord.confirm_entry(sym, 1, 10.0)
                assert coord.take_exit_lock(sym, "target")
                assert coord.close_position(sym, 10.5, "target") is not None
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in ("TA", "TB", "TC")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(coord.get_trades_by_date()) == 120
