"""The second channel beside the database: the freeze file and the heartbeat files.

SQLite can be locked for minutes (a SQLite browser with unsaved edits), full, or damaged.
The two signals that must get through anyway travel as small files in the database's
folder, written without SQLite:

* **the freeze file** ``<database>.freeze`` (e.g. ``trading_history.db.freeze``): while
  it exists no bot places an entry order. ``liquidate-all`` writes it *before* anything
  else, ``daytrading unfreeze`` removes it (together with the database flag). Checking
  it is one ``stat`` call, cheap enough for every order decision.
* **heartbeat files** ``<database>.heartbeats/<bot>.json``: every heartbeat of a bot is
  also written here, so the supervisor's watchdog sees a live bot while the database
  cannot be written or read.

Writes are atomic: the content goes to a temporary file in the same folder, which then
replaces the target with :func:`os.replace` (a reader sees the old or the new content,
never half of it). On a full disk, where a new file cannot be created, a heartbeat falls
back to rewriting the existing file in place and touching its modification time
(:func:`os.utime` needs no free space), so "alive" still gets through.

Times are UTC. Nothing here raises for a damaged file: an unreadable freeze file still
means "frozen" (the safe reading), an unreadable heartbeat file is skipped.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FREEZE_SUFFIX = ".freeze"
HEARTBEATS_SUFFIX = ".heartbeats"


def freeze_file(db_path: str | Path) -> Path:
    """The freeze file of the database at ``db_path`` (``<database>.freeze`` in its folder)."""
    p = Path(db_path)
    return p.with_name(p.name + FREEZE_SUFFIX)


def heartbeat_dir(db_path: str | Path) -> Path:
    """The folder of the heartbeat files of the database at ``db_path``."""
    p = Path(db_path)
    return p.with_name(p.name + HEARTBEATS_SUFFIX)


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically (temporary file + :func:`os.replace`).

    ``durable`` also fsyncs the content before the rename (power loss keeps the new file).

    Raises:
        OSError: the folder is missing or not writable, the disk is full, or (Windows)
            the target is open in another process at this instant.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        for attempt in range(3):
            try:
                os.replace(tmp, path)
                return
            except PermissionError:  # Windows: a reader has the target open this instant
                if attempt == 2:
                    raise
                time.sleep(0.01)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------- freeze file


def set_freeze(db_path: str | Path, reason: str, set_by: str) -> Path:
    """Write the freeze file (atomically, fsynced). Returns its path.

    The content (JSON: ``reason``, ``set_by``, ``set_at`` UTC ISO time, ``pid``) is
    informational; the file's existence is the freeze.

    Raises:
        OSError: the file cannot be written (folder missing/read-only, disk full).
    """
    path = freeze_file(db_path)
    body = {"reason": reason or "frozen", "set_by": set_by, "set_at": datetime.now(tz=UTC).isoformat(),
            "pid": os.getpid()}
    write_atomic(path, json.dumps(body).encode("utf-8"), durable=True)
    return path


def clear_freeze(db_path: str | Path) -> bool:
    """Remove the freeze file; True when it existed.

    Raises:
        OSError: it exists but cannot be removed (permissions, or open on Windows).
    """
    try:
        freeze_file(db_path).unlink()
    except FileNotFoundError:
        return False
    return True


def is_frozen_file(db_path: str | Path | None) -> bool:
    """True while the freeze file exists (one ``stat``; never raises, never touches SQLite)."""
    if db_path is None:
        return False
    try:
        return os.path.exists(_freeze_file_text(db_path))
    except (OSError, ValueError):  # pragma: no cover - an unusable path: nothing to see
        return False


@functools.lru_cache(maxsize=64)
def _freeze_file_text(db_path: str | Path) -> str:
    """:func:`freeze_file` as text, remembered (the bots check it on every cycle and sweep)."""
    return str(freeze_file(db_path))


def read_freeze(db_path: str | Path | None) -> dict[str, Any] | None:
    """The freeze file's content (``reason``, ``set_by``, ``set_at``, ``pid``), or None when not frozen.

    A file that exists but cannot be parsed still means frozen: its dict then has
    ``reason`` ``"unreadable freeze file"``.
    """
    if db_path is None:
        return None
    path = freeze_file(db_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return {"reason": f"unreadable freeze file ({exc})", "set_by": None, "set_at": None, "pid": None}
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except ValueError:
        return {"reason": "unreadable freeze file", "set_by": None, "set_at": None, "pid": None}
    return data


# ---------------------------------------------------------------------- heartbeat files


def write_heartbeat_file(db_path: str | Path, bot: str, state: str, detail: str | None = None,
                         *, market_time: datetime | None = None) -> bool:
    """Write ``bot``'s heartbeat file; True when written (or at least touched).

    Never raises: a heartbeat must not stop a bot. On a full disk the existing file is
    rewritten in place (same blocks) and its modification time set to now.
    """
    folder = heartbeat_dir(db_path)
    path = folder / f"{bot}.json"
    now = datetime.now(tz=UTC)
    data = json.dumps({"bot": bot, "pid": os.getpid(), "state": state, "detail": detail,
                       "last_seen": now.isoformat(),
                       "market_time": market_time.isoformat() if market_time else None}).encode("utf-8")
    try:
        try:
            write_atomic(path, data)
        except FileNotFoundError:
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
        return True
    except OSError:
        return _rewrite_in_place(path, data)


def _rewrite_in_place(path: Path, data: bytes) -> bool:
    """The full-disk fallback: overwrite the existing file's bytes (padded, no new blocks) and touch it."""
    try:
        size = path.stat().st_size
        if len(data) <= size:
            with open(path, "r+b") as fh:
                fh.write(data.ljust(size))  # JSON allows trailing whitespace
        os.utime(path)
        return True
    except OSError:
        return False


def read_heartbeat_files(db_path: str | Path | None) -> dict[str, dict[str, Any]]:
    """Every bot's heartbeat file, keyed by bot name: ``bot``, ``pid``, ``state``, ``detail``,
    ``last_seen`` (aware UTC datetime: the later of the written time and the file's
    modification time), ``market_time`` (ISO text or None). Unreadable files are skipped."""
    if db_path is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    try:
        files = list(heartbeat_dir(db_path).glob("*.json"))
    except OSError:
        return out
    for path in files:
        try:
            mtime = path.stat().st_mtime
            data = json.loads(path.read_text(encoding="utf-8"))
            written = datetime.fromisoformat(data["last_seen"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        data["last_seen"] = max(written, datetime.fromtimestamp(mtime, tz=UTC))
        out[str(data.get("bot") or path.stem)] = data
    return out
