"""Coordination API on a real SQLite file: lifecycle, invariants, session dates, real processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import pytest

from daytrading.clock import NY, ManualClock
from daytrading.coordination import Coordinator, PositionStatus
from daytrading.db import make_engine, upgrade
from daytrading.db.backup import integrity_check
from daytrading.errors import CoordinationError

WORKERS = Path(__file__).with_name("_workers.py")


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "trading_history.db"
    upgrade(path)
    return path


@pytest.fixture()
def clock() -> ManualClock:
    return ManualClock(datetime(2020, 11, 17, 10, 0, tzinfo=NY))


@pytest.fixture()
def coord(db: Path, clock: ManualClock) -> Coordinator:
    return Coordinator(make_engine(db), "day-trader", clock)


def run_worker(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKERS), str(args[0]), json.dumps(list(args[1:]))])


def test_full_lifecycle_records_trade_and_closed_today(coord: Coordinator) -> None:
    assert coord.claim_entry("tsla", 10).ok
    pos = coord.get_position("TSLA")
    assert pos is not None and pos.status == PositionStatus.PENDING_ENTRY and pos.requested_quantity == 10
    coord.record_entry_order("TSLA", client_id=2, order_id=7, perm_id=1000007)
    pos = coord.confirm_entry("TSLA", 10, 460.0)
    assert (pos.status, pos.profit_target_price, pos.stop_loss_price) == ("OPEN", 468.28, 455.86)
    assert pos.entry_perm_id == 1000007
    assert coord.take_exit_lock("TSLA", "target")
    assert not coord.take_exit_lock("TSLA", "stop"), "only one exit in flight per symbol"
    trade = coord.close_position("TSLA", 468.28, "target", commission=2.0)
    assert trade is not None
    assert trade.pnl == pytest.approx((468.28 - 460.0) * 10 - 2.0)
    assert trade.pnl_pct == pytest.approx(1.8, abs=1e-3)
    assert trade.exit_reason == "target" and trade.bot == "day-trader"
    assert not coord.is_position_active("TSLA")
    assert coord.was_closed_today("TSLA")
    assert coord.close_position("TSLA", 468.28, "target") is None, "a second close records nothing"
    assert len(coord.get_trades_by_date(date(2020, 11, 17))) == 1
    assert coord.realized_pnl() == pytest.approx(80.8)


def test_claim_refused_when_active_closed_or_frozen(coord: Coordinator) -> None:
    assert coord.claim_entry("AAPL", 1).ok
    assert coord.claim_entry("AAPL", 1).reason == "active"
    coord.confirm_entry("AAPL", 1, 100.0)
    coord.close_position("AAPL", 99.1, "stop")
    assert coord.claim_entry("AAPL", 1).reason == "closed_today"
    coord.freeze("test")
    assert coord.claim_entry("MSFT", 1).reason == "frozen"
    assert coord.unfreeze()
    assert coord.claim_entry("MSFT", 1).ok


def test_release_claim_only_removes_pending(coord: Coordinator) -> None:
    coord.claim_entry("NIO", 5)
    assert coord.release_claim("NIO", "order rejected")
    assert not coord.is_position_active("NIO")
    coord.claim_entry("NIO", 5)
    coord.confirm_entry("NIO", 5, 40.0)
    assert not coord.release_claim("NIO"), "an OPEN position is never released as a claim"
    assert coord.is_position_active("NIO")


def test_invalid_transitions_raise(coord: Coordinator) -> None:
    with pytest.raises(CoordinationError):
        coord.confirm_entry("NONE", 1, 10.0)
    coord.claim_entry("LI", 1)
    with pytest.raises(CoordinationError):
        coord.confirm_entry("LI", 0, 10.0)
    with pytest.raises(CoordinationError, match="exit_reason"):
        coord.close_position("LI", 10.0, "because")
    with pytest.raises(CoordinationError):
        coord.adopt_position("LI", 1, 10.0)


def test_adopt_and_exit_lock_release(coord: Coordinator) -> None:
    pos = coord.adopt_position("BA", 20, 200.0, reason="opened by hand")
    assert pos.agent_name == "adopted" and pos.profit_target_price == 203.6 and pos.stop_loss_price == 198.2
    assert coord.take_exit_lock("BA", "stop")
    assert coord.release_exit_lock("BA")
    assert coord.get_position("BA").status == "OPEN"
    assert coord.get_position("BA").exit_attempts == 1
    events = coord.get_events()
    assert any(e["kind"] == "adopted" and e["symbol"] == "BA" for e in events)


def test_close_at_2330_new_york_belongs_to_that_session(coord: Coordinator, clock: ManualClock) -> None:
    coord.claim_entry("PDD", 10)
    coord.confirm_entry("PDD", 10, 100.0)
    clock.set(datetime(2020, 11, 17, 23, 30, tzinfo=NY))  # 04:30 UTC on the 18th
    coord.close_position("PDD", 101.0, "manual")
    assert coord.get_closed_today()[0]["close_date"] == date(2020, 11, 17)
    assert coord.get_trades_by_date(date(2020, 11, 17))[0].symbol == "PDD"
    assert coord.claim_entry("PDD", 1).reason == "closed_today"
    # next session: the daily reset unblocks the symbol
    clock.set(datetime(2020, 11, 18, 4, 0, tzinfo=NY))
    assert not coord.was_closed_today("PDD")
    assert coord.clear_closed_today() == 1
    assert coord.get_closed_today(date(2020, 11, 17)) == []
    assert coord.claim_entry("PDD", 1).ok


def test_weekend_belongs_to_fridays_session(coord: Coordinator, clock: ManualClock) -> None:
    clock.set(datetime(2020, 11, 21, 12, 0, tzinfo=NY))  # Saturday
    assert coord.session_date() == date(2020, 11, 20)
    clock.set(datetime(2020, 11, 26, 12, 0, tzinfo=NY))  # Thanksgiving
    assert coord.session_date() == date(2020, 11, 25)


def test_heartbeat_and_gate_decisions(coord: Coordinator) -> None:
    coord.heartbeat("connected", "reconciled")
    hb = coord.get_heartbeats()["day-trader"]
    assert hb["state"] == "connected" and hb["pid"] == os.getpid()
    coord.record_gate_decision("AMD", "max_positions", False, "4 of 4 open", {"open": 4, "max": 4})
    coord.record_gate_decisions([
        {"symbol": "AMD", "gate": "closed_today", "passed": False, "reason": "closed at 10:31"},
        {"symbol": "NVDA", "gate": "max_positions", "passed": False, "reason": "4 of 4 open"},
    ])
    assert coord.gate_rejection_counts() == {"max_positions": 2, "closed_today": 1}
    last = coord.get_gate_decisions("AMD", limit=1)[0]
    assert last["symbol"] == "AMD"


def test_locked_database_is_retried_not_raised(db: Path, coord: Coordinator) -> None:
    """Another connection holds the write lock for a moment: the claim waits and succeeds."""
    blocker = sqlite3.connect(db, timeout=1, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    proc = run_worker("lifecycle_loop", str(db), "LCK", 1)
    time.sleep(0.2)  # hold the lock a little; the worker must wait, not fail
    blocker.execute("COMMIT")
    blocker.close()
    assert proc.wait(timeout=60) == 0
    assert coord.was_closed_today("LCK0")


def test_eight_processes_claim_fifty_symbols_exactly_once(db: Path, tmp_path: Path) -> None:
    symbols = [f"S{i:02d}" for i in range(50)]
    start_at = time.time() + 1.5
    procs, outs = [], []
    for w in range(8):
        out = tmp_path / f"w{w}.json"
        outs.append(out)
        order = symbols if w % 2 == 0 else list(reversed(symbols))
        procs.append(run_worker("claim_worker", str(db), w, order, start_at, str(out)))
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    won: list[str] = []
    for out in outs:
        data = json.loads(out.read_text())
        assert data["errors"] == [], data["errors"]
        won.extend(data["won"])
    assert sorted(won) == symbols, "every symbol claimed exactly once"
    con = sqlite3.connect(db)
    assert con.execute("select count(*), count(distinct symbol) from active_positions").fetchone() == (50, 50)


def test_sigkill_before_commit_leaves_no_half_closed_position(db: Path, coord: Coordinator, tmp_path: Path) -> None:
    coord.claim_entry("KILL", 10)
    coord.confirm_entry("KILL", 10, 100.0)
    ready = tmp_path / "ready"
    proc = run_worker("close_and_hang", str(db), "KILL", str(ready))
    wait_for_file(ready, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert integrity_check(db) == ["ok"]
    pos = coord.get_position("KILL")
    assert pos is not None and pos.status == "OPEN", "the close was rolled back as a whole"
    assert not coord.was_closed_today("KILL")
    assert coord.get_trades_by_date() == []
    assert coord.close_position("KILL", 101.0, "target") is not None


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, "worker died early"
        assert time.time() < deadline, f"worker never wrote {path.name}"
        time.sleep(0.01)


def test_sigkill_at_random_instants_keeps_invariants(db: Path, coord: Coordinator, tmp_path: Path) -> None:
    for round_ in range(4):
        ready = tmp_path / f"ready{round_}"
        proc = run_worker("lifecycle_loop", str(db), f"R{round_}X", 10_000, str(ready))
        wait_for_file(ready, proc)
        time.sleep(0.05 + 0.037 * round_)  # kill at an arbitrary point of its work
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert integrity_check(db) == ["ok"]
    con = sqlite3.connect(db)
    trades = {r[0] for r in con.execute("select symbol from trades")}
    closed = {r[0] for r in con.execute("select symbol from closed_positions_today")}
    active = {r[0]: r[1] for r in con.execute("select symbol, status from active_positions")}
    assert trades, "the workers got some work done"
    assert trades == closed, "a trade row exists exactly when the close was recorded"
    assert not (set(active) & closed), "no symbol is both active and closed"
    assert con.execute("select count(*) from trades").fetchone()[0] == len(trades), "no trade recorded twice"
