"""The execution ledger: pure lot figures, idempotent recording, trade rows from the ledger."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from daytrading.clock import NY, ManualClock
from daytrading.coordination import Coordinator, Execution
from daytrading.coordination.ledger import held_estimate, lot, summarize
from daytrading.db import make_engine, upgrade

T0 = datetime(2020, 11, 17, 10, 0, tzinfo=NY)


def ex(exec_id: str, side: str, shares: float, price: float, minutes: float = 1, fee: float | None = 0.35,
       symbol: str = "AAPL") -> Execution:
    return Execution(exec_id, symbol, side, shares, price, T0 + timedelta(minutes=minutes), fee)


@pytest.fixture()
def coord(tmp_path: Path) -> Coordinator:
    path = tmp_path / "trading_history.db"
    upgrade(path)
    return Coordinator(make_engine(path), "exit-manager", ManualClock(T0))


def test_summary_of_a_split_exit_counts_both_sells_and_every_commission() -> None:
    fills = [ex("b1", "BOT", 10, 100.0), ex("s1", "SLD", 4, 101.8, 5, 0.30), ex("s2", "SLD", 6, 99.1, 9, 0.40)]
    s = summarize(fills)
    assert (s.bought, s.sold, s.net) == (10, 10, 0)
    assert s.avg_entry == 100.0 and s.avg_exit == pytest.approx((4 * 101.8 + 6 * 99.1) / 10)
    assert s.commission == pytest.approx(1.05)
    assert s.pnl == pytest.approx(4 * 101.8 + 6 * 99.1 - 1000.0 - 1.05)


def test_summary_without_a_buy_uses_the_given_entry_price_and_pending_commissions_count_zero() -> None:
    s = summarize([ex("s1", "SLD", 7, 50.0, fee=None)], entry_price=49.0)
    assert s.avg_entry == 49.0 and s.commission == 0 and s.pnl == pytest.approx(7.0)
    assert summarize([ex("s1", "SLD", 7, 50.0)]).pnl is None


def test_lot_starts_at_the_claim_and_keeps_only_the_symbol() -> None:
    fills = [ex("old", "SLD", 5, 90.0, -60), ex("b", "BOT", 5, 91.0, 2), ex("m", "BOT", 3, 10.0, 3, symbol="MSFT")]
    assert [e.exec_id for e in lot(fills, "AAPL", T0)] == ["b"]
    assert [e.exec_id for e in lot(fills, "AAPL", None)] == ["old", "b"]


@pytest.mark.parametrize(("bought", "sold", "broker", "held"), [
    (500, 305, 500, 195),   # stream still shows the shares the target just sold
    (500, 0, 300, 300),     # the broker says less (a hand sale): the broker wins
    (500, 611, 500, 0),     # never negative
    (10, 0, None, 10),
])
def test_held_estimate_is_the_smaller_upper_bound(bought, sold, broker, held) -> None:
    assert held_estimate(bought, sold, broker) == held


def test_bad_execution_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="side"):
        Execution("x", "AAPL", "BUY", 1, 1.0, T0)
    with pytest.raises(ValueError, match="shares"):
        Execution("x", "AAPL", "BOT", 0, 1.0, T0)


def test_recording_is_idempotent_and_a_late_commission_report_fills_in(coord: Coordinator) -> None:
    coord.record_executions([ex("b1", "BOT", 10, 100.0, fee=None)])
    coord.record_executions([ex("b1", "BOT", 10, 100.0, fee=None), ex("s1", "SLD", 4, 101.8, 5)])
    coord.record_executions([ex("b1", "BOT", 10, 100.0, fee=0.35)])
    coord.record_executions([ex("b1", "BOT", 10, 100.0, fee=None)])  # a later sight without the report
    got = coord.get_executions("aapl")
    assert [(e.exec_id, e.commission) for e in got] == [("b1", 0.35), ("s1", 0.35)]


def test_trade_row_of_target_4_then_stop_6_says_10_shares_and_the_full_commission(coord: Coordinator) -> None:
    assert coord.claim_entry("AAPL", 10).ok
    coord.record_executions([ex("b1", "BOT", 10, 100.0, fee=0.38)])
    coord.confirm_entry("AAPL", 10, 100.0)
    coord.record_executions([ex("s1", "SLD", 4, 101.8, 5, fee=0.30)])
    assert coord.take_exit_lock("AAPL", "stop")
    # the stop's own fill arrives with the close (journalled late)
    trade = coord.close_position("AAPL", 99.1, "stop", quantity=6, commission=0.40,
                                 executions=[ex("s2", "SLD", 6, 99.1, 9, fee=0.40)])
    assert trade is not None
    assert trade.quantity == 10 and trade.commission == pytest.approx(1.08)
    assert trade.exit_price == pytest.approx((4 * 101.8 + 6 * 99.1) / 10)
    assert trade.pnl == pytest.approx(round(4 * 101.8 + 6 * 99.1 - 1000.0 - 1.08, 2))
    assert coord.realized_pnl() == pytest.approx(trade.pnl)
    assert coord.close_position("AAPL", 99.1, "stop") is None, "closed once"
