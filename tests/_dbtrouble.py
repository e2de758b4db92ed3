"""Database trouble made by real means, for the resilience tests: another process holding
the write lock, a full disk (a small tmpfs), a file damaged mid-session."""

from __future__ import annotations

import errno
import os
import sqlite3
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


def wal_truncate(db: Path, timeout: float = 30.0) -> None:
    """Checkpoint the WAL into the database file and truncate it to 0 bytes (retried while readers hold it).

    After this, every new write needs new disk blocks (a full disk then fails it at once)
    and every page is read from the main file (damage there is seen at once).
    """
    import time

    deadline = time.monotonic() + timeout
    con = sqlite3.connect(db, timeout=10, isolation_level=None)
    try:
        while True:
            busy, _log, _done = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"could not checkpoint {db} within {timeout} s")
            time.sleep(0.05)
    finally:
        con.close()


def fill_disk(folder: Path) -> Path:
    """Write a file in ``folder`` until the file system is full (ENOSPC); returns it (delete it to free the space)."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as fh:
        for chunk in (1 << 20, 1 << 12, 1 << 9):
            block = b"\0" * chunk
            try:
                while True:
                    fh.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


def damage(db: Path, keep: int = 4096) -> None:
    """Overwrite everything after the first ``keep`` bytes of ``db`` with garbage, in place (the
    processes that have it open keep their file handles), as a failing disk or a stray tool would."""
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.seek(keep)
        fh.write(bytes((i * 37 + 11) % 256 for i in range(size - keep)))
        fh.flush()
        os.fsync(fh.fileno())


@contextmanager
def tmpfs(folder: Path, size: str = "32m") -> Iterator[Path]:
    """A small tmpfs mounted at ``folder`` (needs root or CAP_SYS_ADMIN, as CI has), unmounted after."""
    folder.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise AssertionError(f"cannot mount a tmpfs at {folder} ({res.stderr.strip()}): this test needs root "
                             "(CI runs as root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
