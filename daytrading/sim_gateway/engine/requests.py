"""The requests the engine accepts, as typed values (the protocol layer decodes them from the wire).

Prices are dollars, quantities shares; ``None`` prices mean "not set".
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PlaceOrder", "RequestContract"]


@dataclass(frozen=True)
class RequestContract:
    """The 12-field contract block of a request (``conId|symbol|secType|lastTradeDateOrContractMonth|
    strike|right|multiplier|exchange|primaryExchange|currency|localSymbol|tradingClass``)."""

    con_id: int
    symbol: str
    sec_type: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str

    def __repr__(self) -> str:
        return f"{self.symbol or self.local_symbol or self.con_id}/{self.sec_type}/{self.exchange}/{self.currency}"


@dataclass(frozen=True)
class PlaceOrder:
    """placeOrder (3): the fields the sim uses, named (prices dollars, quantity shares).

    ``conditions`` counts order conditions (the sim supports none); ``unread`` counts fields
    left after the layout of the negotiated version (0 for a well-formed message).
    """

    order_id: int
    contract: RequestContract
    action: str
    total_qty: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    good_till_date: str
    oca_type: int
    conditions: int = 0
    unread: int = 0
