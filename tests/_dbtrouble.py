"""Database trouble made by real means, for the resilience tests: another process holding
the write lock, a full disk (a small tmpfs), a file damaged mid-session."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
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
def write_lock(db: Path, prefix: Sequence[str] = ()) -> Iterator[subprocess.Popen[str]]:
    """Another process holds ``db``'s write lock (``BEGIN IMMEDIATE``, a pending write, never committed)
    until the block ends, as a SQLite browser with unsaved edits does. Readers are not blocked (WAL).
    ``prefix``: e.g. :meth:`SmallDisk.enter` (run it where the database's disk is mounted)."""
    proc = subprocess.Popen([*prefix, sys.executable, "-c", _HOLDER, str(db)], stdin=subprocess.PIPE,
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


_TRUNCATE = r"""
import sqlite3, sys, time
deadline = time.monotonic() + float(sys.argv[2])
con = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
while con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
    if time.monotonic() > deadline:
        sys.exit(f"could not checkpoint {sys.argv[1]} within {sys.argv[2]} s")
    time.sleep(0.05)
"""


def wal_truncate(db: Path, prefix: Sequence[str] = (), timeout: float = 30.0) -> None:
    """Checkpoint the WAL into the database file and truncate it to 0 bytes (retried while readers hold it).

    After this, every new write needs new disk blocks (a full disk then fails it at once)
    and every page is read from the main file (damage there is seen at once).
    """
    res = subprocess.run([*prefix, sys.executable, "-c", _TRUNCATE, str(db), str(timeout)], capture_output=True,
                         text=True, timeout=timeout + 30)
    assert res.returncode == 0, res.stderr


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


class SmallDisk:
    """A small tmpfs for the database of a process tree, so that the disk can really fill up.

    As root (CI) the tmpfs is mounted at ``folder`` for the test's duration. Otherwise
    (or with ``$DAYTRADING_TEST_DISK=namespace``) the launched process mounts it itself
    inside a new user + mount namespace (``unshare -rm``, no privilege needed); the
    processes it starts share that view, and the test reaches the same files through
    ``/proc/PID/root`` (same inodes: SQLite's locks and shared memory work across it).

    Use: ``with SmallDisk(folder) as disk: proc = Popen(disk.argv(argv)); disk.attach(proc.pid);
    disk.view(path)`` is ``path`` as this process sees it (for plain file access; SQLite resolves
    the ``/proc`` link, so SQLite helpers run with the :meth:`enter` prefix and the inner path).
    """

    def __init__(self, folder: Path, size: str = "32m") -> None:
        self.folder, self.size = folder, size
        self.mounted = False
        self.pid: int | None = None

    def __enter__(self) -> SmallDisk:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.environ.get("DAYTRADING_TEST_DISK") != "namespace":
            res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.folder)],
                                 capture_output=True, text=True)
            self.mounted = res.returncode == 0
        if not self.mounted:
            res = subprocess.run(["unshare", "-rm", "true"], capture_output=True, text=True)
            if res.returncode != 0:
                raise AssertionError(f"cannot mount a tmpfs at {self.folder} (not root) nor create a user "
                                     f"namespace (unshare -rm: {res.stderr.strip()}); this test needs one of them")
        return self

    def argv(self, argv: list[str]) -> list[str]:
        """``argv`` as launched: unchanged when mounted here, else wrapped to mount the tmpfs first."""
        if self.mounted:
            return argv
        script = 'mount -t tmpfs -o size="$1" tmpfs "$2" && shift 2 && exec "$@"'
        return ["unshare", "-rm", "sh", "-c", script, "sh", self.size, str(self.folder), *argv]

    def attach(self, pid: int, timeout: float = 30.0) -> None:
        """The launched process's pid; waits until its tmpfs is mounted."""
        import time

        self.pid = pid
        if self.mounted:
            return
        deadline = time.monotonic() + timeout
        view = self.view(self.folder)
        while True:
            try:
                if os.stat(view).st_dev != os.stat(view.parent).st_dev:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the tmpfs of pid {pid} did not appear at {view}")
            time.sleep(0.05)

    def view(self, path: Path) -> Path:
        """``path`` (on the small disk) as this process sees it."""
        if self.mounted:
            return path
        assert self.pid is not None, "attach() first"
        return Path(f"/proc/{self.pid}/root") / path.resolve().relative_to("/")

    def enter(self) -> list[str]:
        """Command prefix that runs a helper process where the small disk is mounted."""
        if self.mounted:
            return []
        return ["nsenter", "-t", str(self.pid), "-U", "-m", "--preserve-credentials"]

    def __exit__(self, *_: object) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.folder)], capture_output=True)
