"""Number and time formats shared by the engine's reports and the wire."""

from __future__ import annotations

from datetime import datetime

from daytrading.clock import NY

__all__ = ["market_iso", "qty_field"]


def market_iso(ts: float) -> str:
    """Market time (POSIX seconds) as ISO-8601 text in New York time, to the second."""
    return datetime.fromtimestamp(ts, tz=NY).isoformat(timespec="seconds")


def qty_field(q: float) -> int | float:
    """A quantity of shares as IB shows it: an integer when whole, else a float."""
    return int(q) if float(q).is_integer() else float(q)
