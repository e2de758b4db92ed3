"""The exit-manager: the persistent bot (IB clientId 10) that owns every SELL.

Each sweep takes a broker snapshot first (positions, this client's working orders, the
latest quotes), reads the rows and the execution ledger, and lets the pure
:func:`daytrading.bots.exit_plan.plan` decide; this module only carries the actions out.

What it guarantees (architecture invariants 3–6):

* **Reconcile first.** On start and after every reconnect it reads the broker's
  positions, open orders, completed orders and executions (ib_async's startup sync,
  which includes ``reqExecutions``), records its own executions in the ledger and brings
  the database in line with the broker, which is the truth.
* **Protected from the first fill.** Every long position in the account — a claim whose
  entry is filling (whether its day-trader is alive or not), an OPEN row, or no row at all
  (adopted) — gets, within a sweep (≤ 1 wall second), one ``SELL LMT`` at
  ``entry × (1 + profit_target)`` for the shares held, with ``orderRef = dt-target:<SYMBOL>``,
  a broker-side disaster ``STP SELL`` at ``entry × (1 − disaster_stop)`` in one OCA group
  with it (``dt-disaster:<SYMBOL>``; off with ``disaster_stop_enabled = false``), and the
  bot-monitored stop. Partial entries are resized as fills arrive.
* **Never short.** Held shares come from the execution ledger and the broker together
  (:func:`daytrading.bots.exit_plan.held`), never from the position stream alone, which
  lags fills; a target is never enlarged above them. A short the system made anyway is
  bought back at market at once, with a CRITICAL event.
* **Bot-monitored stop.** Market data for every held symbol drives the stop check on each
  price event, with a sweep as a safety net. A price older than ``max_price_age`` or a
  delayed one (paper/live without ``stop_on_delayed_data``) is not used. At or below
  ``entry × (1 − stop_loss)``: take the in-memory exit lock, cancel the target and the
  disaster stop and wait for IB to confirm, then sell the held quantity at market; if the
  target filled meanwhile, that fill is the exit. The database learns of it through the
  journal (:mod:`daytrading.bots.journal`): a locked database never delays the SELL.
* **Bounded failure.** Rejected sells (e.g. error 201) are retried with exponential
  back-off up to ``exit_max_retries`` times, then raised as a CRITICAL event.
* **End of day.** At ``close − eod_flatten_minutes`` (early closes from the XNYS
  calendar) every position the system traded today is sold at market, targets cancelled
  first; shorts are covered.
* **Disconnects.** State is kept; reconnect every ``intervals.reconnect`` seconds with
  a log line per attempt, reconcile on reconnect, resubscribe after 1101; an outage
  longer than ``intervals.outage_critical`` is a CRITICAL event.
* **Freeze.** While liquidate-all's global freeze is set, no order is placed (the order
  gate is HALTED); the freeze file is checked right before every order.

Time: every decision interval is market seconds on the run's clock (a replay at speed 390
runs them 390× faster; a virtual clock runs them virtually); order/cancel waits are wall
seconds (IB answers in wall time) with a floor. Latency figures in the log use
``perf_counter``. Logs: ``logs/exit_manager.jsonl``, one record per decision.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ib_async import IB, Contract, Fill, LimitOrder, MarketOrder, StopOrder, Ticker, Trade

from daytrading.bots import exit_plan as xp
from daytrading.bots.base import Bot, wait_event
from daytrading.bots.journal import Journal
from daytrading.broker.connection import connect, stock
from daytrading.broker.orders import (
    DISASTER_REF,
    EXIT_REF,
    LIQUIDATE_REF,
    TARGET_REF,
    average_fill_price,
    execution_of,
    filled_quantity,
    fresh_positions,
    is_done,
    order_ref,
    parse_order_ref,
    positions_by_symbol,
    record_trade,
    rejection_reason,
    wait_done,
)
from daytrading.clock import Clock
from daytrading.config import Settings
from daytrading.coordination import Coordinator, Execution
from daytrading.errors import ConfigError, DaytradingError, TemporaryBrokerError

log = logging.getLogger("daytrading.exit_manager")

BOT = "exit-manager"
#: wall seconds a database call on the exit path may take before it is left to the journal
DB_FAST = 2.0


@dataclass
class _Backoff:
    """Failure memory for one symbol: attempts so far and the market time of the next try."""

    attempts: int = 0
    next_try: datetime | None = None
    gave_up: bool = False


@dataclass
class _Outage:
    since: datetime | None = None  # market time the connection was lost
    critical_sent: bool = False
    attempts: int = 0


@dataclass
class ExitStats:
    """Counters for tests and the status table."""

    targets_placed: int = 0
    exits_sent: int = 0
    covers_sent: int = 0
    reconciliations: int = 0
    sweeps: int = 0
    woken_by: dict[str, int] = field(default_factory=dict)  # wake-up reason -> count
    corrections: list[str] = field(default_factory=list)


def check_market_data(settings: Settings) -> None:
    """Refuse to protect paper/live positions with delayed prices unless told to.

    Raises:
        ConfigError: ``ib.market_data_type`` is 3 or 4 (delayed) in paper/live mode without
            ``stop_on_delayed_data = true``; the message says how to get live data or set the flag.
    """
    if settings.is_sim or settings.ib.market_data_type in (1, 2) or settings.stop_on_delayed_data:
        return
    raise ConfigError(
        f"ib.market_data_type = {settings.ib.market_data_type} (delayed, 15-20 minutes old) in {settings.mode} mode: "
        "the stop would run on old prices. Subscribe to live US equity data in IB Account Management "
        "(Settings > Market Data Subscriptions) and set ib.market_data_type = 1, or accept delayed stops with "
        "stop_on_delayed_data = true (the broker-side disaster stop still rests at IB)."
    )


class ExitManager(Bot):
    """The exit-manager bot. ``run()`` is the loop; ``process_once()`` is one sweep.

    Args:
        settings: validated settings (profit target/stop as fractions, intervals in seconds).
        coord: the coordination API over the shared database (bot name ``exit-manager``).
        clock: market time (live, replay or virtual).
        ib: an ``IB`` instance to use (tests may pass one); one is created otherwise.
    """

    BOT = BOT

    def __init__(self, settings: Settings, coord: Coordinator, clock: Clock, *, ib: IB | None = None) -> None:
        super().__init__(settings, coord, clock, ib)
        self.client_id = settings.ib.exit_manager_client_id
        self.stats = ExitStats()
        self.reconciled = False
        # journal writes fail fast and retry: a locked database never ties up the worker threads
        self.journal = Journal(lambda fn, *a, **kw: self.db(fn, *a, timeout=DB_FAST, **kw))
        self._wake = asyncio.Event()
        self._contracts: dict[str, Contract] = {}
        self._tickers: dict[str, Ticker] = {}
        self._quotes: dict[str, xp.Quote] = {}
        self._stops: dict[str, float] = {}  # symbol -> stop price of protected positions
        self._exit_tasks: dict[str, asyncio.Task[None]] = {}  # the in-memory exit lock
        self._backoff: dict[str, _Backoff] = {}  # targets (placement rejected)
        self._exit_backoff: dict[str, _Backoff] = {}  # market exits (SELL rejected or unfilled)
        self._bought_floor: dict[str, float] = {}
        self._rows: dict[str, Any] = {}  # last rows read (kept while the database is unreadable)
        self._ledger: dict[str, list[Execution]] = {}  # the database's executions, last read
        self._traded: set[str] = set()
        self._adopting: set[str] = set()
        self._perm_stored: set[int] = set()
        self._raised: dict[tuple[str, str], datetime] = {}
        self._positions_lock = asyncio.Lock()
        self._outage = _Outage()
        self._frozen = False
        self._gate = xp.order_gate(frozen=False, after_flatten=False)
        self._seen_positions: dict[str, float] = {}  # symbol -> shares the last snapshot saw
        self._next_wake: datetime | None = None  # market time of the next timer-driven sweep
        self._freeze_file_seen = False
        self._bind_events()

    # ------------------------------------------------------------------ events

    def _bind_events(self) -> None:
        self.ib.pendingTickersEvent += self._on_tickers
        self.ib.execDetailsEvent += self._on_exec
        self.ib.commissionReportEvent += lambda trade, fill, report: self._journal_fills([fill])
        self.ib.orderStatusEvent += self._on_order_status
        # Position and portfolio pushes wake a sweep only when a quantity differs from what the
        # last snapshot saw: the sweep's own position requests answer with the same quantities,
        # which would otherwise spin the loop at ib_async's 45 requests/s throttle.
        self.ib.positionEvent += lambda p: self._on_quantity(p.account, p.contract, p.position)
        self.ib.updatePortfolioEvent += lambda i: self._on_quantity(i.account, i.contract, i.position)
        self.ib.disconnectedEvent += self._on_disconnected
        self.ib.errorEvent += self._on_error

    def wake(self, why: str) -> None:
        """Ask for a sweep now (``why`` is counted in ``stats.woken_by``). Safe from any ib_async handler."""
        self.stats.woken_by[why] = self.stats.woken_by.get(why, 0) + 1
        self._wake.set()

    def _on_quantity(self, account: str, contract: Contract, shares: float) -> None:
        """A position or portfolio push: sweep when ``shares`` differ from the last snapshot's."""
        if contract.secType != "STK" or (self.settings.ib.account and account != self.settings.ib.account):
            return
        if float(shares) != self._seen_positions.get(contract.symbol, 0.0):
            self.wake("position")

    def _on_disconnected(self) -> None:
        if self.connected:
            log.warning("broker connection lost", extra={"event": "disconnected"})
        self.connected = False
        self.reconciled = False
        self.wake("disconnected")

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        if code == 1100:
            log.warning("IB connectivity lost (1100)", extra={"code": code})
            self.state = "broker-down"
        elif code in (1101, 1102):
            log.warning("IB connectivity restored", extra={"code": code, "data_lost": code == 1101})
            self.state = "running" if self.reconciled else self.state
            if code == 1101:
                asyncio.get_event_loop().call_soon(self._resubscribe)
            self.wake("connectivity")

    def _on_tickers(self, tickers: set[Ticker]) -> None:
        t_event = time.perf_counter()
        now = self.clock.now()
        # a set hashed by id(): sorted, so the order of stop exits never depends on memory addresses
        for ticker in sorted(tickers, key=lambda t: t.contract.symbol if t.contract else ""):
            price = _ticker_price(ticker)
            if price is None:
                continue
            delayed = not self.settings.is_sim and ticker.marketDataType in (3, 4)
            self._quotes[ticker.contract.symbol] = xp.Quote(price, now, delayed)
            self.on_price(ticker.contract.symbol, price, t_event=t_event, source="tick")

    def _on_exec(self, trade: Trade, fill: Fill) -> None:
        self._journal_fills([fill])
        self._traded.add(fill.contract.symbol)
        self.wake("execution")  # held shares changed: the next sweep resizes or closes

    def _journal_fills(self, fills: list[Fill]) -> None:
        """Record this client's fills in the execution ledger (idempotent by execId)."""
        execs = [execution_of(f) for f in fills if f.contract.secType == "STK" and f.execution.execId]
        if execs:
            self.journal.put("executions", self.coord.record_executions, execs)

    def _on_order_status(self, trade: Trade) -> None:
        parsed = parse_order_ref(trade.order.orderRef)
        if parsed is None or trade.order.clientId != self.client_id:
            return
        self.journal.put("order", record_trade, self.coord, trade, _purpose(trade), strict=True)
        kind, symbol = parsed[0], parsed[1]
        perm_id = trade.order.permId or trade.orderStatus.permId
        if perm_id and trade.order.orderId not in self._perm_stored:
            # IB assigns the permId after placement: stored as soon as it is known, never None
            self._perm_stored.add(trade.order.orderId)
            if kind == TARGET_REF:
                self.journal.put("target permId", self._store_perm, symbol, "target", trade.order.orderId, perm_id)
            elif kind == EXIT_REF and trade.order.action == "SELL":
                self.journal.put("exit permId", self._store_perm, symbol, "exit", trade.order.orderId, perm_id)
        if kind in (TARGET_REF, DISASTER_REF) and is_done(trade):
            # filled, cancelled or rejected: the next sweep closes, re-places or backs off
            if (trade.orderStatus.status != "Filled" and (reason := rejection_reason(trade))
                    and symbol not in self._exit_tasks):
                self._back_off(symbol, f"{kind} rejected: {reason}", kind="target_failed")
            self.wake("order")
        elif is_done(trade) and trade.orderStatus.status != "Filled" and (reason := rejection_reason(trade)):
            log.warning("order ended without fill",
                        extra={"symbol": symbol, "order_id": trade.order.orderId, "reason": reason,
                               "status": trade.orderStatus.status})

    def _store_perm(self, symbol: str, kind: str, order_id: int, perm_id: int) -> None:
        """(Journal) the target's or exit's permId on the row, once IB has assigned it."""
        row = self.coord.get_position(symbol)
        if row is None:
            return
        if kind == "target" and row.target_order_id in (order_id, None):
            self.coord.set_target_order(symbol, order_id, perm_id)
        elif kind == "exit":
            self.coord.set_exit_order(symbol, order_id, perm_id)

    def _back_off(self, symbol: str, why: str, *, kind: str) -> None:
        b = self._backoff.setdefault(symbol, _Backoff())
        b.attempts += 1
        delay = min(300.0, 5.0 * 2 ** (b.attempts - 1))
        b.next_try = self.clock.now() + timedelta(seconds=delay)
        log.warning("order rejected; backing off", extra={"symbol": symbol, "reason": why,
                                                          "attempt": b.attempts, "retry_in_market_s": delay})
        if b.attempts == self.settings.exit_max_retries:
            self._event("CRITICAL", kind, f"{symbol}: {why} ({b.attempts} times)", symbol)

    # ------------------------------------------------------------------ price → stop

    def on_price(self, symbol: str, price: float, *, t_event: float | None = None, source: str = "tick") -> None:
        """React to a price for ``symbol`` (dollars): start the stop exit when it is at or below the stop.

        Called for every market-data tick; never blocks. The decision is
        :func:`daytrading.bots.exit_plan.stop_decision` through the order gate.
        """
        stop = self._stops.get(symbol)
        if stop is None or symbol in self._exit_tasks or not self.connected:
            return
        now = self.clock.now()
        quote = self._quotes.get(symbol)
        if quote is None or quote.price != price:
            quote = xp.Quote(price, now, quote.delayed if quote else False)
        if xp.stop_decision(stop, quote, now, self.settings) is None:
            return
        if not self._gate_allows(symbol, now):
            return
        t_event = t_event if t_event is not None else time.perf_counter()
        log.info(
            "stop triggered",
            extra={"symbol": symbol, "price": price, "stop": stop, "trigger": source,
                   "market_time": now.isoformat()},
        )
        self._spawn(symbol, self._exit(symbol, "stop", trigger_price=price, t_event=t_event))

    def _gate_allows(self, symbol: str, now: datetime) -> bool:
        """The order gate for a reducing order now, with the freeze file read at this moment."""
        if self._frozen_now():
            return False
        b = self._exit_backoff.get(symbol)
        if b is not None and b.gave_up:
            return False
        gate = xp.order_gate(frozen=False, after_flatten=self._gate.state is xp.TradingState.REDUCING)
        return gate.allows(symbol, reducing=True, now=now)

    def _frozen_now(self) -> bool:
        """The freeze, checked in one place: the freeze file (no database read) when the
        Coordinator offers it, or the flag read by the last sweep."""
        return self._freeze_file_set() or self._frozen

    def _freeze_file_set(self) -> bool:
        file_check = getattr(self.coord, "is_frozen_file", None)
        if file_check is None:
            return False
        try:
            return bool(file_check())
        except Exception:  # noqa: BLE001 - a broken check must not block a stop; the database flag stays
            log.debug("freeze file check failed", exc_info=True)
            return False

    def _spawn(self, symbol: str, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._exit_tasks[symbol] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._exit_tasks.get(symbol) is t:
                del self._exit_tasks[symbol]
            if not t.cancelled() and t.exception() is not None:
                log.error("exit task failed", exc_info=t.exception(), extra={"symbol": symbol})
            self.wake("exit done")

        task.add_done_callback(done)

    # ------------------------------------------------------------------ the loop

    def stop(self) -> None:
        """Ask :meth:`run` to finish (safe from signal handlers); wakes the idle loop."""
        super().stop()
        self._wake.set()

    async def idle(self, spent_market_s: float) -> None:
        """Sleep until something relevant happens, then let the next sweep run.

        Woken by (:meth:`wake`): a fill of ours, a position or portfolio push whose quantity
        differs from the last snapshot, a target or disaster stop ending (filled, cancelled,
        rejected), an exit task ending, a disconnect or 1101/1102, a flip of the freeze file
        (checked each heartbeat, :meth:`on_heartbeat`), :meth:`stop`; else at the next timer of
        :func:`~daytrading.bots.exit_plan.next_wake` (safety sweep every ``intervals.exit_poll``
        market seconds, EOD flatten, back-offs, claim grace), converted to wall seconds by the
        clock's speed. A crossed stop does not wait for a sweep: :meth:`on_price` acts on the
        price event itself. An event set while a sweep runs gives one more sweep (none is lost).
        """
        now = self.clock.now()
        due = self._next_wake or now + timedelta(seconds=self.settings.intervals.exit_poll)
        timeout = self._wall(max(0.0, (due - now).total_seconds()), floor=0.0)
        if timeout > 0:
            await wait_event(self._wake, timeout)
        self._wake.clear()

    def on_heartbeat(self) -> None:
        """Each heartbeat tick: a freeze file set or removed since the last look wakes a sweep
        (orders also check the file right before they are sent)."""
        frozen = self._freeze_file_set()
        if frozen != self._freeze_file_seen:
            self._freeze_file_seen = frozen
            self.wake("freeze file")

    def on_stopped(self) -> None:
        """Cancel exits in flight (positions and targets stay at the broker); close the journal."""
        for task in list(self._exit_tasks.values()):
            task.cancel()
        self.journal.close()
        log.info("exit-manager stopping; positions and targets stay at the broker")

    def heartbeat_detail(self) -> dict[str, Any]:
        """Connection, reconcile state, order gate, watched and exiting symbols, the last price of
        each watched symbol (``prices``: ``{symbol: {"last": $, "at": ISO wall time received}}``,
        how the dashboard knows prices without a broker connection of its own), market data
        types and what the stop runs on, journal backlog."""
        prices = {}
        for symbol, ticker in self._tickers.items():
            price = _ticker_price(ticker)
            if price is not None:
                prices[symbol] = {"last": price, "at": ticker.time.isoformat() if ticker.time else None}
        return {"connected": self.connected, "reconciled": self.reconciled, "gate": self._gate.state.value,
                "watching": sorted(self._stops), "exiting": sorted(self._exit_tasks), "prices": prices,
                "market_data": {s: t.marketDataType for s, t in sorted(self._tickers.items())},
                "stop_prices": self._stop_prices(), "journal_pending": len(self.journal)}

    def _stop_prices(self) -> str:
        """What the stop runs on, for ``status``/``monitor``: replay, live, or delayed (allowed or not)."""
        if self.settings.is_sim:
            return "replay"
        types = {t.marketDataType for t in self._tickers.values()} or {self.settings.ib.market_data_type}
        if types & {3, 4}:
            return ("delayed (stop_on_delayed_data = true)" if self.settings.stop_on_delayed_data
                    else "delayed: not used for stops")
        return "live"

    async def connect_cycle(self) -> None:
        """Connect, record the day's own executions, reconcile; on failure wait ``intervals.reconnect``."""
        now = self.clock.now()
        self.state = "connecting" if self._outage.since is None else "disconnected"
        if self._outage.since is None:
            self._outage.since = now
        self._outage.attempts += 1
        self.ib.wrapper.reset()  # no stale trades/tickers from a dropped socket
        self._tickers.clear()
        self._quotes.clear()
        try:
            await connect(self.settings, self.client_id, ib=self.ib)
        except TemporaryBrokerError as exc:
            down = (self.clock.now() - self._outage.since).total_seconds()
            log.warning("connect attempt failed",
                        extra={"attempt": self._outage.attempts, "error": str(exc), "down_market_s": round(down, 1)})
            if not self._outage.critical_sent and down >= self.settings.intervals.outage_critical:
                self._outage.critical_sent = True
                self._event("CRITICAL", "outage", f"broker unreachable for {down:.0f} market s: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._wall(self.settings.intervals.reconnect))
            return
        self.connected = True
        self._outage = _Outage()
        self.state = "reconciling"
        self._journal_fills(self.ib.fills())  # the startup sync's reqExecutions: today's own fills
        try:
            await self.reconcile()
        except (ConnectionError, TimeoutError, DaytradingError) as exc:
            log.warning("reconcile interrupted", extra={"error": str(exc)})
            if not self.ib.isConnected():
                return
        self.reconciled = True
        self.state = "frozen" if self._frozen else "running"

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

    async def process_once(self, *, reconcile: bool = False) -> list[xp.Action]:
        """One sweep: snapshot, :func:`~daytrading.bots.exit_plan.plan`, carry out. Returns the actions.

        Raises:
            ConnectionError, TimeoutError: the broker stopped answering (the loop reconnects).
        """
        self.stats.sweeps += 1
        await self._read_database()
        snapshot = await self.snapshot(reconcile=reconcile)
        now = self.clock.now()
        self._next_wake = xp.next_wake(self._rows, snapshot, now, self.settings, speed=self.clock.speed)
        self._gate = xp.order_gate(frozen=snapshot.frozen, after_flatten=xp.after_flatten(now, self.settings))
        if snapshot.frozen:
            if self.state != "frozen":
                log.warning("global freeze is set: standing down (no orders)", extra={"event": "frozen"})
            self.state = "frozen"
            self._stops.clear()
            return []
        if self.state == "frozen":
            self.state = "running"
            log.info("freeze cleared: resuming", extra={"event": "unfrozen"})
        ledger = self._merged_ledger(snapshot)
        for symbol in snapshot.positions:
            self._bought_floor[symbol] = xp.held(symbol, self._rows.get(symbol), snapshot,
                                                 ledger.get(symbol, ()), now).bought
        actions = xp.plan(self._rows, snapshot, ledger, now, self.settings, speed=self.clock.speed)
        await self._carry_out(actions, reconcile=reconcile)
        return actions

    async def _read_database(self) -> None:
        """Rows, today's ledger, closed-today and the freeze flag; the last values stay when the database is busy."""
        known = set(self._stops) | set(self._traded) | {
            p.contract.symbol for p in self.ib.positions(self.settings.ib.account)}

        def read() -> tuple[dict[str, Any], dict[str, list[Execution]], set[str], bool]:
            rows = {r.symbol: r for r in self.coord.get_active_positions()}
            closed = {c["symbol"] for c in self.coord.get_closed_today()}
            ledger = self.coord.get_executions_of(sorted(known | set(rows) | closed))
            return rows, ledger, closed, self.coord.is_frozen()

        try:
            rows, ledger, closed, frozen = await self.db(read, timeout=2.0)
        except Exception as exc:  # noqa: BLE001 - a locked, full or damaged database: keep protecting from memory
            log.warning("database unreadable; sweeping with the last rows read", extra={"error": str(exc)})
            self._frozen = self._frozen or self._freeze_file_set()
            return
        self._rows, self._ledger, self._frozen = rows, ledger, frozen or self._freeze_file_set()
        self._adopting -= set(rows)
        self._traded |= set(rows) | closed | {s for s, execs in ledger.items() if execs}

    async def snapshot(self, *, reconcile: bool = False) -> xp.Snapshot:
        """The broker's state now: positions (asked afresh when the stream disagrees with the
        rows, and on reconcile), this client's working SELLs, quotes; plus what this process knows."""
        broker = positions_by_symbol(self.ib.positions(self.settings.ib.account))
        if reconcile or self._disagrees(broker):
            async with self._positions_lock:
                broker = await fresh_positions(self.ib, timeout=self._order_wait(10))
        # pushes from now on wake a sweep when they differ from what this snapshot decides on
        self._seen_positions = {s: q for s, (q, _) in broker.items()}
        return xp.Snapshot(
            positions=broker, orders=self._working_orders(), quotes=dict(self._quotes),
            exiting=frozenset(self._exit_tasks), bought_floor=dict(self._bought_floor),
            traded_today=frozenset(self._traded), frozen=self._frozen, reconcile=reconcile,
            backoff_until={s: b.next_try for s, b in self._backoff.items() if b.next_try is not None},
        )

    def _disagrees(self, broker: dict[str, tuple[float, float]]) -> bool:
        """True when a held symbol has no row, or a settled row's quantity differs from the stream."""
        if any(symbol not in self._rows for symbol in broker):
            return True
        for symbol, row in self._rows.items():
            if row.status != "OPEN" or symbol in self._exit_tasks:
                continue
            if broker.get(symbol, (0.0, 0.0))[0] != row.quantity:
                return True
        return False

    def _merged_ledger(self, snapshot: xp.Snapshot) -> dict[str, list[Execution]]:
        """The database's executions and this process's own fills (which may not be journalled yet)."""
        merged: dict[str, dict[str, Execution]] = {}
        for symbol, execs in self._ledger.items():
            merged.setdefault(symbol, {}).update((e.exec_id, e) for e in execs)
        for f in self.ib.fills():
            if f.contract.secType == "STK" and f.execution.execId:
                merged.setdefault(f.contract.symbol, {})[f.execution.execId] = execution_of(f)
        return {s: list(d.values()) for s, d in merged.items()}

    def _working_orders(self) -> list[xp.WorkingOrder]:
        """This client's working SELL orders with our order references."""
        out = []
        for t in self.ib.openTrades():
            parsed = parse_order_ref(t.order.orderRef)
            if parsed is None or t.order.action != "SELL" or is_done(t):
                continue
            if t.order.clientId not in (self.client_id, 0) and t.order.clientId:
                continue
            kind = {TARGET_REF: "target", DISASTER_REF: "disaster", EXIT_REF: "exit"}.get(parsed[0])
            if kind is None:
                continue
            price = t.order.auxPrice if kind == "disaster" else t.order.lmtPrice
            out.append(xp.WorkingOrder(t.order.orderId, t.contract.symbol, kind, float(t.order.totalQuantity),
                                       filled_quantity(t), float(price) if price and price < 1e300 else None,
                                       t.orderStatus.status == "PendingCancel", t.order.ocaGroup or ""))
        return out

    # ------------------------------------------------------------------ carrying out

    async def _carry_out(self, actions: list[xp.Action], *, reconcile: bool) -> None:  # noqa: C901 - a dispatch
        stops: dict[str, float] = {}
        for a in actions:
            if isinstance(a, xp.Watch):
                stops[a.symbol] = self._stops[a.symbol] = a.stop  # watched before the first tick arrives
                await self._subscribe(a.symbol)
            elif isinstance(a, xp.Adopt):
                if a.symbol in self._adopting:
                    continue  # queued already; the row appears once the journal has written it
                self._adopting.add(a.symbol)
                self._correction(f"{a.symbol}: adopted broker position {a.quantity:g} @ {a.avg_cost:.4f}")
                self.journal.put("adopt", self.coord.adopt_position, a.symbol, a.quantity, a.avg_cost,
                                 reason=f"broker position {a.quantity:g} @ {a.avg_cost:.4f} had no row")
                self._traded.add(a.symbol)
            elif isinstance(a, xp.Confirm):
                self._correction(f"{a.symbol}: claim's entry filled ({a.quantity:g} @ {a.price:.4f}); confirmed OPEN")
                self.journal.put("confirm", self.coord.confirm_entry, a.symbol, a.quantity, a.price)
            elif isinstance(a, xp.ReleaseClaim):
                self.journal.put("release", self.coord.release_claim, a.symbol, a.reason,
                                 then=lambda released, s=a.symbol: released and self._correction(
                                     f"{s}: stale claim with no position released"))
            elif isinstance(a, xp.SetQuantity):
                self._correction(f"{a.symbol}: quantity → broker {a.quantity:g}")
                self.journal.put("quantity", self.coord.set_quantity, a.symbol, a.quantity)
            elif isinstance(a, xp.PlaceProtection):
                await self._place_protection(a)
            elif isinstance(a, xp.PlaceDisaster):
                await self._place_disaster(a)
            elif isinstance(a, xp.Resize):
                self._resize(a)
            elif isinstance(a, xp.Cancel):
                self._cancel(a)
            elif isinstance(a, xp.Exit):
                if a.symbol not in self._exit_tasks and self._may_retry_exit(a):
                    if a.resume:
                        log.info("resuming exit in progress", extra={"symbol": a.symbol, "reason": a.reason})
                    self._spawn(a.symbol, self._exit(a.symbol, a.reason, trigger_price=a.trigger_price,
                                                     resume=a.resume))
            elif isinstance(a, xp.Cover):
                if a.symbol not in self._exit_tasks:
                    self._spawn(a.symbol, self._cover(a.symbol, a.quantity))
            elif isinstance(a, xp.Close):
                row = self._rows.get(a.symbol)
                if row is not None and self._recently_updated(row) and not reconcile:
                    continue  # the position stream may be behind a row that changed a moment ago
                if a.symbol not in self._exit_tasks:
                    self._close_from_fills(a.symbol, a.reason, correction=None)
            elif isinstance(a, xp.Raise):
                self._raise_once(a)
        self._stops = stops
        for symbol in list(self._tickers):
            if symbol not in stops and symbol not in self._exit_tasks:
                self._unsubscribe(symbol)

    def _may_retry_exit(self, a: xp.Exit) -> bool:
        """A stop exit that gave up stays given up (CRITICAL raised); the EOD flatten tries
        up to twice ``exit_max_retries`` times in all."""
        b = self._exit_backoff.get(a.symbol)
        if b is None:
            return True
        if a.reason == "eod":
            b.gave_up = False
            return b.attempts < 2 * max(1, self.settings.exit_max_retries)
        return not b.gave_up

    def _recently_updated(self, row: Any) -> bool:
        updated = row.last_updated or row.entry_timestamp
        return updated is not None and (self.clock.now() - updated).total_seconds() < xp.recent_window(self.clock.speed)

    def _raise_once(self, a: xp.Raise) -> None:
        """An event, at most once per symbol and kind every 10 market minutes (no flood)."""
        key, now = (a.symbol, a.kind), self.clock.now()
        last = self._raised.get(key)
        if last is not None and (now - last).total_seconds() < 600:
            return
        self._raised[key] = now
        self._event(a.level, a.kind, a.message, a.symbol)

    async def _place_protection(self, a: xp.PlaceProtection) -> None:
        """The target SELL LMT and (unless off) the disaster STP SELL, one OCA group (reduce on fill)."""
        contract = await self._protective_contract(a.symbol)
        if contract is None:
            return
        target = LimitOrder("SELL", a.quantity, a.target_price, tif="DAY", orderRef=order_ref(TARGET_REF, a.symbol))
        target.account = self.settings.ib.account
        disaster = None
        if a.disaster_price is not None:
            group = f"dt-oca:{a.symbol}:{self.clock.now():%H%M%S%f}"
            disaster = self._disaster_order(a.symbol, a.quantity, a.disaster_price, group)
            target.ocaGroup, target.ocaType = group, 3  # 3: a fill reduces the other order, no block
        trade = self.ib.placeOrder(contract, target)
        if disaster is not None:
            self.ib.placeOrder(contract, disaster)
        self.stats.targets_placed += 1
        self.journal.put("target", self.coord.set_target_order, a.symbol, trade.order.orderId,
                         trade.order.permId or None)
        log.info("target placed", extra={"symbol": a.symbol, "qty": a.quantity, "price": a.target_price,
                                         "disaster_stop": a.disaster_price, "order_id": trade.order.orderId})

    async def _protective_contract(self, symbol: str) -> Contract | None:
        """The contract to place a target or disaster stop for, or None (frozen now, or unknown to the broker)."""
        return None if self._frozen_now() else await self._contract(symbol)

    def _disaster_order(self, symbol: str, quantity: float, price: float, group: str) -> StopOrder:
        """The broker-side disaster STP SELL (DAY) in OCA group ``group`` (ocaType 3: a fill reduces the others)."""
        order = StopOrder("SELL", quantity, price, tif="DAY", orderRef=order_ref(DISASTER_REF, symbol))
        order.account = self.settings.ib.account
        order.ocaGroup, order.ocaType = group, 3
        return order

    async def _place_disaster(self, a: xp.PlaceDisaster) -> None:
        """Put a missing disaster stop back beside its working target, in the target's OCA group."""
        contract = await self._protective_contract(a.symbol)
        if contract is None:
            return
        trade = self.ib.placeOrder(contract, self._disaster_order(a.symbol, a.quantity, a.price, a.oca_group))
        log.warning("disaster stop missing beside the target; placed again",
                    extra={"symbol": a.symbol, "qty": a.quantity, "stop": a.price, "oca_group": a.oca_group,
                           "order_id": trade.order.orderId})

    def _trade_of(self, order_id: int) -> Trade | None:
        return next((t for t in self.ib.openTrades() if t.order.orderId == order_id
                     and t.order.clientId == self.client_id), None)

    def _resize(self, a: xp.Resize) -> None:
        trade = self._trade_of(a.order_id)
        if trade is None or self._frozen_now():
            return
        log.info("target resized" if trade.order.orderType == "LMT" else "disaster stop resized",
                 extra={"symbol": a.symbol, "order_id": a.order_id, "from_qty": trade.order.totalQuantity,
                        "to_qty": a.quantity, "price": a.price})
        trade.order.totalQuantity = a.quantity
        if trade.order.orderType == "STP":
            trade.order.auxPrice = a.price
        else:
            trade.order.lmtPrice = a.price
        self.ib.placeOrder(trade.contract, trade.order)

    def _cancel(self, a: xp.Cancel) -> None:
        trade = self._trade_of(a.order_id)
        if trade is not None and not is_done(trade) and trade.orderStatus.status != "PendingCancel":
            log.info("order cancelled", extra={"symbol": a.symbol, "order_id": a.order_id, "why": a.why})
            self.ib.cancelOrder(trade.order)

    # ------------------------------------------------------------------ exits

    def _my_orders(self, symbol: str) -> list[Trade]:
        """This client's working SELLs (targets, disaster stops, exits) for ``symbol``."""
        out = []
        for t in self.ib.openTrades():
            parsed = parse_order_ref(t.order.orderRef)
            if t.contract.symbol != symbol or t.order.action != "SELL" or parsed is None or parsed[0] == LIQUIDATE_REF:
                continue
            if t.order.clientId not in (self.client_id, 0) and t.order.clientId:
                continue
            out.append(t)
        return out

    def _own_lot(self, symbol: str) -> list[Execution]:
        """This symbol's executions known now: the database's (last read) and this process's fills."""
        merged = {e.exec_id: e for e in self._ledger.get(symbol, ())}
        for f in self.ib.fills():
            if f.contract.symbol == symbol and f.execution.execId:
                merged[f.execution.execId] = execution_of(f)
        return list(merged.values())

    async def _held_now(self, symbol: str) -> float:
        """Shares that may be sold now: a fresh broker position bounded by the ledger."""
        async with self._positions_lock:
            broker = await fresh_positions(self.ib, timeout=self._order_wait(10))
        snap = xp.Snapshot(positions=broker, bought_floor=dict(self._bought_floor))
        h = xp.held(symbol, self._rows.get(symbol), snap, self._own_lot(symbol), self.clock.now())
        if broker.get(symbol, (0.0, 0.0))[0] < 0:
            return broker[symbol][0]
        return h.quantity

    async def _exit(  # noqa: C901 - the exit protocol reads best as one sequence
        self,
        symbol: str,
        reason: str,
        *,
        trigger_price: float | None = None,
        t_event: float | None = None,
        resume: bool = False,
    ) -> None:
        """Exit ``symbol`` at market: (in-memory lock held) cancel our SELLs, confirm, sell held, journal.

        Never sends a SELL while a target or disaster stop for the symbol may still fill, and
        never for more than :meth:`_held_now`. The database's exit lock is journalled, not
        awaited: a locked database does not delay the SELL.
        """
        self._stops.pop(symbol, None)
        if not resume:
            self.journal.put("exit lock", self.coord.take_exit_lock, symbol, reason)
        backoff = self._exit_backoff.setdefault(symbol, _Backoff())
        max_tries = max(1, self.settings.exit_max_retries)
        while True:
            # 1. cancel every working SELL of ours (an exit from before a restart may finish first)
            for t in self._my_orders(symbol):
                if (parse_order_ref(t.order.orderRef)[0] == EXIT_REF and not is_done(t)
                        and await wait_done(t, self._order_wait(self.settings.intervals.exit_fill_timeout))):
                    continue
                if not is_done(t):
                    self.ib.cancelOrder(t.order)
            for t in self._my_orders(symbol):
                while not await wait_done(t, self._order_wait(10)):
                    log.warning("cancel not confirmed yet; waiting (no SELL while a target may fill)",
                                extra={"symbol": symbol, "order_id": t.order.orderId})
                    if not self.connected:
                        return  # resumed after reconnect (row stays EXITING)
            # 2. what is held now that no sell of ours is working
            held = await self._held_now(symbol)
            if held <= 0:
                self._close_from_fills(symbol, reason, correction=False)
                return
            # 3. sell it at market (unless liquidate-all took over)
            if self._frozen_now():
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
            self.journal.put("exit order", self.coord.set_exit_order, symbol, trade.order.orderId,
                             trade.order.permId or None)
            log.info(
                "exit sent",
                extra={"symbol": symbol, "reason": reason, "qty": held, "price": trigger_price,
                       "order_id": trade.order.orderId,
                       "latency_ms": round((sent - t_event) * 1000, 3) if t_event else None},
            )
            t_event = None
            filled = await wait_done(trade, self._order_wait(self.settings.intervals.exit_fill_timeout))
            if filled and trade.orderStatus.status == "Filled":
                self._close_from_fills(symbol, reason, correction=False, fallback=trade)
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
                self.journal.put("release exit lock", self.coord.release_exit_lock, symbol)
                return
            delay = min(300.0, 5.0 * 2 ** (backoff.attempts - 1))
            await asyncio.sleep(self._wall(delay))
            if not self.connected:
                return

    async def _cover(self, symbol: str, quantity: float) -> None:
        """BUY back a short the system made, at market, for the short quantity (checked afresh)."""
        for t in self._my_orders(symbol):
            if not is_done(t):
                self.ib.cancelOrder(t.order)
        for t in self._my_orders(symbol):
            await wait_done(t, self._order_wait(10))
        held = await self._held_now(symbol)
        if held >= 0 or self._frozen_now():
            return
        contract = await self._contract(symbol)
        if contract is None:
            return
        order = MarketOrder("BUY", -held, tif="DAY", orderRef=order_ref(EXIT_REF, symbol, "cover"))
        order.account = self.settings.ib.account
        trade = self.ib.placeOrder(contract, order)
        self.stats.covers_sent += 1
        log.critical("short covered at market", extra={"symbol": symbol, "qty": -held, "order_id": trade.order.orderId})
        await wait_done(trade, self._order_wait(self.settings.intervals.exit_fill_timeout))

    def _close_from_fills(self, symbol: str, exit_reason: str | None, *, correction: bool | None,
                          fallback: Trade | None = None) -> None:
        """Journal the close of ``symbol``'s row; the trade row comes from the ledger's fills.

        The reason comes from the SELL fills (:meth:`_reason_from_fills`); without any fill the
        row is closed as ``reconciled`` at the last price. ``correction`` records the close
        as a reconcile correction (event) rather than an ordinary log line; ``None``: a
        correction unless our own target, stop or EOD exit explains it.
        """
        row = self._rows.get(symbol)
        since = (row.claimed_at or row.entry_timestamp) if row is not None else None
        execs = self._own_lot(symbol)
        sells = [f for f in self.ib.fills() if f.contract.symbol == symbol and f.execution.side == "SLD"
                 and (since is None or f.execution.time >= since - timedelta(seconds=1))]
        if sells or fallback is not None:
            fills = sells or list(fallback.fills) if fallback is not None else sells
            qty = sum(f.execution.shares for f in fills) or (filled_quantity(fallback) if fallback else 0.0)
            price = (sum(f.execution.shares * f.execution.price for f in fills) / qty if fills and qty
                     else (average_fill_price(fallback) if fallback else None) or 0.0)
            reason = self._reason_from_fills(fills, exit_reason)
            if correction is None:
                correction = reason not in ("target", "stop", "eod")
            message = f"{symbol}: position gone at the broker; closed with {qty:g} sold @ {price:.4f} ({reason})"
            perm = (fallback.order.permId or None) if fallback is not None else None
            self.journal.put("close", self._close, symbol, price, reason, qty, execs, message if correction else None,
                             perm)
            if not correction:
                log.info("exit filled; position closed" if fallback else message,
                         extra={"symbol": symbol, "reason": reason, "price": price})
        else:
            last = self._last_price(symbol) or (row.entry_price if row is not None else None) or 0.0
            self.journal.put("close", self._close, symbol, last, "reconciled", None, execs,
                             f"{symbol}: position gone at the broker, no execution explains it; closed as reconciled")
        self._stops.pop(symbol, None)
        self._unsubscribe(symbol)

    def _close(self, symbol: str, price: float, reason: str, qty: float | None, execs: list[Execution],
               correction: str | None, exit_perm_id: int | None = None) -> None:
        """(Journal, off the loop) close the row with the ledger; a correction is also an event."""
        view = self.coord.close_position(symbol, price, reason, quantity=qty, executions=execs,
                                         exit_perm_id=exit_perm_id)
        if view is not None and correction:
            self.stats.corrections.append(correction)
            log.warning("reconcile correction: " + correction, extra={"event": "correction"})
            self.coord.record_event("WARNING", "reconcile", correction)
        if view is not None:
            log.info("trade recorded", extra={"symbol": symbol, "qty": view.quantity, "pnl": view.pnl,
                                              "commission": view.commission, "reason": view.exit_reason})

    def _reason_from_fills(self, sells: list[Fill], exit_reason: str | None) -> str:
        """Exit reason explained by the SELL fills: all targets → ``target``; our exit orders or
        the disaster stop → the reason (``stop`` for the disaster stop); liquidate-all →
        ``liquidate_all``; anything else (a sell from TWS or another client) → ``manual``."""
        kinds = [parse_order_ref(ref) for ref in self._fill_refs(sells)]
        if kinds and all(k and k[0] == TARGET_REF for k in kinds):
            return "target"
        for k in kinds:
            if k and k[0] == EXIT_REF and k[2] in ("stop", "eod"):
                return k[2]
            if k and k[0] == DISASTER_REF:
                return "stop"
            if k and k[0] == LIQUIDATE_REF:
                return "liquidate_all"
        if exit_reason in ("stop", "eod"):
            return exit_reason
        return "manual"

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
        self.journal.put("event", self.coord.record_event, "WARNING", "reconcile", message)

    def _event(self, level: str, kind: str, message: str, symbol: str | None = None) -> None:
        log.log(logging.CRITICAL if level == "CRITICAL" else logging.WARNING, message,
                extra={"event": kind, "symbol": symbol})
        self.journal.put("event", self.coord.record_event, level, kind, message, symbol=symbol)


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
    check_market_data(settings)
    clock = build_clock(settings)
    setup_logging(settings, BOT, clock)
    coord = open_coordinator(settings, BOT, clock)
    bot = ExitManager(settings, coord, clock)
    log.info("exit-manager starting", extra={"mode": settings.mode, "client_id": bot.client_id, "clock": repr(clock)})
    asyncio.run(bot.run())
    return 0
