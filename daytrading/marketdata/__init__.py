"""Recorded market data: loading bar files into per-symbol pandas frames.

Public API (see :mod:`daytrading.marketdata.loader`):

* :func:`load_bars` — every bar of a folder or file, per symbol, indexed by bar START
  (tz-aware America/New_York).
* :func:`load_session` — the 04:00–20:00 New York slice of one session.
* :func:`load_daily` — daily bars (previous close, daily gaps) at as-traded prices.
* :func:`previous_closes` — previous official close per symbol for a session.
* :func:`synthetic_session` — seeded, deterministic synthetic minute bars.
"""

from daytrading.marketdata.loader import (
    BAR_COLUMNS,
    available_dates,
    load_bars,
    load_daily,
    load_session,
    previous_closes,
    synthetic_session,
)

__all__ = [
    "BAR_COLUMNS",
    "available_dates",
    "load_bars",
    "load_daily",
    "load_session",
    "previous_closes",
    "synthetic_session",
]
