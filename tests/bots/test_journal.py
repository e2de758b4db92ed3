"""The journal: database writes land in order, a busy database is retried, nothing is lost."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from daytrading.bots.journal import Journal
from daytrading.errors import CoordinationError, DatabaseBusyError


async def test_writes_land_in_order_after_the_database_comes_back():
    written: list[str] = []
    busy = {"left": 3}

    async def call(fn, *args, **kwargs):
        if busy["left"]:
            busy["left"] -= 1
            raise DatabaseBusyError("database is locked")
        return fn(*args, **kwargs)

    journal = Journal(call, max_delay=0.01)
    landed: list[object] = []
    for name in ("exit lock", "executions", "close"):
        journal.put(name, written.append, name, then=landed.append)
    assert len(journal) == 3
    assert await journal.drain(5.0)
    assert written == ["exit lock", "executions", "close"]
    assert landed == [None, None, None] and journal.failures == 3 and journal.written == 3


async def test_a_write_whose_row_moved_on_is_dropped_and_the_rest_still_land():
    written: list[str] = []

    def close_gone(symbol: str) -> None:
        raise CoordinationError(f"{symbol}: no active position to update")

    async def call(fn, *args, **kwargs):
        return fn(*args, **kwargs)

    journal = Journal(call)
    journal.put("quantity", close_gone, "AAPL")
    journal.put("event", written.append, "after")
    assert await journal.drain(5.0)
    assert written == ["after"] and len(journal) == 0


async def test_the_loop_is_never_blocked_while_a_write_waits():
    release = asyncio.Event()

    async def call(fn, *args, **kwargs):
        await release.wait()  # a write lock held elsewhere
        return fn(*args, **kwargs)

    journal = Journal(call)
    journal.put("close", lambda: None)
    assert not await journal.drain(0.05), "still pending while the database is locked"
    ticks = 0
    for _ in range(10):  # the loop keeps running other work
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 10
    release.set()
    assert await journal.drain(5.0)


async def test_a_bad_item_is_logged_and_skipped_and_the_writes_after_it_still_land(tmp_path, caplog):
    """A gate decision stamped with a naive datetime cannot be stored (ValueError from real SQLite
    encoding); the journal names it, drops it, and writes everything queued after it."""
    import logging
    from datetime import datetime

    from daytrading.clock import NY, ManualClock
    from daytrading.coordination import Coordinator
    from daytrading.db.engine import make_engine
    from daytrading.db.migrate import upgrade

    upgrade(tmp_path / "j.db", backup_dir=tmp_path / "backups")
    engine = make_engine(tmp_path / "j.db")
    coord = Coordinator(engine, "test", ManualClock(datetime(2020, 11, 17, 10, 0, tzinfo=NY)))
    journal = Journal(coord.run_async)
    naive = {"symbol": "AAPL", "gate": "spread", "passed": False, "reason": "wide",
             "when": datetime(2020, 11, 17, 10, 0)}
    caplog.set_level(logging.ERROR, logger="daytrading.journal")
    journal.put("gate decisions", coord.record_gate_decisions, [naive])
    journal.put("event", coord.record_event, "INFO", "test", "after the bad item")
    assert await journal.drain(5.0), "the journal stopped at the bad item"
    assert len(journal) == 0 and journal.written == 1 and journal.dropped == 1
    assert any(e["message"] == "after the bad item" for e in coord.get_events(limit=10))
    bad = [r for r in caplog.records if r.name == "daytrading.journal" and r.levelno >= logging.ERROR]
    assert len(bad) == 1 and bad[0].what == "gate decisions" and "naive datetime" in bad[0].error
    # the journal is still alive for later writes
    journal.put("event", coord.record_event, "INFO", "test", "later")
    assert await journal.drain(5.0)
    assert journal.written == 2
    engine.dispose()


@pytest.mark.parametrize("error", [
    OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")),
    sqlite3.OperationalError("database is locked"),
], ids=["full", "locked-raw"])
async def test_a_full_or_locked_database_is_still_retried_not_dropped(error):
    written: list[str] = []
    left = {"n": 2}

    async def call(fn, *args, **kwargs):
        if left["n"]:
            left["n"] -= 1
            raise error
        return fn(*args, **kwargs)

    journal = Journal(call, max_delay=0.01)
    journal.put("close", written.append, "close")
    assert await journal.drain(5.0)
    assert written == ["close"] and journal.failures == 2 and journal.dropped == 0
