"""Engine unit tests without sockets: a gateway that is built but never started (no port is bound, no
client connects), a hand-driven clock, recorded bars of 2020-11-17, orders given as typed requests.

Each expected value is computed from the recorded data through the documented intrabar path
(open, nearer extreme, other extreme, close of every bar), not copied from a run.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from daytrading.clock import NY, ManualClock
from daytrading.marketdata import load_session
from daytrading.sim_gateway.engine.fills import (
    CLEARING_PER_SHARE,
    FINRA_PASS_THROUGH,
    NYSE_PASS_THROUGH,
    commission_for,
    sell_fees,
)
from daytrading.sim_gateway.engine.market import ReplayMarket
from daytrading.sim_gateway.engine.marketdata import HistoricalPacing
from daytrading.sim_gateway.protocol.requests import PlaceOrder, RequestContract
from daytrading.sim_gateway.server import SimGateway

DAY = date(2020, 11, 17)
CLIENT = 5


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2020, 11, 17, hh, mm, ss, tzinfo=NY)


@pytest.fixture(scope="module")
def bars(minute_data_dir):
    return load_session(minute_data_dir, DAY, ["AAPL", "NIO"])


@pytest.fixture
def gw(bars):
    clock = ManualClock(at(10, 0))
    return SimGateway(ReplayMarket(bars, clock, DAY), port=0, admin_port=0, perm_base=1000)


_ids = iter(range(1, 10_000))


def order(symbol: str, action: str, qty: float, order_type: str = "MKT", *, lmt: float | None = None,
          aux: float | None = None, oca: str = "", oca_type: int = 0) -> PlaceOrder:
    contract = RequestContract(0, symbol, "STK", "SMART", "", "USD", "", "")
    return PlaceOrder(next(_ids), contract, action, qty, order_type, lmt, aux, "DAY", oca, "", "test", True, 0, False,
                      "", oca_type)


def run(gw, minutes: float, step: float = 15.0) -> None:
    """Advance the clock ``minutes`` market minutes, matching every ``step`` market seconds."""
    for _ in range(int(minutes * 60 / step)):
        gw.clock.advance(step)
        gw.fills.step(gw.now())


def test_market_order_fills_at_the_next_trade_of_the_intrabar_path(gw):
    placed = gw.now()
    o = gw.orders.submit(CLIENT, order("AAPL", "BUY", 10))
    run(gw, 1)
    [e] = o.executions
    first = gw.market.ticks_between("AAPL", placed, placed + 60)[0]
    assert (e.price, e.time, e.shares, e.liquidity) == (first.price, first.ts, 10, 2)
    assert o.status == "Filled" and gw.account.position("AAPL") == 10


def test_resting_limit_fills_at_its_limit_when_the_market_trades_through(gw):
    placed = gw.now()
    ticks = gw.market.ticks_between("AAPL", placed, placed + 30 * 60)
    last = gw.market.last_trade("AAPL").price
    low = min(t.price for t in ticks)
    limit = round(low + 0.01, 2)
    assert limit < last, "the data must dip below the market for this test"
    o = gw.orders.submit(CLIENT, order("AAPL", "BUY", 5, "LMT", lmt=limit))
    run(gw, 30)
    [e] = o.executions
    through = next(t for t in ticks if t.price < limit)
    assert (e.price, e.time, e.liquidity) == (limit, through.ts, 1)


def test_stop_triggers_at_or_through_its_price_and_fills_like_a_market_order(gw):
    gw.orders.submit(CLIENT, order("NIO", "BUY", 100))
    run(gw, 1)
    start = gw.now()
    ticks = gw.market.ticks_between("NIO", start, start + 60 * 60)
    stop = round(sorted(t.price for t in ticks)[len(ticks) // 4], 2)  # a level the next hour trades through
    o = gw.orders.submit(CLIENT, order("NIO", "SELL", 100, "STP", aux=stop))
    run(gw, 60)
    [e] = o.executions
    trigger = next(t for t in ticks if t.price <= stop)
    assert (e.price, e.time) == (trigger.price, trigger.ts)


def test_oca_fill_cancels_the_other_members(gw):
    gw.orders.submit(CLIENT, order("NIO", "BUY", 50))
    run(gw, 1)
    last = gw.market.last_trade("NIO").price
    target = gw.orders.submit(CLIENT, order("NIO", "SELL", 50, "LMT", lmt=round(last * 0.99, 2), oca="x", oca_type=1))
    stop = gw.orders.submit(CLIENT, order("NIO", "SELL", 50, "STP", aux=round(last * 0.5, 2), oca="x", oca_type=1))
    run(gw, 2)
    assert target.status == "Filled" and stop.status == "Cancelled" and not stop.executions
    assert gw.account.position("NIO") == 0


def test_an_oca_group_counts_once_against_a_position_that_cannot_be_sold_short(gw):
    """A bracket exit (target LMT + protective STP for the same shares, one OCA group) is accepted
    on a non-shortable name, as at IB; a SELL beyond the group's largest order is still refused (201)."""
    gw.market.set_shortable("NIO", False)
    gw.orders.submit(CLIENT, order("NIO", "BUY", 50))
    run(gw, 1)
    last = gw.market.last_trade("NIO").price
    target = gw.orders.submit(CLIENT, order("NIO", "SELL", 50, "LMT", lmt=round(last * 1.2, 2), oca="b", oca_type=3))
    stop = gw.orders.submit(CLIENT, order("NIO", "SELL", 50, "STP", aux=round(last * 0.5, 2), oca="b", oca_type=3))
    assert target.working and stop.working
    assert gw.orders.committed_sells("NIO") == 50
    extra = gw.orders.submit(CLIENT, order("NIO", "SELL", 1, "LMT", lmt=round(last * 1.3, 2)))
    other_group = gw.orders.submit(CLIENT, order("NIO", "SELL", 50, "STP", aux=round(last * 0.4, 2), oca="c"))
    for refused in (extra, other_group):
        assert refused is None or refused.status == "Inactive"
    assert len(gw.orders.rejected_short_sells) == 2 and gw.account.position("NIO") == 50


def test_partial_fault_caps_one_fill_and_the_rest_fills_on_later_trades(gw):
    gw.faults.partial_pending.append({"fraction": 0.5, "quantity": 30})
    o = gw.orders.submit(CLIENT, order("AAPL", "BUY", 100))
    run(gw, 5)
    shares = [e.shares for e in o.executions]
    assert shares[0] == 30 and sum(shares) == 100 and o.status == "Filled"
    assert o.executions[1].time > o.executions[0].time


def test_commission_schedule_and_sell_fees(gw):
    rate_part = 0.35 * (NYSE_PASS_THROUGH + FINRA_PASS_THROUGH)
    assert commission_for(None, 100, 5_000.0) == pytest.approx(0.35 + 100 * CLEARING_PER_SHARE + rate_part)
    assert commission_for(None, 1, 1.0) == pytest.approx(0.01 + CLEARING_PER_SHARE + 0.01 * (
        NYSE_PASS_THROUGH + FINRA_PASS_THROUGH))  # 1 % of value caps the minimum
    big = 0.0035 * 1000
    assert commission_for(None, 1000, 50_000.0) == pytest.approx(big + 1000 * CLEARING_PER_SHARE + big * (
        NYSE_PASS_THROUGH + FINRA_PASS_THROUGH))
    tier2 = commission_for(None, 1000, 50_000.0, month_shares=400_000)
    assert tier2 < commission_for(None, 1000, 50_000.0)
    gw.orders.submit(CLIENT, order("NIO", "BUY", 100))
    run(gw, 1)
    sell = gw.orders.submit(CLIENT, order("NIO", "SELL", 100))
    run(gw, 1)
    [e] = sell.executions
    assert e.commission == pytest.approx(commission_for(None, 100, 100 * e.price) + sell_fees(100, 100 * e.price))
    assert sell_fees(100, 5_000.0) == pytest.approx(0.0000207 * 5_000 + 0.000119 * 100)
    assert sell_fees(100_000, 10.0) == pytest.approx(0.0000207 * 10 + 5.95)  # FINRA TAF cap


def test_historical_pacing_rules():
    t = [0.0]
    pacing = HistoricalPacing(now=lambda: t[0])
    assert pacing.check(("AAPL", "1 min", 1), ("AAPL",)) is None
    assert "identical" in pacing.check(("AAPL", "1 min", 1), ("AAPL",))
    for i in range(4):
        assert pacing.check(("AAPL", i), ("AAPL",)) is None
    assert "six or more" in pacing.check(("AAPL", 9), ("AAPL",))
    t[0] = 3.0
    assert pacing.check(("AAPL", "bid-ask"), ("AAPL",), weight=2) is None  # BID_ASK counts twice
    for i in range(60 - 7):
        t[0] += 2.5
        assert pacing.check((f"S{i}",), (f"S{i}",)) is None
    assert "more than 60" in pacing.check(("ONE MORE",), ("ONE MORE",))
    t[0] += 600
    assert pacing.check(("ONE MORE",), ("ONE MORE",)) is None


class _Ctx:
    """The engine's whole context (now, log, emit) as a plain object: no gateway, no connection."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock, self.logged, self.emitted = clock, [], []

    def now(self) -> float:
        return self.clock.timestamp()

    def log(self, event: str, **fields) -> None:
        self.logged.append(event)

    def emit(self, event) -> None:
        self.emitted.append(event)


def test_fault_state_returns_what_the_process_must_do_and_ends_timed_faults_on_the_market_clock(bars):
    from daytrading.sim_gateway.engine import faults as f

    clock = ManualClock(at(10, 0))
    state = f.FaultState(_Ctx(clock), ReplayMarket(bars, clock, DAY))
    result, effects = state.apply("outage", seconds=60, data_lost=True, drop=True)
    assert effects == [f.Broadcast(1100, f.NOTICES[1100]), f.DropClients()] and state.outage_active()
    assert result["until"] == "2020-11-17T10:01:00-05:00" and state.next_due() == at(10, 1).timestamp()
    clock.advance(59)
    assert state.expire(clock.timestamp()) == [] and state.outage_active()
    clock.advance(1)
    assert state.expire(clock.timestamp()) == [f.MarketDataLost(), f.Broadcast(1101, f.NOTICES[1101]),
                                               f.OutageEnded(at(10, 1).timestamp())]
    assert not state.outage_active() and state.next_due() is None
    assert state.apply("refuse", seconds=30) == ({"until": "2020-11-17T10:01:30-05:00", "dropped": 0},
                                                 [f.StopListening()])
    clock.advance(30)
    assert state.expire(clock.timestamp()) == [f.ResumeListening()]
    assert state.apply("notice", code=1102)[1] == [f.Broadcast(1102, f.NOTICES[1102])]
    state.apply("reject", count=1, code=201)
    assert state.take_reject()[0] == 201 and state.take_reject() is None
    with pytest.raises(ValueError, match="seconds must be > 0"):
        state.apply("outage", seconds=0)
    with pytest.raises(ValueError, match="unknown fault 'melt'"):
        state.apply("melt")


def test_scheduled_faults_fire_once_in_scenario_order(bars):
    from daytrading.sim_gateway.engine.faults import FaultState

    clock = ManualClock(at(10, 0))
    state = FaultState(_Ctx(clock), ReplayMarket(bars, clock, DAY))
    state.add_scenario({"fault": [{"at": "10:05", "action": "drop"}, {"at": "10:02", "action": "notice", "code": 1102},
                                  {"at": "10:02", "action": "halt", "symbol": "NIO"}],
                        "latency": {"positions_ms": 700}})
    assert state.latency.positions_ms == 700 and state.next_due() == at(10, 2).timestamp()
    clock.advance(150)
    assert [x.action for x in state.take_due(clock.timestamp())] == ["notice", "halt"]
    assert state.take_due(clock.timestamp()) == []
    assert state.next_due() == at(10, 5).timestamp()


def test_alarm_wakes_on_set_or_after_its_timeout_and_keeps_an_early_set() -> None:
    import asyncio

    from daytrading.sim_gateway.engine.alarm import Alarm

    async def main() -> None:
        loop = asyncio.get_running_loop()
        alarm = Alarm()
        t = loop.time()
        assert await alarm.sleep(0.01) is False and loop.time() - t >= 0.01  # timed out
        alarm.set()
        assert alarm.is_set() and await alarm.sleep(None) is True  # an early set is kept
        alarm.clear()
        loop.call_later(0.01, alarm.set)
        assert await alarm.sleep(60) is True  # woken long before its timeout
        alarm.clear()
        sleeper = asyncio.ensure_future(alarm.sleep(None))
        await asyncio.sleep(0)
        sleeper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeper
        alarm.set()  # nobody sleeps any more: harmless
        assert alarm.is_set()

    asyncio.run(main())
