"""One scanner hit: a symbol some source thinks is worth watching today.

Every source (the watchlist file, the IB market scanner, the Polygon/massive
snapshot) produces :class:`Candidate` objects; :class:`daytrading.scanners.hub.ScannerHub`
merges them. Fields a source does not know are ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

#: Source names, in the order the hub prefers them when two hits tie on rank.
SOURCE_WATCHLIST = "watchlist"
SOURCE_POLYGON = "polygon"
IB_SOURCE_PREFIX = "ib:"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A scanner hit.

    Attributes:
        symbol: IB US stock symbol, upper case, share class after one space
            (``"BRK B"``); see :func:`daytrading.scanners.watchlist.normalize_symbol`.
        source: where it came from: ``"watchlist"``, ``"polygon"`` or ``"ib:<SCAN_CODE>"``
            (e.g. ``"ib:TOP_PERC_GAIN"``). After a merge, the source of the best-ranked hit.
        price: last trade price in US dollars, or ``None``.
        change_pct: change since the previous close as a **fraction** (0.12 = +12 %), or ``None``.
        volume: today's volume so far in shares, or ``None``.
        relative_volume: today's volume relative to normal (see the source's docs), or ``None``.
        momentum: momentum score in [0, 1] (Polygon scanner formula), or ``None``.
        previous_close: previous session's close in dollars (for gap computation), or ``None``.
        rank: 0-based position in its source's list (0 = best).
        extra: source-specific details (IB conId, Polygon day high/low, watchlist note, …).
        sources: every source that reported this symbol (filled by the hub's merge;
            a fresh candidate has ``(source,)``).
    """

    symbol: str
    source: str
    price: float | None = None
    change_pct: float | None = None
    volume: float | None = None
    relative_volume: float | None = None
    momentum: float | None = None
    previous_close: float | None = None
    rank: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.sources:
            object.__setattr__(self, "sources", (self.source,))

    @property
    def gap_pct(self) -> float | None:
        """``price / previous_close − 1`` as a fraction, or ``None`` if either is unknown."""
        if self.price is None or not self.previous_close:
            return None
        return self.price / self.previous_close - 1.0

    def with_updates(self, **changes: Any) -> Candidate:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return replace(self, **changes)
