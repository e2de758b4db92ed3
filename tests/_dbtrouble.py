"""Database trouble made by real means, for the resilience tests: another process holding
the write lock, a full disk (a small tmpfs), a file damaged mid-session."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLDER = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
con.execute("BEGIN IMMEDIATE")
con.execute("UPDATE flags SET value = value")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin (or kills us)
con.execute("ROLLBACK")
"""


@contextmanager
def write_lock(db: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds ``db``'s write lock (``BEGIN IMMEDIATE``, a pending write, never committed)
    until the block ends, as a SQLite browser with unsaved edits does. Readers are not blocked (WAL)."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked", "lock holder failed"
        yield proc
    finally:
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
