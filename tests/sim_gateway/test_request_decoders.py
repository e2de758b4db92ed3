"""Typed request decoders: what ib_async's own ``client.py`` sends, read back at 157, 164, 176 and 178.

Each request is encoded by an unmodified ``ib_async.client.Client`` (its ``sendMsg`` captured
instead of a socket) at the negotiated version and decoded by
:func:`daytrading.sim_gateway.protocol.requests.decode_request`; every named field must come back
with the value the client was given. A message cut short must raise a ``RequestError`` that names
the missing field, and every request type the gateway serves must have a decoder.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from ib_async.client import Client
from ib_async.contract import Contract, Stock
from ib_async.objects import ExecutionFilter, ScannerSubscription, TagValue

from daytrading.sim_gateway.protocol import requests as rq
from daytrading.sim_gateway.protocol.requests import DECODERS, RequestError, decode_request

VERSIONS = [157, 164, 176, 178]
AAPL = Stock("AAPL", "SMART", "USD", primaryExchange="NASDAQ")


def sent_by_ib_async(version: int, call: Callable[[Client], None]) -> list[str]:
    """The fields (message id first) of the one message ``call`` makes ib_async send at ``version``."""
    sent: list[str] = []
    c = Client(wrapper=None)
    c._serverVersion = version
    c.isConnected = lambda: True
    c.sendMsg = sent.append
    call(c)
    assert len(sent) == 1, sent
    return sent[0].split("\0")[:-1]


def roundtrip(version: int, call: Callable[[Client], None]) -> Any:
    return decode_request(sent_by_ib_async(version, call), version)


def contract_ok(rc: rq.RequestContract, con_id: int = 0) -> None:
    assert (rc.con_id, rc.symbol, rc.sec_type, rc.exchange, rc.primary_exchange, rc.currency) == (
        con_id, "AAPL", "STK", "SMART", "NASDAQ", "USD")


@pytest.mark.parametrize("version", VERSIONS)
def test_market_data_requests(version):
    req = roundtrip(version, lambda c: c.reqMktData(7, AAPL, "233,236", False, False, []))
    assert isinstance(req, rq.ReqMktData)
    contract_ok(req.contract)
    assert (req.req_id, req.generic_ticks, req.snapshot, req.regulatory_snapshot, req.combo_legs) == (
        7, "233,236", False, False, 0)
    snap = roundtrip(version, lambda c: c.reqMktData(8, Stock("AAPL", "SMART", "USD", primaryExchange="NASDAQ",
                                                                  conId=265598), "", True, False, []))
    contract_ok(snap.contract, 265598)
    assert snap.snapshot and snap.req_id == 8
    assert roundtrip(version, lambda c: c.cancelMktData(7)) == rq.Cancel("cancelMktData", 7)
    assert roundtrip(version, lambda c: c.reqMarketDataType(3)) == rq.ReqMarketDataType(3)
    rt = roundtrip(version, lambda c: c.reqRealTimeBars(9, AAPL, 5, "TRADES", True, []))
    contract_ok(rt.contract)
    assert (rt.req_id, rt.bar_size, rt.what_to_show, rt.use_rth) == (9, "5", "TRADES", True)
    assert roundtrip(version, lambda c: c.cancelRealTimeBars(9)) == rq.Cancel("cancelRealTimeBars", 9)


@pytest.mark.parametrize("version", VERSIONS)
def test_history_requests(version):
    req = roundtrip(version, lambda c: c.reqHistoricalData(
        11, AAPL, "20201117 16:00:00 US/Eastern", "1800 S", "5 secs", "MIDPOINT", True, 2, False, []))
    assert isinstance(req, rq.ReqHistoricalData)
    contract_ok(req.contract)
    assert (req.req_id, req.end, req.duration, req.bar_size, req.what_to_show, req.use_rth, req.format_date,
            req.keep_up_to_date) == (11, "20201117 16:00:00 US/Eastern", "1800 S", "5 secs", "MIDPOINT", True, 2,
                                     False)
    live = roundtrip(version, lambda c: c.reqHistoricalData(12, AAPL, "", "1 D", "1 min", "TRADES", False, 1,
                                                            True, []))
    assert (live.end, live.keep_up_to_date, live.use_rth, live.format_date) == ("", True, False, 1)
    assert roundtrip(version, lambda c: c.cancelHistoricalData(12)) == rq.Cancel("cancelHistoricalData", 12)
    head = roundtrip(version, lambda c: c.reqHeadTimeStamp(13, AAPL, "TRADES", True, 2))
    contract_ok(head.contract)
    assert (head.req_id, head.what_to_show, head.use_rth, head.format_date) == (13, "TRADES", True, 2)


@pytest.mark.parametrize("version", VERSIONS)
def test_account_requests(version):
    assert roundtrip(version, lambda c: c.reqAccountUpdates(True, "DU1")) == rq.ReqAccountUpdates(True, "DU1")
    assert roundtrip(version, lambda c: c.reqAccountUpdates(False, "")) == rq.ReqAccountUpdates(False, "")
    assert roundtrip(version, lambda c: c.reqAccountUpdatesMulti(21, "DU1", "", False)) == \
        rq.ReqAccountUpdatesMulti(21, "DU1", "", False)
    assert roundtrip(version, lambda c: c.cancelAccountUpdatesMulti(21)) == rq.Cancel("cancelAccountUpdatesMulti", 21)
    assert roundtrip(version, lambda c: c.reqAccountSummary(22, "All", "NetLiquidation,BuyingPower")) == \
        rq.ReqAccountSummary(22, "All", ("NetLiquidation", "BuyingPower"))
    assert roundtrip(version, lambda c: c.cancelAccountSummary(22)) == rq.Cancel("cancelAccountSummary", 22)
    assert roundtrip(version, lambda c: c.reqPositions()) == rq.NoArgs("reqPositions")
    assert roundtrip(version, lambda c: c.cancelPositions()) == rq.NoArgs("cancelPositions")
    assert roundtrip(version, lambda c: c.reqPnL(23, "DU1", "")) == rq.ReqPnL(23, "DU1", "")
    assert roundtrip(version, lambda c: c.cancelPnL(23)) == rq.Cancel("cancelPnL", 23)
    assert roundtrip(version, lambda c: c.reqPnLSingle(24, "DU1", "", 265598)) == rq.ReqPnLSingle(24, "DU1", "", 265598)
    assert roundtrip(version, lambda c: c.cancelPnLSingle(24)) == rq.Cancel("cancelPnLSingle", 24)


@pytest.mark.parametrize("version", VERSIONS)
def test_session_and_order_list_requests(version):
    assert roundtrip(version, lambda c: c.reqIds(1)) == rq.ReqIds(1)
    assert roundtrip(version, lambda c: c.reqCurrentTime()) == rq.NoArgs("reqCurrentTime")
    assert roundtrip(version, lambda c: c.reqManagedAccts()) == rq.NoArgs("reqManagedAccts")
    assert roundtrip(version, lambda c: c.reqOpenOrders()) == rq.NoArgs("reqOpenOrders")
    assert roundtrip(version, lambda c: c.reqAllOpenOrders()) == rq.NoArgs("reqAllOpenOrders")
    assert roundtrip(version, lambda c: c.reqAutoOpenOrders(True)) == rq.ReqAutoOpenOrders(True)
    assert roundtrip(version, lambda c: c.reqGlobalCancel()) == rq.NoArgs("reqGlobalCancel")
    assert roundtrip(version, lambda c: c.reqCompletedOrders(True)) == rq.ReqCompletedOrders(True)
    ex = roundtrip(version, lambda c: c.reqExecutions(31, ExecutionFilter(clientId=10, symbol="aapl", side="SELL")))
    assert (ex.req_id, ex.client_id, ex.symbol, ex.side) == (31, 10, "AAPL", "SELL")
    cd = roundtrip(version, lambda c: c.reqContractDetails(32, AAPL))
    contract_ok(cd.contract)
    assert cd.req_id == 32
    assert roundtrip(version, lambda c: c.cancelOrder(33, "")).order_id == 33

    def start_api(c: Client) -> None:
        c.clientId, c.optCapab = 12, ""
        c.startApi()

    assert roundtrip(version, start_api) == rq.StartApi(12, "")


@pytest.mark.parametrize("version", VERSIONS)
def test_scanner_requests(version):
    sub = ScannerSubscription(numberOfRows=25, instrument="STK", locationCode="STK.US.MAJOR",
                              scanCode="TOP_PERC_GAIN", abovePrice=5.0, aboveVolume=100_000)
    filters = [TagValue("changePercAbove", "3"), TagValue("priceBelow", "50")]
    req = roundtrip(version, lambda c: c.reqScannerSubscription(41, sub, [], filters))
    assert isinstance(req, rq.ReqScannerSubscription)
    assert (req.req_id, req.rows, req.instrument, req.location, req.scan_code) == (
        41, 25, "STK", "STK.US.MAJOR", "TOP_PERC_GAIN")
    assert (req.above_price, req.below_price, req.above_volume) == (5.0, None, 100_000)
    assert req.filters == {"changePercAbove": "3", "priceBelow": "50"}
    unset = roundtrip(version, lambda c: c.reqScannerSubscription(42, ScannerSubscription(scanCode="MOST_ACTIVE"),
                                                                   [], []))
    assert (unset.rows, unset.above_price, unset.filters) == (-1, None, {})
    assert roundtrip(version, lambda c: c.cancelScannerSubscription(41)) == rq.Cancel("cancelScannerSubscription", 41)
    assert roundtrip(version, lambda c: c.reqScannerParameters()) == rq.NoArgs("reqScannerParameters")


def test_a_short_or_bad_message_names_the_field_and_the_request():
    fields = sent_by_ib_async(178, lambda c: c.reqHistoricalData(11, AAPL, "", "1 D", "1 min", "TRADES", True, 1,
                                                                 False, []))
    with pytest.raises(RequestError, match="reqHistoricalData: missing field 'whatToShow'") as info:
        decode_request(fields[:19], 178)
    assert info.value.req_id == 11 and info.value.message == "reqHistoricalData"
    with pytest.raises(RequestError, match="'reqId' must be an integer, got 'x'"):
        decode_request(["50", "3", "x"], 178)
    with pytest.raises(RequestError, match="'marketDataType' must be 1, 2, 3 or 4, got 7"):
        decode_request(["59", "1", "7"], 178)
    with pytest.raises(RequestError, match="message 10 is not served"):
        decode_request(["10", "5", "1"], 178)
    bag = Contract(secType="BAG", symbol="AAPL", exchange="SMART", currency="USD")
    with pytest.raises(RequestError, match="comboLegsCount|missing field"):
        decode_request(sent_by_ib_async(178, lambda c: c.reqMktData(5, bag, "", False, False, []))[:16], 178)


def test_every_request_the_gateway_serves_has_a_decoder(minute_data_dir):
    from daytrading.sim_gateway.cli import build_gateway

    gw = build_gateway(data=minute_data_dir, session_date=date(2020, 11, 17), symbols=["AAPL"])
    served = set(gw._handlers)  # noqa: SLF001 - the registry itself is what is checked
    assert served, "no handlers registered"
    assert served <= set(DECODERS), sorted(served - set(DECODERS))
