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
account-wide and pushed to every subscriber after each fill and once a market minute.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daytrading.sim_gateway.protocol import messages
from daytrading.sim_gateway.protocol.messages import money, qty_field
from daytrading.sim_gateway.protocol.wire import parse_int
from daytrading.clock import NY

if TYPE_CHECKING:
    from daytrading.sim_gateway.server import Connection, SimGateway

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

    Args:
        gateway: the owning gateway; account: account id; cash: starting cash (dollars).
    """

    def __init__(self, gateway: SimGateway, account: str, cash: float) -> None:
        self.gw = gateway
        self.account = account
        self.start_cash = float(cash)
        self.cash = float(cash)
        self.realized = 0.0
        self.commissions = 0.0
        self.positions: dict[str, Position] = {}
        #: events where a position went (further) below zero: dicts for the report
        self.shorts: list[dict[str, Any]] = []

    def install(self) -> None:
        """Register the account request handlers."""
        r = self.gw.register
        r(61, self._req_positions)
        r(64, self._cancel_positions)
        r(6, self._req_account_updates)
        r(76, self._req_account_updates_multi)
        r(77, self._cancel_multi)
        r(62, self._req_account_summary)
        r(63, self._cancel_summary)
        r(92, self._req_pnl)
        r(93, self._cancel_pnl)
        r(94, self._req_pnl_single)
        r(95, self._cancel_pnl_single)

    # ------------------------------------------------------------------ book-keeping

    def position(self, symbol: str) -> float:
        """Signed shares held in ``symbol`` (0 when none)."""
        p = self.positions.get(symbol)
        return p.qty if p else 0.0

    def mark(self, p: Position) -> float:
        """Mark price of a position (last replayed trade, else avg cost), dollars."""
        tick = self.gw.market.last_trade(p.info.symbol)
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
                "market_time": datetime.fromtimestamp(self.gw.now(), tz=NY).isoformat(timespec="seconds"),
                "order_id": getattr(order, "order_id", None), "client_id": getattr(order, "client_id", None),
                "perm_id": getattr(order, "perm_id", None),
            })
            self.gw.log("position_short", symbol=info.symbol, position=p.qty,
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

    # ------------------------------------------------------------------ messages

    def position_msg(self, p: Position) -> list[Any]:
        """position (61) (:func:`.protocol.messages.position`)."""
        return messages.position(self.account, p)

    def portfolio_msg(self, p: Position) -> list[Any]:
        """updatePortfolio (7) marked at the last trade (:func:`.protocol.messages.portfolio`)."""
        return messages.portfolio(self.account, p, self.mark(p) if p.qty else 0.0)

    def _value_msgs(self) -> list[list[Any]]:
        """Account values (6) and the account time (8) as messages."""
        out: list[list[Any]] = [[6, 2, key, value, cur, self.account] for key, (value, cur) in self.values().items()]
        out.append([8, 1, datetime.fromtimestamp(self.gw.now(), tz=NY).strftime("%H:%M")])
        return out

    def push_position(self, symbol: str) -> None:
        """After a fill: position (61) to reqPositions subscribers, portfolio (7) + values (6)
        + time (8) to reqAccountUpdates subscribers, PnL (94/95) to reqPnL subscribers.

        The messages are built now (they show the position right after this fill) and sent
        ``executions_ms + positions_ms`` market milliseconds later (:mod:`.latency`)."""
        p = self.positions.get(symbol)
        out: list[tuple[Connection, list[Any]]] = []
        for conn in list(self.gw.connections):
            if not conn.ready or conn.closed:
                continue
            if p is not None and conn.positions_sub:
                out.append((conn, self.position_msg(p)))
            if conn.account_sub:
                if p is not None:
                    out.append((conn, self.portfolio_msg(p)))
                out += [(conn, m) for m in self._value_msgs()]
            out += [(conn, m) for m in self._pnl_msgs(conn)]
        lat = self.gw.faults.latency
        self._deliver(out, lat.seconds("executions_ms") + lat.seconds("positions_ms"))

    def _deliver(self, out: list[tuple[Connection, list[Any]]], delay: float = 0.0) -> None:
        """Send ``(connection, message)`` pairs through the ``positions`` channel of the delay line."""
        if not out:
            return

        def send() -> None:
            for conn, msg in out:
                conn.send(*msg)

        self.gw.delays.submit("positions", delay, send)

    def _pnl_msgs(self, conn: Connection) -> list[list[Any]]:
        """PnL (94) and PnL single (95) messages for ``conn``'s open requests."""
        out: list[list[Any]] = []
        if conn.pnl_reqs:
            daily, unreal, real = self.pnl()
            out += [[94, req_id, money(daily), money(unreal), money(real)] for req_id in conn.pnl_reqs]
        for req_id, con_id in conn.state.get("pnl_single", {}).items():
            info = self.gw.market.contract_by_id(con_id)
            p = self.positions.get(info.symbol) if info else None
            if p is None:
                out.append([95, req_id, 0, 0.0, 0.0, 0.0, 0.0])
                continue
            m = self.mark(p)
            unreal = p.qty * (m - p.avg_cost)
            out.append([95, req_id, qty_field(p.qty), money(unreal + p.realized), money(unreal),
                        money(p.realized), money(p.qty * m)])
        return out

    async def run(self) -> None:
        """Refresh marks to subscribers once per market minute (at most 4 times a wall second)."""
        while True:
            # one market minute, but at most 4 times a wall second (clock.speed market s per wall s)
            speed = max(float(getattr(self.gw.clock, "speed", 1.0)), 1e-9)
            await asyncio.sleep(max(PUSH_EVERY / speed, 0.25))
            out: list[tuple[Connection, list[Any]]] = []
            for conn in list(self.gw.connections):
                if not conn.ready or conn.closed:
                    continue
                if conn.account_sub:
                    out += [(conn, self.portfolio_msg(p)) for p in self.positions.values() if p.qty]
                    out += [(conn, m) for m in self._value_msgs()]
                out += [(conn, m) for m in self._pnl_msgs(conn)]
            self._deliver(out)

    # ------------------------------------------------------------------ handlers

    def _req_positions(self, conn: Connection, fields: list[str]) -> None:
        """``61|1`` → 61 per held position, then 62 (queued behind held-back pushes)."""
        conn.positions_sub = True
        out = [(conn, self.position_msg(p)) for p in self.positions.values() if p.qty]
        self._deliver([*out, (conn, [62, 1])])

    def _cancel_positions(self, conn: Connection, fields: list[str]) -> None:
        conn.positions_sub = False

    def _req_account_updates(self, conn: Connection, fields: list[str]) -> None:
        """``6|2|subscribe|account`` → 6…, 7…, 8, 54 (notes §4.2 row 4)."""
        subscribe = fields[2] == "1"
        conn.account_sub = subscribe
        if not subscribe:
            return
        out = [(conn, m) for m in self._value_msgs()]
        out += [(conn, self.portfolio_msg(p)) for p in self.positions.values() if p.qty]
        self._deliver([*out, (conn, [54, 1, self.account])])

    def _req_account_updates_multi(self, conn: Connection, fields: list[str]) -> None:
        """``76|1|reqId|account|modelCode|ledgerAndNLV`` → 73… then 74."""
        req_id = parse_int(fields[2])
        conn.multi_reqs.add(req_id)
        for key, (value, cur) in self.values().items():
            conn.send(73, 1, req_id, self.account, "", key, value, cur)
        conn.send(74, 1, req_id)

    def _cancel_multi(self, conn: Connection, fields: list[str]) -> None:
        conn.multi_reqs.discard(parse_int(fields[2]))

    def _req_account_summary(self, conn: Connection, fields: list[str]) -> None:
        """``62|1|reqId|group|tags`` → 63 per (account, tag) then 64."""
        req_id = parse_int(fields[2])
        tags = [t.strip() for t in (fields[4] if len(fields) > 4 else "").split(",") if t.strip()]
        values = self.values()
        wanted = [t for t in tags if t in values] if tags and "All" not in tags else list(values)
        conn.summary_reqs[req_id] = wanted
        for tag in wanted:
            value, cur = values[tag]
            conn.send(63, 1, req_id, self.account, tag, value, cur)
        conn.send(64, 1, req_id)

    def _cancel_summary(self, conn: Connection, fields: list[str]) -> None:
        conn.summary_reqs.pop(parse_int(fields[2]), None)

    def _req_pnl(self, conn: Connection, fields: list[str]) -> None:
        """``92|reqId|account|modelCode`` → 94 now and after every change / market minute."""
        req_id = parse_int(fields[1])
        conn.pnl_reqs.add(req_id)
        daily, unreal, real = self.pnl()
        self._deliver([(conn, [94, req_id, money(daily), money(unreal), money(real)])])

    def _cancel_pnl(self, conn: Connection, fields: list[str]) -> None:
        conn.pnl_reqs.discard(parse_int(fields[1]))

    def _req_pnl_single(self, conn: Connection, fields: list[str]) -> None:
        """``94|reqId|account|modelCode|conId`` → 95 pushes."""
        req_id = parse_int(fields[1])
        conn.state.setdefault("pnl_single", {})[req_id] = parse_int(fields[4])
        self._deliver([(conn, m) for m in self._pnl_msgs(conn)])

    def _cancel_pnl_single(self, conn: Connection, fields: list[str]) -> None:
        conn.state.get("pnl_single", {}).pop(parse_int(fields[1]), None)

