"""Contract lookup: ``reqContractDetails`` (9) → ``contractDetails`` (10) + end (52), or error 200.

Only US stocks of the replayed data exist (secType ``STK``, currency ``USD``, SMART routing
with the primary exchange from DATA's contract table). A request is resolved by ``conId``
when it is non-zero, otherwise by ``symbol`` (or ``localSymbol``); anything else (an unknown
symbol, another secType or currency) gets ``4|2|reqId|200|No security definition has been
found for the request|∅`` — ib_async's ``qualifyContracts`` then returns None for it.

Message layouts: ``shared/docs/ib-protocol-notes.md`` §5.0 (the 12-field contract block) and
§6.7 (contractDetails at v178, 42 fields, no version field).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from daytrading.sim_gateway.wire import parse_float, parse_int
from daytrading.clock import calendar

if TYPE_CHECKING:
    from daytrading.sim_gateway.server import Connection, SimGateway

__all__ = ["ContractService", "RequestContract", "contract_block", "parse_contract", "trading_class"]

ORDER_TYPES = "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,DEACTDIS,GTC,IOC,LMT,MKT,NONALGO,OCA,STP,STPLMT,TRAIL,WHATIF"
VALID_EXCHANGES = "SMART,AMEX,NYSE,ARCA,BATS,EDGX,ISLAND,IEX,NASDAQ"
NOT_FOUND = "No security definition has been found for the request"


class RequestContract:
    """The 12-field contract block of a request (notes §5.0)."""

    __slots__ = ("con_id", "currency", "exchange", "local_symbol", "primary_exchange", "sec_type", "symbol",
                 "trading_class")

    def __init__(self, fields: list[str]) -> None:
        if len(fields) < 12:
            raise ValueError(f"contract block needs 12 fields, got {len(fields)}: {fields!r}")
        self.con_id = parse_int(fields[0])
        self.symbol = fields[1]
        self.sec_type = fields[2]
        self.exchange = fields[7]
        self.primary_exchange = fields[8]
        self.currency = fields[9]
        self.local_symbol = fields[10]
        self.trading_class = fields[11]
        _ = parse_float(fields[4])  # strike: validated numeric

    def __repr__(self) -> str:
        return f"{self.symbol or self.local_symbol or self.con_id}/{self.sec_type}/{self.exchange}/{self.currency}"


def parse_contract(fields: list[str], start: int) -> RequestContract:
    """Parse the contract block beginning at ``fields[start]``."""
    return RequestContract(fields[start:start + 12])


def trading_class(info: Any) -> str:
    """IB's tradingClass of a US stock: ``NMS`` for Nasdaq listings, else the symbol."""
    return "NMS" if info.primary_exchange == "NASDAQ" else ib_symbol(info.symbol)


def ib_symbol(symbol: str) -> str:
    """IB's spelling of a data symbol (``BRK-B`` → ``BRK B``)."""
    return symbol.replace("-", " ")


def contract_block(info: Any, exchange: str, *, with_primary: bool = False) -> list[Any]:
    """Contract echo for outgoing messages.

    Without ``with_primary``: ``conId|symbol|STK|∅|0.0|∅|∅|exchange|USD|localSymbol|tradingClass``
    (11 fields, the layout of position/execDetails/openOrder). With it the primary exchange
    is inserted after ``exchange`` (12 fields).
    """
    sym = ib_symbol(info.symbol)
    out: list[Any] = [info.con_id, sym, "STK", "", 0.0, "", "", exchange]
    if with_primary:
        out.append(info.primary_exchange)
    out += ["USD", sym, trading_class(info)]
    return out


class ContractService:
    """Resolves request contracts and answers ``reqContractDetails``."""

    def __init__(self, gateway: SimGateway) -> None:
        self.gw = gateway

    def install(self) -> None:
        """Register the reqContractDetails handler (9)."""
        self.gw.register(9, self.req_contract_details)

    def resolve(self, rc: RequestContract) -> Any | None:
        """The market's ContractInfo for a request contract, or None (→ error 200)."""
        market = self.gw.market
        if rc.sec_type not in ("", "STK") or rc.currency not in ("", "USD"):
            return None
        if rc.con_id:
            info = market.contract_by_id(rc.con_id)
            if info is None:
                return None
            if rc.symbol and market.contract(rc.symbol) is not info:
                return None
            return info
        name = rc.symbol or rc.local_symbol
        return market.contract(name) if name else None

    def req_contract_details(self, conn: Connection, fields: list[str]) -> None:
        """``9|8|reqId|<contract 12>|includeExpired|secIdType|secId|issuerId`` → 10 + 52 or 200."""
        req_id = parse_int(fields[2])
        rc = parse_contract(fields, 3)
        info = self.resolve(rc)
        if info is None:
            conn.send_error(req_id, 200, NOT_FOUND)
            self.gw.log("contract_not_found", client_id=conn.client_id, contract=repr(rc))
            return
        conn.send(*self.details_message(req_id, info, rc.exchange or "SMART"))
        conn.send(52, 1, req_id)

    def details_message(self, req_id: int, info: Any, exchange: str) -> list[Any]:
        """contractDetails (10) at v178: 42 fields (notes §6.7)."""
        sym = ib_symbol(info.symbol)
        trading, liquid = self._hours(self.gw.market.session_date)
        n_exch = len(VALID_EXCHANGES.split(","))
        return [
            10, req_id, sym, "STK", "", 0.0, "", exchange, "USD", sym, trading_class(info), trading_class(info),
            info.con_id, info.min_tick, "", ORDER_TYPES, VALID_EXCHANGES, 1, 0,
            (info.long_name or sym).replace("\\", "/"), info.primary_exchange, "", "", "", "",
            "US/Eastern", trading, liquid, "", "",
            0,  # secIdList count
            1, "", "", ",".join(["26"] * n_exch), "", "COMMON", 0.0001, 0.0001, 100,
        ]

    @staticmethod
    def _hours(day: date) -> tuple[str, str]:
        """tradingHours (04:00–20:00) and liquidHours (regular session) for a week from ``day``."""
        cal = calendar()
        trading, liquid = [], []
        for i in range(7):
            d = day + timedelta(days=i)
            key = d.strftime("%Y%m%d")
            if not cal.is_session(d):
                trading.append(f"{key}:CLOSED")
                liquid.append(f"{key}:CLOSED")
                continue
            s = cal.session(d)
            trading.append(f"{key}:0400-{key}:2000")
            liquid.append(f"{key}:{s.open:%H%M}-{key}:{s.close:%H%M}")
        return ";".join(trading), ";".join(liquid)
