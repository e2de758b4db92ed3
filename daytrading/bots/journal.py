"""Database writes that must never hold up an order: queued in order, written off the loop.

A stop's SELL is sent first; the facts (exit lock, executions, the trade row, events)
follow through a :class:`Journal`, which writes them one after another in the order they
were put, retries a busy, locked or full database with back-off until each write lands,
and never blocks the event loop. Nothing is lost while the process lives; what is still
queued at exit is logged, and the ledger is rebuilt from ``reqExecutions`` at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from daytrading.errors import CoordinationError, DaytradingError

log = logging.getLogger("daytrading.journal")


@dataclass
class _Entry:
    what: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    then: Callable[[Any], None] | None
    attempts: int = 0


class Journal:
    """An ordered queue of coordination calls, each retried until it lands.

    Args:
        call: runs one blocking coordination call off the loop,
            ``await call(fn, *args, **kwargs)`` (the bot's :meth:`~daytrading.bots.base.Bot.db`).
        max_delay: longest wait between retries of one entry, wall seconds.

    A :class:`~daytrading.errors.CoordinationError` (the row moved on: closed, already
    adopted) ends the entry with a log line; any other database error (busy, locked, full,
    unavailable: :class:`~daytrading.errors.DaytradingError`, SQLAlchemy,
    ``sqlite3.OperationalError``, ``OSError``)
    retries it. Any other exception (a bad item, e.g. a naive datetime) can never land: the
    entry is logged at ERROR with its name and the error, dropped, and the next one is written.

    Attributes:
        written: entries that landed. failures: failed attempts that were retried.
        dropped: entries ended without landing (row moved on, or a bad item).
    """

    def __init__(self, call: Callable[..., Awaitable[Any]], *, max_delay: float = 5.0) -> None:
        self._call = call
        self._queue: deque[_Entry] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._max_delay = max_delay
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.failures = 0
        self.dropped = 0

    def put(self, what: str, fn: Callable[..., Any], *args: Any, then: Callable[[Any], None] | None = None,
            **kwargs: Any) -> None:
        """Queue ``fn(*args, **kwargs)``; ``then(result)`` runs on the loop once it has landed."""
        self._queue.append(_Entry(what, fn, args, kwargs, then))
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def __len__(self) -> int:
        return len(self._queue)

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` wall seconds for the queue to empty; True when it did."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Stop writing; log what is still queued (rebuilt from the broker at the next start)."""
        if self._task is not None:
            self._task.cancel()
        if self._queue:
            log.warning("journal closed with writes pending", extra={"pending": [e.what for e in self._queue]})

    async def _run(self) -> None:
        while self._queue:
            entry = self._queue[0]
            try:
                result = await self._call(entry.fn, *entry.args, **entry.kwargs)
            except CoordinationError as exc:
                log.info("journal entry dropped: the row moved on", extra={"what": entry.what, "error": str(exc)})
                self._queue.popleft()
                self.dropped += 1
                continue
            except (DaytradingError, SQLAlchemyError, sqlite3.OperationalError, OSError) as exc:
                entry.attempts += 1
                self.failures += 1
                delay = min(self._max_delay, 0.05 * 2 ** min(entry.attempts, 10))
                log.warning("journal write failed; will retry",
                            extra={"what": entry.what, "attempt": entry.attempts, "error": str(exc),
                                   "pending": len(self._queue), "retry_in_s": delay})
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            except Exception as exc:  # noqa: BLE001 - one bad item must not stop the writes after it
                log.error("journal entry dropped: it cannot be written",
                          exc_info=True, extra={"what": entry.what, "error": f"{type(exc).__name__}: {exc}",
                                                "pending": len(self._queue) - 1})
                self._queue.popleft()
                self.dropped += 1
                continue
            self._queue.popleft()
            self.written += 1
            if entry.attempts:
                log.info("journal write landed after retries", extra={"what": entry.what, "attempts": entry.attempts})
            if entry.then is not None:
                try:
                    entry.then(result)
                except Exception:  # noqa: BLE001 - a follow-up must not stop the journal
                    log.exception("journal follow-up failed", extra={"what": entry.what})
        self._idle.set()
