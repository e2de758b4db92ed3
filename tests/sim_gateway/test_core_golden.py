"""Golden-message tests: every order/account/contract message the gateway builds is fed through
ib_async's own ``Decoder`` at server version 178 (notes §10 step 4) and must reach the intended
wrapper call with the intended values — no "Error handling fields", exact field counts."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pytest
from ib_async.decoder import Decoder

from daytrading.sim_gateway.cli import build_gateway
from daytrading.sim_gateway.engine.book import Execution, SimOrder
from daytrading.sim_gateway.protocol import messages
from daytrading.sim_gateway.protocol.wire import encode_message
from tests.sim_gateway._util import Recorder

DAY = date(2020, 11, 17)



def roundtrip(fields: list[Any], caplog: pytest.LogCaptureFixture) -> tuple[Recorder, list[str]]:
    """Encode as the gateway does, split as ib_async does, and interpret."""
    data = encode_message(fields)
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    text = data[4:].decode(errors="backslashreplace").split("\0")
    text.pop()
    rec = Recorder()
    with caplog.at_level(logging.DEBUG, logger="ib_async"):
        Decoder(rec, 178).interpret(text)
    bad = [r.getMessage() for r in caplog.records if "Error" in r.getMessage()]
    assert not bad, bad
    return rec, text


@pytest.fixture(scope="module")
def gw(minute_data_dir):
    return build_gateway(data=minute_data_dir, session_date=DAY, symbols=["AAPL", "NIO", "LI"], speed=60,
                         start="10:00", perm_base=5000)


def make_order(gw, **kw) -> SimOrder:
    info = gw.market.contract("AAPL")
    base = dict(client_id=10, order_id=7, perm_id=5007, info=info, exchange="SMART", action="SELL",
                total_qty=100.0, order_type="LMT", lmt_price=120.5, aux_price=None, tif="GTC",
                oca_group="oca-1", oca_type=1, account="DU0000001", order_ref="dt-target:AAPL", parent_id=0,
                outside_rth=True, transmit=True, placed_at=gw.now(), seq=1, status="Submitted")
    base.update(kw)
    return SimOrder(**base)


def test_open_order_and_status(gw, caplog):
    o = make_order(gw)
    rec, text = roundtrip(messages.open_order(178, o), caplog)
    assert len(text) == 127
    [(name, (order_id, contract, order, state))] = rec.calls
    assert name == "openOrder" and order_id == 7
    assert (contract.symbol, contract.conId, contract.exchange) == ("AAPL", o.info.con_id, "SMART")
    assert (order.action, order.totalQuantity, order.orderType, order.lmtPrice) == ("SELL", 100.0, "LMT", 120.5)
    assert (order.tif, order.ocaGroup, order.ocaType, order.outsideRth) == ("GTC", "oca-1", 1, True)
    assert (order.clientId, order.permId, order.orderRef, order.account) == (10, 5007, "dt-target:AAPL",
                                                                          "DU0000001")
    assert state.status == "Submitted"
    o.filled, o.avg_fill_price, o.last_fill_price = 40.0, 120.55, 120.6
    rec, text = roundtrip(messages.order_status(o), caplog)
    assert len(text) == 12
    [(name, args)] = rec.calls
    assert name == "orderStatus"
    assert args[:10] == (7, "Submitted", 40.0, 60.0, 120.55, 5007, 0, 120.6, 10, "")


def test_filled_open_order_carries_commission(gw, caplog):
    o = make_order(gw, status="Filled", filled=100.0, commission=0.35, order_type="MKT", lmt_price=None,
                   oca_group="", tif="DAY")
    rec, _ = roundtrip(messages.open_order(178, o), caplog)
    [(_, (_, _, order, state))] = rec.calls
    assert state.status == "Filled" and state.commission == 0.35 and state.commissionCurrency == "USD"
    assert order.orderType == "MKT" and order.ocaType == 3


def test_exec_details_and_commission_report(gw, caplog):
    o = make_order(gw)
    e = Execution("0000abcd.00001234.000001.01", o, gw.now(), 40.0, 120.5, 40.0, 120.5, 1, 0.351, None)
    rec, text = roundtrip(messages.exec_details(178, e), caplog)
    assert len(text) == 32
    [(name, (req_id, contract, ex))] = rec.calls
    assert name == "execDetails" and req_id == -1
    assert (ex.execId, ex.side, ex.shares, ex.price, ex.permId, ex.clientId, ex.orderId) == (
        e.exec_id, "SLD", 40.0, 120.5, 5007, 10, 7)
    assert (ex.cumQty, ex.avgPrice, ex.lastLiquidity, ex.orderRef) == (40.0, 120.5, 1, "dt-target:AAPL")
    assert ex.time.timestamp() == pytest.approx(int(e.time), abs=1)
    assert contract.exchange == "ISLAND" and contract.conId == o.info.con_id
    rec, text = roundtrip(messages.commission_report(e), caplog)
    assert len(text) == 8
    [(name, (report,))] = rec.calls
    assert name == "commissionReport" and report.commission == 0.351 and report.realizedPNL > 1e300
    e.realized = -12.5
    rec, _ = roundtrip(messages.commission_report(e), caplog)
    assert rec.calls[0][1][0].realizedPNL == -12.5


def test_completed_order(gw, caplog):
    o = make_order(gw, status="Filled", filled=100.0, done_at=gw.now())
    rec, _ = roundtrip(messages.completed_order(178, o), caplog)
    [(name, (contract, order, state))] = rec.calls
    assert name == "completedOrder"
    assert (contract.symbol, order.permId, order.totalQuantity, order.filledQuantity) == ("AAPL", 5007, 100.0, 100.0)
    assert state.status == "Filled" and state.completedStatus == "Filled"


def test_position_portfolio_and_account(gw, caplog):
    acct = gw.account
    info = gw.market.contract("NIO")
    acct.apply_fill(info, "BOT", 100, 50.0, 0.37)
    p = acct.positions["NIO"]
    rec, text = roundtrip(gw.account_requests.position_msg(p), caplog)
    assert len(text) == 16
    [(name, (account, contract, pos, avg))] = rec.calls
    assert (name, account, contract.symbol, contract.exchange, pos) == ("position", "DU0000001", "NIO", "NYSE", 100.0)
    assert avg == pytest.approx(50.0037)
    rec, text = roundtrip(gw.account_requests.portfolio_msg(p), caplog)
    assert len(text) == 20
    [(name, args)] = rec.calls
    assert name == "updatePortfolio" and args[1] == 100.0 and args[0].primaryExchange == "NYSE"
    mark = gw.market.last_trade("NIO").price
    assert args[2] == pytest.approx(mark) and args[4] == pytest.approx(50.0037)
    assert args[5] == pytest.approx(100 * (mark - 50.0037), abs=1e-4)
    for key, (value, cur) in acct.values().items():
        rec, _ = roundtrip([6, 2, key, value, cur, acct.account], caplog)
        assert rec.calls == [("updateAccountValue", (key, value, cur, acct.account))]
    rec, _ = roundtrip([63, 1, 9, acct.account, "NetLiquidation", acct.values()["NetLiquidation"][0], "USD"], caplog)
    assert rec.calls[0][0] == "accountSummary"


def test_contract_details(gw, caplog):
    info = gw.market.contract("AAPL")
    rec, _ = roundtrip(gw.contracts.details_message(12, info, "SMART", 178), caplog)
    [(name, (req_id, cd))] = rec.calls
    assert name == "contractDetails" and req_id == 12
    c = cd.contract
    assert (c.symbol, c.conId, c.exchange, c.primaryExchange, c.currency) == ("AAPL", info.con_id, "SMART",
                                                                             "NASDAQ", "USD")
    assert cd.minTick == 0.01 and cd.longName == "APPLE INC" and cd.timeZoneId == "US/Eastern"
    assert cd.liquidHours.startswith("20201117:0930-20201117:1600")
    assert cd.tradingHours.startswith("20201117:0400-20201117:2000")


def test_simple_messages(gw, caplog):
    cases = [
        ([49, 1, int(gw.now())], "currentTime"),
        ([94, 3, 1.5, -2.0, 3.5], "pnl"),
        ([95, 4, 100, 1.0, 2.0, 3.0, 5000.0], "pnlSingle"),
        ([4, 2, 5, 202, "Order Canceled - reason:", ""], "error"),
        ([62, 1], "positionEnd"),
        ([53, 1], "openOrderEnd"),
        ([102], "completedOrdersEnd"),
        ([54, 1, "DU0000001"], "accountDownloadEnd"),
        ([55, 1, 8], "execDetailsEnd"),
        ([52, 1, 8], "contractDetailsEnd"),
        ([64, 1, 8], "accountSummaryEnd"),
        ([74, 1, 8], "accountUpdateMultiEnd"),
    ]
    for fields, name in cases:
        rec, _ = roundtrip(fields, caplog)
        assert [c[0] for c in rec.calls] == [name], fields
