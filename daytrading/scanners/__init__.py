"""Candidate sources for the day-trader: watchlist file, IB market scanner, Polygon (massive).

Public API (see each module):

* :class:`Candidate` — one scanner hit (``candidate``).
* :class:`WatchlistFile`, :class:`Watchlist`, :class:`WatchlistError`,
  :func:`load_watchlist`, :func:`parse_watchlist`, :func:`normalize_symbol` (``watchlist``).
* :func:`scan_ib` (``ib_scanner``), :class:`PolygonScanner`, :func:`momentum_score` (``polygon``).
* :class:`ScannerHub`, :func:`merge_candidates` (``hub``).
"""

from daytrading.scanners.candidate import Candidate
from daytrading.scanners.hub import ScannerHub, merge_candidates
from daytrading.scanners.ib_scanner import scan_ib
from daytrading.scanners.polygon import PolygonScanner, momentum_score
from daytrading.scanners.watchlist import (
    Watchlist,
    WatchlistEntry,
    WatchlistError,
    WatchlistFile,
    load_watchlist,
    normalize_symbol,
    parse_watchlist,
)

__all__ = [
    "Candidate",
    "PolygonScanner",
    "ScannerHub",
    "Watchlist",
    "WatchlistEntry",
    "WatchlistError",
    "WatchlistFile",
    "load_watchlist",
    "merge_candidates",
    "momentum_score",
    "normalize_symbol",
    "parse_watchlist",
    "scan_ib",
]
