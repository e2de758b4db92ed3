"""Typed decoders of incoming requests: named field layouts that follow the negotiated version.

Each decoder reads a message's text fields in order with a :class:`FieldReader` and returns a
frozen dataclass, the way ib_async's ``Decoder`` turns incoming fields into objects, in
reverse (the field orders are those of ib_async's ``client.py`` and IB's ``ibapi/client.py``,
which agree at every version the sim speaks except where :mod:`.versions` says). The engine
receives these objects, never fields.

Raises (every decoder): :class:`RequestError` naming the message, the field and its text when
a field is missing or not a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from daytrading.sim_gateway.engine.requests import PlaceOrder, RequestContract
from daytrading.sim_gateway.protocol import versions as v
from daytrading.sim_gateway.protocol.wire import UNSET_DOUBLE, parse_float, parse_int

__all__ = [
    "CancelOrder",
    "FieldReader",
    "PlaceOrder",
    "ReqContractDetails",
    "ReqExecutions",
    "RequestContract",
    "RequestError",
    "decode_cancel_order",
    "decode_contract",
    "decode_contract_details",
    "decode_executions",
    "decode_place_order",
]


class RequestError(ValueError):
    """A request whose fields do not match its layout (names message, field and text)."""


class FieldReader:
    """Reads the fields of one message in order (``fields[0]`` is the message id)."""

    def __init__(self, fields: list[str], message: str, start: int = 1) -> None:
        self.fields = fields
        self.message = message
        self.pos = start

    def text(self, name: str) -> str:
        """The next field as text."""
        if self.pos >= len(self.fields):
            raise RequestError(f"{self.message}: missing field {name!r} (field {self.pos}; "
                               f"the message has {len(self.fields)})")
        value = self.fields[self.pos]
        self.pos += 1
        return value

    def optional_text(self, name: str) -> str:
        """The next field as text, or empty when the message ended (clients may trim trailing fields)."""
        return self.text(name) if self.pos < len(self.fields) else ""

    def int(self, name: str, default: int = 0) -> int:
        """The next field as an integer (empty → ``default``)."""
        raw = self.text(name)
        try:
            return parse_int(raw, default)
        except ValueError:
            raise RequestError(f"{self.message}: field {name!r} must be an integer, got {raw!r}") from None

    def float(self, name: str, default: float = 0.0) -> float:
        """The next field as a number (empty → ``default``)."""
        raw = self.text(name)
        try:
            return parse_float(raw, default)
        except ValueError:
            raise RequestError(f"{self.message}: field {name!r} must be a number, got {raw!r}") from None

    def price(self, name: str) -> float | None:
        """A price field: empty or UNSET → None."""
        value = self.float(name, UNSET_DOUBLE)
        return None if value >= UNSET_DOUBLE or math.isnan(value) else value

    def bool(self, name: str) -> bool:
        """A flag field (``1``/``0``, empty = False)."""
        return self.int(name) != 0

    def skip(self, *names: str) -> None:
        """Fields the sim does not use, read past by name."""
        for name in names:
            self.text(name)

    @property
    def left(self) -> int:
        """Fields not read yet."""
        return len(self.fields) - self.pos


def decode_contract(r: FieldReader) -> RequestContract:
    """Read the contract block at the reader's position."""
    con_id = r.int("conId")
    symbol = r.text("symbol")
    sec_type = r.text("secType")
    r.skip("lastTradeDateOrContractMonth")
    r.float("strike")
    r.skip("right", "multiplier")
    exchange = r.text("exchange")
    primary = r.text("primaryExchange")
    currency = r.text("currency")
    local = r.text("localSymbol")
    trading_class = r.text("tradingClass")
    return RequestContract(con_id, symbol, sec_type, exchange, primary, currency, local, trading_class)


def decode_place_order(fields: list[str], version: int) -> PlaceOrder:
    """Decode placeOrder at server ``version`` (157–178), following ib_async's ``client.placeOrder``
    and ibapi's ``EClient.placeOrder`` field by field (no message version field from 145 on)."""
    r = FieldReader(fields, "placeOrder")
    order_id = r.int("orderId")
    contract = decode_contract(r)
    r.skip("secIdType", "secId")
    action = r.text("action").upper()
    qty = r.float("totalQuantity")
    order_type = r.text("orderType").upper()
    lmt, aux = r.price("lmtPrice"), r.price("auxPrice")
    tif = r.text("tif").upper()
    oca_group, account = r.text("ocaGroup"), r.text("account")
    r.skip("openClose", "origin")
    order_ref = r.text("orderRef")
    transmit = r.text("transmit") != "0"
    parent_id = r.int("parentId")
    r.skip("blockOrder", "sweepToFill", "displaySize", "triggerMethod")
    outside_rth = r.bool("outsideRth")
    r.skip("hidden")
    if contract.sec_type == "BAG":
        raise RequestError("placeOrder: combo (BAG) orders are not supported by the sim-gateway")
    r.skip("sharesAllocation", "discretionaryAmt", "goodAfterTime")
    good_till = r.text("goodTillDate")
    r.skip("faGroup", "faMethod", "faPercentage")
    if version < v.FA_PROFILE_DESUPPORT:
        r.skip("faProfile")
    r.skip("modelCode", "shortSaleSlot", "designatedLocation", "exemptCode")
    oca_type = r.int("ocaType")
    base = PlaceOrder(order_id, contract, action, qty, order_type, lmt, aux, "DAY" if tif in ("", "DTC") else tif,
                      oca_group, account, order_ref, transmit, parent_id, outside_rth, good_till, oca_type)
    return _place_order_tail(r, base, version, contract)


def _place_order_tail(r: FieldReader, base: PlaceOrder, version: int, contract: RequestContract) -> PlaceOrder:
    """The rest of placeOrder after ``ocaType``: read to the end so that the layout is checked."""
    r.skip("rule80A", "settlingFirm", "allOrNone", "minQty", "percentOffset", "eTradeOnly", "firmQuoteOnly",
           "nbboPriceCap", "auctionStrategy", "startingPrice", "stockRefPrice", "delta", "stockRangeLower",
           "stockRangeUpper", "overridePercentageConstraints", "volatility", "volatilityType")
    if r.text("deltaNeutralOrderType"):
        r.skip("deltaNeutralAuxPrice", "deltaNeutralConId", "deltaNeutralSettlingFirm",
               "deltaNeutralClearingAccount", "deltaNeutralClearingIntent", "deltaNeutralOpenClose",
               "deltaNeutralShortSale", "deltaNeutralShortSaleSlot", "deltaNeutralDesignatedLocation")
    else:
        r.skip("deltaNeutralAuxPrice")
    r.skip("continuousUpdate", "referencePriceType", "trailStopPrice", "trailingPercent", "scaleInitLevelSize",
           "scaleSubsLevelSize")
    increment = r.float("scalePriceIncrement", UNSET_DOUBLE)
    if 0 < increment < UNSET_DOUBLE:
        r.skip("scalePriceAdjustValue", "scalePriceAdjustInterval", "scaleProfitOffset", "scaleAutoReset",
               "scaleInitPosition", "scaleInitFillQty", "scaleRandomPercent")
    r.skip("scaleTable", "activeStartTime", "activeStopTime")
    if r.text("hedgeType"):
        r.skip("hedgeParam")
    r.skip("optOutSmartRouting", "clearingAccount", "clearingIntent", "notHeld")
    if r.bool("deltaNeutralContract"):
        r.skip("dncConId", "dncDelta", "dncPrice")
    if r.text("algoStrategy"):
        for _ in range(r.int("algoParams")):
            r.skip("tag", "value")
    r.skip("algoId", "whatIf", "orderMiscOptions", "solicited", "randomizeSize", "randomizePrice")
    return _place_order_end(r, base, version, contract)


def _place_order_end(r: FieldReader, base: PlaceOrder, version: int, contract: RequestContract) -> PlaceOrder:
    """placeOrder from the PEG BENCH block on: conditions, adjustments and the gated fields."""
    order_type = base.order_type
    if order_type in ("PEG BENCH", "PEGBENCH"):
        r.skip("referenceContractId", "isPeggedChangeAmountDecrease", "peggedChangeAmount",
               "referenceChangeAmount", "referenceExchangeId")
    conditions = r.int("conditions")
    if conditions:
        return _replace(base, conditions=conditions, unread=r.left)
    r.skip("adjustedOrderType", "triggerPrice", "lmtPriceOffset", "adjustedStopPrice", "adjustedStopLimitPrice",
           "adjustedTrailingAmount", "adjustableTrailingUnit", "extOperator", "softDollarTier.name",
           "softDollarTier.value", "cashQty", "mifid2DecisionMaker", "mifid2DecisionAlgo", "mifid2ExecutionTrader",
           "mifid2ExecutionAlgo", "dontUseAutoPriceForHedge", "isOmsContainer", "discretionaryUpToLimitPrice",
           "usePriceMgmtAlgo")
    for gate, name in ((v.DURATION, "duration"), (v.POST_TO_ATS, "postToAts"),
                       (v.AUTO_CANCEL_PARENT, "autoCancelParent"),
                       (v.ADVANCED_ORDER_REJECT, "advancedErrorOverride"), (v.MANUAL_ORDER_TIME, "manualOrderTime")):
        if version >= gate:
            r.skip(name)
    if version >= v.PEGBEST_PEGMID_OFFSETS:
        if contract.exchange == "IBKRATS":
            r.skip("minTradeQty")
        if order_type in ("PEG BEST", "PEGBEST"):
            r.skip("minCompeteSize")
            if r.float("competeAgainstBestOffset") == math.inf:
                r.skip("midOffsetAtWhole", "midOffsetAtHalf")
        elif order_type in ("PEG MID", "PEGMID"):
            r.skip("midOffsetAtWhole", "midOffsetAtHalf")
    return _replace(base, unread=r.left)


def _replace(p: PlaceOrder, **changes: int) -> PlaceOrder:
    from dataclasses import replace

    return replace(p, **changes)


@dataclass(frozen=True)
class CancelOrder:
    """cancelOrder (4): ``4|1|orderId`` plus ``manualOrderCancelTime`` from 169."""

    order_id: int
    manual_cancel_time: str = ""


def decode_cancel_order(fields: list[str], version: int) -> CancelOrder:
    """Decode cancelOrder at ``version`` (message version field 1 below 192)."""
    r = FieldReader(fields, "cancelOrder")
    r.skip("version")
    order_id = r.int("orderId")
    manual = r.optional_text("manualOrderCancelTime") if version >= v.MANUAL_ORDER_TIME else ""
    return CancelOrder(order_id, manual)


@dataclass(frozen=True)
class ReqExecutions:
    """reqExecutions (7): ``7|3|reqId|clientId|acctCode|time|symbol|secType|exchange|side`` (the filter)."""

    req_id: int
    client_id: int
    account: str
    time: str
    symbol: str
    sec_type: str
    exchange: str
    side: str


def decode_executions(fields: list[str], version: int) -> ReqExecutions:  # noqa: ARG001 - same at 157-178
    """Decode reqExecutions (no version gate between 157 and 178; the filter may be trimmed)."""
    r = FieldReader(fields, "reqExecutions")
    r.skip("version")
    req_id = r.int("reqId")
    client_id = parse_int(r.optional_text("clientId") or "0")
    return ReqExecutions(req_id, client_id, r.optional_text("acctCode"), r.optional_text("time"),
                         r.optional_text("symbol").upper(), r.optional_text("secType"),
                         r.optional_text("exchange"), r.optional_text("side").upper())


@dataclass(frozen=True)
class ReqContractDetails:
    """reqContractDetails (9): ``9|8|reqId|<contract>|includeExpired|secIdType|secId`` (+ ``issuerId`` from 176)."""

    req_id: int
    contract: RequestContract
    issuer_id: str = ""


def decode_contract_details(fields: list[str], version: int) -> ReqContractDetails:
    """Decode reqContractDetails at ``version``."""
    r = FieldReader(fields, "reqContractDetails")
    r.skip("version")
    req_id = r.int("reqId")
    contract = decode_contract(r)
    r.skip("includeExpired", "secIdType", "secId")
    issuer = r.optional_text("issuerId") if version >= v.BOND_ISSUERID else ""
    return ReqContractDetails(req_id, contract, issuer)
