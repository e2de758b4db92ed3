"""Backtest: the production bots over recorded sessions on a virtual clock.

Public interface (used by ``daytrading backtest`` and the sweep):

* :func:`run_session` — one session through the sim-gateway and both bots
  (:mod:`daytrading.backtest.runner`), returning a :class:`SessionResult`;
* :func:`list_sessions` — the XNYS sessions a data folder holds;
* :func:`settings_with` — settings with validated ``KEY=VALUE`` overrides (dotted keys);
* :func:`fingerprint` — one hash over many sessions' fills;
* :func:`daytrading.backtest.metrics.compute_metrics` — the report's metrics.

Submodules are imported lazily so that ``import daytrading.backtest`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from daytrading.backtest.runner import (  # noqa: F401
        FillRecord,
        SessionResult,
        TradeRecord,
        fingerprint,
        run_session,
    )
    from daytrading.backtest.sessions import list_sessions, settings_with  # noqa: F401

_LAZY = {
    "run_session": "daytrading.backtest.runner",
    "fingerprint": "daytrading.backtest.runner",
    "SessionResult": "daytrading.backtest.runner",
    "TradeRecord": "daytrading.backtest.runner",
    "FillRecord": "daytrading.backtest.runner",
    "list_sessions": "daytrading.backtest.sessions",
    "settings_with": "daytrading.backtest.sessions",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'daytrading.backtest' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
