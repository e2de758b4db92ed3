"""The coordination API: the architecture's invariants over the shared database."""

from daytrading.coordination.api import (
    EXIT_REASONS,
    ClaimResult,
    Coordinator,
    PositionView,
    TradeView,
    target_and_stop,
)
from daytrading.coordination.ledger import Execution, LotSummary
from daytrading.db.models import PositionStatus

__all__ = [
    "EXIT_REASONS",
    "ClaimResult",
    "Coordinator",
    "Execution",
    "LotSummary",
    "PositionStatus",
    "PositionView",
    "TradeView",
    "target_and_stop",
]
