"""Helpers shared by the sim-gateway tests: market times of the test day, the admin path without
blocking the gateway's loop, and a wrapper stand-in that records what a client's decoder calls."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from daytrading.clock import NY
from daytrading.sim_gateway import request


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    """A New York time on 2020-11-17, the recorded session most tests replay."""
    return datetime(2020, 11, 17, hh, mm, ss, tzinfo=NY)


async def ctl(gw: Any, command: str, **params: Any) -> Any:
    """The real admin path (socket, JSON line) without blocking the gateway's loop."""
    return await asyncio.to_thread(request, gw.admin_port, command, **params)


class Recorder:
    """Stands in for a client's wrapper: records every call its decoder makes."""

    defaultTimezone = UTC

    class _IB:
        TimezoneTWS = None

    ib = _IB()

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record
