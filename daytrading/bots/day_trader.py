"""The day-trader: the restartable bot (IB clientId 2) that finds and makes entries.

Loop (one :meth:`DayTrader.process_once` per ``intervals.cycle`` market seconds):

1. refresh candidates from the scanners every ``intervals.scanner_refresh`` seconds
   (watchlist file, IB scanner, Polygon), subscribe bars for new symbols: a paced
   historical backfill of 30-second bars (IB's small-bar pacing rules) and IB's
   5-second real-time bars aggregated to 30-second bars;
2. every completed 30-second bar updates session VWAP, RSI(14) and ATR(14) in O(1);
3. each cycle, every symbol whose latest bar meets an entry rule (standard:
   close > VWAP, RSI < 60, ATR ≥ 0.3 % of price; gap-and-go: pre-market gap ≥ 5 %
   over the previous close, RSI < 60) goes through the gate chain
   (:mod:`daytrading.bots.gates`); every rejection is recorded;
4. an entry claims the symbol in the database first, then sends a marketable limit
   BUY (``last × (1 + entry.limit_offset)``, DAY, ``orderRef dt-entry:<SYMBOL>``); on
   fill it confirms the entry (the exit-manager then protects it); on reject or
   timeout it cancels and releases the claim; a partial fill confirms what filled.

The day-trader never sends a SELL. After a restart, claims left by a killed
predecessor are resolved with the broker (filled → confirmed, dead → released) and
never re-sent: the entry order is found by its ``orderRef`` among this client's open
and completed orders and executions.

The event loop never runs SQLite code. Reads for the gates and the claim run in a worker
thread and fail fast (:data:`DB_FAST` wall seconds): when the database cannot answer, the
entry is skipped (safe) rather than the loop blocked (heartbeat, IB socket). No BUY goes out
without a claim that landed. Everything after the claim (order rows, the entry's order id,
confirmation or release, executions, gate decisions) goes through the
:class:`~daytrading.bots.journal.Journal`, in order, retried until it lands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ib_async import IB, Contract, Fill, LimitOrder, RealTimeBarList, Trade

from daytrading.bots.base import Bot, wait_event
from daytrading.bots.gates import GateChain, GateContext, GateResult
from daytrading.bots.journal import Journal
from daytrading.broker.connection import connect, qualify_stocks
from daytrading.broker.orders import (
    ENTRY_REF,
    average_fill_price,
    execution_of,
    filled_quantity,
    fresh_positions,
    is_done,
    order_ref,
    parse_order_ref,
    record_trade,
    rejection_reason,
    wait_done,
)
from daytrading.clock import NY, Clock, calendar
from daytrading.config import Settings
from daytrading.coordination import ClaimResult, Coordinator
from daytrading.db.models import PositionStatus
from daytrading.errors import DaytradingError, TemporaryBrokerError
from daytrading.signals import bars as sigbars
from daytrading.signals import indicators as sigind
from daytrading.signals import rules as sigrules
from daytrading.signals.pacing import HistoricalPacer
log = logging.getLogger("daytrading.day_trader")
gates_log = logging.getLogger("daytrading.gates")

BOT = "day-trader"
#: wall seconds a database read or claim may take before the entry is skipped (and a journal
#: write before it is retried)
DB_FAST = 2.0


@dataclass
class SymbolState:
    """Per-symbol market state: contract, bar aggregator, indicators, gap inputs."""

    symbol: str
    contract: Contract
    aggregator: Any
    indicators: Any
    previous_close: float | None = None
    gap: float | None = None
    last_price: float | None = None
    snapshot: Any = None
    rt_bars: RealTimeBarList | None = None
    backfilled: bool = False
    last_bar_time: datetime | None = None
    evaluated_bar: datetime | None = None
    pending_live: list[Any] = field(default_factory=list)  # bars completed during the backfill
    gap_day: Any = None


@dataclass
class CycleReport:
    """What one cycle did (for tests and logs)."""

    evaluated: int = 0
    fired: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    entered: list[str] = field(default_factory=list)


class DayTrader(Bot):
    """The day-trader bot. ``run()`` is the loop; ``process_once()`` is one cycle.

    Args:
        settings: validated settings (entry rules, allocation, gates, intervals).
        coord: coordination API (bot name ``day-trader``).
        clock: market time.
        ib: ``IB`` instance (tests may pass one).
        hub: a :class:`daytrading.scanners.hub.ScannerHub` (default: built from settings).
        reviewer: optional LLM reviewer with ``async review(context) -> result``.
    """

    BOT = BOT

    def __init__(
        self,
        settings: Settings,
        coord: Coordinator,
        clock: Clock,
        *,
        ib: IB | None = None,
        hub: Any = None,
        reviewer: Any = None,
    ) -> None:
        super().__init__(settings, coord, clock, ib)
        self.client_id = settings.ib.day_trader_client_id
        self.hub = hub
        self.reviewer = reviewer
        self.rules = sigrules.EntryRuleConfig.from_settings(settings)
        self.gates = GateChain(settings)
        self.pacer = HistoricalPacer(monotonic=getattr(clock, "monotonic", time.monotonic))
        self.symbols: dict[str, SymbolState] = {}
        self._entry_tasks: dict[str, asyncio.Task[None]] = {}
        self._backfills: set[asyncio.Task[None]] = set()
        self.ib.disconnectedEvent += self._on_disconnected
        # fail fast and retry: a locked database never ties up the worker threads
        self.journal = Journal(lambda fn, *a, **kw: self.db(fn, *a, timeout=DB_FAST, **kw))
        self.ib.execDetailsEvent += self._on_exec
        self.ib.commissionReportEvent += lambda trade, fill, report: self._journal_fills([fill])

    def _on_exec(self, trade: Trade, fill: Fill) -> None:
        self._journal_order(trade)
        self._journal_fills([fill])

    def _journal_order(self, trade: Trade) -> None:
        """The ``orders`` row of an entry order, written by the journal (its state when written)."""
        self.journal.put("order", record_trade, self.coord, trade, "entry", strict=True)

    # ------------------------------------------------------------------ helpers

    def _on_disconnected(self) -> None:
        if self.connected:
            log.warning("broker connection lost")
        self.connected = False

    # ------------------------------------------------------------------ run loop

    async def connect_cycle(self) -> None:
        """Connect, record the day's own executions in the ledger, resolve leftover claims."""
        if await self._connect():
            self._journal_fills(self.ib.fills())
            await self.resolve_claims()

    async def idle(self, spent_market_s: float) -> None:
        """Wait out the rest of ``intervals.cycle`` market seconds (or until stopped)."""
        await wait_event(self._stopping, self._wall(max(0.0, self.settings.intervals.cycle - spent_market_s), floor=0.0))

    def on_stopped(self) -> None:
        """Cancel entry and backfill tasks; close the journal."""
        for t in [*self._entry_tasks.values(), *self._backfills]:
            t.cancel()
        self.journal.close()

    def _journal_fills(self, fills: list[Fill]) -> None:
        """Record this client's fills in the execution ledger (idempotent by execId)."""
        execs = [execution_of(f) for f in fills if f.contract.secType == "STK" and f.execution.execId]
        if execs:
            self.journal.put("executions", self.coord.record_executions, execs)

    def heartbeat_detail(self) -> dict[str, Any]:
        """Connection and the number of symbols tracked."""
        return {"connected": self.connected, "symbols": len(self.symbols)}

    async def _connect(self) -> bool:
        self.state = "connecting"
        self.ib.wrapper.reset()
        for s in self.symbols.values():
            s.rt_bars = None
        try:
            await connect(self.settings, self.client_id, ib=self.ib)
        except TemporaryBrokerError as exc:
            log.warning("connect attempt failed", extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._wall(self.settings.intervals.reconnect))
            return False
        self.connected = True
        self.state = "running"
        if self.hub is None:
            from daytrading.scanners.hub import ScannerHub

            self.hub = ScannerHub(self.settings, self.ib, self.clock)
        else:
            self.hub.ib = self.ib
        if self.reviewer is None and self.settings.llm.enabled:
            from daytrading.llm.review import build_reviewer

            self.reviewer = build_reviewer(self.settings.llm)
        for s in self.symbols.values():
            await self._subscribe_bars(s)
        return True

    # ------------------------------------------------------------------ restart safety

    async def resolve_claims(self) -> list[str]:
        """Resolve ``PENDING_ENTRY`` claims left by an earlier (killed) day-trader.

        For each claim: this client's entry order for the symbol (found by orderRef
        among open and completed orders and executions from the startup sync) is
        cancelled if still working; what filled is confirmed; nothing filled → the
        claim is released. Never re-sends an order. Returns the symbols resolved.
        """
        resolved: list[str] = []
        try:
            pending = await self.db(self.coord.get_active_positions, (PositionStatus.PENDING_ENTRY,), timeout=DB_FAST)
        except DaytradingError as exc:  # left to the exit-manager's claim grace, and to the next connect
            log.warning("claims not read; resolved at the next connect", extra={"error": str(exc)})
            return resolved
        claims = [r for r in pending if r.claimed_by in (None, BOT) and r.symbol not in self._entry_tasks]
        if not claims:
            return resolved
        positions = await fresh_positions(self.ib, timeout=self._order_wait(10))
        for row in claims:
            symbol = row.symbol
            trades = [t for t in self.ib.trades() if (parse_order_ref(t.order.orderRef) or ("", "", None))[:2]
                      == (ENTRY_REF, symbol)]
            for t in trades:
                if not is_done(t):
                    log.info("cancelling entry order left by a previous run",
                             extra={"symbol": symbol, "order_id": t.order.orderId})
                    self.ib.cancelOrder(t.order)
                    await wait_done(t, self._order_wait(10))
            qty = sum(filled_quantity(t) for t in trades)
            prices = [(filled_quantity(t), average_fill_price(t)) for t in trades if filled_quantity(t) > 0]
            held, avg_cost = positions.get(symbol, (0.0, 0.0))
            if qty <= 0 and held > 0:
                qty, prices = held, [(held, avg_cost)]
            if qty > 0:
                price = sum(q * (p or avg_cost) for q, p in prices) / sum(q for q, _ in prices)
                self.journal.put("confirm", self.coord.confirm_entry, symbol, qty, price)
                log.warning("claim from a previous run confirmed from broker fills",
                            extra={"symbol": symbol, "qty": qty, "price": price})
            else:
                self.journal.put("release", self.coord.release_claim, symbol, "previous run's entry never filled")
                log.warning("claim from a previous run released (no fill)", extra={"symbol": symbol})
            resolved.append(symbol)
        return resolved

    # ------------------------------------------------------------------ one cycle

    async def process_once(self) -> CycleReport:
        """One cycle: scanners (when due), then rules, gates and entries."""
        now = self.clock.now()
        # the heartbeat says when the global freeze makes it stand down (one stat of the freeze file)
        self.state = "frozen" if self.coord.is_frozen_file() else "running"
        self._poll_bars(now)
        if self.hub is not None and self.hub.due(now):
            candidates = await self.hub.refresh()
            await self._track(candidates)
        report = CycleReport()
        fired: list[tuple[str, Any]] = []
        decisions: list[dict[str, Any]] = []
        for symbol, st in self.symbols.items():
            snap = st.snapshot
            if snap is None or st.evaluated_bar == st.last_bar_time:
                continue
            st.evaluated_bar = st.last_bar_time
            report.evaluated += 1
            decision = sigrules.evaluate(snap, st.gap, self.rules)
            if decision.fired:
                fired.append((symbol, decision))
                report.fired.append(symbol)
            else:
                decisions.append(self._decision(symbol, "rule", False, decision.reason, decision.compared, now))
        if fired:
            await self._gate_and_enter(fired, now, report, decisions)
        if decisions:
            self._record_decisions(decisions)
        return report

    def _gate_inputs(self) -> tuple[bool, frozenset[str], frozenset[str], list[dict[str, Any]], float]:
        """(Worker thread) freeze, active symbols, symbols closed today, order rows, realised P&L $."""
        frozen = self.coord.is_frozen()
        active = frozenset(r.symbol for r in self.coord.get_active_positions())
        closed = frozenset(r["symbol"] for r in self.coord.get_closed_today())
        return frozen, active, closed, self.coord.get_orders(), self.coord.realized_pnl()

    async def _gate_and_enter(self, fired: list[tuple[str, Any]], now: datetime, report: CycleReport,
                              decisions: list[dict[str, Any]]) -> None:
        try:
            frozen, active, closed, orders, realized = await self.db(self._gate_inputs, timeout=DB_FAST)
        except DaytradingError as exc:  # no entry on inputs the gates cannot see
            log.warning("database unreadable; no entries this cycle", extra={"error": str(exc)})
            for symbol, _rule in fired:
                report.rejected[symbol] = f"database: {exc}"
                decisions.append(self._decision(symbol, "database", False, f"database unreadable: {exc}", {}, now))
            return
        last_attempt: dict[str, datetime] = {}
        for o in orders:
            if o["side"] == "BUY" and o.get("purpose") == "entry":
                t = o["created_at"]
                if o["symbol"] not in last_attempt or t > last_attempt[o["symbol"]]:
                    last_attempt[o["symbol"]] = t
        nlv, available, unrealized = self._account()
        entries = 0
        for symbol, rule in fired:
            st = self.symbols[symbol]
            price = st.last_price or st.snapshot.close
            ctx = GateContext(
                symbol=symbol, now=now, price=price, frozen=frozen, active_symbols=active,
                closed_today=closed, last_entry_attempt=last_attempt.get(symbol),
                active_count=len(active), entries_this_cycle=entries, realized_pnl=realized,
                unrealized_pnl=unrealized, net_liquidation=nlv, available_funds=available,
            )
            results = self.gates.run(ctx)
            last = results[-1]
            if last.passed and self.reviewer is not None:
                last = await self._llm_gate(ctx, st, rule)
            if not last.passed:
                report.rejected[symbol] = f"{last.gate}: {last.reason}"
                decisions.append(self._decision(symbol, last.gate, False, last.reason, last.values, now))
                continue
            decisions.append(self._decision(symbol, "entry", True, f"{rule.rule}: {rule.reason}",
                                            {**rule.compared, "qty": ctx.quantity, "price": price}, now))
            claim = await self._claim(symbol, ctx.quantity, {"rule": rule.rule, "compared": rule.compared})
            if not claim.ok:
                decisions.append(self._decision(symbol, "claim", False, claim.reason or "claim refused", {}, now))
                report.rejected[symbol] = f"claim: {claim.reason}"
                continue
            entries += 1
            active = active | {symbol}
            report.entered.append(symbol)
            self._entry_tasks[symbol] = asyncio.ensure_future(self._enter(st, ctx.quantity, price, rule.rule))
            self._entry_tasks[symbol].add_done_callback(lambda _t, s=symbol: self._entry_tasks.pop(s, None))

    async def _claim(self, symbol: str, quantity: int, meta: dict[str, Any]) -> ClaimResult:
        """Claim ``symbol`` within :data:`DB_FAST` wall seconds, or give up on the entry.

        A database that cannot answer in time (locked, full, damaged) gives a refused claim
        (``reason`` says why): skipping an entry is safe, a blocked loop is not. A claim that
        lands after this gave up is released again through the journal.
        """
        call = asyncio.ensure_future(self.db(self.coord.claim_entry, symbol, quantity, meta=meta, timeout=DB_FAST))
        try:
            return await asyncio.wait_for(asyncio.shield(call), DB_FAST + 1.0)
        except DaytradingError as exc:
            return ClaimResult(False, symbol, f"database: {exc}")
        except TimeoutError:
            def late(t: asyncio.Future[ClaimResult]) -> None:
                if not t.cancelled() and t.exception() is None and t.result().ok:
                    self.journal.put("release", self.coord.release_claim, symbol, "claim landed after the entry was skipped")
            call.add_done_callback(late)
            return ClaimResult(False, symbol, f"database: no answer within {DB_FAST:g} s")

    async def _llm_gate(self, ctx: GateContext, st: SymbolState, rule: Any) -> GateResult:
        context = {"symbol": ctx.symbol, "price": ctx.price, "rule": rule.rule, "compared": rule.compared,
                   "gap": st.gap, "previous_close": st.previous_close, "time": ctx.now.isoformat()}
        try:
            result = await self.reviewer.review(context)
        except Exception as exc:  # noqa: BLE001 - the reviewer must not crash the bot
            passed = self.settings.llm.on_failure == "pass"
            return GateResult("llm", passed, f"review failed: {exc}", {})
        return GateResult("llm", bool(result.approved), f"{result.source}: {result.reason}",
                          {"confidence": result.confidence, "source": result.source})

    def _account(self) -> tuple[float, float, float]:
        """(net liquidation $, available funds $, unrealised P&L $) from the account updates."""
        values: dict[str, float] = {}
        for v in self.ib.accountValues():
            if v.currency in ("USD", "BASE", "") and v.tag in ("NetLiquidation", "AvailableFunds", "BuyingPower",
                                                                "UnrealizedPnL"):
                try:
                    values.setdefault(v.tag, float(v.value))
                except ValueError:
                    continue
        nlv = values.get("NetLiquidation", 0.0)
        available = values.get("AvailableFunds", values.get("BuyingPower", 0.0))
        unrealized = sum(p.unrealizedPNL for p in self.ib.portfolio() if p.unrealizedPNL and not math.isnan(p.unrealizedPNL))
        return nlv, available, unrealized

    # ------------------------------------------------------------------ entry

    async def _enter(self, st: SymbolState, quantity: int, price: float, rule: str) -> None:
        """Send the marketable limit BUY for a claimed symbol and resolve the claim."""
        symbol = st.symbol
        _crash_point("after_claim")
        limit = round(price * (1 + self.settings.entry.limit_offset), 2)
        order = LimitOrder("BUY", quantity, limit, tif="DAY", orderRef=order_ref(ENTRY_REF, symbol))
        order.account = self.settings.ib.account
        try:
            trade = self.ib.placeOrder(st.contract, order)
        except Exception:
            self.journal.put("release", self.coord.release_claim, symbol, "order could not be sent")
            raise
        self._journal_order(trade)
        self.journal.put("entry order", self.coord.record_entry_order, symbol, self.client_id, trade.order.orderId,
                         trade.order.permId or None)
        log.info("entry sent", extra={"symbol": symbol, "qty": quantity, "limit": limit, "rule": rule,
                                      "order_id": trade.order.orderId})
        if os.environ.get("DAYTRADING_TEST_CRASH_AT") == "after_order":
            await asyncio.sleep(0.2)  # let the order reach the gateway before the crash
        _crash_point("after_order")
        await wait_done(trade, self._order_wait(self.settings.entry.order_timeout))
        if not is_done(trade):
            self.ib.cancelOrder(trade.order)
            await wait_done(trade, self._order_wait(10))
        self._journal_order(trade)
        qty = filled_quantity(trade)
        if qty > 0:
            avg = average_fill_price(trade) or limit
            self.journal.put("confirm", self.coord.confirm_entry, symbol, qty, avg, perm_id=trade.order.permId or None)
            log.info("entry filled; position OPEN", extra={"symbol": symbol, "qty": qty, "price": avg,
                                                          "partial": qty < quantity})
        else:
            self.journal.put("release", self.coord.release_claim, symbol,
                             f"entry not filled: {rejection_reason(trade) or trade.orderStatus.status}")
            log.info("entry not filled; claim released",
                     extra={"symbol": symbol, "status": trade.orderStatus.status, "why": rejection_reason(trade)})

    # ------------------------------------------------------------------ market data

    async def _track(self, candidates: list[Any]) -> None:
        """Start bars for new candidate symbols (existing ones keep their state)."""
        new = [c for c in candidates if c.symbol not in self.symbols]
        if not new:
            return
        contracts = await qualify_stocks(self.ib, [c.symbol for c in new])
        for c in new:
            contract = contracts.get(c.symbol)
            if contract is None:
                continue
            st = SymbolState(
                symbol=c.symbol,
                contract=contract,
                aggregator=sigbars.BarAggregator(self.settings.entry.bar_seconds),
                indicators=self._indicators(c.symbol),
                previous_close=c.previous_close,
            )
            self.symbols[c.symbol] = st
            await self._subscribe_bars(st)

    async def _subscribe_bars(self, st: SymbolState) -> None:
        if not st.backfilled:
            task = asyncio.ensure_future(self._backfill(st))
            self._backfills.add(task)
            task.add_done_callback(self._backfills.discard)
        if st.rt_bars is None:
            st.rt_bars = self.ib.reqRealTimeBars(st.contract, 5, "TRADES", False)
            st.rt_bars.updateEvent += lambda bars, has_new, s=st: self._on_rt_bar(s, bars, has_new)

    async def _backfill(self, st: SymbolState) -> None:
        """Paced backfill: previous close (daily bars) and today's 30-second bars so far."""
        now = self.clock.now()
        try:
            if st.previous_close is None:
                daily = await self.ib.reqHistoricalDataAsync(st.contract, "", "5 D", "1 day", "TRADES", True)
                prior = [b for b in daily if _bar_date(b.date) < now.date()]
                if prior:
                    st.previous_close = float(prior[-1].close)
            premarket = datetime(now.year, now.month, now.day, 4, 0, tzinfo=NY)
            seconds = int(max(60, min(86_400, (now - premarket).total_seconds())))
            async with self.pacer.slot((st.symbol, "TRADES", "30 secs")):
                bars = await self.ib.reqHistoricalDataAsync(
                    st.contract, "", f"{seconds} S", f"{self.settings.entry.bar_seconds} secs", "TRADES", False
                )
        except Exception as exc:  # noqa: BLE001 - a failed backfill leaves the live bars
            log.warning("backfill failed; indicators warm up from live bars", extra={"symbol": st.symbol,
                                                                                      "error": str(exc)})
            bars = []
        history = sigbars.bars_from_ib(bars)
        step = timedelta(seconds=self.settings.entry.bar_seconds)
        history = [b for b in history if b.time + step <= now]  # drop the still-forming bar
        fresh = self._indicators(st.symbol)
        snap = None
        for bar in history:
            snap = fresh.update(bar)
            self._update_gap(st, bar)
        # live bars completed while the backfill was in flight go on top of the history
        last_hist = history[-1].time if history else None
        for bar in st.pending_live:
            if last_hist is None or bar.time > last_hist:
                snap = fresh.update(bar)
                self._update_gap(st, bar)
        st.pending_live.clear()
        st.indicators = fresh
        if snap is not None:
            st.snapshot = snap
            st.last_price = snap.close
            st.last_bar_time = snap.time
        st.backfilled = True
        log.info("backfill done", extra={"symbol": st.symbol, "bars": len(history), "previous_close": st.previous_close})

    def _indicators(self, symbol: str) -> Any:
        e = self.settings.entry
        return sigind.IndicatorSet(symbol, periods=e.rsi_period, atr_period=e.atr_period)

    def _on_rt_bar(self, st: SymbolState, bars: RealTimeBarList, has_new: bool) -> None:
        """A 5-second real-time bar: aggregate to 30 s; a completed bar updates the indicators."""
        if not has_new or not bars:
            return
        rb = bars[-1]
        # ib_async keeps every bar of a subscription in its RealTimeBarList (8,640 a day per
        # symbol); only the newest is read here, so the list keeps just that one
        del bars[:-1]
        st.last_price = rb.close
        done = st.aggregator.add(rb)  # bad/out-of-order bars are logged and dropped there
        if done is not None:
            self._on_bar(st, done)

    def _poll_bars(self, now: datetime) -> None:
        """Close 30-second bars whose time is over even when no next 5-second bar came."""
        for st in self.symbols.values():
            done = st.aggregator.poll(now)
            if done is not None:
                self._on_bar(st, done)

    def _on_bar(self, st: SymbolState, done: Any) -> None:
        if not st.backfilled:
            st.pending_live.append(done)
            return
        if st.last_bar_time is not None and done.time <= st.last_bar_time:
            return
        st.snapshot = st.indicators.update(done)
        st.last_bar_time = done.time
        self._update_gap(st, done)

    def _update_gap(self, st: SymbolState, bar: Any) -> None:
        """Gap over the previous close: the latest pre-market price before the open,
        then the regular session's opening price (fraction)."""
        if not st.previous_close:
            return
        t = bar.time.astimezone(NY)
        session = calendar().session(t.date()) if calendar().is_session(t.date()) else None
        if session is None:
            return
        if t < session.open:
            st.gap = sigrules.gap_pct(bar.close, st.previous_close)
        elif st.gap_day != t.date():
            st.gap_day = t.date()
            st.gap = sigrules.gap_pct(bar.open, st.previous_close)

    # ------------------------------------------------------------------ records

    def _decision(self, symbol: str, gate: str, passed: bool, reason: str, values: dict[str, Any],
                  when: datetime) -> dict[str, Any]:
        d = {"symbol": symbol, "gate": gate, "passed": passed, "reason": reason, "values": values, "when": when}
        gates_log.info("%s %s %s: %s", symbol, gate, "pass" if passed else "reject", reason,
                       extra={"symbol": symbol, "gate": gate, "passed": passed, "values": values})
        return d

    def _record_decisions(self, decisions: list[dict[str, Any]]) -> None:
        """Gate decisions go to the database through the journal (never on the loop)."""
        self.journal.put("gate decisions", self.coord.record_gate_decisions, decisions)


def _crash_point(point: str) -> None:
    """Test hook: SIGKILL this process at ``point`` when ``$DAYTRADING_TEST_CRASH_AT`` names it
    (``after_claim``: claimed, no order sent; ``after_order``: order sent, fill not handled)."""
    if os.environ.get("DAYTRADING_TEST_CRASH_AT") == point:
        log.warning("test crash point reached: SIGKILL", extra={"point": point})
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def _bar_date(value: Any) -> Any:
    return value.date() if isinstance(value, datetime) else value


def setup_gates_log(settings: Settings) -> None:
    """Also write gate verdicts to ``<log_dir>/gates.jsonl``."""
    from daytrading.runtime import JsonLinesFormatter

    path = Path(settings.paths.log_dir) / "gates.jsonl"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonLinesFormatter(BOT))
    gates_log.addHandler(handler)
    gates_log.propagate = False


def cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading day-trader``."""
    from daytrading.cli import client_id_arg

    parser.add_argument("--allocation", type=float, default=None,
                        help="fraction of net liquidation to use, in (0, 1] (default: settings.allocation = 0.25)")
    parser.add_argument("--client-id", type=client_id_arg, default=None, help="IB client id (default 2)")


def cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading day-trader``: run until stopped."""
    from daytrading.cli import _overrides
    from daytrading.config import load_settings, with_overrides
    from daytrading.runtime import build_clock, open_coordinator, setup_logging

    if args.allocation is not None:
        settings = load_settings(args.config, {**_overrides(args), "allocation": args.allocation})
    if args.client_id is not None:  # validated like any setting (range, distinct ids)
        settings = with_overrides(settings, {"ib": {"day_trader_client_id": args.client_id}}, "--client-id")
    clock = build_clock(settings)
    setup_logging(settings, BOT, clock)
    setup_gates_log(settings)
    coord = open_coordinator(settings, BOT, clock)
    bot = DayTrader(settings, coord, clock)
    log.info("day-trader starting", extra={"mode": settings.mode, "allocation": settings.allocation,
                                           "client_id": bot.client_id})
    asyncio.run(bot.run())
    return 0


__all__ = ["DayTrader", "CycleReport", "SymbolState", "cli", "cli_args"]
