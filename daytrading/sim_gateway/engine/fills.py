"""Fills against the replayed market, and IB's commission schedule.

Fill model (deterministic: the same ticks, placements and settings give the same fills in
the same order; events are processed by (trade time, order placement sequence)):

* The trades are DATA's intrabar ticks (:meth:`ReplayMarket.ticks_between`: open, nearer
  extreme, other extreme, close of every recorded bar, each carrying a quarter of the bar's
  volume). An order looks only at trades **after** its placement (market time).
* ``MKT``: fills at the next trade price plus ``slippage`` dollars/share (BUY) or minus it
  (SELL); removes liquidity.
* ``LMT``: while marketable against the previous trade (BUY limit ≥ last trade, SELL limit
  ≤ last trade) it takes liquidity: fills at the trade price ± slippage, capped at the limit,
  when the trade is at or better than the limit. Otherwise it rests and fills at its limit
  when the market **trades through** it (BUY: a trade below the limit; SELL: above); adds
  liquidity.
* ``STP``: triggers when a trade is at or through the stop, then fills at that trade like MKT.
* Size: one trade fills at most its size (shared by all orders on that trade), so large
  orders in thin minutes fill partially over several trades (orderStatus ``Submitted`` with
  ``filled > 0``). The ``partial`` fault caps the next order's fill on the trades up to and
  including the one that reaches the cap; the rest keeps working and fills on later trades
  like any working order.
* Sessions: MKT/STP and orders without ``outsideRth`` trade 09:30–close (XNYS, early closes
  included); LMT with ``outsideRth`` trades 04:00–20:00. Before that the order waits
  ``PreSubmitted``. ``IOC``: only the first trade after placement counts; the rest is
  cancelled. ``DAY`` orders expire at the close (20:00 with ``outsideRth``). No fills while a
  symbol is halted (halted trades do not exist) or during an injected outage.

Commissions — IBKR Pro **Tiered**, US stocks (interactivebrokers.com "Commissions: Stocks,
ETFs and Warrants — North America", tiered schedule as published 2020–21, the era of the
recorded data):

==========================  ==================================================================
IB commission               USD 0.0035/share (≤ 300,000 shares a month; higher tiers 0.0020,
                            0.0015, 0.0010, 0.0005 by monthly volume), minimum USD 0.35 per
                            order, maximum 1.0 % of the trade value
clearing (NSCC, DTC)        USD 0.00020/share
pass-through                NYSE 0.000175 × commission, FINRA 0.00056 × commission
SEC transaction fee         USD 0.0000207 × value of sales (sells only)
FINRA trading activity fee  USD 0.000119 × shares sold, max USD 5.95 per trade (sells only)
exchange fees / rebates     not modelled (venue dependent)
==========================  ==================================================================

The per-order minimum/maximum apply to the order's cumulative fills: each execution is
charged the increase of the order's cumulative commission, so partial fills add up to the
one-order figure. The monthly volume tier is taken from the shares filled in this run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from daytrading.clock import NY

from daytrading.sim_gateway.engine.context import EngineContext, OrderChanged

if TYPE_CHECKING:
    from daytrading.sim_gateway.engine.market import ReplayMarket
    from daytrading.sim_gateway.engine.book import OrderBook, SimOrder

__all__ = ["COMMISSION_TIERS", "FillEngine", "commission_for", "sell_fees"]

#: (monthly shares up to, USD per share) — IBKR Pro Tiered, US stocks.
COMMISSION_TIERS = ((300_000, 0.0035), (3_000_000, 0.0020), (20_000_000, 0.0015), (100_000_000, 0.0010),
                    (float("inf"), 0.0005))
MIN_PER_ORDER = 0.35
MAX_FRACTION = 0.01
CLEARING_PER_SHARE = 0.00020
NYSE_PASS_THROUGH = 0.000175
FINRA_PASS_THROUGH = 0.00056
SEC_FEE_RATE = 0.0000207
FINRA_TAF_PER_SHARE = 0.000119
FINRA_TAF_MAX = 5.95

def tier_rate(month_shares: float) -> float:
    """USD per share for the monthly volume so far."""
    for limit, rate in COMMISSION_TIERS:
        if month_shares <= limit:
            return rate
    return COMMISSION_TIERS[-1][1]


def commission_for(order: SimOrder | Any, shares: float, value: float, *, month_shares: float | None = None) -> float:
    """Cumulative IB tiered commission of an order that has filled ``shares`` for ``value`` dollars.

    Returns dollars: ``clamp(rate × shares, 0.35, 1 % × value)`` + clearing + pass-through
    (module docstring); 0 for no shares.
    """
    if shares <= 0:
        return 0.0
    rate = tier_rate(0.0 if month_shares is None else month_shares)
    base = min(max(rate * shares, MIN_PER_ORDER), MAX_FRACTION * value)
    return base + CLEARING_PER_SHARE * shares + base * (NYSE_PASS_THROUGH + FINRA_PASS_THROUGH)


def sell_fees(shares: float, value: float) -> float:
    """Regulatory fees of one sell execution, dollars: SEC fee + FINRA TAF (capped)."""
    return SEC_FEE_RATE * value + min(FINRA_TAF_PER_SHARE * shares, FINRA_TAF_MAX)


class FillEngine:
    """Matches working orders against replayed trades on the market clock.

    Args:
        ctx: market time, event log and event sink (:class:`~.context.EngineContext`).
        market: the replayed market (trades, session hours).
        book: the order book whose working orders are matched (``working_orders``, ``orders``,
            ``record_fill``, ``finish_cancel``).
        outage: True while an injected outage holds every order (no fills).
        slippage: dollars per share for market(able) fills.
        step: wall seconds to wait before retrying after a failed matching pass.
        speed: market seconds per wall second of the clock (turns a market-time wait into
            a wall sleep; read on every wait).

    Raises:
        ValueError: negative slippage.
    """

    def __init__(self, ctx: EngineContext, market: ReplayMarket, book: OrderBook, outage: Callable[[], bool], *,
                 slippage: float = 0.0, step: float = 0.01, speed: Callable[[], float] = lambda: 1.0) -> None:
        if slippage < 0:
            raise ValueError(f"slippage must be >= 0 dollars, got {slippage!r}")
        self.ctx = ctx
        self.market = market
        self.book = book
        self.outage = outage
        self.slippage = float(slippage)
        self.step_wall = step
        self.speed = speed
        self._wake = asyncio.Event()
        self.month_shares = 0.0
        day = market.session_date
        base = datetime(day.year, day.month, day.day, tzinfo=NY)
        self.rth = (float(market.regular_open), float(market.regular_close))
        self.ext = ((base + timedelta(hours=4)).timestamp(), (base + timedelta(hours=20)).timestamp())

    # ------------------------------------------------------------------ rules

    def can_trade(self, o: SimOrder, ts: float) -> bool:
        """Whether ``o`` may trade at market time ``ts`` (session rules in the module docstring)."""
        lo, hi = self.ext if (o.order_type == "LMT" and o.outside_rth) else self.rth
        return lo <= ts < hi

    def expiry(self, o: SimOrder) -> float | None:
        """Market time a DAY order expires (None for GTC)."""
        if o.tif != "DAY":
            return None
        return self.ext[1] if o.outside_rth else self.rth[1]

    def held_by_parent(self, o: SimOrder) -> bool:
        """A bracket child waits until its parent has filled."""
        if not o.parent_id:
            return False
        parent = self.book.orders.get((o.client_id, o.parent_id))
        return parent is not None and parent.status != "Filled"

    def activate_if_eligible(self, o: SimOrder, at: float | None = None) -> None:
        """``PreSubmitted`` → ``Submitted`` once the order may trade (not held, in session, no outage)."""
        if o.status != "PreSubmitted" or self.held_by_parent(o) or self.outage():
            return
        if not self.can_trade(o, self.ctx.now() if at is None else at):
            return
        o.status = "Submitted"
        self.ctx.emit(OrderChanged(o))

    # ------------------------------------------------------------------ loop

    def wake(self) -> None:
        """An order changed (placed, modified, cancel requested) or an outage ended: re-plan now."""
        self._wake.set()

    def resume_after_outage(self, at: float) -> None:
        """An outage ended at market time ``at`` (POSIX s): working orders see trades from ``at`` on
        (none from during the outage), held ones become ``Submitted`` where they may trade."""
        for o in self.book.working_orders():
            o.checked_until = max(o.checked_until, at)
            self.activate_if_eligible(o)
        self.wake()

    def next_due(self, now: float) -> float | None:
        """Market time (POSIX s) of the next event any working order can react to: its
        symbol's next trade, its activation at the session start, its expiry or its delayed
        cancel; None when no order works (the loop then sleeps until :meth:`wake`)."""
        due: float | None = None
        market = self.market
        for o in self.book.working_orders():
            cands = [o.cancel_due, self.expiry(o)]
            if o.status == "PreSubmitted":
                lo, _hi = self.ext if (o.order_type == "LMT" and o.outside_rth) else self.rth
                cands.append(lo)
            if not self.held_by_parent(o):
                cands.append(market.next_trade_time(o.info.symbol, max(now, o.checked_until)))
            for c in cands:
                if c is not None and c > now and (due is None or c < due):
                    due = c
        return due

    async def run(self) -> None:
        """Match whenever something is due (module docstring), until cancelled.

        Sleeps until the next due event (:meth:`next_due`) or a :meth:`wake`, never on a
        fixed period, so a virtual-time loop jumps straight to the next trade that matters.
        """
        while True:
            now = self.ctx.now()
            try:
                self.step(now)
                due = self.next_due(now)
            except Exception:  # noqa: BLE001 - keep the gateway alive, log loudly
                import logging

                logging.getLogger("daytrading.sim_gateway").exception("fill step failed")
                due = now + self.step_wall
            self._wake.clear()
            timeout = None
            if due is not None:
                timeout = max(0.0, (due - self.ctx.now()) / max(float(self.speed()), 1e-9))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def step(self, now: float) -> None:
        """One matching pass over trades in ``(order.checked_until, now]``, then expiries,
        delayed cancels and activations."""
        book = self.book
        working = book.working_orders()
        if self.outage():
            for o in working:
                o.checked_until = max(o.checked_until, now)
            return
        self._match(self._events(working, now))
        for o in working:
            if o.working and o.tif != "IOC":
                o.checked_until = max(o.checked_until, now)
        for o in book.working_orders():
            exp = self.expiry(o)
            if exp is not None and o.placed_at < exp <= now:
                book.finish_cancel(o, "day order expired", text="day order expired at the close")
            elif o.cancel_due is not None and o.cancel_due <= now:
                book.finish_cancel(o, o.cancel_reason or "client")
            elif o.status == "PreSubmitted":
                self.activate_if_eligible(o, now)

    def _events(self, working: list[SimOrder], now: float) -> list[tuple[float, int, Any, SimOrder]]:
        """(trade time, order sequence, trade, order) for every trade each order may see."""
        events: list[tuple[float, int, Any, SimOrder]] = []
        for o in working:
            if self.held_by_parent(o):
                o.checked_until = max(o.checked_until, now)
                continue
            ticks = self.market.ticks_between(o.info.symbol, o.checked_until, now)
            if o.tif == "IOC" and ticks:
                ticks = ticks[:1]
                o.checked_until = ticks[0].ts
            events.extend((t.ts, o.seq, t, o) for t in ticks)
        events.sort(key=lambda e: (e[0], e[1]))
        return events

    def _match(self, events: list[tuple[float, int, Any, SimOrder]]) -> None:
        """Fill in (time, placement) order; a trade's size is shared by the orders on it."""
        left: dict[tuple[str, float], float] = {}
        for ts, _, tick, o in events:
            if not o.working:
                continue
            key = (o.info.symbol, ts)
            avail = left.setdefault(key, float(tick.size))
            left[key] = avail - self._try_fill(o, tick, avail)
            if o.tif == "IOC" and o.working:
                self.book.finish_cancel(o, "ioc", text="IOC remainder")

    def _try_fill(self, o: SimOrder, tick: Any, avail: float) -> float:
        """Fill ``o`` on one trade if the rules allow; returns shares used."""
        if not self.can_trade(o, tick.ts):
            return 0.0
        if o.status == "PreSubmitted":
            if self.held_by_parent(o):
                return 0.0
            o.status = "Submitted"
            self.ctx.emit(OrderChanged(o))
        qty = min(o.remaining, avail)
        if o.fill_cap is not None:
            qty = min(qty, o.fill_cap - o.filled)
        price, liquidity = self._price(o, tick)
        if price is None or qty <= 1e-9:
            return 0.0
        price = round(max(price, 0.0001), 4)
        if o.fill_cap is not None and o.filled + qty >= o.fill_cap - 1e-9:
            o.fill_cap = None  # the partial fault is spent: the rest fills on later trades
        self.book.record_fill(o, tick.ts, qty, price, liquidity)
        self.month_shares += qty
        return qty

    def _price(self, o: SimOrder, tick: Any) -> tuple[float | None, int]:
        """Fill price of ``o`` on ``tick`` (None = no fill) and IB's lastLiquidity (1 added, 2 removed)."""
        p = tick.price
        buy = o.action == "BUY"
        if o.order_type == "STP" and not o.stop_triggered:
            assert o.aux_price is not None
            if (buy and p >= o.aux_price) or (not buy and p <= o.aux_price):
                o.stop_triggered = True
                self.ctx.log("stop_triggered", order_id=o.order_id, client_id=o.client_id, price=p)
        if o.order_type == "MKT" or (o.order_type == "STP" and o.stop_triggered):
            return (p + self.slippage if buy else p - self.slippage), 2
        if o.order_type != "LMT":
            return None, 2
        lmt = o.lmt_price
        assert lmt is not None
        prev = self.market.last_trade(o.info.symbol, at=tick.ts - 1e-6)
        marketable = prev is not None and ((buy and prev.price <= lmt) or (not buy and prev.price >= lmt))
        if marketable and ((buy and p <= lmt) or (not buy and p >= lmt)):
            return (min(p + self.slippage, lmt) if buy else max(p - self.slippage, lmt)), 2
        if not marketable and ((buy and p < lmt) or (not buy and p > lmt)):
            return lmt, 1
        return None, 1
