"""The exit-manager: the persistent bot (IB clientId 10) that owns every SELL.

What it guarantees (architecture invariants 3–6):

* **Reconcile first.** On start and after every reconnect it reads the broker's
  positions, open orders, completed orders and executions (ib_async's startup sync,
  which includes ``reqExecutions``) and brings the database in line with the broker,
  which is the truth: unknown broker positions are adopted, rows without a position
  are closed (with the real fill when an execution explains it), claims whose entry
  filled become ``OPEN``. Every correction is logged and stored as an event.
* **One profit target per position.** Every ``OPEN`` position has exactly one working
  ``SELL LMT`` at ``entry × (1 + profit_target)`` for the broker-reported quantity,
  placed by this client (an IB client cannot cancel another client's orders), with
  ``orderRef = dt-target:<SYMBOL>``.
* **Bot-monitored stop.** Market data for every held symbol (delayed is fine) drives
  the stop check on each price event, with a sweep every ``intervals.exit_poll``
  seconds over the portfolio as a safety net. At or below ``entry × (1 − stop_loss)``:
  take the exit lock in the database, cancel the target and wait for IB to confirm,
  then sell the *fresh broker-reported* quantity at market (never more, so never
  short); if the target filled meanwhile, that fill is the exit.
* **Bounded failure.** Rejected sells (e.g. error 201, short-sale rules) are retried
  with exponential back-off up to ``exit_max_retries`` times, then raised as a
  CRITICAL event; never a tight loop. Target placement failures back off the same way.
* **End of day.** At ``close − eod_flatten_minutes`` (early closes from the XNYS
  calendar) every target is cancelled and every position sold at market.
* **Disconnects.** State is kept; reconnect every ``intervals.reconnect`` seconds with
  a log line per attempt, reconcile on reconnect, resubscribe after 1101; an outage
  longer than ``intervals.outage_critical`` is a CRITICAL event.
* **Freeze.** While liquidate-all's global freeze is set, no order is placed.

Time: intervals are market seconds on the run's clock (so a replay at speed 390
runs them 390× faster); order/cancel waits are wall seconds (IB answers in wall
time) with a floor. Logs: ``logs/exit_manager.jsonl``, one record per decision.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from ib_async import IB, Contract, Fill, LimitOrder, MarketOrder, Ticker, Trade

from daytrading.bots.base import Bot
from daytrading.broker.connection import connect, stock
from daytrading.broker.orders import (
    EXIT_REF,
    LIQUIDATE_REF,
    TARGET_REF,
    average_fill_price,
    commission,
    filled_quantity,
    fill_commission,
    fresh_positions,
    is_done,
    order_ref,
    parse_order_ref,
    positions_by_symbol,
    record_trade,
    rejection_reason,
    wait_done,
)
from daytrading.clock import Clock, calendar
from daytrading.config import Settings
from daytrading.coordination import Coordinator
from daytrading.db.models import PositionStatus
from daytrading.errors import DaytradingError, TemporaryBrokerError
import contextlib

log = logging.getLogger("daytrading.exit_manager")

BOT = "exit-manager"


@dataclass
class _Backoff:
    """Failure memory for one symbol: attempts so far and the wall time of the next try."""

    attempts: int = 0
    next_try: float = 0.0
    gave_up: bool = False


@dataclass
class _Outage:
    since_wall: float | None = None
    critical_sent: bool = False
    attempts: int = 0


@dataclass
class ExitStats:
    """Counters for tests and the status table."""

    targets_placed: int = 0
    exits_sent: int = 0
    reconciliations: int = 0
    corrections: list[str] = field(default_factory=list)


class ExitManager(Bot):
    """The exit-manager bot. ``run()`` is the loop; ``process_once()`` is one sweep.

    Args:
        settings: validated settings (profit target/stop as fractions, intervals in seconds).
        coord: the coordination API over the shared database (bot name ``exit-manager``).
        clock: market time (live or replay).
        ib: an ``IB`` instance to use (tests may pass one); one is created otherwise.
    """

    BOT = BOT

    def __init__(self, settings: Settings, coord: Coordinator, clock: Clock, *, ib: IB | None = None) -> None:
        super().__init__(settings, coord, clock, ib)
        self.client_id = settings.ib.exit_manager_client_id
        self.stats = ExitStats()
        self.reconciled = False
        self._wake = asyncio.Event()
        self._contracts: dict[str, Contract] = {}
        self._tickers: dict[str, Ticker] = {}
        self._stops: dict[str, float] = {}  # symbol -> stop price (OPEN rows)
        self._exit_tasks: dict[str, asyncio.Task[None]] = {}
        self._exit_backoff: dict[str, _Backoff] = {}
        self._target_backoff: dict[str, _Backoff] = {}
        self._positions_lock = asyncio.Lock()
        self._outage = _Outage()
        self._eod_started: date | None = None
        self._frozen = False
        self._bind_events()

    # ------------------------------------------------------------------ events

    def _bind_events(self) -> None:
        self.ib.pendingTickersEvent += self._on_tickers
        self.ib.execDetailsEvent += self._on_exec
        self.ib.orderStatusEvent += self._on_order_status
        # No wake-up on positionEvent: the sweep's own position requests would answer with
        # position messages and spin the loop at ib_async's 45 requests/s throttle, queueing
        # stop cancels and SELLs behind them (measured in benchmarks/bench_exit_latency.py).
        self.ib.disconnectedEvent += self._on_disconnected
        self.ib.errorEvent += self._on_error

    def _on_disconnected(self) -> None:
        if self.connected:
            log.warning("broker connection lost", extra={"event": "disconnected"})
        self.connected = False
        self.reconciled = False
        self._wake.set()

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        if code == 1100:
            log.warning("IB connectivity lost (1100)", extra={"code": code})
            self.state = "broker-down"
        elif code in (1101, 1102):
            log.warning("IB connectivity restored", extra={"code": code, "data_lost": code == 1101})
            self.state = "running" if self.reconciled else self.state
            if code == 1101:
                asyncio.get_event_loop().call_soon(self._resubscribe)
            self._wake.set()

    def _on_tickers(self, tickers: set[Ticker]) -> None:
        t_event = time.perf_counter()
        for ticker in tickers:
            price = _ticker_price(ticker)
            if price is not None:
                self.on_price(ticker.contract.symbol, price, t_event=t_event, source="tick")

    def _on_exec(self, trade: Trade, fill: Fill) -> None:
        # the orders row is written by _on_order_status (every status change): no second write here
        if trade.order.action == "SELL":
            self._wake.set()

    def _on_order_status(self, trade: Trade) -> None:
        parsed = parse_order_ref(trade.order.orderRef)
        if parsed is None or trade.order.clientId != self.client_id:
            return
        record_trade(self.coord, trade, _purpose(trade))
        if parsed[0] == TARGET_REF and trade.orderStatus.status == "Filled":
            symbol = parsed[1]
            if symbol not in self._exit_tasks:
                self._spawn(symbol, self._handle_target_filled(symbol, trade))
        elif is_done(trade) and trade.orderStatus.status != "Filled":
            reason = rejection_reason(trade)
            if reason:
                log.warning(
                    "order ended without fill",
                    extra={"symbol": parsed[1], "order_id": trade.order.orderId, "reason": reason,
                           "status": trade.orderStatus.status},
                )

    # ------------------------------------------------------------------ price → stop

    def on_price(self, symbol: str, price: float, *, t_event: float | None = None, source: str = "tick") -> None:
        """React to a price for ``symbol`` (dollars): start the stop exit when it is at or below the stop.

        Called for every market-data tick and by the sweep; never blocks.
        """
        stop = self._stops.get(symbol)
        if stop is None or price > stop or symbol in self._exit_tasks or self._frozen:
            return
        if not self.connected:
            return
        if self._now_after_flatten():
            return  # the EOD flatten owns every exit now
        backoff = self._exit_backoff.get(symbol)
        if backoff and (backoff.gave_up or time.monotonic() < backoff.next_try):
            return
        t_event = t_event if t_event is not None else time.perf_counter()
        log.info(
            "stop triggered",
            extra={"symbol": symbol, "price": price, "stop": stop, "trigger": source,
                   "market_time": self.clock.now().isoformat()},
        )
        self._spawn(symbol, self._exit(symbol, "stop", trigger_price=price, t_event=t_event, take_lock=True))

    def _spawn(self, symbol: str, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._exit_tasks[symbol] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._exit_tasks.get(symbol) is t:
                del self._exit_tasks[symbol]
            if not t.cancelled() and t.exception() is not None:
                log.error("exit task failed", exc_info=t.exception(), extra={"symbol": symbol})
            self._wake.set()

        task.add_done_callback(done)

    # ------------------------------------------------------------------ the loop

    async def run(self, *, install_signals: bool = True) -> None:
        """Connect, reconcile, and keep every position protected until :meth:`stop`.

        Positions and working targets stay at the broker when it stops.
        """
        if install_signals:
            self._install_signal_handlers()
        heartbeat = asyncio.ensure_future(self._heartbeat_loop())
        try:
            while not self._stopping.is_set():
                if not self.connected:
                    await self._connect_and_reconcile()
                    continue
                try:
                    await self.process_once()
                except (DaytradingError, ConnectionError, TimeoutError) as exc:
                    log.warning("sweep failed; will retry", extra={"error": str(exc)})
                await self._idle()
        finally:
            heartbeat.cancel()
            for task in list(self._exit_tasks.values()):
                task.cancel()
            self.state = "stopped"
            try:
                self.coord.heartbeat("stopped")
            except Exception:  # noqa: BLE001 - best effort on the way out
                log.debug("final heartbeat failed", exc_info=True)
            if self.ib.isConnected():
                self.ib.disconnect()
            log.info("exit-manager stopped; positions and targets stay at the broker")

    def stop(self) -> None:
        """Ask :meth:`run` to finish (safe from signal handlers); wakes the idle loop."""
        super().stop()
        self._wake.set()

    async def _idle(self) -> None:
        """Wait for an event (fill, position change, disconnect) or the next poll."""
        # The database is polled at least once per wall second so that new OPEN rows
        # (the day-trader's confirmed entries) get their target within seconds.
        timeout = min(1.0, self._wall(self.settings.intervals.exit_poll))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    def heartbeat_detail(self) -> dict[str, Any]:
        """Connection, reconcile state, watched and exiting symbols, and the last price of each
        watched symbol (``prices``: ``{symbol: {"last": $, "at": ISO wall time received}}``),
        which is how the dashboard knows prices without a broker connection of its own."""
        prices = {}
        for symbol, ticker in self._tickers.items():
            price = _ticker_price(ticker)
            if price is not None:
                prices[symbol] = {"last": price, "at": ticker.time.isoformat() if ticker.time else None}
        return {"connected": self.connected, "reconciled": self.reconciled,
                "watching": sorted(self._stops), "exiting": sorted(self._exit_tasks), "prices": prices}

    async def _connect_and_reconcile(self) -> None:
        self.state = "connecting" if self._outage.since_wall is None else "disconnected"
        if self._outage.since_wall is None:
            self._outage.since_wall = time.monotonic()
        self._outage.attempts += 1
        self.ib.wrapper.reset()  # no stale trades/tickers from a dropped socket
        self._tickers.clear()
        try:
            await connect(self.settings, self.client_id, ib=self.ib)
        except TemporaryBrokerError as exc:
            down = time.monotonic() - self._outage.since_wall
            log.warning(
                "connect attempt failed",
                extra={"attempt": self._outage.attempts, "error": str(exc), "down_wall_s": round(down, 1)},
            )
            if not self._outage.critical_sent and down * self.clock.speed >= self.settings.intervals.outage_critical:
                self._outage.critical_sent = True
                self._event("CRITICAL", "outage", f"broker unreachable for {down * self.clock.speed:.0f} market s: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._wall(self.settings.intervals.reconnect))
            return
        self.connected = True
        self._outage = _Outage()
        self.state = "reconciling"
        try:
            await self.reconcile()
        except (ConnectionError, TimeoutError) as exc:
            log.warning("reconcile interrupted", extra={"error": str(exc)})
            return
        self.reconciled = True
        self.state = "frozen" if self._frozen else "running"
        self.coord.heartbeat(self.state, json.dumps({"connected": True, "reconciled": True}))

    # ------------------------------------------------------------------ reconcile / sweep

    async def reconcile(self) -> None:
        """Bring the database in line with the broker (the truth), then protect everything.

        Runs after every (re)connect, before any other action. The startup sync of
        ``IB.connectAsync`` has already fetched positions, open orders, completed
        orders and executions (``reqExecutions``), so fills that happened while
        disconnected are seen here.
        """
        self.stats.reconciliations += 1
        log.info("reconciling with the broker", extra={"event": "reconcile"})
        await self.process_once(reconcile=True)

    async def process_once(self, *, reconcile: bool = False) -> None:  # noqa: C901 - one sweep, in order
        """One sweep: freeze, EOD, adopt/close/confirm rows, targets, stops.

        Raises:
            ConnectionError, TimeoutError: the broker stopped answering (the loop reconnects).
        """
        self._frozen = self.coord.is_frozen()
        if self._frozen:
            if self.state != "frozen":
                log.warning("global freeze is set: standing down (no orders)", extra={"event": "frozen"})
            self.state = "frozen"
            self._stops.clear()
            return
        if self.state == "frozen":
            self.state = "running"
            log.info("freeze cleared: resuming", extra={"event": "unfrozen"})
        rows = {r.symbol: r for r in self.coord.get_active_positions()}
        broker = self._streamed_positions()
        if reconcile or self._disagrees(rows, broker):
            # ask the broker (the truth) only when the streamed view disagrees with the database
            async with self._positions_lock:
                broker = await fresh_positions(self.ib, timeout=self._order_wait(10))
            rows = {r.symbol: r for r in self.coord.get_active_positions()}
        now = self.clock.now()
        after_flatten = self._now_after_flatten(now)

        # 1. broker positions the database does not know: adopt (a hand-opened position)
        for symbol, (qty, avg_cost) in broker.items():
            if qty < 0:
                self._event("CRITICAL", "short_position", f"{symbol}: broker shows a SHORT position of {qty}", symbol)
                continue
            if symbol not in rows:
                price = avg_cost  # IB average cost per share for stocks
                view = self.coord.adopt_position(symbol, qty, price, reason=f"broker position {qty} @ {price:.4f} had no row")
                rows[symbol] = view
                self._correction(f"{symbol}: adopted broker position {qty} @ {price:.4f}")

        # 2. each row against the broker
        watched: dict[str, float] = {}
        for symbol, row in rows.items():
            held = broker.get(symbol, (0.0, 0.0))[0]
            if row.status == PositionStatus.PENDING_ENTRY:
                self._check_claim(row, held, broker.get(symbol, (0.0, 0.0))[1], now)
                continue
            if held <= 0:
                if symbol not in self._exit_tasks:
                    await self._close_vanished(row, reconcile=reconcile)
                continue
            if row.quantity != held and row.status == PositionStatus.OPEN:
                self.coord.set_quantity(symbol, held)
                self._correction(f"{symbol}: quantity {row.quantity} → broker {held}")
            await self._subscribe(symbol)
            if row.status == PositionStatus.EXITING:
                if symbol not in self._exit_tasks:
                    reason = row.exit_reason or "stop"
                    log.info("resuming exit in progress", extra={"symbol": symbol, "reason": reason})
                    self._spawn(symbol, self._exit(symbol, reason, take_lock=False))
                continue
            if after_flatten:
                continue
            if row.stop_loss_price is not None:
                watched[symbol] = row.stop_loss_price
            if symbol not in self._exit_tasks:
                await self._ensure_target(symbol, row.profit_target_price, held)
        self._stops = watched
        self._cancel_orphan_targets(set(watched))

        # 3. EOD flatten
        if after_flatten:
            self._flatten(rows, broker)
            return

        # 4. stop safety net: the portfolio's last prices
        for symbol in list(watched):
            price = self._last_price(symbol)
            if price is not None:
                self.on_price(symbol, price, source="sweep")

    def _streamed_positions(self) -> dict[str, tuple[float, float]]:
        """Positions as ib_async keeps them from IB's position stream: ``{symbol: (shares, avg cost $)}``."""
        return positions_by_symbol(self.ib.positions(self.settings.ib.account))

    def _disagrees(self, rows: dict[str, Any], broker: dict[str, tuple[float, float]]) -> bool:
        """True when a held symbol has no row, or a row's quantity differs from the stream."""
        if any(symbol not in rows for symbol in broker):
            return True
        for symbol, row in rows.items():
            if row.status == PositionStatus.PENDING_ENTRY or symbol in self._exit_tasks:
                continue
            if broker.get(symbol, (0.0, 0.0))[0] != row.quantity:
                return True
        return False

    def _check_claim(self, row: Any, held: float, avg_cost: float, now: datetime) -> None:
        """A ``PENDING_ENTRY`` claim: confirm it when the entry filled, release it when long dead."""
        age = (now - (row.claimed_at or now)).total_seconds()
        # The day-trader confirms its own fills; step in only when it has clearly not (it died):
        # 2 × its order timeout, at least 60 market s and at least 10 s of wall time (replays).
        grace = max(60.0, 2 * self.settings.entry.order_timeout, 10.0 * self.clock.speed)
        if held > 0 and age >= grace:
            self.coord.confirm_entry(row.symbol, held, avg_cost)
            self._correction(f"{row.symbol}: claim's entry filled ({held} @ {avg_cost:.4f}); confirmed OPEN")
        elif held <= 0 and age >= 10 * grace and self.coord.release_claim(
            row.symbol, "no broker position long after the claim"
        ):
            self._correction(f"{row.symbol}: stale claim with no position released")

    async def _close_vanished(self, row: Any, *, reconcile: bool) -> None:
        """A row whose broker position is gone: close it with the fill that explains it."""
        # A row that changed a moment ago may be ahead of the broker's position stream.
        updated = row.last_updated or row.entry_timestamp
        if (not reconcile and updated is not None
                and (self.clock.now() - updated).total_seconds() < max(5.0, 5 * self.clock.speed)):
            return
        self._close_from_fills(row, row.exit_reason, correction=True)

    def _reason_from_fills(self, sells: list[Fill], exit_reason: str | None) -> str:
        """Exit reason explained by the SELL fills: all targets → ``target``; our exit
        orders → the reason in their orderRef; liquidate-all → ``liquidate_all``;
        anything else (a sell from TWS or another client) → ``manual``."""
        kinds = [parse_order_ref(ref) for ref in self._fill_refs(sells)]
        if kinds and all(k and k[0] == TARGET_REF for k in kinds):
            return "target"
        for k in kinds:
            if k and k[0] == EXIT_REF and k[2] in ("stop", "eod"):
                return k[2]
            if k and k[0] == LIQUIDATE_REF:
                return "liquidate_all"
        if exit_reason in ("stop", "eod"):
            return exit_reason
        return "manual"

    def _sell_fills(self, symbol: str, since: datetime | None) -> list[Fill]:
        out = []
        for f in self.ib.fills():
            if f.contract.symbol != symbol or f.execution.side != "SLD":
                continue
            if since is not None and f.execution.time < since - timedelta(seconds=1):
                continue
            out.append(f)
        return out

    def _fill_refs(self, fills: list[Fill]) -> list[str]:
        refs = []
        for f in fills:
            ref = getattr(f.execution, "orderRef", "") or ""
            if not ref:
                for t in self.ib.trades():
                    if t.order.permId and t.order.permId == f.execution.permId:
                        ref = t.order.orderRef
            refs.append(ref or "")
        return refs

    # ------------------------------------------------------------------ targets

    def _my_orders(self, symbol: str, kind: str | None = None) -> list[Trade]:
        out = []
        for t in self.ib.openTrades():
            parsed = parse_order_ref(t.order.orderRef)
            if t.contract.symbol != symbol or t.order.action != "SELL" or parsed is None:
                continue
            if t.order.clientId not in (self.client_id, 0) and t.order.clientId:
                continue
            if kind is None or parsed[0] == kind:
                out.append(t)
        return out

    async def _ensure_target(self, symbol: str, target_price: float | None, held: float) -> None:
        """Exactly one working SELL LMT for ``held`` shares at ``target_price``."""
        if target_price is None:
            return
        targets = self._my_orders(symbol, TARGET_REF)
        # duplicates: keep the first (oldest order id), cancel the rest
        targets.sort(key=lambda t: t.order.orderId)
        for extra in targets[1:]:
            log.warning("duplicate target cancelled", extra={"symbol": symbol, "order_id": extra.order.orderId})
            self.ib.cancelOrder(extra.order)
        backoff = self._target_backoff.get(symbol)
        if targets:
            trade = targets[0]
            want_total = filled_quantity(trade) + held
            price = round(target_price, 2)
            if not math.isclose(trade.order.totalQuantity, want_total) or not math.isclose(trade.order.lmtPrice, price):
                log.info(
                    "target resized",
                    extra={"symbol": symbol, "order_id": trade.order.orderId,
                           "from_qty": trade.order.totalQuantity, "to_qty": want_total, "price": price},
                )
                trade.order.totalQuantity = want_total
                trade.order.lmtPrice = price
                self.ib.placeOrder(trade.contract, trade.order)
            return
        if backoff and time.monotonic() < backoff.next_try:
            return
        contract = await self._contract(symbol)
        if contract is None:
            return
        order = LimitOrder("SELL", held, round(target_price, 2), tif="DAY", orderRef=order_ref(TARGET_REF, symbol))
        order.account = self.settings.ib.account
        trade = self.ib.placeOrder(contract, order)
        self.stats.targets_placed += 1
        record_trade(self.coord, trade, "target")
        self.coord.set_target_order(symbol, trade.order.orderId, trade.order.permId or None)
        log.info(
            "target placed",
            extra={"symbol": symbol, "qty": held, "price": round(target_price, 2), "order_id": trade.order.orderId},
        )
        trade.statusEvent += lambda t: self._target_status(symbol, t)

    def _target_status(self, symbol: str, trade: Trade) -> None:
        if trade.order.permId:
            try:
                row = self.coord.get_position(symbol)
                if row is not None and row.target_order_id == trade.order.orderId and not row.target_perm_id:
                    self.coord.set_target_order(symbol, trade.order.orderId, trade.order.permId)
            except DaytradingError:
                pass
        if trade.orderStatus.status in ("Cancelled", "ApiCancelled", "Inactive") and symbol not in self._exit_tasks:
            reason = rejection_reason(trade)
            if reason:  # a rejection, not our own cancel: back off before re-placing
                b = self._target_backoff.setdefault(symbol, _Backoff())
                b.attempts += 1
                delay = min(300.0, 5.0 * 2 ** (b.attempts - 1))
                b.next_try = time.monotonic() + self._wall(delay)
                log.warning("target rejected; backing off", extra={"symbol": symbol, "reason": reason,
                                                                  "attempt": b.attempts, "retry_in_market_s": delay})
                if b.attempts == self.settings.exit_max_retries:
                    self._event("CRITICAL", "target_failed", f"{symbol}: target rejected {b.attempts} times: {reason}", symbol)

    def _cancel_orphan_targets(self, keep: set[str]) -> None:
        """Cancel our targets for symbols that are no longer OPEN positions."""
        for t in self.ib.openTrades():
            parsed = parse_order_ref(t.order.orderRef)
            if (parsed and parsed[0] == TARGET_REF and parsed[1] not in keep and parsed[1] not in self._exit_tasks
                    and t.order.clientId == self.client_id and t.orderStatus.status != "PendingCancel"):
                    log.info("orphan target cancelled", extra={"symbol": parsed[1], "order_id": t.order.orderId})
                    self.ib.cancelOrder(t.order)

    async def _handle_target_filled(self, symbol: str, trade: Trade) -> None:
        """The target filled completely: record the exit (if the position is gone)."""
        async with self._positions_lock:
            broker = await fresh_positions(self.ib, timeout=self._order_wait(10))
        held = broker.get(symbol, (0.0, 0.0))[0]
        if held > 0:
            self.coord.set_quantity(symbol, held)
            self._wake.set()
            return
        price = average_fill_price(trade) or trade.order.lmtPrice
        view = self.coord.close_position(
            symbol, price, "target", quantity=filled_quantity(trade), commission=commission(trade),
            exit_perm_id=trade.order.permId or None,
        )
        if view is not None:
            log.info("target filled; position closed",
                     extra={"symbol": symbol, "price": price, "qty": filled_quantity(trade),
                            "order_id": trade.order.orderId, "pnl": view.pnl})
        self._stops.pop(symbol, None)
        self._unsubscribe(symbol)

    # ------------------------------------------------------------------ exits

    async def _exit(  # noqa: C901 - the exit protocol reads best as one sequence
        self,
        symbol: str,
        reason: str,
        *,
        trigger_price: float | None = None,
        t_event: float | None = None,
        take_lock: bool = True,
    ) -> None:
        """Exit ``symbol`` at market: lock, cancel target, confirm, sell broker qty, record.

        Never sends a SELL while a target for the symbol may still fill, and never for
        more than the fresh broker-reported long quantity.
        """
        if take_lock and not self.coord.take_exit_lock(symbol, reason):
            return  # not OPEN: someone else is exiting it, or it is gone
        self._stops.pop(symbol, None)
        backoff = self._exit_backoff.setdefault(symbol, _Backoff())
        max_tries = max(1, self.settings.exit_max_retries)
        while True:
            # 1. cancel every working target (and any stale exit of ours) and wait for IB
            for t in self._my_orders(symbol):
                # an exit from before a restart may still be working: let it finish first
                if (parse_order_ref(t.order.orderRef)[0] == EXIT_REF and not is_done(t)
                        and await wait_done(t, self._order_wait(self.settings.intervals.exit_fill_timeout))):
                    continue
                self.ib.cancelOrder(t.order)
            for t in self._my_orders(symbol):
                while not await wait_done(t, self._order_wait(10)):
                    log.warning("cancel not confirmed yet; waiting (no SELL while a target may fill)",
                                extra={"symbol": symbol, "order_id": t.order.orderId})
                    if not self.connected:
                        return  # resumed after reconnect (row stays EXITING)
            # 2. the broker's quantity now that no sell of ours is working
            async with self._positions_lock:
                broker = await fresh_positions(self.ib, timeout=self._order_wait(10))
            held = broker.get(symbol, (0.0, 0.0))[0]
            row = self.coord.get_position(symbol)
            if row is None:
                return
            if held <= 0:
                self._close_from_fills(row, reason, correction=False)
                return
            # 3. sell the broker-reported quantity at market (unless liquidate-all took over)
            if self.coord.is_frozen():
                log.warning("freeze set during the exit: standing down (liquidate-all owns it)",
                            extra={"symbol": symbol, "reason": reason})
                return
            contract = await self._contract(symbol)
            if contract is None:
                return
            order = MarketOrder("SELL", held, tif="DAY", orderRef=order_ref(EXIT_REF, symbol, reason))
            order.account = self.settings.ib.account
            trade = self.ib.placeOrder(contract, order)
            sent = time.perf_counter()
            self.stats.exits_sent += 1
            record_trade(self.coord, trade, reason)
            self.coord.set_exit_order(symbol, trade.order.orderId, trade.order.permId or None)
            log.info(
                "exit sent",
                extra={"symbol": symbol, "reason": reason, "qty": held, "price": trigger_price,
                       "order_id": trade.order.orderId,
                       "latency_ms": round((sent - t_event) * 1000, 3) if t_event else None},
            )
            t_event = None
            filled = await wait_done(trade, self._order_wait(self.settings.intervals.exit_fill_timeout))
            if filled and trade.orderStatus.status == "Filled":
                price = average_fill_price(trade) or trigger_price or 0.0
                view = self.coord.close_position(
                    symbol, price, reason, quantity=filled_quantity(trade), commission=commission(trade),
                    exit_perm_id=trade.order.permId or None,
                )
                log.info("exit filled; position closed",
                         extra={"symbol": symbol, "reason": reason, "price": price,
                                "pnl": view.pnl if view else None})
                self._exit_backoff.pop(symbol, None)
                self._unsubscribe(symbol)
                return
            # 4. not filled: rejected, or still working after the timeout
            why = rejection_reason(trade) or f"status {trade.orderStatus.status} after timeout"
            if not is_done(trade):
                self.ib.cancelOrder(trade.order)
                await wait_done(trade, self._order_wait(10))
            backoff.attempts += 1
            log.warning("exit not filled", extra={"symbol": symbol, "reason": reason, "why": why,
                                                  "attempt": backoff.attempts})
            if backoff.attempts >= max_tries:
                backoff.gave_up = reason != "eod"
                self._event("CRITICAL", "exit_failed",
                            f"{symbol}: {reason} exit failed {backoff.attempts} times ({why}); "
                            "position left to its target; manual action may be needed", symbol)
                self.coord.release_exit_lock(symbol)
                return
            delay = min(300.0, 5.0 * 2 ** (backoff.attempts - 1))
            await asyncio.sleep(self._wall(delay))
            if not self.connected:
                return

    def _close_from_fills(self, row: Any, exit_reason: str | None, *, correction: bool) -> None:
        """Close a row whose broker position is gone, at the SELL fills that explain it.

        The reason comes from the fills (:meth:`_reason_from_fills`); without any fill the
        row is closed as ``reconciled`` at the last price. ``correction`` records the close
        as a reconcile correction (event) rather than an ordinary log line.
        """
        sells = self._sell_fills(row.symbol, row.entry_timestamp)
        if sells:
            qty = sum(f.execution.shares for f in sells)
            price = sum(f.execution.shares * f.execution.price for f in sells) / qty
            reason = self._reason_from_fills(sells, exit_reason)
            fee = sum(fill_commission(f) for f in sells)
            self.coord.close_position(row.symbol, price, reason, quantity=qty, commission=fee)
            message = f"{row.symbol}: position gone at the broker; closed with {qty} sold @ {price:.4f} ({reason})"
            if correction:
                self._correction(message)
            else:
                log.info(message, extra={"symbol": row.symbol, "reason": reason, "price": price})
        else:
            last = self._last_price(row.symbol) or row.entry_price or 0.0
            self.coord.close_position(row.symbol, last, "reconciled")
            self._correction(f"{row.symbol}: position gone at the broker, no execution explains it; closed as reconciled")
        self._exit_backoff.pop(row.symbol, None)
        self._unsubscribe(row.symbol)

    # ------------------------------------------------------------------ end of day

    def _now_after_flatten(self, now: datetime | None = None) -> bool:
        now = now or self.clock.now()
        cal = calendar()
        day = now.date()
        if not cal.is_session(day):
            return False
        flatten = cal.flatten_time(day, self.settings.eod_flatten_minutes)
        return now >= flatten

    def _flatten(self, rows: dict[str, Any], broker: dict[str, tuple[float, float]]) -> None:
        """Sell every position at market (targets cancelled first, inside each exit)."""
        day = self.clock.now().date()
        if self._eod_started != day:
            self._eod_started = day
            log.warning("EOD flatten: cancelling targets and selling every position",
                        extra={"event": "eod", "positions": sorted(rows)})
            self._event("INFO", "eod_flatten", f"flattening {len(rows)} positions")
        for symbol, row in rows.items():
            if row.status == PositionStatus.PENDING_ENTRY or symbol in self._exit_tasks:
                continue
            if broker.get(symbol, (0.0, 0.0))[0] <= 0:
                continue
            b = self._exit_backoff.get(symbol)
            if b and b.attempts >= 2 * max(1, self.settings.exit_max_retries):
                continue
            if b and time.monotonic() < b.next_try:
                continue
            if b:
                b.gave_up = False
            take = row.status == PositionStatus.OPEN
            self._spawn(symbol, self._exit(symbol, "eod", take_lock=take))

    # ------------------------------------------------------------------ market data

    async def _contract(self, symbol: str) -> Contract | None:
        c = self._contracts.get(symbol)
        if c is not None:
            return c
        for p in self.ib.positions():
            if p.contract.symbol == symbol and p.contract.conId:
                c = p.contract
                if not c.exchange:
                    c.exchange = "SMART"
                break
        if c is None:
            result = await self.ib.qualifyContractsAsync(stock(symbol))
            c = result[0] if result and result[0] is not None and result[0].conId else None
        if c is None:
            self._event("ERROR", "unknown_contract", f"{symbol}: broker does not know the contract", symbol)
            return None
        c.exchange = "SMART"
        self._contracts[symbol] = c
        return c

    async def _subscribe(self, symbol: str) -> None:
        if symbol in self._tickers:
            return
        contract = await self._contract(symbol)
        if contract is None:
            return
        self._tickers[symbol] = self.ib.reqMktData(contract, "", False, False)

    def _unsubscribe(self, symbol: str) -> None:
        ticker = self._tickers.pop(symbol, None)
        self._stops.pop(symbol, None)
        if ticker is not None and self.ib.isConnected():
            with contextlib.suppress(Exception):  # the subscription may already be gone at IB
                self.ib.cancelMktData(ticker.contract)

    def _resubscribe(self) -> None:
        symbols = list(self._tickers)
        for symbol in symbols:
            ticker = self._tickers.pop(symbol)
            with contextlib.suppress(Exception):  # lost with the data farm (1101)
                self.ib.cancelMktData(ticker.contract)
        for symbol in symbols:
            asyncio.ensure_future(self._subscribe(symbol))
        log.info("market data resubscribed", extra={"symbols": symbols})

    def _last_price(self, symbol: str) -> float | None:
        ticker = self._tickers.get(symbol)
        price = _ticker_price(ticker) if ticker is not None else None
        if price is not None:
            return price
        for item in self.ib.portfolio():
            if item.contract.symbol == symbol and item.marketPrice and not math.isnan(item.marketPrice):
                return float(item.marketPrice)
        return None

    # ------------------------------------------------------------------ records

    def _correction(self, message: str) -> None:
        self.stats.corrections.append(message)
        log.warning("reconcile correction: " + message, extra={"event": "correction"})
        with contextlib.suppress(DaytradingError):
            self.coord.record_event("WARNING", "reconcile", message)

    def _event(self, level: str, kind: str, message: str, symbol: str | None = None) -> None:
        log.log(logging.CRITICAL if level == "CRITICAL" else logging.WARNING, message,
                extra={"event": kind, "symbol": symbol})
        with contextlib.suppress(DaytradingError):
            self.coord.record_event(level, kind, message, symbol=symbol)


# ---------------------------------------------------------------------- helpers


def _ticker_price(ticker: Ticker) -> float | None:
    """Last trade price of a ticker (live or delayed), else the bid/ask midpoint; dollars."""
    value = ticker.last
    if value is not None and not math.isnan(value) and value > 0:
        return float(value)
    bid, ask = ticker.bid, ticker.ask
    if bid and ask and not math.isnan(bid) and not math.isnan(ask) and bid > 0 and ask > 0:
        return (bid + ask) / 2
    return None


def _purpose(trade: Trade) -> str:
    parsed = parse_order_ref(trade.order.orderRef)
    if parsed is None:
        return "foreign"
    kind, _symbol, reason = parsed
    return {TARGET_REF: "target", EXIT_REF: reason or "exit"}.get(kind, kind)


# ---------------------------------------------------------------------- command line


def cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading exit-manager``."""
    from daytrading.cli import client_id_arg

    parser.add_argument("--client-id", type=client_id_arg, default=None, help="IB client id (default: ib.exit_manager_client_id = 10)")


def cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading exit-manager``: run until stopped (Ctrl+C / SIGTERM / supervisor)."""
    from daytrading.config import with_overrides
    from daytrading.runtime import build_clock, open_coordinator, setup_logging

    if args.client_id is not None:  # validated like any setting (range, distinct ids)
        settings = with_overrides(settings, {"ib": {"exit_manager_client_id": args.client_id}}, "--client-id")
    clock = build_clock(settings)
    setup_logging(settings, BOT, clock)
    coord = open_coordinator(settings, BOT, clock)
    bot = ExitManager(settings, coord, clock)
    log.info("exit-manager starting", extra={"mode": settings.mode, "client_id": bot.client_id, "clock": repr(clock)})
    asyncio.run(bot.run())
    return 0
