"""The backtest's (inline) Coordinator answers repeated reads from its last result while no
table they read has been written, and never returns a stale one (real SQLite files)."""

from __future__ import annotations

from datetime import datetime

import pytest

from daytrading.clock import NY, ManualClock
from daytrading.config import load_settings
from daytrading.coordination.freeze import freeze_file
from daytrading.runtime import open_coordinator


def _pair(tmp_path):
    settings = load_settings(None, {"paths": {"database": str(tmp_path / "b.db"), "backup_dir": str(tmp_path / "bk")}},
                             env_file=None)
    clock = ManualClock(datetime(2020, 11, 17, 10, 0, tzinfo=NY))
    reader, writer = (open_coordinator(settings, bot, clock) for bot in ("exit-manager", "day-trader"))
    reader.inline = writer.inline = True
    return reader, writer


def _count_transactions(coord, monkeypatch) -> list:
    """The keyword arguments of every transaction ``coord`` runs from now on."""
    transactions: list = []
    real = coord._run
    monkeypatch.setattr(coord, "_run", lambda fn, **kw: transactions.append(kw) or real(fn, **kw))
    return transactions


def test_repeated_reads_cost_no_transaction_until_someone_commits(tmp_path, monkeypatch):
    reader, writer = _pair(tmp_path)
    transactions = _count_transactions(reader, monkeypatch)
    assert reader.get_active_positions() == [] and reader.get_closed_today() == []
    assert len(transactions) == 2
    for _ in range(5):
        assert reader.get_active_positions() == [] and not reader.is_frozen()
    assert len(transactions) == 3  # only is_frozen's first read
    # another connection commits: the next read goes to the database and sees the row
    assert writer.claim_entry("TSLA", 10).ok
    assert [p.symbol for p in reader.get_active_positions()] == ["TSLA"]
    assert len(transactions) == 4
    # the reader's own write is a commit on another of its connections: seen too
    reader.confirm_entry("TSLA", 10, 400.0)
    (row,) = reader.get_active_positions()
    assert row.status == "OPEN" and row.quantity == 10
    writer.close_position("TSLA", 404.0, "target")
    closed = reader.get_closed_today()
    assert [c["symbol"] for c in closed] == ["TSLA"] and reader.get_active_positions() == []
    # a caller changing what it got does not change the next answer
    closed[0]["symbol"] = "XXX"
    closed.clear()
    assert [c["symbol"] for c in reader.get_closed_today()] == ["TSLA"]
    assert reader.realized_pnl() > 0


@pytest.mark.parametrize("switch", ["inline", "read_cache"], ids=["live coordinator", "cache switched off"])
def test_without_the_cache_every_read_is_a_transaction(tmp_path, monkeypatch, switch):
    reader, _ = _pair(tmp_path)
    setattr(reader, switch, False)
    transactions = _count_transactions(reader, monkeypatch)
    for _ in range(3):
        reader.get_active_positions()
        reader.get_closed_today()
    assert len(transactions) == 6 and not reader._reads


def test_a_write_to_another_table_keeps_the_cached_read(tmp_path, monkeypatch):
    reader, writer = _pair(tmp_path)
    assert writer.claim_entry("TSLA", 10).ok
    transactions = _count_transactions(reader, monkeypatch)
    assert [p.symbol for p in reader.get_active_positions()] == ["TSLA"] and not reader.is_frozen()
    assert len(transactions) == 2
    # gate decisions and events (other tables), by the other coordinator and by the reader itself
    writer.record_gate_decisions([{"symbol": "NIO", "gate": "rule", "passed": False, "reason": "rsi"}])
    reader.record_event("INFO", "note", "a note")
    writer.heartbeat("running")
    assert [p.symbol for p in reader.get_active_positions()] == ["TSLA"] and not reader.is_frozen()
    assert transactions[2:] == [{}]  # the reader's own write; no read went to the database
    # a write to a table read is seen at once: the freeze flag (without its side file, which
    # would answer without SQL), the position (the pre-written lifecycle SQL)
    writer.freeze("test")
    freeze_file(reader.db_path).unlink()
    assert reader.is_frozen()
    writer.confirm_entry("TSLA", 10, 400.0)
    assert reader.get_active_positions()[0].status == "OPEN"
    assert transactions[3:] == [{"read_only": True}] * 2


def test_an_untraced_commit_in_this_process_is_seen(tmp_path):
    import sqlite3

    reader, writer = _pair(tmp_path)
    assert writer.claim_entry("TSLA", 10).ok
    assert [p.symbol for p in reader.get_active_positions()] == ["TSLA"]
    writer.record_gate_decisions([{"symbol": "NIO", "gate": "rule", "passed": False, "reason": "rsi"}])
    with sqlite3.connect(tmp_path / "b.db") as plain:  # not a coordinator: no generation bumped
        plain.execute("DELETE FROM active_positions")
    assert reader.get_active_positions() == []


def test_write_trace_names_the_tables_written():
    from daytrading.coordination.generations import ALL, WriteTrace
    from daytrading.db import lifecycle_sql as sql

    trace = WriteTrace()
    for statement in ("BEGIN IMMEDIATE", "SELECT * FROM trades", "PRAGMA busy_timeout=5", sql.CLAIM_INSERT,
                      sql.CLOSE_DELETE, sql.EXECUTION_UPSERT, 'UPDATE "orders" SET status = ?', "COMMIT"):
        trace(statement)
    assert trace.tables == {"active_positions", "executions", "orders"}
    trace("CREATE TABLE x (a)")
    assert ALL in trace.tables


def test_a_commit_by_another_process_is_seen_by_the_next_read(tmp_path):
    import subprocess
    import sys

    reader, _ = _pair(tmp_path)
    assert reader.get_active_positions() == []
    script = ("import sys; from datetime import datetime; from daytrading.clock import NY, ManualClock; "
              "from daytrading.coordination import Coordinator; from daytrading.db import make_engine; "
              "c = Coordinator(make_engine(sys.argv[1]), 'other', ManualClock(datetime(2020, 11, 17, 10, 1, tzinfo=NY))); "
              "assert c.claim_entry('NIO', 5).ok")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "b.db")], check=True, timeout=120)
    assert [p.symbol for p in reader.get_active_positions()] == ["NIO"]


def test_a_private_file_answers_cached_reads_without_sqlite_and_still_sees_traced_writes(tmp_path, monkeypatch):
    from daytrading.coordination import generations

    reader, writer = _pair(tmp_path)
    gens = generations.of(reader.db_path)
    gens.private = True
    probes: list[int] = []
    real = gens._version
    monkeypatch.setattr(gens, "_version", lambda: probes.append(1) or real())
    transactions = _count_transactions(reader, monkeypatch)
    assert reader.get_active_positions() == [] and reader.get_active_positions() == []
    assert len(transactions) == 1 and probes == []
    # writes by either coordinator (the inline BEGIN IMMEDIATE/COMMIT path) are seen by the next read
    assert writer.claim_entry("TSLA", 10).ok
    reader.confirm_entry("TSLA", 10, 400.0)
    assert [(p.symbol, p.status) for p in reader.get_active_positions()] == [("TSLA", "OPEN")]
    assert len(transactions) == 2 and probes == []
    # the safety net is off: an untraced commit is not seen (why only the runner's own file is private)
    import sqlite3

    with sqlite3.connect(tmp_path / "b.db") as plain:
        plain.execute("DELETE FROM active_positions")
    assert [p.symbol for p in reader.get_active_positions()] == ["TSLA"]
    reader.close_probe()
    assert reader.get_active_positions() == []


def test_an_inline_write_that_raises_is_rolled_back_and_the_connection_kept(tmp_path):
    from daytrading.errors import CoordinationError

    reader, writer = _pair(tmp_path)
    assert writer.claim_entry("TSLA", 10).ok
    assert writer.claim_entry("TSLA", 5).reason == "active"
    held = writer._local.dbapi

    def delete_then_fail(dbapi):
        dbapi.execute("DELETE FROM active_positions")
        raise CoordinationError("changed my mind")

    with pytest.raises(CoordinationError):
        writer._run_core(delete_then_fail)
    assert writer._local.dbapi is held and held.in_transaction is False
    assert [p.symbol for p in reader.get_active_positions()] == ["TSLA"]
    writer.record_gate_decisions([{"symbol": "NIO", "gate": "rule", "passed": False, "reason": "rsi"}])
    assert [d["symbol"] for d in reader.get_gate_decisions()] == ["NIO"]


def test_a_session_scratch_folder_needs_a_writable_folder_with_room(tmp_path, monkeypatch):
    from daytrading.backtest import runner

    assert runner.scratch_dir([str(tmp_path / "missing"), str(tmp_path)]) == str(tmp_path)
    assert runner.scratch_dir([str(tmp_path / "missing")]) is None
    monkeypatch.setattr(runner, "SCRATCH_MIN_FREE", 1 << 62)  # no file system has that much room
    assert runner.scratch_dir([str(tmp_path)]) is None
