"""Read-only access to the shared database for the dashboard.

Every connection is opened with SQLite's URI ``mode=ro`` and ``PRAGMA query_only``, and
every transaction is a plain (deferred) ``BEGIN``: in WAL mode a reader never holds the
write lock, so the dashboard cannot make a bot's write wait however many requests it serves.
(One exception lasts microseconds: a reader that finds the WAL-index header being rewritten by
a commit takes the write lock just long enough to re-read it. A writer with any busy timeout,
as every bot has, never notices.) Nothing here creates or migrates the schema: a missing
file or table is reported (see :func:`open_readonly`), never "fixed".
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import QueuePool

from daytrading.clock import Clock
from daytrading.coordination import Coordinator

#: Wall milliseconds a read waits for SQLite's own short internal locks (WAL index recovery).
READ_BUSY_TIMEOUT_MS = 2000


def readonly_uri(path: str | Path) -> str:
    """The ``file:`` URI that opens ``path`` read-only (absolute, percent-quoted)."""
    return "file:" + quote(Path(path).resolve().as_posix(), safe="/:\\") + "?mode=ro"


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    """A plain sqlite3 connection that can only read ``path`` (autocommit: no transaction
    stays open between statements)."""
    conn = sqlite3.connect(readonly_uri(path), uri=True, check_same_thread=False, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={READ_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA query_only=ON")
    return conn


def _on_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")  # deferred: a read snapshot, never a write lock


def make_readonly_engine(path: str | Path) -> Engine:
    """A SQLAlchemy engine whose connections can only read ``path``.

    Connections are pooled (a small ``QueuePool``) and opened lazily, so a file that does
    not exist yet (the supervisor still starting) fails per query, not at start.
    """
    db = Path(path)
    # pool_size covers every worker thread of the event loop's default executor (min(32, cores + 4)
    # threads): a connection beyond the pool would be opened and closed again for each read
    engine = create_engine("sqlite://", creator=lambda: connect_readonly(db), poolclass=QueuePool,
                           pool_size=min(32, (os.cpu_count() or 1) + 4), max_overflow=4, pool_timeout=10)
    event.listen(engine, "begin", _on_begin)
    return engine


def open_readonly(path: str | Path, clock: Clock, bot: str = "dashboard") -> Coordinator:
    """A :class:`Coordinator` on a read-only engine: use only its read methods.

    Its write methods fail with ``attempt to write a readonly database``; its read methods
    behave exactly as in the bots (so the dashboard's figures equal ``daytrading status``'s).
    """
    coord = Coordinator(make_readonly_engine(path), bot, clock, retry_seconds=2.0)
    coord.db_path = Path(path).resolve()  # the side files (freeze file, heartbeat files) beside it
    return coord
