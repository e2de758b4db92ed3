"""Decision table of the exit-manager's plan(): no gateway, no database, no wall clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest

from daytrading.bots.exit_plan import (
    Adopt, Cancel, Close, Confirm, Cover, Exit, PlaceDisaster, PlaceProtection, Quote, Raise, ReleaseClaim, Resize, Snapshot,
    TradingState, Watch, WorkingOrder, held, next_wake, order_gate, plan,
)
from daytrading.clock import NY
from daytrading.config import load_settings
from daytrading.coordination import Execution, PositionView

NOW = datetime(2020, 12, 10, 10, 45, tzinfo=NY)
SETTINGS = load_settings(None, {"mode": "sim"}, env_file=None)


def row(symbol="MKSI", status="OPEN", qty=500.0, entry=150.0, claimed=NOW - timedelta(minutes=5), **kw):
    base = dict(symbol=symbol, status=status, quantity=qty, requested_quantity=qty, entry_price=entry,
                entry_timestamp=claimed, agent_name="day-trader",
                profit_target_price=round(entry * 1.018, 2) if entry else None,
                stop_loss_price=round(entry * 0.991, 2) if entry else None, session_date=date(2020, 12, 10),
                claimed_at=claimed, claimed_by="day-trader", claim_pid=1, entry_client_id=20, entry_order_id=1,
                entry_perm_id=1, target_order_id=None, target_perm_id=None, exit_order_id=None, exit_perm_id=None,
                exit_reason=None, exit_started_at=None, exit_attempts=0, last_updated=claimed, meta=None)
    base.update(kw)
    return PositionView(**base)


def ex(i, side, shares, price=150.0, ago=60.0, symbol="MKSI"):
    return Execution(f"e{i}", symbol, side, shares, price, NOW - timedelta(seconds=ago), 1.0)


def target(qty, filled=0.0, price=152.7, oid=7, symbol="MKSI", oca="dt-oca:MKSI:1"):
    return WorkingOrder(oid, symbol, "target", qty, filled, price, oca_group=oca)


def disaster(qty, price=147.3, oid=8, symbol="MKSI"):
    return WorkingOrder(oid, symbol, "disaster", qty, 0.0, price, oca_group="dt-oca:MKSI:1")


def kinds(actions, cls):
    return [a for a in actions if isinstance(a, cls)]


def test_partial_target_with_a_lagging_stream_keeps_the_target_at_what_is_held():
    # the target sold 305 of 500 a moment ago; the position stream still says 500
    snap = Snapshot(positions={"MKSI": (500.0, 150.0)}, orders=[target(500, 305), disaster(195)],
                    bought_floor={"MKSI": 500.0})
    ledger = {"MKSI": [ex(1, "BOT", 500, ago=300), ex(2, "SLD", 305, 152.7, ago=0.5)]}
    actions = plan({"MKSI": row()}, snap, ledger, NOW, SETTINGS)
    assert not kinds(actions, Resize), "the target must not grow to filled + stale stream (805)"
    assert not kinds(actions, Exit) and not kinds(actions, Cover)
    assert held("MKSI", row(), snap, ledger["MKSI"], NOW).quantity == 195


def test_a_lagging_stream_never_enlarges_the_target_even_without_ledger_buys():
    # a hand-opened position: no BUY in the ledger, the floor came from a settled broker position
    snap = Snapshot(positions={"MKSI": (500.0, 150.0)}, orders=[target(500, 305)], bought_floor={"MKSI": 500.0})
    actions = plan({"MKSI": row()}, snap, {"MKSI": [ex(2, "SLD", 305, 152.7, ago=0.2)]}, NOW, SETTINGS)
    assert not kinds(actions, Resize)
    # after the settle time, a broker position that moved on is trusted again
    snap2 = Snapshot(positions={"MKSI": (195.0, 150.0)}, orders=[target(500, 305)], bought_floor={"MKSI": 500.0})
    assert not kinds(plan({"MKSI": row()}, snap2, {"MKSI": [ex(2, "SLD", 305, ago=10)]}, NOW, SETTINGS), Resize)


def test_a_target_shrinks_when_the_broker_holds_less():
    snap = Snapshot(positions={"MKSI": (300.0, 150.0)}, orders=[target(500), disaster(500)])
    actions = plan({"MKSI": row()}, snap, {"MKSI": [ex(1, "BOT", 500, ago=300)]}, NOW, SETTINGS)
    assert {(a.order_id, a.quantity) for a in kinds(actions, Resize)} == {(7, 300.0), (8, 300.0)}


def test_partial_entry_is_protected_for_the_filled_quantity_at_once_and_resized_as_fills_arrive():
    claim = row(symbol="LI", status="PENDING_ENTRY", qty=0.0, entry=None, claimed=NOW - timedelta(seconds=2))
    actions = plan({"LI": claim}, Snapshot(positions={"LI": (50.0, 30.0)}), {}, NOW, SETTINGS)
    [place] = kinds(actions, PlaceProtection)
    assert place.quantity == 50 and place.target_price == round(30 * 1.018, 2)
    assert place.disaster_price == round(30 * (1 - 2 * SETTINGS.stop_loss), 2)
    assert kinds(actions, Watch)[0].stop == round(30 * 0.991, 2)
    assert not kinds(actions, Confirm), "the live day-trader confirms its own entry within its grace"
    # more of the entry filled: the target grows to the new held quantity, never above it
    snap = Snapshot(positions={"LI": (100.0, 30.0)}, orders=[target(50, symbol="LI", price=30.54),
                                                              disaster(50, symbol="LI", price=29.46)])
    actions = plan({"LI": claim}, snap, {}, NOW, SETTINGS)
    assert {(a.order_id, a.quantity) for a in kinds(actions, Resize)} == {(7, 100.0), (8, 100.0)}


def test_a_dead_day_traders_claim_is_confirmed_after_the_grace():
    claim = row(symbol="TSLA", status="PENDING_ENTRY", qty=0.0, entry=None, claimed=NOW - timedelta(minutes=5))
    actions = plan({"TSLA": claim}, Snapshot(positions={"TSLA": (5.0, 400.0)}), {}, NOW, SETTINGS)
    assert kinds(actions, Confirm) == [Confirm("TSLA", 5.0, 400.0)]
    assert kinds(actions, PlaceProtection)


def test_a_claim_that_never_filled_is_released_long_after():
    claim = row(symbol="TSLA", status="PENDING_ENTRY", qty=0.0, entry=None, claimed=NOW - timedelta(hours=2))
    assert kinds(plan({"TSLA": claim}, Snapshot(positions={}), {}, NOW, SETTINGS), ReleaseClaim)
    fresh = row(symbol="TSLA", status="PENDING_ENTRY", qty=0.0, entry=None, claimed=NOW - timedelta(seconds=5))
    assert plan({"TSLA": fresh}, Snapshot(positions={}), {}, NOW, SETTINGS) == []


def test_a_short_the_system_made_is_covered_at_once_and_raised():
    snap = Snapshot(positions={"MKSI": (-111.0, 150.0)}, orders=[target(1111, 611)])
    actions = plan({"MKSI": row()}, snap, {}, NOW, SETTINGS)
    assert kinds(actions, Cover) == [Cover("MKSI", 111.0)]
    assert kinds(actions, Cancel) == [Cancel("MKSI", 7, "short position")]
    assert [a.level for a in kinds(actions, Raise)] == ["CRITICAL"]
    # no row, but traded today (its row was closed): still ours
    assert kinds(plan({}, Snapshot(positions={"MKSI": (-5.0, 1.0)}, traded_today=frozenset({"MKSI"})), {}, NOW,
                      SETTINGS), Cover)
    # a short the system never traded: raised, not touched
    actions = plan({}, Snapshot(positions={"XYZ": (-5.0, 1.0)}), {}, NOW, SETTINGS)
    assert not kinds(actions, Cover) and kinds(actions, Raise)[0].kind == "short_position"


def test_a_hand_opened_position_is_adopted_and_protected_in_the_same_sweep():
    actions = plan({}, Snapshot(positions={"AMD": (7.0, 80.0)}), {}, NOW, SETTINGS)
    assert kinds(actions, Adopt) == [Adopt("AMD", 7.0, 80.0)]
    assert kinds(actions, PlaceProtection)[0].quantity == 7


@pytest.mark.parametrize(("age", "delayed", "allowed", "exits"), [
    (1.0, False, False, True),
    (SETTINGS.max_price_age + 1, False, False, False),  # stale price: not used
    (1.0, True, False, False),                           # delayed data without the flag
    (1.0, True, True, True),                             # delayed data with stop_on_delayed_data
])
def test_stop_decision_uses_only_fresh_trusted_prices(age, delayed, allowed, exits):
    settings = SETTINGS.model_copy(update={"stop_on_delayed_data": allowed})
    snap = Snapshot(positions={"MKSI": (500.0, 150.0)}, orders=[target(500), disaster(500)],
                    quotes={"MKSI": Quote(140.0, NOW - timedelta(seconds=age), delayed)})
    actions = plan({"MKSI": row()}, snap, {"MKSI": [ex(1, "BOT", 500, ago=300)]}, NOW, settings)
    assert bool(kinds(actions, Exit)) is exits
    assert bool(kinds(actions, Watch)) is not exits, "watched until the exit takes over"


def test_after_flatten_every_traded_long_position_is_sold_and_no_target_is_placed():
    late = datetime(2020, 12, 10, 15, 46, tzinfo=NY)
    snap = Snapshot(positions={"MKSI": (500.0, 150.0), "TSLA": (5.0, 400.0), "HAND": (3.0, 10.0)},
                    traded_today=frozenset({"MKSI", "TSLA"}))
    actions = plan({"MKSI": row()}, snap, {}, late, SETTINGS)
    assert {a.symbol for a in kinds(actions, Exit)} == {"MKSI", "TSLA", "HAND"}  # HAND: adopted first
    assert {a.reason for a in kinds(actions, Exit)} == {"eod"}
    assert not kinds(actions, PlaceProtection)
    assert order_gate(frozen=False, after_flatten=True).state is TradingState.REDUCING


def test_frozen_means_no_action_at_all():
    snap = Snapshot(positions={"MKSI": (-5.0, 150.0), "AMD": (7.0, 80.0)}, frozen=True,
                    quotes={"MKSI": Quote(1.0, NOW)})
    assert plan({"MKSI": row()}, snap, {}, NOW, SETTINGS) == []
    assert not order_gate(frozen=True, after_flatten=False).allows("AMD", reducing=True, now=NOW)


def test_back_off_holds_new_orders_until_its_time():
    snap = Snapshot(positions={"AMD": (7.0, 80.0)}, backoff_until={"AMD": NOW + timedelta(seconds=30)})
    assert not kinds(plan({"AMD": row("AMD", qty=7, entry=80.0)}, snap, {}, NOW, SETTINGS), PlaceProtection)
    assert kinds(plan({"AMD": row("AMD", qty=7, entry=80.0)}, snap, {}, NOW + timedelta(seconds=31), SETTINGS),
                 PlaceProtection)


def test_row_without_position_is_closed_and_its_orders_cancelled():
    snap = Snapshot(positions={}, orders=[target(10, symbol="INTC")])
    actions = plan({"INTC": row("INTC", qty=10, entry=45.0)}, snap, {}, NOW, SETTINGS)
    assert kinds(actions, Close) == [Close("INTC", None)]
    assert kinds(actions, Cancel) == [Cancel("INTC", 7, "orphan")]


def test_exiting_row_resumes_and_an_exit_in_flight_is_left_alone():
    exiting = row(status="EXITING", exit_reason="stop")
    snap = Snapshot(positions={"MKSI": (500.0, 150.0)})
    assert kinds(plan({"MKSI": exiting}, snap, {}, NOW, SETTINGS), Exit) == [Exit("MKSI", "stop", resume=True)]
    busy = Snapshot(positions={"MKSI": (500.0, 150.0)}, orders=[target(500)], exiting=frozenset({"MKSI"}))
    assert plan({"MKSI": exiting}, busy, {}, NOW, SETTINGS) == []


def test_disaster_stop_can_be_switched_off():
    settings = SETTINGS.model_copy(update={"disaster_stop_enabled": False})
    [place] = kinds(plan({}, Snapshot(positions={"AMD": (7.0, 80.0)}), {}, NOW, settings), PlaceProtection)
    assert place.disaster_price is None


def test_exit_manager_refuses_delayed_stop_prices_in_paper_unless_allowed():
    from daytrading.bots.exit_manager import check_market_data
    from daytrading.errors import ConfigError

    paper = load_settings(None, {"mode": "paper"}, env_file=None)
    assert paper.ib.market_data_type == 3
    with pytest.raises(ConfigError, match="stop_on_delayed_data = true") as err:
        check_market_data(paper)
    assert "market_data_type = 1" in str(err.value) and "Market Data Subscriptions" in str(err.value)
    check_market_data(load_settings(None, {"mode": "paper", "stop_on_delayed_data": True}, env_file=None))
    check_market_data(load_settings(None, {"mode": "paper", "ib": {"market_data_type": 1}}, env_file=None))
    check_market_data(SETTINGS)  # sim: the replay's prices are current


def test_disaster_stop_must_sit_below_the_bot_stop():
    from daytrading.errors import ConfigError

    with pytest.raises(ConfigError, match="disaster_stop"):
        load_settings(None, {"mode": "sim", "disaster_stop": 0.005}, env_file=None)


def test_next_wake_is_the_safety_sweep_when_nothing_else_is_due():
    quiet = NOW - timedelta(minutes=10)
    wake = next_wake({"MKSI": row(claimed=quiet)}, Snapshot(positions={"MKSI": (500.0, 150.0)}), NOW, SETTINGS)
    assert wake == NOW + timedelta(seconds=SETTINGS.intervals.exit_poll)


def test_next_wake_takes_the_earliest_timer_after_the_sweep():
    snap = Snapshot(positions={}, backoff_until={"LI": NOW + timedelta(seconds=3), "OLD": NOW - timedelta(seconds=1)})
    assert next_wake({}, snap, NOW, SETTINGS) == NOW + timedelta(seconds=3), "a past back-off was this sweep's"
    # a claim: its confirm grace (60 market s at speed 1) and its release (10 x)
    claim = row(symbol="LI", status="PENDING_ENTRY", qty=0.0, entry=None, claimed=NOW - timedelta(seconds=55))
    claim = replace(claim, last_updated=NOW - timedelta(minutes=5))
    assert next_wake({"LI": claim}, Snapshot(positions={}), NOW, SETTINGS) == NOW + timedelta(seconds=5)
    old = replace(claim, claimed_at=NOW - timedelta(seconds=61))
    assert next_wake({"LI": old}, Snapshot(positions={}), NOW, SETTINGS) == NOW + timedelta(seconds=10)
    # a row updated a moment ago: a vanished position is believed 5 market s after the update
    fresh = row(claimed=NOW - timedelta(seconds=2))
    assert next_wake({"MKSI": fresh}, Snapshot(positions={}), NOW, SETTINGS) == NOW + timedelta(seconds=3)


def test_next_wake_includes_the_eod_flatten_time_early_closes_too():
    # the day after Thanksgiving closes at 13:00
    flatten = datetime(2020, 11, 27, 13, 0, tzinfo=NY) - timedelta(minutes=SETTINGS.eod_flatten_minutes)
    assert next_wake({}, Snapshot(positions={}), flatten - timedelta(seconds=4), SETTINGS) == flatten
    assert next_wake({}, Snapshot(positions={}), flatten, SETTINGS) == flatten + timedelta(
        seconds=SETTINGS.intervals.exit_poll)


def test_a_missing_disaster_stop_is_placed_again_in_the_targets_oca_group():
    # the disaster STP was cancelled (or rejected) at IB; the target still works, 200 of 500 sold
    working = target(500, 200)
    snap = Snapshot(positions={"MKSI": (300.0, 150.0)}, orders=[working])
    ledger = {"MKSI": [ex(1, "BOT", 500, ago=300), ex(2, "SLD", 200, 152.7, ago=30)]}
    actions = plan({"MKSI": row()}, snap, ledger, NOW, SETTINGS)
    [again] = kinds(actions, PlaceDisaster)
    assert (again.quantity, again.price, again.oca_group) == (300, round(150 * (1 - 2 * SETTINGS.stop_loss), 2),
                                                              "dt-oca:MKSI:1")
    assert not kinds(actions, PlaceProtection) and not kinds(actions, Cancel)
    # not while the symbol backs off (the stop was rejected), not when switched off, not after flatten
    held_off = Snapshot(positions=snap.positions, orders=[working], backoff_until={"MKSI": NOW + timedelta(seconds=5)})
    assert not kinds(plan({"MKSI": row()}, held_off, ledger, NOW, SETTINGS), PlaceDisaster)
    off = load_settings(None, {"mode": "sim", "disaster_stop_enabled": False}, env_file=None)
    assert not kinds(plan({"MKSI": row()}, snap, ledger, NOW, off), PlaceDisaster)
    late = datetime(2020, 12, 10, 15, 50, tzinfo=NY)
    assert not kinds(plan({"MKSI": row()}, snap, ledger, late, SETTINGS), PlaceDisaster)


def test_a_target_outside_any_oca_group_is_re_placed_with_its_disaster_stop():
    # two lone SELLs for the same shares could both fill: the target goes, the next sweep places both
    snap = Snapshot(positions={"MKSI": (500.0, 150.0)}, orders=[target(500, oca="")])
    actions = plan({"MKSI": row()}, snap, {"MKSI": [ex(1, "BOT", 500, ago=300)]}, NOW, SETTINGS)
    assert [(a.order_id, a.why) for a in kinds(actions, Cancel)] == [(7, "re-placed with its disaster stop")]
    assert not kinds(actions, PlaceDisaster)
    actions = plan({"MKSI": row()}, Snapshot(positions={"MKSI": (500.0, 150.0)}), {"MKSI": [ex(1, "BOT", 500, ago=300)]},
                   NOW, SETTINGS)
    [both] = kinds(actions, PlaceProtection)
    assert both.quantity == 500 and both.disaster_price is not None
