"""Version negotiation and golden messages per server version, read by each client's own decoder.

Every version-dependent message the gateway builds is encoded as it goes on the wire and fed to
ib_async 2.1.0's ``Decoder``, ib_insync 0.9.86's (up to its maximum, 176) and IB's ``ibapi``
``Decoder`` at that version. Each must reach the intended wrapper call with the intended values,
and the field count must be the one the gates of :mod:`daytrading.sim_gateway.protocol.versions`
give. A message one field short must make the decoders fail, so a count that matches is not luck.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from typing import Any

import ib_insync.decoder
import pytest
from ib_async.decoder import Decoder as AsyncDecoder
from ibapi.decoder import Decoder as IbapiDecoder

from daytrading.sim_gateway.cli import build_gateway
from daytrading.sim_gateway.engine.book import Execution, SimOrder
from daytrading.sim_gateway.protocol import messages
from daytrading.sim_gateway.protocol.requests import decode_place_order
from daytrading.sim_gateway.protocol.versions import negotiate
from daytrading.sim_gateway.protocol.wire import encode_message
from tests.sim_gateway._util import Recorder

DAY = date(2020, 11, 17)
#: every gate boundary from 157 to 178 (158 is never negotiated with a client that accepts 157)
VERSIONS = [157, 159, 160, 162, 163, 164, 166, 169, 170, 176, 177, 178]



def wire_fields(fields: list[Any]) -> list[str]:
    data = encode_message(fields)
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    text = data[4:].decode().split("\0")
    text.pop()
    return text


def decode(client: str, version: int, fields: list[Any], caplog) -> list[tuple[str, tuple[Any, ...]]]:
    """Interpret one gateway message with ``client``'s decoder at ``version``; fail on decoder errors."""
    text = wire_fields(fields)
    rec = Recorder()
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        if client == "ib_async":
            AsyncDecoder(rec, version).interpret(list(text))
        elif client == "ib_insync":
            ib_insync.decoder.Decoder(rec, version).interpret(list(text))
        else:
            raw = [t.encode() for t in text]
            IbapiDecoder(rec, version).interpret(tuple(raw[1:]), int(text[0]))
    bad = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or "Error handling" in r.getMessage()]
    assert not bad, bad
    errors = [c for c in rec.calls if c[0] == "error"]
    assert not errors, errors
    return rec.calls


def clients(version: int) -> list[str]:
    return ["ib_async", "ibapi"] + (["ib_insync"] if version <= 176 else [])


@pytest.fixture(scope="module")
def gw(minute_data_dir):
    return build_gateway(data=minute_data_dir, session_date=DAY, symbols=["AAPL", "NIO"], speed=60,
                         start="10:00", perm_base=5000)


def make_order(gw, **kw) -> SimOrder:
    base = dict(client_id=10, order_id=7, perm_id=5007, info=gw.market.contract("AAPL"), exchange="SMART",
                action="SELL", total_qty=100.0, order_type="LMT", lmt_price=120.5, aux_price=None, tif="GTC",
                oca_group="oca-1", oca_type=1, account="DU0000001", order_ref="dt-target:AAPL", parent_id=0,
                outside_rth=True, transmit=True, placed_at=gw.now(), seq=1, status="Submitted")
    base.update(kw)
    return SimOrder(**base)


@pytest.mark.parametrize(("offered", "version", "accepted"), [
    ((157, 178), 178, True), ((157, 176), 176, True), ((100, 226), 178, True), ((157, 166), 166, True),
    ((157, 158), 157, True), ((158, 158), 158, True), ((100, 150), 150, False), ((180, 190), 178, False),
])
def test_negotiation_like_ib_gateway(offered, version, accepted):
    deal = negotiate(*offered)
    assert (deal.version, deal.accepted) == (version, accepted)
    if not accepted:
        assert str(offered[0]) in deal.reason and str(offered[1]) in deal.reason


@pytest.mark.parametrize("version", VERSIONS)
def test_open_order_per_version(gw, caplog, version):
    o = make_order(gw)
    msg = messages.open_order(version, o)
    gated = (version < 177) + (version >= 158) + (version >= 160) + (version >= 162) + 5 * (version >= 170)
    assert len(msg) == 119 + gated
    for client in clients(version):
        [(name, (order_id, contract, order, state))] = decode(client, version, msg, caplog)
        assert name == "openOrder" and int(order_id) == 7, client
        assert (contract.symbol, contract.exchange) == ("AAPL", "SMART"), client
        assert (order.action, float(order.totalQuantity), order.orderType, float(order.lmtPrice)) == (
            "SELL", 100.0, "LMT", 120.5), client
        assert (order.tif, order.ocaGroup, int(order.ocaType), int(order.permId)) == ("GTC", "oca-1", 1, 5007), client
        assert order.orderRef == "dt-target:AAPL" and state.status == "Submitted", client
    with pytest.raises((ValueError, IndexError, StopIteration, AssertionError, TypeError)):  # one short: noticed
        decode("ibapi", version, msg[:-1] if version >= 162 else msg[:-3], caplog)


@pytest.mark.parametrize("version", VERSIONS)
def test_completed_order_exec_details_and_commission_per_version(gw, caplog, version):
    o = make_order(gw, status="Filled", filled=100.0, done_at=gw.now())
    done = messages.completed_order(version, o)
    assert len(done) == 91 + (version < 177) + 5 * (version >= 170)
    e = Execution("0000abcd.00001234.000001.01", o, gw.now(), 40.0, 120.5, 40.0, 120.5, 1, 0.351, None)
    ex_msg = messages.exec_details(version, e)
    assert len(ex_msg) == 31 + (version >= 178)
    for client in clients(version):
        [(name, (contract, order, state))] = decode(client, version, done, caplog)
        assert name == "completedOrder" and int(order.permId) == 5007 and state.completedStatus == "Filled", client
        assert float(order.filledQuantity) == 100.0 and contract.symbol == "AAPL", client
        [(name, (req_id, contract, ex))] = decode(client, version, ex_msg, caplog)
        assert name == "execDetails" and int(req_id) == -1, client
        assert (ex.execId, ex.side, float(ex.shares), ex.price, ex.permId) == (e.exec_id, "SLD", 40.0, 120.5, 5007)
        assert int(ex.lastLiquidity) == 1, client
        calls = decode(client, version, messages.commission_report(e), caplog)
        [(name, (report,))] = calls
        assert name in ("commissionReport", "commissionAndFeesReport") and report.execId == e.exec_id, client


@pytest.mark.parametrize("version", VERSIONS)
def test_error_contract_details_and_account_per_version(gw, caplog, version):
    err = messages.error(version, 7, 201, "Order rejected - reason:test")
    assert len(err) == 5 + (version >= 166)
    info = gw.market.contract("NIO")
    details = gw.contracts.details_message(12, info, "SMART", version)
    assert len(details) == (40 if version >= 164 else 39 + (version == 163))
    acct = gw.account
    acct.apply_fill(info, "BOT", 100, 50.0, 0.37)
    p = acct.positions["NIO"]
    for client in clients(version):
        rec = Recorder()
        text = wire_fields(err)
        if client == "ibapi":
            IbapiDecoder(rec, version).interpret(tuple(t.encode() for t in text[1:]), 4)
        else:
            (AsyncDecoder if client == "ib_async" else ib_insync.decoder.Decoder)(rec, version).interpret(text)
        [(name, args)] = rec.calls
        assert name == "error" and 201 in args and "Order rejected - reason:test" in args, client
        [(name, (req_id, cd))] = decode(client, version, details, caplog)
        assert name == "contractDetails" and int(req_id) == 12, client
        assert (cd.contract.symbol, cd.contract.conId, cd.contract.primaryExchange) == ("NIO", info.con_id, "NYSE")
        assert float(cd.minTick) == info.min_tick and cd.stockType == "COMMON", client
        if version >= 164:
            assert Decimal(str(cd.sizeIncrement)) == Decimal("0.0001"), client
        [(name, args)] = decode(client, version, gw.account_requests.position_msg(p), caplog)
        assert name == "position" and float(args[2]) == p.qty, client
        [(name, args)] = decode(client, version, gw.account_requests.portfolio_msg(p), caplog)
        assert name == "updatePortfolio" and float(args[1]) == p.qty, client


def test_place_order_layout_follows_the_version():
    """ib_async's own encoder at 176 and 178 (faProfile moves ocaType), read back by the typed decoder."""
    from ib_async.client import Client
    from ib_async.contract import Stock
    from ib_async.order import LimitOrder

    for version in (157, 163, 170, 176, 178):
        sent: list[str] = []
        c = Client(wrapper=None)
        c._serverVersion = version
        c.isConnected = lambda: True
        c.sendMsg = sent.append
        order = LimitOrder("BUY", 25, 120.5, ocaGroup="g1", ocaType=2, outsideRth=True, orderRef="ref-1")
        c.placeOrder(11, Stock("AAPL", "SMART", "USD"), order)
        fields = sent[0].split("\0")[:-1]
        req = decode_place_order(fields, version)
        assert (req.order_id, req.action, req.total_qty, req.order_type, req.lmt_price) == (11, "BUY", 25, "LMT",
                                                                                         120.5)
        assert (req.oca_group, req.oca_type, req.outside_rth, req.order_ref) == ("g1", 2, True, "ref-1"), version
        assert req.unread == 0, version


def test_sizes_in_round_lots_below_their_gates():
    from daytrading.sim_gateway.protocol.versions import bar_volume, tick_size

    assert (tick_size(157, 250), tick_size(159, 250), tick_size(178, 250)) == (2, 250, 250)
    assert (bar_volume(166, 12_345), bar_volume(175, 12_345)) == (123, 12_345)
