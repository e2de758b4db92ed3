"""Which tables of a database file changed: write generations for the backtest's read cache.

A backtest's database is a private temporary file and every program writing it is a
:class:`~daytrading.coordination.api.Coordinator` of this process (the day-trader's and the
exit-manager's). Each of them records, per write transaction, the tables its statements
wrote (:class:`WriteTrace`, the ``sqlite3`` trace callback: it sees the ORM's, Core's and the
pre-written lifecycle statements alike) and bumps their generations in the process-wide
:class:`Generations` of that file when the transaction has ended. A cached read remembers the
generations of the tables it read (:meth:`Generations.snapshot`) and is still good while they
are the same: the day-trader writing gate decisions every cycle no longer throws away the
exit-manager's cached positions.

Safety net for writers that are not traced (a migration, another process, a plain
``sqlite3`` connection): ``PRAGMA data_version`` on a connection that never writes changes
whenever any other connection commits. Every traced write transaction notes the value right
after it ended (it ran under ``BEGIN IMMEDIATE``, so no other commit fell inside it); a read
that finds another value knows an untraced commit happened and starts a new *epoch*, which
invalidates every cached read of the file. The one blind spot is an untraced commit in the
instant between a traced commit and that note; the backtest has no untraced writer.

A file declared :attr:`Generations.private` (the backtest runner's own temporary database,
once its coordinators are open and its schema is built) skips that safety net: the
generations alone answer, and a cached read costs no SQLite call at all (the net cost one
``PRAGMA`` per read and two per write transaction, ~27,000 a backtest session).

Epochs come from one process-wide counter, so a snapshot taken from a file's
:class:`Generations` never matches one of a later instance for the same path (after
:func:`forget`).

Live coordinators use none of this: they read the database every time.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import threading
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

#: the table name that stands for "every table" (a statement whose target is unknown: DDL ...)
ALL = "*"

_WRITE = re.compile(
    r"\s*(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)\s+"
    r"(?:main\.)?[\"`\[]?(\w+)",
    re.IGNORECASE,
)
_READ_ONLY = ("SELECT", "BEGIN", "COMMIT", "ROLLBACK", "END", "PRAGMA", "SAVEPOINT", "RELEASE", "EXPLAIN")
_EPOCHS = itertools.count(1)


class WriteTrace:
    """A ``sqlite3`` trace callback collecting the tables that a connection's statements write.

    ``tables`` holds lower-case table names; :data:`ALL` when a statement that may write
    names no table this parser knows (``CREATE``, ``DROP``, ``ALTER``, ``WITH ... INSERT``).
    """

    __slots__ = ("tables",)

    def __init__(self) -> None:
        self.tables: set[str] = set()

    def __call__(self, statement: str) -> None:
        found = _WRITE.match(statement)
        if found is not None:
            self.tables.add(found.group(1).lower())
        elif not statement.lstrip()[:9].upper().startswith(_READ_ONLY):
            self.tables.add(ALL)


class Generations:
    """Write generations of the tables of one database file, shared by this process's coordinators.

    Thread-safe. ``path`` must exist (the probe opens it ``mode=rw`` and never creates it).

    ``private``: set to True only when every writer of the file from now on is a traced
    coordinator of this process (the backtest's temporary database): then no ``PRAGMA
    data_version`` is read, so an untraced commit, a deleted or a damaged file would go unseen
    by cached reads.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.private = False
        self._lock = threading.Lock()
        self._tables: dict[str, int] = {}
        self._epoch = next(_EPOCHS)
        self._probe: sqlite3.Connection | None = None
        self._noted: int | None = None

    def snapshot(self, tables: Iterable[str]) -> tuple[int, ...] | None:
        """The epoch and the generations of ``tables`` now; ``None`` when the probe cannot
        read the file (then nothing may be cached)."""
        with self._lock:
            if not self.private and not self._sync():
                return None
            gens = self._tables
            return (self._epoch, *(gens.get(t, 0) for t in tables))

    def before_write(self) -> None:
        """Call before a traced write transaction: an untraced commit before it starts a new epoch."""
        if self.private:
            return
        with self._lock:
            self._sync()

    def wrote(self, tables: Iterable[str]) -> None:
        """Call after a traced write transaction ended (committed, rolled back or failed):
        bump ``tables`` (every table for :data:`ALL`) and note the file's version."""
        with self._lock:
            for table in tables:
                if table == ALL:
                    self._epoch = next(_EPOCHS)
                else:
                    self._tables[table] = self._tables.get(table, 0) + 1
            if not self.private:
                self._noted = self._version()

    def close(self) -> None:
        """Close the probe connection (opened again when needed)."""
        with self._lock:
            probe, self._probe, self._noted = self._probe, None, None
            self._epoch = next(_EPOCHS)
        if probe is not None:
            with suppress(sqlite3.Error):
                probe.close()

    def _sync(self) -> bool:
        """(Locked) New epoch when the file changed since the last note; False when unreadable."""
        version = self._version()
        if version is None or version != self._noted:
            self._epoch = next(_EPOCHS)
            self._noted = version
        return version is not None

    def _version(self) -> int | None:
        try:
            if self._probe is None:
                # mode=rw: a probe never creates a missing file
                self._probe = sqlite3.connect(f"{self.path.as_uri()}?mode=rw", uri=True, isolation_level=None,
                                              check_same_thread=False)
            return int(self._probe.execute("PRAGMA data_version").fetchone()[0])
        except (sqlite3.Error, OSError, TypeError):
            probe, self._probe = self._probe, None
            if probe is not None:
                with suppress(sqlite3.Error):
                    probe.close()
            return None


_FILES: dict[Path, Generations] = {}
_FILES_LOCK = threading.Lock()


def of(path: Path) -> Generations:
    """The process-wide :class:`Generations` of the database file at ``path`` (resolved)."""
    found = _FILES.get(path)
    if found is None:
        with _FILES_LOCK:
            found = _FILES.setdefault(path, Generations(path))
    return found


def forget(path: Path) -> None:
    """Close and drop the :class:`Generations` of ``path`` (a finished backtest's temporary file)."""
    with _FILES_LOCK:
        found = _FILES.pop(path, None)
    if found is not None:
        found.close()
