"""Contract lookup: ``reqContractDetails`` (9) → ``contractDetails`` (10) + end (52), or error 200.

Only US stocks of the replayed data exist (secType ``STK``, currency ``USD``, SMART routing
with the primary exchange from DATA's contract table). A request is resolved by ``conId``
when it is non-zero, otherwise by ``symbol`` (or ``localSymbol``); anything else (an unknown
symbol, another secType or currency) gets ``4|2|reqId|200|No security definition has been
found for the request|∅`` — ib_async's ``qualifyContracts`` then returns None for it.

Message layouts: :mod:`.protocol.requests` (the request) and :func:`.protocol.messages.contract_details`.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from daytrading.sim_gateway.protocol import messages
from daytrading.sim_gateway.protocol.requests import ReqContractDetails, RequestContract
from daytrading.clock import calendar

if TYPE_CHECKING:
    from daytrading.sim_gateway.server import Connection, SimGateway

__all__ = ["NOT_FOUND", "ContractService"]

NOT_FOUND = "No security definition has been found for the request"


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

    def req_contract_details(self, conn: Connection, req: ReqContractDetails) -> None:
        """``9|8|reqId|<contract 12>|includeExpired|secIdType|secId[|issuerId]`` → 10 + 52 or 200."""
        info = self.resolve(req.contract)
        if info is None:
            conn.send_error(req.req_id, 200, NOT_FOUND)
            self.gw.log("contract_not_found", client_id=conn.client_id, contract=repr(req.contract))
            return
        conn.send(*self.details_message(req.req_id, info, req.contract.exchange or "SMART", conn.server_version))
        conn.send(52, 1, req.req_id)

    def details_message(self, req_id: int, info: Any, exchange: str, version: int) -> list[Any]:
        """contractDetails (10) at ``version`` (:func:`.protocol.messages.contract_details`)."""
        trading, liquid = self._hours(self.gw.market.session_date)
        return messages.contract_details(version, req_id, info, exchange, trading, liquid)

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
