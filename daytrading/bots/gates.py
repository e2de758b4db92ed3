"""The day-trader's gate chain: every candidate that meets an entry rule passes these
gates in this order, and the first one that says no is recorded with its reason and
the values it compared (``gate_decisions`` table and ``logs/gates.jsonl``).

Order (issue 5, "Gate chain"): ``session`` → ``freeze`` → ``active`` → ``closed_today``
→ ``cooldown`` → ``max_positions`` → ``max_new_entries`` → ``daily_loss`` →
``buying_power`` → ``min_notional`` → ``llm``. Each gate is a pure function of a
:class:`GateContext` so tests drive it without a broker.

Units: money in US dollars; ``allocation``, ``daily_loss_limit`` are fractions of net
liquidation; times are tz-aware America/New_York.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from daytrading.clock import calendar
from daytrading.config import Settings

GATES = (
    "session",
    "freeze",
    "active",
    "closed_today",
    "cooldown",
    "max_positions",
    "max_new_entries",
    "daily_loss",
    "buying_power",
    "min_notional",
    "llm",
)


@dataclass
class GateContext:
    """Everything the gates look at for one candidate, read once per cycle.

    Attributes:
        symbol: candidate symbol.
        now: market time (tz-aware New York).
        price: last price in dollars.
        frozen: the global freeze flag.
        active_symbols: symbols with an ``active_positions`` row (any status).
        closed_today: symbols closed in the current session.
        last_entry_attempt: market time of the symbol's last BUY order today, if any.
        active_count: rows in ``active_positions``.
        entries_this_cycle: entries already sent in this cycle.
        realized_pnl: today's realised P&L in dollars.
        unrealized_pnl: open positions' unrealised P&L in dollars.
        net_liquidation: account net liquidation in dollars.
        available_funds: buying power available for a new entry in dollars.
    """

    symbol: str
    now: datetime
    price: float
    frozen: bool = False
    active_symbols: frozenset[str] = frozenset()
    closed_today: frozenset[str] = frozenset()
    last_entry_attempt: datetime | None = None
    active_count: int = 0
    entries_this_cycle: int = 0
    realized_pnl: float = 0.0
    unrealized_pnl: float = 0.0
    net_liquidation: float = 0.0
    available_funds: float = 0.0
    quantity: int = 0  # filled in by the buying-power gate
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict: ``gate`` name, ``passed``, one-line ``reason``, compared ``values``."""

    gate: str
    passed: bool
    reason: str
    values: dict[str, Any]


def position_size(settings: Settings, net_liquidation: float, price: float) -> int:
    """Whole shares for one entry: ``allocation × NLV / max_concurrent_positions / price``.

    Source: the original design ("size = allocation × net liquidation divided by max
    concurrent positions, whole shares").
    """
    if price <= 0 or net_liquidation <= 0:
        return 0
    budget = settings.allocation * net_liquidation / settings.max_concurrent_positions
    return int(math.floor(budget / price))


class GateChain:
    """Runs the gates in order for one candidate and stops at the first rejection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cal = calendar()

    def run(self, ctx: GateContext, *, llm: Callable[[GateContext], GateResult] | None = None) -> list[GateResult]:
        """All verdicts up to and including the first rejection (the last item).

        ``llm`` is the optional review gate (it is awaited by the caller separately when
        asynchronous; pass ``None`` to stop before it).
        """
        results: list[GateResult] = []
        for gate in (
            self.session,
            self.freeze,
            self.active,
            self.closed_today,
            self.cooldown,
            self.max_positions,
            self.max_new_entries,
            self.daily_loss,
            self.buying_power,
            self.min_notional,
        ):
            r = gate(ctx)
            results.append(r)
            if not r.passed:
                return results
        if llm is not None:
            results.append(llm(ctx))
        return results

    # each gate -----------------------------------------------------------------

    def session(self, ctx: GateContext) -> GateResult:
        """Regular session open and before the entry cut-off and the EOD flatten time."""
        day = ctx.now.date()
        if not self._cal.is_session(day):
            return GateResult("session", False, f"{day} is not a trading session", {"now": ctx.now.isoformat()})
        s = self._cal.session(day)
        cutoff = min(
            self._cal.flatten_time(day, self.settings.entry_cutoff_minutes),
            self._cal.flatten_time(day, self.settings.eod_flatten_minutes),
        )
        values = {"now": ctx.now.isoformat(), "open": s.open.isoformat(), "cutoff": cutoff.isoformat()}
        if ctx.now < s.open:
            return GateResult("session", False, "before the regular open", values)
        if ctx.now >= cutoff:
            return GateResult("session", False, "after the entry cut-off", values)
        return GateResult("session", True, "session open", values)

    def freeze(self, ctx: GateContext) -> GateResult:
        """No entries while liquidate-all's global freeze is set."""
        return GateResult("freeze", not ctx.frozen, "global freeze set" if ctx.frozen else "not frozen",
                          {"frozen": ctx.frozen})

    def active(self, ctx: GateContext) -> GateResult:
        """One row per symbol: a symbol already claimed/held/exiting is skipped."""
        hit = ctx.symbol in ctx.active_symbols
        return GateResult("active", not hit, "already active" if hit else "not active", {"active": hit})

    def closed_today(self, ctx: GateContext) -> GateResult:
        """No re-entry in a symbol closed in the current session (invariant 2)."""
        hit = ctx.symbol in ctx.closed_today
        return GateResult("closed_today", not hit, "closed earlier this session" if hit else "not closed today",
                          {"closed_today": hit})

    def cooldown(self, ctx: GateContext) -> GateResult:
        """At least ``cooldown_minutes`` since the symbol's last entry attempt today."""
        minutes = self.settings.cooldown_minutes
        last = ctx.last_entry_attempt
        if last is None:
            return GateResult("cooldown", True, "no earlier attempt", {"cooldown_min": minutes})
        elapsed = (ctx.now - last).total_seconds() / 60
        ok = elapsed >= minutes
        return GateResult("cooldown", ok, f"{elapsed:.1f} min since last attempt (need {minutes})",
                          {"elapsed_min": round(elapsed, 2), "cooldown_min": minutes})

    def max_positions(self, ctx: GateContext) -> GateResult:
        """Fewer than ``max_concurrent_positions`` active rows."""
        cap = self.settings.max_concurrent_positions
        ok = ctx.active_count < cap
        return GateResult("max_positions", ok, f"{ctx.active_count} of {cap} positions",
                          {"active": ctx.active_count, "max": cap})

    def max_new_entries(self, ctx: GateContext) -> GateResult:
        """Fewer than ``max_new_entries_per_cycle`` entries already sent this cycle."""
        cap = self.settings.max_new_entries_per_cycle
        ok = ctx.entries_this_cycle < cap
        return GateResult("max_new_entries", ok, f"{ctx.entries_this_cycle} of {cap} entries this cycle",
                          {"entries": ctx.entries_this_cycle, "max": cap})

    def daily_loss(self, ctx: GateContext) -> GateResult:
        """Stop entering once realised + unrealised P&L ≤ −``daily_loss_limit`` × NLV."""
        pnl = ctx.realized_pnl + ctx.unrealized_pnl
        limit = -self.settings.daily_loss_limit * ctx.net_liquidation
        ok = pnl > limit or ctx.net_liquidation <= 0
        return GateResult("daily_loss", ok, f"day P&L {pnl:.2f} vs limit {limit:.2f}",
                          {"pnl": round(pnl, 2), "limit": round(limit, 2)})

    def buying_power(self, ctx: GateContext) -> GateResult:
        """Size from the allocation; the cost must fit in the available funds."""
        qty = position_size(self.settings, ctx.net_liquidation, ctx.price)
        cost = qty * ctx.price
        ctx.quantity = qty
        values = {"qty": qty, "cost": round(cost, 2), "available": round(ctx.available_funds, 2),
                  "nlv": round(ctx.net_liquidation, 2), "allocation": self.settings.allocation}
        if qty <= 0:
            return GateResult("buying_power", False, "allocation buys no whole share", values)
        if cost > ctx.available_funds:
            return GateResult("buying_power", False, f"cost {cost:.2f} > available {ctx.available_funds:.2f}", values)
        return GateResult("buying_power", True, f"{qty} shares for {cost:.2f}", values)

    def min_notional(self, ctx: GateContext) -> GateResult:
        """The entry's notional must be at least ``min_notional`` dollars."""
        notional = ctx.quantity * ctx.price
        ok = notional >= self.settings.min_notional
        return GateResult("min_notional", ok, f"notional {notional:.2f} vs minimum {self.settings.min_notional:.2f}",
                          {"notional": round(notional, 2), "min": self.settings.min_notional})
