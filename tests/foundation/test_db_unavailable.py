"""The coordination layer when SQLite cannot be used: locked, full, damaged.

Real SQLite files. The lock is held by a second connection (SQLite locks between
connections exactly as between processes); the process-level scenarios are in
tests/e2e/test_supervisor_db_trouble.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest

from daytrading.bots.base import Bot  # imports ib_async (eventkit wants an event loop at import: before any test)
from daytrading.clock import NY, ManualClock
from daytrading.config import load_settings
from daytrading.coordination import Coordinator
from daytrading.coordination import freeze as side
from daytrading.db import make_engine, upgrade
from daytrading.errors import DatabaseBusyError, DatabaseUnavailableError, DaytradingError


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "trading_history.db"
    upgrade(path)
    return path


def _coord(db: Path, bot: str = "exit-manager") -> Coordinator:
    return Coordinator(make_engine(db), bot, ManualClock(datetime(2020, 11, 17, 10, tzinfo=NY)))


def _lock(db: Path) -> sqlite3.Connection:
    """Another writer holding the write lock (as a SQLite browser with unsaved edits does)."""
    other = sqlite3.connect(db, timeout=1, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE flags SET value = value")
    return other


def test_run_async_fails_fast_under_a_lock_and_the_loop_keeps_running(db: Path) -> None:
    coord = _coord(db)
    assert coord.claim_entry("TSLA", 10).ok
    coord.confirm_entry("TSLA", 10, 400.0)
    other = _lock(db)

    async def scenario() -> tuple[float, float, int]:
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        t0 = time.monotonic()
        with pytest.raises(DatabaseBusyError):
            await coord.run_async(coord.take_exit_lock, "TSLA", "stop", timeout=0.5)
        took = time.monotonic() - t0
        done.set()
        await tick
        return took, max(gaps), len(gaps)

    took, worst_gap, ticks = asyncio.run(scenario())
    other.execute("ROLLBACK")
    other.close()
    assert took < 3.0, f"fail-fast call took {took:.2f} s (the patient policy waits 35 s)"
    assert worst_gap < 1.0, f"the event loop stalled {worst_gap:.2f} s during a locked call"
    assert ticks >= 10
    # after the lock: the same coordinator works
    assert asyncio.run(coord.run_async(coord.take_exit_lock, "TSLA", "stop")) is True


def test_fail_fast_for_sync_callers_and_a_patient_call_waits_for_the_lock(db: Path) -> None:
    coord = _coord(db, "supervisor")
    other = _lock(db)
    t0 = time.monotonic()
    with pytest.raises(DatabaseBusyError), coord.fail_fast(0.3):
        coord.claim_entry("TSLA", 10)
    with pytest.raises(DatabaseBusyError), coord.fail_fast(0.3):
        coord.record_event("CRITICAL", "test", "must not wait")
    assert time.monotonic() - t0 < 3.0
    held = coord._held_connection().connection.driver_connection
    assert held.execute("PRAGMA busy_timeout").fetchone()[0] == 5000, "patient again after the block"
    assert coord.get_heartbeats() == {}  # WAL: reads still work under a write lock

    async def patient() -> None:
        task = asyncio.ensure_future(coord.run_async(coord.record_event, "INFO", "test", "lands after the lock"))
        await asyncio.sleep(0.5)
        assert not task.done()
        other.execute("ROLLBACK")
        await asyncio.wait_for(task, 30)

    asyncio.run(patient())
    other.close()
    assert [e["message"] for e in coord.get_events()] == ["lands after the lock"]


def test_a_full_database_raises_a_daytrading_error(db: Path) -> None:
    """SQLite's real SQLITE_FULL ("database or disk is full"), produced with PRAGMA max_page_count."""
    coord = _coord(db)
    con = sqlite3.connect(db, isolation_level=None)
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    coord._held_connection()  # the limit is per connection: set it on the coordinator's own connections
    for c in list(coord.engine.pool._pool.queue):  # type: ignore[attr-defined]
        c.driver_connection.execute(f"PRAGMA max_page_count={pages}")
    coord._local.dbapi.execute(f"PRAGMA max_page_count={pages}")  # type: ignore[union-attr]
    with pytest.raises(DatabaseUnavailableError, match="full") as info:
        for i in range(200):
            assert coord.claim_entry(f"S{i:03d}", 1, meta={"pad": "x" * 4000}).ok
    assert isinstance(info.value, DaytradingError) and info.value.__cause__ is not None
    con.close()


def test_a_damaged_file_raises_a_daytrading_error(db: Path) -> None:
    coord = _coord(db)
    coord.heartbeat("running")
    coord.engine.dispose()
    coord._drop_connection()
    with open(db, "r+b") as fh:  # overwrite the header and the first pages
        fh.write(b"\xde\xad" * 8192)
    with pytest.raises(DatabaseUnavailableError):
        coord.get_heartbeats()
    with pytest.raises(DatabaseUnavailableError):
        coord.take_exit_lock("TSLA", "stop")
    # the heartbeat file still tells the supervisor the bot is alive
    coord.beat_file("running")
    assert coord.heartbeat_files()["exit-manager"]["state"] == "running"


def test_freeze_file_wins_while_the_database_is_locked(db: Path) -> None:
    trader = _coord(db, "day-trader")
    liquidator = _coord(db, "liquidate-all")
    other = _lock(db)
    with pytest.raises(DatabaseBusyError), liquidator.fail_fast(0.2):
        liquidator.freeze("liquidate-all")
    assert side.freeze_file(db).exists()
    assert trader.is_frozen() and trader.is_frozen_file()
    assert trader.claim_entry("TSLA", 10).reason == "frozen"  # refused before any SQL (the lock is still held)
    assert side.read_freeze(db)["set_by"] == "liquidate-all"
    other.execute("ROLLBACK")
    other.close()
    liquidator.freeze("liquidate-all")  # the database flag when it can
    assert trader.freeze_info()["value"] == "liquidate-all"
    assert trader.unfreeze() is True
    assert not side.freeze_file(db).exists() and not trader.is_frozen()
    assert trader.claim_entry("TSLA", 10).ok


def test_unfreeze_keeps_the_file_when_the_database_flag_cannot_be_cleared(db: Path) -> None:
    coord = _coord(db, "unfreeze")
    coord.freeze("liquidate-all")
    other = _lock(db)
    with pytest.raises(DatabaseBusyError), coord.fail_fast(0.2):
        coord.unfreeze()
    other.execute("ROLLBACK")
    other.close()
    assert side.freeze_file(db).exists() and coord.is_frozen()


def test_an_unreadable_freeze_file_still_freezes(db: Path) -> None:
    side.freeze_file(db).write_bytes(b"\x00garbage")
    assert side.read_freeze(db)["reason"] == "unreadable freeze file"
    assert _coord(db).is_frozen()


def test_heartbeat_files_are_atomic_and_survive_a_failed_replace(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    coord = _coord(db)
    coord.heartbeat("running", '{"connected": true}')
    first = coord.heartbeat_files()["exit-manager"]
    assert first["state"] == "running" and first["detail"] == '{"connected": true}'
    assert not list(side.heartbeat_dir(db).glob(".*.tmp")), "no temporary file left behind"
    # a full disk: no new file can be created; the existing one is rewritten in place and touched
    before = first["last_seen"]

    def no_space(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(side, "write_atomic", no_space)
    time.sleep(0.02)
    assert coord.beat_file("frozen")
    again = coord.heartbeat_files()["exit-manager"]
    assert again["state"] == "frozen" and again["last_seen"] > before


def test_a_bot_heartbeats_through_its_file_while_the_database_is_locked(db: Path) -> None:
    settings = load_settings(None, {"mode": "sim", "paths": {"database": str(db)},
                                    "intervals": {"heartbeat": 0.05}}, env_file=None)
    coord = _coord(db)
    other = _lock(db)

    async def scenario() -> list[datetime]:
        bot = Bot(settings, coord, coord.clock, None)  # inside the loop: ib_async's IB() wants one
        bot.BOT = "exit-manager"
        bot.state = "running"
        beats = asyncio.ensure_future(bot._heartbeat_loop())
        seen = []
        for _ in range(20):
            await asyncio.sleep(0.1)
            seen.append(coord.heartbeat_files()["exit-manager"]["last_seen"])
        other.execute("ROLLBACK")
        for _ in range(100):  # the row lands when the lock clears
            await asyncio.sleep(0.05)
            if coord.get_heartbeats().get("exit-manager"):
                break
        beats.cancel()
        return seen

    seen = asyncio.run(scenario())
    other.close()
    assert len(set(seen)) >= 10, "the heartbeat file kept being written during the lock"
    assert coord.get_heartbeats()["exit-manager"]["state"] == "running"
