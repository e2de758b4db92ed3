"""All candidate sources behind one call: watchlist file + IB scanner + Polygon.

:class:`ScannerHub` is what the day-trader calls every ``settings.intervals.scanner_refresh``
seconds of market time (15 minutes by default)::

    hub = ScannerHub(settings, ib, clock)
    if hub.due(clock.now()):
        candidates = await hub.refresh()

Merge rule (:func:`merge_candidates`): hits are grouped by symbol; the merged candidate
takes the fields of the best hit (lowest ``rank``; on a tie watchlist before IB before
Polygon), fills its unknown fields (``None``) from the other hits, and lists every
source in ``sources`` (``extra["ranks"]`` maps each source to its rank). The merged list
is ordered by (rank, more sources first, source preference, symbol) — so the sources
interleave rank by rank — and capped at ``settings.scanner.max_symbols``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daytrading.scanners.candidate import IB_SOURCE_PREFIX, SOURCE_POLYGON, SOURCE_WATCHLIST, Candidate
from daytrading.scanners.ib_scanner import scan_ib
from daytrading.scanners.polygon import PolygonScanner
from daytrading.scanners.watchlist import WatchlistFile

if TYPE_CHECKING:
    import ib_async

    from daytrading.clock import Clock
    from daytrading.config import Settings

log = logging.getLogger(__name__)

_FILLABLE = ("price", "change_pct", "volume", "relative_volume", "momentum", "previous_close")


def source_preference(source: str) -> int:
    """Tie-break order of sources: watchlist 0, IB scanner 1, Polygon 2, others 3."""
    if source == SOURCE_WATCHLIST:
        return 0
    if source.startswith(IB_SOURCE_PREFIX):
        return 1
    if source == SOURCE_POLYGON:
        return 2
    return 3


def merge_candidates(groups: Iterable[Iterable[Candidate]]) -> list[Candidate]:
    """De-duplicate hits by symbol (module docstring for the rule); returns the ordered, uncapped list."""
    by_symbol: dict[str, list[Candidate]] = {}
    for group in groups:
        for cand in group:
            by_symbol.setdefault(cand.symbol, []).append(cand)
    merged = [_merge_one(hits) for hits in by_symbol.values()]
    merged.sort(key=lambda c: (c.rank, -len(c.sources), source_preference(c.source), c.symbol))
    return merged


def _merge_one(hits: list[Candidate]) -> Candidate:
    ordered = sorted(hits, key=lambda c: (c.rank, source_preference(c.source)))
    best = ordered[0]
    fills: dict[str, Any] = {}
    for name in _FILLABLE:
        if getattr(best, name) is None:
            value = next((getattr(h, name) for h in ordered if getattr(h, name) is not None), None)
            if value is not None:
                fills[name] = value
    sources: list[str] = []
    ranks: dict[str, int] = {}
    extra: dict[str, Any] = {}
    for hit in reversed(ordered):  # the best hit's extras win
        extra.update(hit.extra)
    for hit in ordered:
        for src in hit.sources:
            if src not in sources:
                sources.append(src)
            ranks[src] = min(ranks.get(src, hit.rank), hit.rank)
    extra["ranks"] = ranks
    return best.with_updates(sources=tuple(sources), extra=extra, **fills)


class ScannerHub:
    """Watchlist + IB scanner + Polygon, refreshed on an interval.

    Args:
        settings: the full settings (``scanner``, ``paths.watchlist``, ``intervals.scanner_refresh``).
        ib: a connected ``ib_async.IB`` or ``None`` (no IB scanner); may be replaced later
            through the ``ib`` attribute (e.g. after a reconnect).
        clock: market clock; ``None`` = the clock of :func:`daytrading.runtime.build_clock`.
        polygon: a ready :class:`PolygonScanner` (tests); ``None`` = built from settings
            (off without an API key).
        watchlist: a ready :class:`WatchlistFile`; ``None`` = ``settings.paths.watchlist``.

    Attributes:
        candidates: the result of the last refresh.
        last_refresh: market time of the last refresh (tz-aware New York) or ``None``.
        last_counts: hits per source of the last refresh (``watchlist``, ``ib``, ``polygon``,
            ``unique``, ``kept``, and ``ib:<CODE>`` per scan code).
    """

    def __init__(
        self,
        settings: Settings,
        ib: ib_async.IB | None = None,
        clock: Clock | None = None,
        *,
        polygon: PolygonScanner | None = None,
        watchlist: WatchlistFile | None = None,
    ) -> None:
        if clock is None:
            from daytrading.runtime import build_clock

            clock = build_clock(settings)
        self.settings = settings
        self.ib = ib
        self.clock = clock
        self.interval = float(settings.intervals.scanner_refresh)
        self.watchlist = watchlist or WatchlistFile(settings.paths.watchlist)
        self.polygon = polygon or PolygonScanner(settings.scanner, clock)
        self.candidates: list[Candidate] = []
        self.last_refresh: datetime | None = None
        self.last_counts: dict[str, int] = {}

    def due(self, now: datetime) -> bool:
        """True if never refreshed or ``scanner_refresh`` seconds of market time have passed since."""
        if self.last_refresh is None:
            return True
        return (now - self.last_refresh).total_seconds() >= self.interval

    async def refresh(self) -> list[Candidate]:
        """Query every source, merge, cap and remember the result (also returned).

        Logs ``"Scanner refresh"`` with the counts per source. Never raises except
        ``asyncio.CancelledError``: a failing source contributes nothing.
        """
        started = self.clock.now()
        watch = self._watchlist_hits()
        ib_hits, poly_hits = await asyncio.gather(self._ib_hits(), self._polygon_hits())
        merged = merge_candidates([watch, ib_hits, poly_hits])
        kept = merged[: self.settings.scanner.max_symbols]
        counts = {
            "watchlist": len(watch),
            "ib": len(ib_hits),
            "polygon": len(poly_hits),
            "unique": len(merged),
            "kept": len(kept),
        }
        for hit in ib_hits:
            counts[hit.source] = counts.get(hit.source, 0) + 1
        self.candidates, self.last_refresh, self.last_counts = kept, started, counts
        log.info(
            "Scanner refresh: watchlist=%d ib=%d polygon=%d unique=%d kept=%d",
            counts["watchlist"], counts["ib"], counts["polygon"], counts["unique"], counts["kept"],
            extra={"counts": counts, "symbols": [c.symbol for c in kept]},
        )
        return kept

    def _watchlist_hits(self) -> list[Candidate]:
        try:
            return self.watchlist.refresh().candidates()
        except Exception:  # refresh() does not raise; belt and braces for a running bot
            log.exception("watchlist refresh failed")
            return []

    async def _ib_hits(self) -> list[Candidate]:
        if self.ib is None:
            return []
        try:
            return await scan_ib(self.ib, self.settings.scanner)
        except Exception:
            log.exception("IB scanner failed")
            return []

    async def _polygon_hits(self) -> list[Candidate]:
        try:
            return await self.polygon.scan()
        except Exception:
            log.exception("Polygon scanner failed")
            return []
