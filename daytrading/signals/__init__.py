"""Bars, incremental indicators, entry rules and historical-data pacing for the day-trader.

* :mod:`.bars` — :class:`Bar` (start-stamped, New York), :class:`BarAggregator`
  (IB 5-second real-time bars → 30-second bars), :func:`bars_from_ib` (backfill).
* :mod:`.indicators` — :class:`IndicatorSet` (session VWAP, RSI, ATR; O(1) per bar,
  equal to the ``ta`` library) producing :class:`Snapshot`.
* :mod:`.rules` — :class:`EntryRuleConfig`, :func:`evaluate` → :class:`RuleDecision`,
  :func:`gap_pct`.
* :mod:`.pacing` — :class:`HistoricalPacer` (IB's small-bar pacing limits).
"""

from daytrading.signals.bars import Bar, BarAggregator, as_bar, bars_from_ib
from daytrading.signals.indicators import ATR, RSI, IndicatorSet, SessionVWAP, Snapshot
from daytrading.signals.pacing import HistoricalPacer, PacingLimits
from daytrading.signals.rules import EntryRuleConfig, RuleDecision, evaluate, gap_pct

__all__ = [
    "ATR",
    "RSI",
    "Bar",
    "BarAggregator",
    "EntryRuleConfig",
    "HistoricalPacer",
    "IndicatorSet",
    "PacingLimits",
    "RuleDecision",
    "SessionVWAP",
    "Snapshot",
    "as_bar",
    "bars_from_ib",
    "evaluate",
    "gap_pct",
]
