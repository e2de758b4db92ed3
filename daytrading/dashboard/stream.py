"""The live stream (``GET /api/stream``): one database poller, any number of SSE clients.

The poller runs only while at least one client listens. Every ``dashboard.poll_interval``
wall seconds it reads one snapshot and the rows recorded since the last read (see
:meth:`daytrading.dashboard.reader.Reader.changes`), turns them into messages with the
``render`` callback and puts each message in every client's queue. A client whose queue
is full (it stopped reading) is dropped; at most ``dashboard.max_stream_clients`` listen.

Messages are Server-Sent Events: ``event: <kind>`` and one ``data:`` line of JSON. A new
stream (also a browser's automatic reconnect) starts with the ``welcome`` message, read after
it subscribed, so nothing recorded while a client was away is missing from its page.

Each message is encoded once (JSON, SSE frame, UTF-8) and the same bytes go to every client;
the poller also sends the keep-alive comment, so a client's stream only waits on its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime
from typing import Any

log = logging.getLogger("daytrading.dashboard")

#: Wall seconds between keep-alive comments on an idle stream (proxies drop silent connections).
KEEPALIVE_S = 15.0
QUEUE_SIZE = 256


def to_json(data: Any) -> str:
    """Compact JSON with ISO-8601 datetimes and dates."""

    def default(obj: Any) -> Any:
        if isinstance(obj, datetime | date):
            return obj.isoformat()
        return str(obj)

    return json.dumps(data, default=default, separators=(",", ":"))


def frame(kind: str, payload: str, event_id: str | None = None) -> str:
    """One SSE frame (``payload`` is one line of JSON; ``event_id``, without newlines, becomes
    the browser's ``Last-Event-ID`` when it reconnects)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {payload}\n\n"


RETRY = b"retry: 2000\n\n"
KEEPALIVE = b": keep-alive\n\n"


class StreamFull(Exception):
    """More clients than ``dashboard.max_stream_clients``."""


class Feed:
    """Fan-out of recorded changes to SSE clients.

    Args:
        poll: blocking-free coroutine returning ``[(kind, data), …]`` for one tick (or
            ``(kind, data, event_id)``: the frame's SSE id); it keeps its own cursor. Raising is
            logged and retried next tick.
        interval: wall seconds between ticks.
        max_clients: concurrent clients allowed.
        welcome: optional coroutine giving the first message of every new stream as an
            encoded SSE frame (bytes), read after the client subscribed, given that
            ``time.monotonic()`` reading and what the client says it holds (its
            ``Last-Event-ID``, or None): the page's state, so a client that reconnects after
            a gap, or whose queue overflowed, misses no exit. Raising is logged; the stream
            then starts without it.
    """

    #: Message kinds whose latest payload a new client gets at once.
    STATE_KINDS = ("status", "positions")

    def __init__(self, poll: Callable[[], Awaitable[list[tuple[Any, ...]]]], interval: float,
                 max_clients: int, welcome: Callable[[float, str | None], Awaitable[bytes]] | None = None) -> None:
        self.poll = poll
        self.interval = interval
        self.max_clients = max_clients
        self.welcome = welcome
        self.clients: set[asyncio.Queue[bytes | None]] = set()
        self.latest: dict[str, tuple[str, bytes]] = {}  # kind -> (JSON payload, its encoded frame)
        self._task: asyncio.Task[None] | None = None
        self._sent = time.monotonic()
        self.ticks = 0

    async def subscribe(self, held: str | None = None) -> AsyncIterator[bytes]:
        """Encoded frames for one client until it disconnects (or falls behind and is dropped).

        Args:
            held: the client's ``Last-Event-ID`` (what it already shows), passed to ``welcome``.

        Raises:
            StreamFull: when ``max_clients`` already listen.
        """
        if len(self.clients) >= self.max_clients:
            raise StreamFull(f"{len(self.clients)} live-stream clients already (dashboard.max_stream_clients)")
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_SIZE)
        self.clients.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return self._frames(queue, time.monotonic(), held)

    async def _frames(self, queue: asyncio.Queue[bytes | None], subscribed: float, held: str | None
                      ) -> AsyncIterator[bytes]:
        try:
            yield RETRY
            if self.welcome is not None:
                try:
                    yield await self.welcome(subscribed, held)
                except Exception as exc:  # noqa: BLE001 - the live messages still follow
                    log.warning("live stream welcome failed", extra={"error": str(exc)})
            for kind in self.STATE_KINDS:
                if kind in self.latest:
                    yield self.latest[kind][1]
            while True:
                item = await queue.get()
                if item is None:
                    return
                yield item
        finally:
            self.clients.discard(queue)

    def _broadcast(self, data: bytes) -> None:
        self._sent = time.monotonic()
        for queue in list(self.clients):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:  # a client that stopped reading: drop it, never block the others
                self.clients.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(None)

    async def _run(self) -> None:
        while self.clients:
            try:
                messages = await self.poll()
            except Exception as exc:  # noqa: BLE001 - a failed read is retried next tick
                log.warning("live stream read failed", extra={"error": str(exc)})
                messages = []
            for kind, data, *event_id in messages:
                payload = to_json(data)
                if kind in self.STATE_KINDS and self.latest.get(kind, ("",))[0] == payload:
                    continue
                encoded = frame(kind, payload, *event_id).encode()
                if kind in self.STATE_KINDS:
                    self.latest[kind] = (payload, encoded)
                self._broadcast(encoded)
            if time.monotonic() - self._sent >= KEEPALIVE_S:  # proxies drop silent connections
                self._broadcast(KEEPALIVE)
            self.ticks += 1
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        """End every client's stream and the poller (application shutdown)."""
        for queue in list(self.clients):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self.clients.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
