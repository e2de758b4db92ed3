"""Number formats shared by the engine's reports and the wire."""

from __future__ import annotations

__all__ = ["qty_field"]


def qty_field(q: float) -> int | float:
    """A quantity of shares as IB shows it: an integer when whole, else a float."""
    return int(q) if float(q).is_integer() else float(q)
