"""The journal: database writes land in order, a busy database is retried, nothing is lost."""

from __future__ import annotations

import asyncio

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
