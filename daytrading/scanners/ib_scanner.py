"""IB market scanner through ib_async (``reqScannerSubscription`` under the hood).

One scanner request per scan code (``TOP_PERC_GAIN``, ``MOST_ACTIVE``,
``HOT_BY_VOLUME`` by default, from ``settings.scanner.ib_scan_codes``), US major-exchange
stocks (instrument ``STK``, location ``STK.US.MAJOR``), filtered by IB on price
(``abovePrice`` = ``scanner.min_price``, ``belowPrice`` = ``scanner.max_price``, dollars)
and volume (``aboveVolume`` = ``scanner.min_volume``, shares). The requests of one scan
run concurrently (IB allows up to 10 scanner subscriptions at a time).

IB's scanner answers carry the contract and the rank only: price, change and volume
of an IB candidate are ``None`` (the day-trader gets them from its bars).

Reference: https://interactivebrokers.github.io/tws-api/market_scanners.html
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ib_async import ScannerSubscription

from daytrading.scanners.candidate import IB_SOURCE_PREFIX, Candidate
from daytrading.scanners.watchlist import normalize_symbol

if TYPE_CHECKING:
    import ib_async

    from daytrading.config import ScannerSettings

log = logging.getLogger(__name__)

#: IB returns at most 50 rows per scanner subscription.
IB_MAX_ROWS = 50
INSTRUMENT = "STK"
LOCATION = "STK.US.MAJOR"


def make_subscription(scan_code: str, settings: ScannerSettings, rows: int = IB_MAX_ROWS) -> ScannerSubscription:
    """The :class:`ib_async.ScannerSubscription` for one scan code and the scanner settings."""
    return ScannerSubscription(
        numberOfRows=max(1, min(rows, IB_MAX_ROWS)),
        instrument=INSTRUMENT,
        locationCode=LOCATION,
        scanCode=scan_code,
        abovePrice=float(settings.min_price),
        belowPrice=float(settings.max_price),
        aboveVolume=int(settings.min_volume),
    )


async def scan_ib(
    ib: ib_async.IB,
    scanner_settings: ScannerSettings,
    scan_codes: Iterable[str] | None = None,
    *,
    rows: int = IB_MAX_ROWS,
    timeout: float = 20.0,
) -> list[Candidate]:
    """Run IB's market scanner once per scan code and return the hits.

    Args:
        ib: a connected ``ib_async.IB`` (any client id).
        scanner_settings: ``settings.scanner`` (price/volume filters, default scan codes).
        scan_codes: IB scan codes; ``None`` = ``scanner_settings.ib_scan_codes``.
        rows: rows asked per scan code (IB caps at 50).
        timeout: wall seconds to wait for each scan code's answer.

    Returns:
        Candidates in scan-code order, then IB's rank order; ``source`` is
        ``"ib:<SCAN_CODE>"``, ``rank`` IB's 0-based rank, ``extra`` holds ``conId``,
        ``primaryExchange`` and IB's ``distance``/``benchmark``/``projection`` strings
        when non-empty. A symbol can appear once per scan code (the hub de-duplicates).

    Never raises except ``asyncio.CancelledError``: a disconnected ``ib``, an IB error,
    a timeout or a malformed row is logged and costs only that scan code (or row).
    """
    codes = list(scanner_settings.ib_scan_codes if scan_codes is None else scan_codes)
    if not codes:
        return []
    if not ib.isConnected():
        log.warning("IB scanner skipped: not connected to IB", extra={"scan_codes": codes})
        return []
    results = await asyncio.gather(
        *(_scan_one(ib, code, scanner_settings, rows, timeout) for code in codes)
    )
    return [c for hits in results for c in hits]


async def _scan_one(
    ib: ib_async.IB, code: str, settings: ScannerSettings, rows: int, timeout: float
) -> list[Candidate]:
    subscription = make_subscription(code, settings, rows)
    try:
        async with asyncio.timeout(timeout):
            data = await ib.reqScannerDataAsync(subscription)
    except TimeoutError:
        log.warning("IB scanner %s: no answer within %.1f s", code, timeout, extra={"scan_code": code})
        _cancel_stale(ib, subscription)
        return []
    except Exception as exc:  # an IB error must not stop the scan of the other codes
        log.error(
            "IB scanner %s failed: %s: %s", code, type(exc).__name__, exc, extra={"scan_code": code}
        )
        return []
    return _candidates(code, data)


def _cancel_stale(ib: ib_async.IB, subscription: ScannerSubscription) -> None:
    """Cancel the scanner subscription a timed-out ``reqScannerDataAsync`` left open at IB."""
    try:
        for sub in list(ib.wrapper.reqId2Subscriber.values()):
            if getattr(sub, "subscription", None) is subscription:
                ib.cancelScannerSubscription(sub)
    except Exception as exc:  # best effort: a stale subscription only costs an IB slot
        log.debug("IB scanner: stale subscription not cancelled (%s)", exc)


def _candidates(code: str, data: Iterable[object] | None) -> list[Candidate]:
    hits: list[Candidate] = []
    source = IB_SOURCE_PREFIX + code
    for item in data or ():
        try:
            contract = item.contractDetails.contract  # type: ignore[attr-defined]
            symbol = normalize_symbol(contract.symbol)
            rank = int(item.rank)  # type: ignore[attr-defined]
        except (AttributeError, TypeError, ValueError) as exc:
            log.debug("IB scanner %s: row skipped (%s)", code, exc, extra={"scan_code": code})
            continue
        extra: dict[str, object] = {"conId": contract.conId, "primaryExchange": contract.primaryExchange}
        for name in ("distance", "benchmark", "projection"):
            value = getattr(item, name, "")
            if value:
                extra[name] = value
        hits.append(Candidate(symbol=symbol, source=source, rank=rank, extra=extra))
    log.debug("IB scanner %s: %d hits", code, len(hits), extra={"scan_code": code, "hits": len(hits)})
    return hits
