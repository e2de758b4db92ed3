"""Wiring shared by every command: clock from settings, database, JSON-lines logging."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from daytrading.clock import NY, Clock, LiveClock, ReplayClock
from daytrading.config import Settings
from daytrading.coordination import Coordinator
from daytrading.db.engine import make_engine
from daytrading.db.migrate import upgrade
from daytrading.errors import OperationalError


def build_clock(settings: Settings) -> Clock:
    """The clock every component of this process uses.

    Sim mode with ``sim.start`` and ``sim.epoch`` set (the supervisor sets both for
    every process of a run): a :class:`ReplayClock`. Otherwise the live clock.
    """
    sim = settings.sim
    if settings.is_sim and sim.start is not None and sim.epoch is not None:
        start = sim.start if sim.start.tzinfo else sim.start.replace(tzinfo=NY)
        return ReplayClock(start=start, epoch=sim.epoch, speed=sim.speed)
    return LiveClock()


def open_coordinator(settings: Settings, bot: str, clock: Clock | None = None, *, migrate: bool = True) -> Coordinator:
    """Open the shared database (creating/upgrading its schema) and return a Coordinator.

    Raises:
        OperationalError: the database file is not a usable SQLite database (names it).
    """
    path = Path(settings.paths.database)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if migrate:
            upgrade(path, backup_dir=settings.paths.backup_dir, keep=settings.paths.backup_keep)
    except Exception as exc:  # sqlite3.DatabaseError, alembic errors
        raise OperationalError(
            f"database {path} cannot be opened or migrated ({type(exc).__name__}: {exc}); "
            f"check the file, run `daytrading db integrity`, or move it aside to start a new one"
        ) from exc
    return Coordinator(
        make_engine(path),
        bot,
        clock or build_clock(settings),
        profit_target=settings.profit_target,
        stop_loss=settings.stop_loss,
    )


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: time (UTC ISO), level, logger, bot, message and extras."""

    RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def __init__(self, bot: str, clock: Clock | None = None) -> None:
        super().__init__()
        self.bot = bot
        self.clock = clock

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=NY).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "bot": self.bot,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.clock is not None and not isinstance(self.clock, LiveClock):
            data["market_time"] = self.clock.now().isoformat(timespec="seconds")
        for key, value in record.__dict__.items():
            if key not in self.RESERVED and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup_logging(settings: Settings, bot: str, clock: Clock | None = None, *, console: bool = True) -> Path:
    """Log JSON lines to ``<log_dir>/<bot>.jsonl`` and a short text form to stderr.

    Returns the JSONL file path.
    """
    log_dir = Path(settings.paths.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{bot.replace('-', '_')}.jsonl"
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fh = logging.FileHandler(path, encoding="utf-8")
    fh.setFormatter(JsonLinesFormatter(bot, clock))
    root.addHandler(fh)
    if console:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(logging.Formatter(f"%(asctime)s {bot} %(levelname)s %(message)s"))
        root.addHandler(sh)
    logging.getLogger("ib_async").setLevel(logging.WARNING)
    return path
