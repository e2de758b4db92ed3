"""sim-gateway: a local IB Gateway speaking the TWS API over loopback, replaying recorded markets.

Unmodified TWS API clients (ib_async, ib_insync, IB's ``ibapi``) connect to it exactly as to
IB Gateway; it replays recorded bars on a shared replay clock, fills orders against them,
keeps the account, and injects faults and latency.

Public API (everything outside this package uses only these names):

* :class:`SimGateway` — the server (``await gw.start()`` / ``await gw.stop()``);
* :func:`build_gateway` — load the market and construct a gateway from command-line style options;
* :func:`request` / :class:`AdminError` — one admin command (faults, latency, report, clock) to a
  running gateway's admin port;
* :func:`main` / :func:`ctl_main` — ``daytrading sim-gateway`` and ``daytrading sim-gateway-ctl``.

Test helpers live in :mod:`daytrading.sim_gateway.testing` (for tests and benchmarks only).
Names are loaded lazily on first use so that ``import daytrading.sim_gateway`` stays cheap
for the CLI and the supervisor.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daytrading.sim_gateway.admin import AdminError, request
    from daytrading.sim_gateway.cli import build_gateway, ctl_main, main
    from daytrading.sim_gateway.server import SimGateway

__all__ = ["AdminError", "SimGateway", "build_gateway", "ctl_main", "main", "request"]

_HOME = {
    "AdminError": "daytrading.sim_gateway.admin",
    "request": "daytrading.sim_gateway.admin",
    "build_gateway": "daytrading.sim_gateway.cli",
    "ctl_main": "daytrading.sim_gateway.cli",
    "main": "daytrading.sim_gateway.cli",
    "SimGateway": "daytrading.sim_gateway.server",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'daytrading.sim_gateway' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
