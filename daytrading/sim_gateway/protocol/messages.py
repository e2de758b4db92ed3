"""Builders of outgoing messages, one per message type, following the negotiated server version.

Each builder returns the message as a list of values (message id first) for
:func:`~.wire.encode_message`. Layouts are those ib_async 2.1.0's ``Decoder``, ib_insync
0.9.86's and IB's ``ibapi`` decoders read at the given version; the gates are named in
:mod:`.versions` and listed per field in docs/tws-protocol.md §3.1. Builders read the
engine's objects (orders, executions, positions, contracts) and never change them.
"""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Any

from daytrading.clock import NY
from daytrading.sim_gateway.engine.units import qty_field
from daytrading.sim_gateway.protocol import versions as v
from daytrading.sim_gateway.protocol.wire import UNSET_DOUBLE

__all__ = [
    "commission_report",
    "completed_order",
    "contract_block",
    "contract_details",
    "error",
    "exec_details",
    "ib_symbol",
    "ib_time",
    "money",
    "open_order",
    "order_status",
    "portfolio",
    "position",
    "qty_field",
    "RealTimeBarFrames",
    "trading_class",
]

#: orderTypes of a US stock's contractDetails.
ORDER_TYPES = ("ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,DEACTDIS,GTC,IOC,LMT,MKT,"
               "NONALGO,OCA,STP,STPLMT,TRAIL,WHATIF")
VALID_EXCHANGES = "SMART,AMEX,NYSE,ARCA,BATS,EDGX,ISLAND,IEX,NASDAQ"
#: The message version contractDetails carried before it was dropped at 164.
CONTRACT_DATA_VERSION = 8


def ib_time(ts: float) -> str:
    """POSIX seconds → IB's ``YYYYMMDD HH:MM:SS US/Eastern`` (New York time)."""
    return datetime.fromtimestamp(ts, tz=NY).strftime("%Y%m%d %H:%M:%S") + " US/Eastern"


def money(x: float) -> float:
    """A dollar amount rounded for the wire (avoids float noise)."""
    return round(float(x), 6)


def ib_symbol(symbol: str) -> str:
    """IB's spelling of a data symbol (``BRK-B`` → ``BRK B``)."""
    return symbol.replace("-", " ")


def trading_class(info: Any) -> str:
    """IB's tradingClass of a US stock: ``NMS`` for Nasdaq listings, else the symbol."""
    return "NMS" if info.primary_exchange == "NASDAQ" else ib_symbol(info.symbol)


def contract_block(info: Any, exchange: str, *, with_primary: bool = False) -> list[Any]:
    """Contract echo: ``conId|symbol|STK|∅|0.0|∅|∅|exchange|USD|localSymbol|tradingClass``
    (11 fields: position, execDetails, openOrder); ``with_primary`` adds the primary exchange
    after ``exchange`` (12 fields)."""
    sym = ib_symbol(info.symbol)
    out: list[Any] = [info.con_id, sym, "STK", "", 0.0, "", "", exchange]
    if with_primary:
        out.append(info.primary_exchange)
    out += ["USD", sym, trading_class(info)]
    return out


def error(version: int, req_id: int, code: int, text: str) -> list[Any]:
    """errorMsg (4): ``4|2|reqId|code|text`` + ``advancedOrderRejectJson`` from 166."""
    out: list[Any] = [4, 2, req_id, code, text]
    if version >= v.ADVANCED_ORDER_REJECT:
        out.append("")
    return out


def order_status(o: Any, status: str | None = None) -> list[Any]:
    """orderStatus (3): 12 fields, no message version (the same from 157 to 178)."""
    return [3, o.order_id, status or o.status, qty_field(o.filled), qty_field(o.remaining),
            money(o.avg_fill_price), o.perm_id, o.parent_id, money(o.last_fill_price), o.client_id, "", 0.0]


def _order_prices(o: Any) -> list[Any]:
    return [o.lmt_price if o.lmt_price is not None else 0.0, o.aux_price if o.aux_price is not None else 0.0]


def open_order(version: int, o: Any, status: str | None = None) -> list[Any]:
    """openOrder (5), all conditional blocks off. 127 fields at 178; ``faProfile`` below 177,
    ``duration`` from 158, ``postToAts`` from 160, ``autoCancelParent`` from 162, five peg fields from 170."""
    st = status or o.status
    commission: Any = money(o.commission) if st == "Filled" else ""
    out: list[Any] = [
        5, o.order_id, *contract_block(o.info, o.exchange), o.action, qty_field(o.total_qty), o.order_type,
        *_order_prices(o), o.tif, o.oca_group, o.account, "", 0, o.order_ref, o.client_id, o.perm_id,
        o.outside_rth, 0, 0.0,
        "", "", "", "", "",  # goodAfterTime, (deprecated sharesAllocation), faGroup, faMethod, faPercentage
    ]
    if version < v.FA_PROFILE_DESUPPORT:
        out.append("")  # faProfile
    out += [
        "", "", "", "", "", 0, "", -1, 0, "", "", "", "", "", 0, 0, 0, 0, "",
        o.oca_type if o.oca_group else 3, 0, 0, "", o.parent_id, 0, "", 0,
        "", "", 0, "", "", "", "", "", "", 0, 0, 0, "", "", "", "", 0, "", "", 0, 0, "", 0, 0,
        st, *([UNSET_DOUBLE] * 9), commission, "", "", "USD" if commission != "" else "", "",
        0, 0, 0, "", "", "", "", "", "", "", 0, "", "", "", "", 0, 0, 0, 0,
    ]
    if version >= v.DURATION:
        out.append("")  # duration
    if version >= v.POST_TO_ATS:
        out.append("")  # postToAts
    if version >= v.AUTO_CANCEL_PARENT:
        out.append(0)  # autoCancelParent
    if version >= v.PEGBEST_PEGMID_OFFSETS:
        out += ["", "", "", "", ""]  # minTradeQty, minCompeteSize, competeAgainstBestOffset, midOffsetAtWhole/Half
    return out


def completed_order(version: int, o: Any) -> list[Any]:
    """completedOrder (101), all conditional blocks off; ``faProfile`` below 177, peg fields from 170."""
    status = "Filled" if o.status == "Filled" else "Cancelled"
    done = ib_time(o.done_at or o.placed_at)
    out: list[Any] = [
        101, *contract_block(o.info, o.exchange), o.action, qty_field(o.total_qty), o.order_type, *_order_prices(o),
        o.tif, o.oca_group, o.account, "", 0, o.order_ref, o.perm_id, o.outside_rth, 0, 0.0,
        "", "", "", "",  # goodAfterTime, faGroup, faMethod, faPercentage
    ]
    if version < v.FA_PROFILE_DESUPPORT:
        out.append("")  # faProfile
    out += [
        "", "", "", "", "", 0, "", -1, "", "", "", "", "", 0, 0, 0, "", o.oca_type if o.oca_group else 3, 0,
        "", 0, "", "", 0, "", "", "", "", 0, 0, 0, "", "", "", "", "", "", 0, 0, "", 0, status, 0, 0, 0,
        "", "", "", 0, 0, "", qty_field(o.filled), 0, 0, "", 0, 0, 0, done, status,
    ]
    if version >= v.PEGBEST_PEGMID_OFFSETS:
        out += ["", "", "", "", ""]
    return out


def exec_details(version: int, e: Any, req_id: int = -1) -> list[Any]:
    """execDetails (11): 31 fields, ``pendingPriceRevision`` added at 178."""
    o = e.order
    venue = "ISLAND" if o.info.primary_exchange == "NASDAQ" else o.info.primary_exchange
    out: list[Any] = [
        11, req_id, o.order_id, *contract_block(o.info, venue), e.exec_id, ib_time(e.time), o.account, venue, e.side,
        qty_field(e.shares), money(e.price), o.perm_id, o.client_id, 0, qty_field(e.cum_qty), money(e.avg_price),
        o.order_ref, "", "", "", e.liquidity,
    ]
    if version >= v.PENDING_PRICE_REVISION:
        out.append(0)
    return out


def commission_report(e: Any) -> list[Any]:
    """commissionReport (59): exactly 8 fields; realized P&L UNSET for opening fills."""
    realized: Any = "1.7976931348623157E308" if e.realized is None else money(e.realized)
    return [59, 1, e.exec_id, money(e.commission), "USD", realized, "1.7976931348623157E308", ""]


def contract_details(version: int, req_id: int, info: Any, exchange: str, trading_hours: str,
                     liquid_hours: str) -> list[Any]:
    """contractDetails (10) of a US stock. From 164: no version field, ``minSize|sizeIncrement|
    suggestedSizeIncrement`` at the end (42 fields); below: version 8 after the id and
    ``mdSizeMultiplier`` after minTick, and exactly at 163 one ``suggestedSizeIncrement``."""
    sym = ib_symbol(info.symbol)
    n_exch = len(VALID_EXCHANGES.split(","))
    head: list[Any] = [10] if version >= v.SIZE_RULES else [10, CONTRACT_DATA_VERSION]
    out = [*head, req_id, sym, "STK", "", 0.0, "", exchange, "USD", sym, trading_class(info), trading_class(info),
           info.con_id, info.min_tick]
    if version < v.SIZE_RULES:
        out.append(1)  # mdSizeMultiplier
    out += ["", ORDER_TYPES, VALID_EXCHANGES, 1, 0, (info.long_name or sym).replace("\\", "/"), info.primary_exchange,
            "", "", "", "", "US/Eastern", trading_hours, liquid_hours, "", "",
            0,  # secIdList count
            1, "", "", ",".join(["26"] * n_exch), "", "COMMON"]
    if version >= v.SIZE_RULES:
        out += [0.0001, 0.0001, 100]
    elif version == v.FRACTIONAL_SIZE_SUPPORT:
        out.append(0.0001)
    return out


def position(account: str, p: Any) -> list[Any]:
    """position (61): exactly 16 fields; primary exchange in ``exchange``."""
    return [61, 3, account, *contract_block(p.info, p.info.primary_exchange), qty_field(p.qty), money(p.avg_cost)]


def portfolio(account: str, p: Any, mark: float) -> list[Any]:
    """updatePortfolio (7): exactly 20 fields, all numbers numeric; ``mark`` dollars."""
    m = mark if p.qty else 0.0
    return [7, 8, *contract_block(p.info, p.info.primary_exchange), qty_field(p.qty), money(m), money(p.qty * m),
            money(p.avg_cost), money(p.qty * (m - p.avg_cost) if p.qty else 0.0), money(p.realized), account]


_LEN = struct.Struct(">I")


def _wire_num(x: float) -> str:
    """Shortest text of a float on the wire: ``12.5``, ``12`` (integral), ``0`` for NaN."""
    if x != x:  # NaN
        return "0"
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


class _WireNums(dict):
    """``_wire_num`` of each float, computed once per distinct value (prices repeat bar after bar)."""

    def __missing__(self, x: float) -> str:
        text = self[x] = _wire_num(x)
        return text


class _WireWaps(dict):
    """The wire text of each WAP (``_wire_num(round(x, 6))``), computed once per distinct value
    (a quiet bucket's WAP is its close, the same bar after bar)."""

    def __missing__(self, x: float) -> str:
        text = self[x] = _wire_num(round(x, 6))
        return text


class RealTimeBarFrames:
    """realtimeBar (50) messages of one symbol's 5-s grid, framed for the socket.

    ``50|3|reqId|time|open|high|low|close|volume|wap|count`` (the same at 157–178; ib_async's
    ``Decoder.realtimeBar``): ``time`` is the bar's start, POSIX seconds; prices dollars;
    ``volume`` shares (integer); ``wap`` the volume-weighted price rounded to 6 decimals. The part
    after ``reqId`` is encoded once per bar and reused for every subscriber and client;
    :meth:`frame` prepends the subscriber's header and the length prefix. Bars are encoded
    :data:`CHUNK` at a time (a minute of 5-s bars) when the first of them is sent: that costs
    what an hour-sized chunk costs per bar (about 4 µs, half of one bar at a time), yet no
    streaming step encodes more than a minute per symbol, so at 390x (a bar every 12.8 wall ms)
    no step stalls the stream. The grid's columns become Python lists when this object is made
    (about a millisecond per session of 5-s bars: make it when the subscription arrives, not
    while streaming).

    Args:
        grid: :class:`daytrading.sim_gateway.engine.market.GridBars` (arrays ``open``, ``high``,
            ``low``, ``close``, ``volume``, ``wap``, ``count``; ``t0`` and ``seconds``).
    """

    #: Bars encoded together (a minute of 5-s bars; see the class docstring).
    CHUNK = 12

    def __init__(self, grid: Any) -> None:
        self.grid = grid
        #: the first bucket's start (POSIX s); the bucket length (s) and number of buckets
        self.t0, self._seconds, self._n = float(grid.t0), float(grid.seconds), len(grid)
        self._tails: list[bytes | None] = [None] * len(grid)
        self._cols = (grid.open.tolist(), grid.high.tolist(), grid.low.tolist(), grid.close.tolist(),
                      grid.volume.tolist(), grid.wap.tolist(), grid.count.tolist())
        self._nums = _WireNums()
        self._waps = _WireWaps()

    @staticmethod
    def header(req_id: int) -> bytes:
        """The fields before the bar: message id, version, ``reqId``."""
        return f"50\x003\x00{req_id}\x00".encode()

    def frame(self, header: bytes, i: int) -> bytes:
        """Bucket ``i`` of the grid as one length-prefixed message after ``header`` (:meth:`header`)."""
        tail = self._tails[i] or self._tail(i)
        return _LEN.pack(len(header) + len(tail)) + header + tail

    def due(self, now: float) -> int:
        """Index after the last bucket that ended by market time ``now`` (POSIX s)."""
        return min(self._n, int((now - self.t0) // self._seconds))

    def frames_into(self, out: list[bytes], header: bytes, i: int, j: int) -> None:
        """Append buckets ``i`` … ``j − 1`` to ``out`` as :meth:`frame` gives them, each as three
        parts (length prefix, ``header``, bar): ``b"".join(out)`` is the same bytes."""
        tails, pack, n = self._tails, _LEN.pack, len(header)
        for k in range(i, j):
            tail = tails[k] or self._tail(k)
            out += (pack(n + len(tail)), header, tail)

    def _tail(self, i: int) -> bytes:
        """Bucket ``i``'s encoded fields after ``reqId``, encoding its chunk first (:meth:`_encode`)."""
        self._encode(i)
        tail = self._tails[i]
        assert tail is not None
        return tail

    def _encode(self, i: int) -> None:
        """Encode buckets ``i`` … ``i + CHUNK − 1`` (fewer at the grid's end)."""
        j = min(i + self.CHUNK, len(self._tails))
        step = int(self.grid.seconds)
        t0 = int(self.grid.t0)
        o, h, lo, c, vol, wap, n = (col[i:j] for col in self._cols)
        num = self._nums.__getitem__
        rows = zip(map(str, range(t0 + i * step, t0 + j * step, step)), map(num, o), map(num, h), map(num, lo),
                   map(num, c), map(str, map(int, vol)), map(self._waps.__getitem__, wap), map(str, map(int, n)),
                   strict=True)
        self._tails[i:j] = ["\0".join(row).encode() + b"\0" for row in rows]
