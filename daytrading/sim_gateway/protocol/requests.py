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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daytrading.sim_gateway.engine.requests import PlaceOrder, RequestContract
from daytrading.sim_gateway.protocol import versions as v
from daytrading.sim_gateway.protocol.wire import UNSET_DOUBLE, parse_float, parse_int

__all__ = [
    "Cancel",
    "CancelOrder",
    "DECODERS",
    "Decoder",
    "FieldReader",
    "NoArgs",
    "PlaceOrder",
    "ReqAccountSummary",
    "ReqAccountUpdates",
    "ReqAccountUpdatesMulti",
    "ReqAutoOpenOrders",
    "ReqCompletedOrders",
    "ReqContractDetails",
    "ReqExecutions",
    "ReqHeadTimeStamp",
    "ReqHistoricalData",
    "ReqIds",
    "ReqMarketDataType",
    "ReqMktData",
    "ReqPnL",
    "ReqPnLSingle",
    "ReqRealTimeBars",
    "ReqScannerSubscription",
    "RequestContract",
    "RequestError",
    "StartApi",
    "decode_cancel_order",
    "decode_contract",
    "decode_contract_details",
    "decode_executions",
    "decode_place_order",
    "decode_request",
    "tag_values",
]


class RequestError(ValueError):
    """A request whose fields do not match its layout (names message, field and text).

    ``message`` is the request's name (``placeOrder``); ``req_id`` the request or order id when it
    was read before the bad field (else -1), so that the error can be answered for that request.
    """

    def __init__(self, text: str, *, message: str = "", req_id: int = -1) -> None:
        super().__init__(text)
        self.message = message
        self.req_id = req_id

#: Field names whose value identifies the request in an error reply.
_ID_FIELDS = ("reqId", "orderId")


class FieldReader:
    """Reads the fields of one message in order (``fields[0]`` is the message id)."""

    def __init__(self, fields: list[str], message: str, start: int = 1) -> None:
        self.fields = fields
        self.message = message
        self.pos = start
        self.req_id = -1

    def error(self, text: str) -> RequestError:
        """A :class:`RequestError` about this message (with the id read so far)."""
        return RequestError(f"{self.message}: {text}", message=self.message, req_id=self.req_id)

    def text(self, name: str) -> str:
        """The next field as text."""
        if self.pos >= len(self.fields):
            raise self.error(f"missing field {name!r} (field {self.pos}; the message has {len(self.fields)})")
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
            value = parse_int(raw, default)
        except ValueError:
            raise self.error(f"field {name!r} must be an integer, got {raw!r}") from None
        if name in _ID_FIELDS:
            self.req_id = value
        return value

    def float(self, name: str, default: float = 0.0) -> float:
        """The next field as a number (empty → ``default``)."""
        raw = self.text(name)
        try:
            return parse_float(raw, default)
        except ValueError:
            raise self.error(f"field {name!r} must be a number, got {raw!r}") from None

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
        raise r.error("combo (BAG) orders are not supported by the sim-gateway")
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


# --------------------------------------------------------------------------- the other requests
#
# Layouts as ib_async's ``client.py`` sends them (IB's ``ibapi/client.py`` sends the same at
# 157-178: none of these requests has a version gate in that range). ``V`` is the message's own
# version field where it still has one. Trailing option fields (``mktDataOptions``,
# ``chartOptions``, ``realTimeBarsOptions``, scanner options) are read when present: old clients
# and ibapi may leave them off.


@dataclass(frozen=True)
class NoArgs:
    """A request without content: reqOpenOrders ``5|1``, reqAllOpenOrders ``16|1``, reqManagedAccts
    ``17|1``, reqScannerParameters ``24|1``, reqCurrentTime ``49|1``, reqGlobalCancel ``58|1``,
    reqPositions ``61|1``, cancelPositions ``64|1``."""

    message: str


@dataclass(frozen=True)
class Cancel:
    """A cancel of one subscription by its request id: cancelMktData ``2|2|reqId``,
    cancelScannerSubscription ``23|1|reqId``, cancelHistoricalData ``25|1|reqId``,
    cancelRealTimeBars ``51|1|reqId``, cancelAccountSummary ``63|1|reqId``,
    cancelAccountUpdatesMulti ``77|1|reqId``, cancelPnL ``93|reqId``, cancelPnLSingle ``95|reqId``."""

    message: str
    req_id: int


@dataclass(frozen=True)
class StartApi:
    """startApi (71): ``71|2|clientId|optionalCapabilities``."""

    client_id: int
    optional_capabilities: str = ""


@dataclass(frozen=True)
class ReqIds:
    """reqIds (8): ``8|1|numIds`` (IB ignores the number and answers one next valid id)."""

    num_ids: int


@dataclass(frozen=True)
class ReqAutoOpenOrders:
    """reqAutoOpenOrders (15): ``15|1|bAutoBind``."""

    auto_bind: bool


@dataclass(frozen=True)
class ReqCompletedOrders:
    """reqCompletedOrders (99): ``99|apiOnly``."""

    api_only: bool


@dataclass(frozen=True)
class ReqMarketDataType:
    """reqMarketDataType (59): ``59|1|marketDataType`` (1 live, 2 frozen, 3 delayed, 4 delayed frozen)."""

    market_data_type: int


@dataclass(frozen=True)
class ReqMktData:
    """reqMktData (1): ``1|11|reqId|<contract>|[BAG legs]|deltaNeutral[|conId|delta|price]|genericTickList|
    snapshot|regulatorySnapshot|mktDataOptions``. ``combo_legs`` counts a BAG's legs (the sim
    serves none)."""

    req_id: int
    contract: RequestContract
    generic_ticks: str
    snapshot: bool
    regulatory_snapshot: bool
    combo_legs: int = 0


@dataclass(frozen=True)
class ReqHistoricalData:
    """reqHistoricalData (20): ``20|reqId|<contract>|includeExpired|endDateTime|barSizeSetting|durationStr|
    useRTH|whatToShow|formatDate|[BAG legs]|keepUpToDate|chartOptions`` (no version field from 124).

    Texts as the client sent them (``endDateTime`` e.g. ``20201117 16:00:00 US/Eastern`` or empty
    for now; ``barSizeSetting`` ``5 secs``; ``durationStr`` ``1800 S``); ``format_date`` 1 = text
    in New York time, 2 = POSIX seconds."""

    req_id: int
    contract: RequestContract
    end: str
    bar_size: str
    duration: str
    use_rth: bool
    what_to_show: str
    format_date: int
    keep_up_to_date: bool
    combo_legs: int = 0


@dataclass(frozen=True)
class ReqHeadTimeStamp:
    """reqHeadTimeStamp (87): ``87|reqId|<contract>|includeExpired|useRTH|whatToShow|formatDate``."""

    req_id: int
    contract: RequestContract
    use_rth: bool
    what_to_show: str
    format_date: int


@dataclass(frozen=True)
class ReqRealTimeBars:
    """reqRealTimeBars (50): ``50|3|reqId|<contract>|barSize|whatToShow|useRTH|realTimeBarsOptions``
    (``bar_size`` as sent: IB serves 5 seconds only)."""

    req_id: int
    contract: RequestContract
    bar_size: str
    what_to_show: str
    use_rth: bool


@dataclass(frozen=True)
class ReqScannerSubscription:
    """reqScannerSubscription (22): ``22|reqId|numberOfRows|instrument|locationCode|scanCode|abovePrice|
    belowPrice|aboveVolume|`` 12 fields the sim ignores (market cap, ratings, maturity, coupon,
    convertible, option volume) ``|scannerSettingPairs|stockTypeFilter|filterOptions|options``
    (no version field from 143). Prices dollars, volume shares; None = not set (empty or IB's
    UNSET value). ``rows`` -1 when not set; ``filters`` the filter options ``tag=value;…`` as a dict."""

    req_id: int
    rows: int
    instrument: str
    location: str
    scan_code: str
    above_price: float | None
    below_price: float | None
    above_volume: float | None
    filters: dict[str, str]


@dataclass(frozen=True)
class ReqAccountUpdates:
    """reqAccountUpdates (6): ``6|2|subscribe|acctCode``."""

    subscribe: bool
    account: str


@dataclass(frozen=True)
class ReqAccountUpdatesMulti:
    """reqAccountUpdatesMulti (76): ``76|1|reqId|account|modelCode|ledgerAndNLV``."""

    req_id: int
    account: str
    model_code: str
    ledger_and_nlv: bool


@dataclass(frozen=True)
class ReqAccountSummary:
    """reqAccountSummary (62): ``62|1|reqId|groupName|tags`` (``tags`` the comma-separated list, in order)."""

    req_id: int
    group: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class ReqPnL:
    """reqPnL (92): ``92|reqId|account|modelCode``."""

    req_id: int
    account: str
    model_code: str


@dataclass(frozen=True)
class ReqPnLSingle:
    """reqPnLSingle (94): ``94|reqId|account|modelCode|conId``."""

    req_id: int
    account: str
    model_code: str
    con_id: int


def _bare(message: str, has_version: bool = True) -> Decoder:
    def decode(fields: list[str], version: int) -> NoArgs:  # noqa: ARG001 - same at 157-178
        r = FieldReader(fields, message)
        if has_version:
            r.optional_text("version")
        return NoArgs(message)

    decode.__doc__ = f"Decode {message} (no content)."
    return decode


def _cancel(message: str, has_version: bool = True) -> Decoder:
    def decode(fields: list[str], version: int) -> Cancel:  # noqa: ARG001 - same at 157-178
        r = FieldReader(fields, message)
        if has_version:
            r.skip("version")
        return Cancel(message, r.int("reqId"))

    decode.__doc__ = f"Decode {message} (the request id)."
    return decode


def decode_start_api(fields: list[str], version: int) -> StartApi:  # noqa: ARG001 - same at 157-178
    """Decode startApi (71)."""
    r = FieldReader(fields, "startApi")
    r.skip("version")
    return StartApi(r.int("clientId"), r.optional_text("optionalCapabilities"))


def decode_req_ids(fields: list[str], version: int) -> ReqIds:  # noqa: ARG001 - same at 157-178
    """Decode reqIds (8)."""
    r = FieldReader(fields, "reqIds")
    r.skip("version")
    return ReqIds(parse_int(r.optional_text("numIds") or "1"))


def decode_auto_open_orders(fields: list[str], version: int) -> ReqAutoOpenOrders:  # noqa: ARG001
    """Decode reqAutoOpenOrders (15) (same at 157-178)."""
    r = FieldReader(fields, "reqAutoOpenOrders")
    r.skip("version")
    return ReqAutoOpenOrders(r.optional_text("bAutoBind") not in ("", "0"))


def decode_completed_orders(fields: list[str], version: int) -> ReqCompletedOrders:  # noqa: ARG001
    """Decode reqCompletedOrders (99) (same at 157-178)."""
    r = FieldReader(fields, "reqCompletedOrders")
    return ReqCompletedOrders(r.optional_text("apiOnly") not in ("", "0"))


def decode_market_data_type(fields: list[str], version: int) -> ReqMarketDataType:  # noqa: ARG001
    """Decode reqMarketDataType (59) (same at 157-178). Raises :class:`RequestError` for a type
    other than 1-4."""
    r = FieldReader(fields, "reqMarketDataType")
    r.skip("version")
    kind = r.int("marketDataType")
    if kind not in (1, 2, 3, 4):
        raise r.error(f"field 'marketDataType' must be 1, 2, 3 or 4, got {kind}")
    return ReqMarketDataType(kind)


def _legs(r: FieldReader, contract: RequestContract) -> int:
    """A BAG contract's combo legs (count, then conId, ratio, action, exchange each); 0 otherwise."""
    if contract.sec_type != "BAG":
        return 0
    n = r.int("comboLegsCount")
    for _ in range(n):
        r.skip("leg.conId", "leg.ratio", "leg.action", "leg.exchange")
    return n


def decode_mkt_data(fields: list[str], version: int) -> ReqMktData:  # noqa: ARG001 - same at 157-178
    """Decode reqMktData (1)."""
    r = FieldReader(fields, "reqMktData")
    r.skip("version")
    req_id = r.int("reqId")
    contract = decode_contract(r)
    legs = _legs(r, contract)
    if r.bool("deltaNeutralContract"):
        r.skip("dnc.conId", "dnc.delta", "dnc.price")
    generic = r.optional_text("genericTickList")
    snapshot = r.optional_text("snapshot") == "1"
    regulatory = r.optional_text("regulatorySnapshot") == "1"
    return ReqMktData(req_id, contract, generic, snapshot, regulatory, legs)


def decode_historical_data(fields: list[str], version: int) -> ReqHistoricalData:  # noqa: ARG001
    """Decode reqHistoricalData (20) (same at 157-178)."""
    r = FieldReader(fields, "reqHistoricalData")
    req_id = r.int("reqId")
    contract = decode_contract(r)
    r.skip("includeExpired")
    end, bar_size, duration = r.text("endDateTime"), r.text("barSizeSetting"), r.text("durationStr")
    use_rth = r.bool("useRTH")
    what = r.text("whatToShow").upper()
    fmt = r.int("formatDate", 1)
    legs = _legs(r, contract)
    keep = r.optional_text("keepUpToDate") == "1"
    return ReqHistoricalData(req_id, contract, end, bar_size, duration, use_rth, what, fmt, keep, legs)


def decode_head_timestamp(fields: list[str], version: int) -> ReqHeadTimeStamp:  # noqa: ARG001
    """Decode reqHeadTimeStamp (87) (same at 157-178)."""
    r = FieldReader(fields, "reqHeadTimeStamp")
    req_id = r.int("reqId")
    contract = decode_contract(r)
    r.skip("includeExpired")
    use_rth = r.bool("useRTH")
    what = r.text("whatToShow").upper()
    return ReqHeadTimeStamp(req_id, contract, use_rth, what, parse_int(r.optional_text("formatDate") or "1"))


def decode_real_time_bars(fields: list[str], version: int) -> ReqRealTimeBars:  # noqa: ARG001
    """Decode reqRealTimeBars (50) (same at 157-178)."""
    r = FieldReader(fields, "reqRealTimeBars")
    r.skip("version")
    req_id = r.int("reqId")
    contract = decode_contract(r)
    bar_size = r.optional_text("barSize") or "5"
    what = r.optional_text("whatToShow").upper()
    return ReqRealTimeBars(req_id, contract, bar_size.strip(), what, r.optional_text("useRTH") == "1")


def tag_values(text: str) -> dict[str, str]:
    """IB's tag-value list ``tag1=v1;tag2=v2;`` → ``{tag: value}`` (in order; blanks stripped)."""
    out = {}
    for part in (text or "").split(";"):
        if "=" in part:
            k, val = part.split("=", 1)
            out[k.strip()] = val.strip()
    return out


def _optional_price(r: FieldReader, name: str) -> float | None:
    """An optional number: empty, IB's UNSET_DOUBLE or not a number (ib_async sends ``""``) → None."""
    raw = r.text(name)
    try:
        value = parse_float(raw, math.nan)
    except ValueError:
        return None
    return None if math.isnan(value) or math.isinf(value) or value >= UNSET_DOUBLE else value


def decode_scanner_subscription(fields: list[str], version: int) -> ReqScannerSubscription:  # noqa: ARG001
    """Decode reqScannerSubscription (22) (same at 157-178)."""
    r = FieldReader(fields, "reqScannerSubscription")
    req_id = r.int("reqId")
    rows = r.int("numberOfRows", -1)
    instrument, location = r.text("instrument"), r.text("locationCode")
    code = r.text("scanCode").upper()
    above, below = _optional_price(r, "abovePrice"), _optional_price(r, "belowPrice")
    volume = _optional_price(r, "aboveVolume")
    r.skip("marketCapAbove", "marketCapBelow", "moodyRatingAbove", "moodyRatingBelow", "spRatingAbove",
           "spRatingBelow", "maturityDateAbove", "maturityDateBelow", "couponRateAbove", "couponRateBelow",
           "excludeConvertible", "averageOptionVolumeAbove", "scannerSettingPairs", "stockTypeFilter")
    filters = tag_values(r.optional_text("scannerSubscriptionFilterOptions"))
    return ReqScannerSubscription(req_id, rows, instrument, location, code, above, below, volume, filters)


def decode_account_updates(fields: list[str], version: int) -> ReqAccountUpdates:  # noqa: ARG001
    """Decode reqAccountUpdates (6) (same at 157-178)."""
    r = FieldReader(fields, "reqAccountUpdates")
    r.skip("version")
    return ReqAccountUpdates(r.bool("subscribe"), r.optional_text("acctCode"))


def decode_account_updates_multi(fields: list[str], version: int) -> ReqAccountUpdatesMulti:  # noqa: ARG001
    """Decode reqAccountUpdatesMulti (76) (same at 157-178)."""
    r = FieldReader(fields, "reqAccountUpdatesMulti")
    r.skip("version")
    req_id = r.int("reqId")
    return ReqAccountUpdatesMulti(req_id, r.optional_text("account"), r.optional_text("modelCode"),
                                  r.optional_text("ledgerAndNLV") == "1")


def decode_account_summary(fields: list[str], version: int) -> ReqAccountSummary:  # noqa: ARG001
    """Decode reqAccountSummary (62) (same at 157-178)."""
    r = FieldReader(fields, "reqAccountSummary")
    r.skip("version")
    req_id = r.int("reqId")
    group = r.optional_text("groupName")
    tags = tuple(t.strip() for t in r.optional_text("tags").split(",") if t.strip())
    return ReqAccountSummary(req_id, group, tags)


def decode_pnl(fields: list[str], version: int) -> ReqPnL:  # noqa: ARG001 - same at 157-178
    """Decode reqPnL (92)."""
    r = FieldReader(fields, "reqPnL")
    req_id = r.int("reqId")
    return ReqPnL(req_id, r.optional_text("account"), r.optional_text("modelCode"))


def decode_pnl_single(fields: list[str], version: int) -> ReqPnLSingle:  # noqa: ARG001 - same at 157-178
    """Decode reqPnLSingle (94)."""
    r = FieldReader(fields, "reqPnLSingle")
    req_id = r.int("reqId")
    account, model = r.text("account"), r.text("modelCode")
    return ReqPnLSingle(req_id, account, model, r.int("conId"))


Decoder = Callable[[list[str], int], Any]

#: Message id → (request name, decoder) for every request the sim-gateway serves.
DECODERS: dict[int, tuple[str, Decoder]] = {
    1: ("reqMktData", decode_mkt_data),
    2: ("cancelMktData", _cancel("cancelMktData")),
    3: ("placeOrder", decode_place_order),
    4: ("cancelOrder", decode_cancel_order),
    5: ("reqOpenOrders", _bare("reqOpenOrders")),
    6: ("reqAccountUpdates", decode_account_updates),
    7: ("reqExecutions", decode_executions),
    8: ("reqIds", decode_req_ids),
    9: ("reqContractDetails", decode_contract_details),
    15: ("reqAutoOpenOrders", decode_auto_open_orders),
    16: ("reqAllOpenOrders", _bare("reqAllOpenOrders")),
    17: ("reqManagedAccts", _bare("reqManagedAccts")),
    20: ("reqHistoricalData", decode_historical_data),
    22: ("reqScannerSubscription", decode_scanner_subscription),
    23: ("cancelScannerSubscription", _cancel("cancelScannerSubscription")),
    24: ("reqScannerParameters", _bare("reqScannerParameters")),
    25: ("cancelHistoricalData", _cancel("cancelHistoricalData")),
    49: ("reqCurrentTime", _bare("reqCurrentTime")),
    50: ("reqRealTimeBars", decode_real_time_bars),
    51: ("cancelRealTimeBars", _cancel("cancelRealTimeBars")),
    58: ("reqGlobalCancel", _bare("reqGlobalCancel")),
    59: ("reqMarketDataType", decode_market_data_type),
    61: ("reqPositions", _bare("reqPositions")),
    62: ("reqAccountSummary", decode_account_summary),
    63: ("cancelAccountSummary", _cancel("cancelAccountSummary")),
    64: ("cancelPositions", _bare("cancelPositions")),
    71: ("startApi", decode_start_api),
    76: ("reqAccountUpdatesMulti", decode_account_updates_multi),
    77: ("cancelAccountUpdatesMulti", _cancel("cancelAccountUpdatesMulti")),
    87: ("reqHeadTimeStamp", decode_head_timestamp),
    92: ("reqPnL", decode_pnl),
    93: ("cancelPnL", _cancel("cancelPnL", has_version=False)),
    94: ("reqPnLSingle", decode_pnl_single),
    95: ("cancelPnLSingle", _cancel("cancelPnLSingle", has_version=False)),
    99: ("reqCompletedOrders", decode_completed_orders),
}


def decode_request(fields: list[str], version: int) -> Any:
    """The typed request of one incoming message (``fields[0]`` = message id) at server ``version``.

    Raises:
        RequestError: an unknown message id (``message`` empty), or fields that do not match the
            message's layout (names the field).
    """
    try:
        msg_id = int(fields[0])
    except (IndexError, ValueError):
        raise RequestError(f"message id {fields[:1]!r} is not a number") from None
    entry = DECODERS.get(msg_id)
    if entry is None:
        raise RequestError(f"message {msg_id} is not served by the sim-gateway")
    return entry[1](fields, version)
