"""The dashboard's controls: freeze, unfreeze, liquidate-all.

They exist only when ``dashboard.token`` is set (from ``.env`` or the environment; a
:class:`pydantic.SecretStr`, never logged or echoed) and need it as a bearer token
(``Authorization: Bearer <token>``):

* no token configured → **403** with how to enable the controls;
* a missing or wrong bearer token → **401** (compared in constant time);
* liquidate-all also needs the body field ``confirm`` = ``"LIQUIDATE"`` (else 422).

Every control request is logged (WARNING, ``daytrading.dashboard``) with the client's address
and the outcome. The actions are the system's own: :meth:`Coordinator.freeze` /
:meth:`Coordinator.unfreeze` (one short write transaction; the dashboard's *reads* stay
read-only) and :func:`daytrading.ops.liquidate.liquidate_all` (``ib.tools_client_id``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request

from daytrading.config import Settings

log = logging.getLogger("daytrading.dashboard")

DISABLED = ("controls are disabled: set dashboard.token (DAYTRADING_DASHBOARD__TOKEN=... in .env or the "
            "environment) and restart the dashboard; then send it as 'Authorization: Bearer <token>'")
_liquidating = asyncio.Lock()


def client_of(request: Request) -> str:
    """The client's address as ``host:port`` (``?`` when unknown)."""
    return f"{request.client.host}:{request.client.port}" if request.client else "?"


def require_token(settings: Settings) -> Callable[[Request], None]:
    """A FastAPI dependency that lets a control request through only with the right bearer token."""
    token = settings.dashboard.token.get_secret_value().encode()

    def check(request: Request) -> None:
        action = request.url.path.rsplit("/", 1)[-1]
        client = client_of(request)
        if not token:
            log.warning("control request refused: controls disabled", extra={"action": action, "client": client})
            raise HTTPException(403, DISABLED)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token):
            log.warning("control request refused: missing or wrong bearer token",
                        extra={"action": action, "client": client})
            raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer <dashboard.token>)",
                                headers={"WWW-Authenticate": "Bearer"})
        log.warning("control request accepted", extra={"action": action, "client": client})

    return check


def _writer(settings: Settings) -> Any:
    from daytrading.runtime import build_clock, open_coordinator

    if not Path(settings.paths.database).exists():
        raise HTTPException(503, f"database {settings.paths.database} does not exist; nothing to freeze")
    return open_coordinator(settings, "dashboard", build_clock(settings), migrate=False)


async def freeze(settings: Settings, reason: str, client: str) -> dict[str, Any]:
    """Set the global freeze: the day-trader stops entering, the exit-manager stands down."""

    def run() -> dict[str, Any]:
        coord = _writer(settings)
        try:
            coord.freeze(f"{reason} (dashboard, {client})")
            return {"frozen": True, "freeze": coord.freeze_info()}
        finally:
            coord.engine.dispose()

    result = await asyncio.to_thread(run)
    log.warning("control: freeze set", extra={"client": client, "reason": reason})
    return result


async def unfreeze(settings: Settings, client: str) -> dict[str, Any]:
    """Clear the global freeze; ``was_frozen`` says whether it was set."""

    def run() -> dict[str, Any]:
        coord = _writer(settings)
        try:
            return {"frozen": False, "was_frozen": coord.unfreeze()}
        finally:
            coord.engine.dispose()

    result = await asyncio.to_thread(run)
    log.warning("control: freeze cleared", extra={"client": client, "was_frozen": result["was_frozen"]})
    return result


async def liquidate(settings: Settings, client: str) -> dict[str, Any]:
    """Run liquidate-all (the ops command's own code) and return its result.

    Raises:
        HTTPException: 409 while another liquidation from this dashboard is running.
    """
    from daytrading.ops.liquidate import liquidate_all

    if _liquidating.locked():
        raise HTTPException(409, "a liquidate-all from this dashboard is already running")
    async with _liquidating:
        log.warning("control: liquidate-all started", extra={"client": client})
        result = await liquidate_all(settings)
        log.warning("control: liquidate-all finished", extra={"client": client, "broker_ok": result.broker_ok})
    return {"broker_ok": result.broker_ok, **asdict(result)}
