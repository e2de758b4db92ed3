"""Which session an operations command shows when no ``--date`` is given.

After a sim replay or a backtest of a recorded day (2020-11-17, say) the clock's session
is today's and holds nothing; showing it would say "no rejections recorded" beside a
database full of them. So the default is:

1. the ``--date`` given, else
2. the clock's current XNYS session when anything is recorded for it, else
3. the latest session recorded in the database (trades, orders, gate decisions,
   events, positions), else
4. the clock's session (an empty database).

Every command says which one it shows (:attr:`SessionChoice.label`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

REQUESTED = "requested"
CURRENT = "current session"
LATEST = "latest recorded session"
EMPTY = "current session, nothing recorded yet"


@dataclass(frozen=True)
class SessionChoice:
    """The session shown (``day``, an XNYS session date), why (``source``) and the clock's session."""

    day: date
    source: str
    clock_day: date

    @property
    def label(self) -> str:
        """``session 2020-11-17 (latest recorded session; the clock's session 2026-12-01 has no records)``."""
        text = f"session {self.day} ({self.source}"
        if self.source == LATEST and self.day != self.clock_day:
            text += f"; the clock's session {self.clock_day} has no records; --date D for another"
        return text + ")"

    def as_dict(self) -> dict[str, Any]:
        """``{"session_date", "session_source", "session_label"}`` for JSON output."""
        return {"session_date": self.day.isoformat(), "session_source": self.source, "session_label": self.label}


def choose_session(coord: Any, requested: date | None = None, *, clock_day: date | None = None) -> SessionChoice:
    """The session to show (rules in the module docstring).

    Args:
        coord: a :class:`~daytrading.coordination.Coordinator` (read methods only).
        requested: the user's ``--date``, or ``None``.
        clock_day: the clock's session (default ``coord.session_date()``).
    """
    clock_day = clock_day or coord.session_date()
    if requested is not None:
        return SessionChoice(requested, REQUESTED, clock_day)
    if coord.has_session_records(clock_day):
        return SessionChoice(clock_day, CURRENT, clock_day)
    latest = coord.latest_session_date()
    if latest is None:
        return SessionChoice(clock_day, EMPTY, clock_day)
    return SessionChoice(latest, LATEST if latest != clock_day else CURRENT, clock_day)
