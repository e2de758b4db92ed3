"""Online backups (SQLite's backup API) and integrity checks.

The backup API copies a consistent snapshot while the bots keep writing (WAL),
unlike a file copy, which can tear a page.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from daytrading.clock import NY
from daytrading.errors import OperationalError


def backup_database(
    db_path: str | Path,
    backup_dir: str | Path,
    *,
    keep: int = 7,
    label: str = "daily",
    when: datetime | None = None,
) -> Path:
    """Copy ``db_path`` into ``backup_dir`` with SQLite's online backup API.

    Args:
        db_path: the live database file.
        backup_dir: created if missing.
        keep: backups with this ``label`` kept, oldest removed first (>= 1).
        label: part of the file name (``daily``, ``pre-migrate``, ``pre-reset``).
        when: time stamp for the file name (tz-aware; default: now, New York).

    Returns:
        The backup file's path.

    Raises:
        OperationalError: the database is missing or the backup cannot be written.
    """
    db_path = Path(db_path)
    if not db_path.exists():
        raise OperationalError(f"database {db_path} does not exist; nothing to back up")
    backup_dir = Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    stamp = (when or datetime.now(tz=NY)).astimezone(NY).strftime("%Y%m%d-%H%M%S-%f")
    target = backup_dir / f"{db_path.stem}-{label}-{stamp}.db"
    n = 1
    while target.exists():
        n += 1
        target = backup_dir / f"{db_path.stem}-{label}-{stamp}-{n}.db"
    try:
        src = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        dst = sqlite3.connect(target)
        try:
            with dst:
                src.backup(dst, pages=1024)
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise OperationalError(f"backup of {db_path} to {target} failed: {exc}") from exc
    prune_backups(backup_dir, db_path.stem, label, keep)
    return target


def prune_backups(backup_dir: Path, stem: str, label: str, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` backups of one label; returns the removed files."""
    files = sorted(backup_dir.glob(f"{stem}-{label}-*.db"), key=lambda p: p.name)
    doomed = files[: max(0, len(files) - max(1, keep))]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def integrity_check(db_path: str | Path) -> list[str]:
    """Run ``PRAGMA integrity_check``; returns its lines (``["ok"]`` when sound).

    Raises:
        OperationalError: the file is missing or is not a SQLite database.
    """
    db_path = Path(db_path)
    if not db_path.exists():
        raise OperationalError(f"database {db_path} does not exist")
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        try:
            return [row[0] for row in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return [f"not a usable SQLite database: {exc}"]
