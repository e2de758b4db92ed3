"""Server versions: the handshake's negotiation and the version gates of every message the sim speaks.

Negotiation (as IB Gateway does it): the client opens with its range ``v<min>..<max>``; the
server answers with ``min(max, 178)``. The sim speaks every version from 157 (the oldest that
ib_async and ib_insync accept) to 178 (the newest whose messages the sim builds).

* A client whose maximum is below 157 gets its own maximum as the answer (so its library
  reports the version it was offered, as with a real gateway that is too new for it), and the
  connection is closed with a log line naming the range.
* 158 is avoided: at 158 ib_async and IB's ``ibapi`` disagree on whether openOrder carries the
  ``duration`` field (ib_async reads it from 159, ibapi from 158). When the answer would be 158
  and the client also accepts 157, 157 is chosen; a client offering only 158 gets 158 with
  ibapi's layout and a warning.

Gates (``MIN_SERVER_VER_*`` of IB's ``ibapi/server_versions.py``, ``ibapi-stable`` 10.50; each
checked against ib_async 2.1.0's ``decoder.py``/``client.py`` and ib_insync 0.9.86's, which
use the bare numbers). docs/tws-protocol.md §3.1 lists every field each gate adds or removes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ADVANCED_ORDER_REJECT",
    "AUTO_CANCEL_PARENT",
    "BOND_ISSUERID",
    "DURATION",
    "DURATION_IB_ASYNC",
    "FA_PROFILE_DESUPPORT",
    "FRACTIONAL_SIZE_SUPPORT",
    "HMDS_MARKET_DATA_IN_SHARES",
    "MARKET_DATA_IN_SHARES",
    "MANUAL_ORDER_TIME",
    "MAX_SERVER_VERSION",
    "MIN_SERVER_VERSION",
    "PEGBEST_PEGMID_OFFSETS",
    "PENDING_PRICE_REVISION",
    "POST_TO_ATS",
    "SIZE_RULES",
    "Negotiation",
    "negotiate",
]

#: Oldest server version the sim speaks (ib_async / ib_insync ``MinClientVersion``).
MIN_SERVER_VERSION = 157
#: Newest server version the sim speaks (ib_async ``MaxClientVersion``).
MAX_SERVER_VERSION = 178

#: placeOrder sends ``duration`` (ibapi client and ib_async client); ibapi's openOrder decodes it from here.
DURATION = 158
#: ib_async / ib_insync decode openOrder's ``duration`` only from 159 (``decoder.openOrder``).
DURATION_IB_ASYNC = 159
#: live tick sizes (last size, bid/ask size, volume) in shares; below, in round lots of 100.
MARKET_DATA_IN_SHARES = 159
#: ``postToAts`` in placeOrder and openOrder.
POST_TO_ATS = 160
#: ``autoCancelParent`` in placeOrder and openOrder.
AUTO_CANCEL_PARENT = 162
#: contractDetails: exactly at 163 one ``suggestedSizeIncrement`` after ``stockType``.
FRACTIONAL_SIZE_SUPPORT = 163
#: contractDetails loses its version field and ``mdSizeMultiplier``, gains
#: ``minSize|sizeIncrement|suggestedSizeIncrement``.
SIZE_RULES = 164
#: errorMsg carries ``advancedOrderRejectJson``; placeOrder sends ``advancedErrorOverride``.
ADVANCED_ORDER_REJECT = 166
#: placeOrder sends ``manualOrderTime``; cancelOrder sends ``manualOrderCancelTime``.
MANUAL_ORDER_TIME = 169
#: openOrder/completedOrder end with the five peg-best/peg-mid fields; placeOrder may send
#: some of them (only for IBKRATS or PEG BEST/PEG MID orders).
PEGBEST_PEGMID_OFFSETS = 170
#: historical bar volumes (historicalData, historicalDataUpdate) in shares; below, in round lots.
HMDS_MARKET_DATA_IN_SHARES = 175
#: reqContractDetails sends ``issuerId``; symbolSamples carry description and issuerId.
BOND_ISSUERID = 176
#: ``faProfile`` leaves placeOrder, openOrder and completedOrder (present below 177).
FA_PROFILE_DESUPPORT = 177
#: execDetails carries ``pendingPriceRevision``.
PENDING_PRICE_REVISION = 178


@dataclass(frozen=True)
class Negotiation:
    """Result of the handshake: ``version`` to answer, and whether the session may go on."""

    version: int
    accepted: bool
    reason: str = ""


def negotiate(client_min: int, client_max: int) -> Negotiation:
    """Choose the server version for a client offering ``client_min..client_max`` (module docstring)."""
    if client_max < client_min:
        return Negotiation(client_max, False, f"client version range {client_min}..{client_max} is empty")
    if client_max < MIN_SERVER_VERSION:
        return Negotiation(client_max, False,
                           f"client version range {client_min}..{client_max} is below {MIN_SERVER_VERSION}, "
                           f"the oldest server version the sim-gateway speaks; answered {client_max} and closed")
    version = min(client_max, MAX_SERVER_VERSION)
    if version < client_min:
        return Negotiation(MAX_SERVER_VERSION, False,
                           f"client version range {client_min}..{client_max} starts above {MAX_SERVER_VERSION}, "
                           f"the newest server version the sim-gateway speaks; closed")
    if version == DURATION and client_min <= MIN_SERVER_VERSION:
        return Negotiation(MIN_SERVER_VERSION, True,
                           "158 avoided (ib_async and ibapi disagree on openOrder's duration there); using 157")
    if version == DURATION:
        return Negotiation(DURATION, True, "client offers only 158: openOrder follows ibapi (duration from 158)")
    return Negotiation(version, True)


def tick_size(version: int, shares: float) -> int:
    """A live tick size for the wire: shares from 159, round lots (shares // 100) below."""
    return int(shares) if version >= MARKET_DATA_IN_SHARES else int(shares) // 100


def bar_volume(version: int, shares: float) -> int:
    """A historical bar volume for the wire: shares from 175, round lots (shares // 100) below."""
    return int(shares) if version >= HMDS_MARKET_DATA_IN_SHARES else int(shares) // 100
