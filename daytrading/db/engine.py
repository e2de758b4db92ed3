"""The one place that creates the SQLite engine.

Pragmas on every connection: ``journal_mode=WAL`` (readers never block the writer),
``synchronous=NORMAL`` (durable at checkpoints, safe with WAL), ``busy_timeout``
(wait for a lock instead of failing at once: :data:`BUSY_TIMEOUT_MS`; a fail-fast
Coordinator call, :meth:`~daytrading.coordination.Coordinator.fail_fast`, cuts it to
its remaining time for that call and restores it after) and ``foreign_keys=ON``.

Write transactions start with ``BEGIN IMMEDIATE`` so that two processes never
deadlock on a read→write lock upgrade (SQLite then returns SQLITE_BUSY without
consulting the busy handler). A connection opened with the execution option
``sqlite_begin="DEFERRED"`` starts a plain read transaction instead.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

BUSY_TIMEOUT_MS = 5000


def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _on_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(path: str | Path, *, echo: bool = False) -> Engine:
    """Create the engine for the database file at ``path`` (created if missing).

    Connections are pooled per process (SQLAlchemy's default ``QueuePool``): closing
    the last connection to a WAL database checkpoints and truncates the WAL with
    fsyncs, which would cost ~10 ms per transaction. Child processes are started
    with ``subprocess``/``spawn`` (never ``fork`` with an open engine), so no
    connection is ever shared between processes.

    Raises:
        sqlalchemy.exc.OperationalError: the file's folder does not exist or is not
            writable (the message names the path).
    """
    path = Path(path)
    engine = create_engine(f"sqlite:///{path}", echo=echo, pool_size=2, max_overflow=8, pool_timeout=60)
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def pragma(engine: Engine, name: str) -> Any:
    """Read one PRAGMA value (e.g. ``journal_mode``) on a fresh connection."""
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()
