"""The simulated account: cash, positions, P&L, and the account/position messages.

Book-keeping (IB conventions, notes §6.5):

* ``avg_cost`` is per share **including commissions** (IB's ``averageCost``): opening
  ``total = q·avg + s·price + commission``, ``avg = total / (q + s)`` with signed
  quantities (shares bought positive, sold negative), so a short's avg cost is its
  net proceeds per share.
* A fill against the position realizes ``closed × (price − avg) × sign(q)`` minus the
  commission share of the closing part; that is the ``realizedPNL`` of its
  commissionReport (UNSET for opening fills).
* ``marketValue = q × mark``, ``unrealizedPNL = q × (mark − avg)``; the mark is the last
  replayed trade (:meth:`ReplayMarket.last_trade`), or the avg cost before any trade.
* Account values model a Reg-T margin account with day-trading buying power (FINRA rule
  4210 pattern-day-trader: 4 × excess maintenance margin): ``InitMarginReq`` =
  ``MaintMarginReq`` = 25 % of the gross position value (FINRA 4210 minimum maintenance
  for long stock), ``ExcessLiquidity = NetLiquidation − MaintMarginReq``,
  ``AvailableFunds = EquityWithLoanValue − InitMarginReq``, ``BuyingPower = 4 × ExcessLiquidity``.

Requests served: reqPositions 61 / cancelPositions 64, reqAccountUpdates 6,
reqAccountUpdatesMulti 76 / cancel 77, reqAccountSummary 62 / cancel 63, reqPnL 92 /
cancelPnL 93, reqPnLSingle 94 / cancelPnLSingle 95. Positions and account data are
account-wide and pushed to every subscriber after each fill and once a market minute
(account values only when they changed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daytrading.sim_gateway.engine.units import market_iso, qty_field

if TYPE_CHECKING:
    from daytrading.sim_gateway.engine.context import EngineContext

__all__ = ["Account", "Position", "qty_field"]

#: Fraction of gross position value required as initial and maintenance margin.
MARGIN_RATE = 0.25
#: Day-trading buying power multiple of excess liquidity (FINRA 4210 pattern day trader).
DAY_TRADING_MULTIPLE = 4.0
#: How often subscribers get refreshed portfolio marks and values, market seconds.
PUSH_EVERY = 60.0


@dataclass
class Position:
    """One symbol's position; ``qty`` signed shares, ``avg_cost`` dollars/share incl. commissions."""

    info: Any
    qty: float = 0.0
    avg_cost: float = 0.0
    realized: float = 0.0
    min_qty: float = 0.0
    history: list[float] = field(default_factory=list)


class Account:
    """Cash, positions and P&L of the single simulated account.

    Book-keeping only: the subscribers' pushes and the account requests are served by
    :class:`daytrading.sim_gateway.handlers.AccountRequests`.

    Args:
        ctx: market time and event log; market: the replayed market (marks);
        account: account id; cash: starting cash (dollars).
    """

    def __init__(self, ctx: EngineContext, market: Any, account: str, cash: float) -> None:
        self.ctx = ctx
        self.market = market
        self.account = account
        self.start_cash = float(cash)
        self.cash = float(cash)
        self.realized = 0.0
        self.commissions = 0.0
        self.positions: dict[str, Position] = {}
        #: events where a position went (further) below zero: dicts for the report
        self.shorts: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ book-keeping

    def position(self, symbol: str) -> float:
        """Signed shares held in ``symbol`` (0 when none)."""
        p = self.positions.get(symbol)
        return p.qty if p else 0.0

    def mark(self, p: Position) -> float:
        """Mark price of a position (last replayed trade, else avg cost), dollars."""
        tick = self.market.last_trade(p.info.symbol)
        return tick.price if tick is not None else p.avg_cost

    def apply_fill(self, info: Any, side: str, shares: float, price: float, commission: float,
                   *, order: Any = None) -> float | None:
        """Book one execution; returns the realized P&L of its closing part (None if opening only).

        Args:
            side: ``BOT`` or ``SLD``; shares: positive; price and commission: dollars.
        """
        p = self.positions.get(info.symbol)
        if p is None:
            p = self.positions[info.symbol] = Position(info)
        s = shares if side == "BOT" else -shares
        q = p.qty
        self.cash -= s * price + commission
        self.commissions += commission
        realized: float | None = None
        if q == 0 or (q > 0) == (s > 0):
            total = q * p.avg_cost + s * price + commission
            p.qty = q + s
            p.avg_cost = total / p.qty
        else:
            closing = min(abs(s), abs(q))
            opening = abs(s) - closing
            c_close = commission * closing / abs(s)
            realized = closing * (price - p.avg_cost) * (1 if q > 0 else -1) - c_close
            p.realized += realized
            self.realized += realized
            p.qty = q + s
            if opening > 0:
                p.avg_cost = (p.qty * price + (commission - c_close)) / p.qty
            elif p.qty == 0:
                p.avg_cost = 0.0
        if p.qty < p.min_qty:
            p.min_qty = p.qty
        if p.qty < 0 and p.qty < q:
            self.shorts.append({
                "symbol": info.symbol, "position": qty_field(p.qty), "before": qty_field(q),
                "market_time": market_iso(self.ctx.now()),
                "order_id": getattr(order, "order_id", None), "client_id": getattr(order, "client_id", None),
                "perm_id": getattr(order, "perm_id", None),
            })
            self.ctx.log("position_short", symbol=info.symbol, position=p.qty,
                        order_id=getattr(order, "order_id", None))
        return realized

    def values(self) -> dict[str, tuple[str, str]]:
        """Account values: tag → (value text, currency)."""
        gross = 0.0
        mv = 0.0
        unreal = 0.0
        for p in self.positions.values():
            if p.qty:
                m = self.mark(p)
                gross += abs(p.qty) * m
                mv += p.qty * m
                unreal += p.qty * (m - p.avg_cost)
        nlv = self.cash + mv
        margin = MARGIN_RATE * gross
        excess = nlv - margin
        avail = nlv - margin
        f = "{:.2f}".format
        usd = "USD"
        return {
            "AccountCode": (self.account, ""),
            "AccountType": ("INDIVIDUAL", ""),
            "Currency": ("USD", "USD"),
            "NetLiquidation": (f(nlv), usd),
            "TotalCashValue": (f(self.cash), usd),
            "SettledCash": (f(self.cash), usd),
            "CashBalance": (f(self.cash), usd),
            "EquityWithLoanValue": (f(nlv), usd),
            "GrossPositionValue": (f(gross), usd),
            "StockMarketValue": (f(mv), usd),
            "InitMarginReq": (f(margin), usd),
            "MaintMarginReq": (f(margin), usd),
            "FullInitMarginReq": (f(margin), usd),
            "FullMaintMarginReq": (f(margin), usd),
            "AvailableFunds": (f(avail), usd),
            "FullAvailableFunds": (f(avail), usd),
            "ExcessLiquidity": (f(excess), usd),
            "FullExcessLiquidity": (f(excess), usd),
            "BuyingPower": (f(max(0.0, DAY_TRADING_MULTIPLE * excess)), usd),
            "Cushion": (f"{(excess / nlv) if nlv else 0.0:.6f}", ""),
            "UnrealizedPnL": (f(unreal), usd),
            "RealizedPnL": (f(self.realized), usd),
            "DayTradesRemaining": ("-1", ""),
            "Leverage-S": (f"{(gross / nlv) if nlv else 0.0:.4f}", ""),
        }

    def pnl(self) -> tuple[float, float, float]:
        """(daily, unrealized, realized) P&L in dollars since the start of the run."""
        unreal = sum(p.qty * (self.mark(p) - p.avg_cost) for p in self.positions.values() if p.qty)
        return self.realized + unreal, unreal, self.realized
