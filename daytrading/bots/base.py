"""What both bots share: the run loop, time scaling, stop signals, the heartbeat, database
calls off the event loop, the hang test hook.

A bot's intervals are market seconds on its clock (a replay at speed 390 runs them
390× faster); IB answers in wall time, so order waits have a wall-time floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from typing import Any

from ib_async import IB

from daytrading.clock import Clock
from daytrading.config import Settings
from daytrading.coordination import Coordinator
from daytrading.errors import DaytradingError

log = logging.getLogger("daytrading.bots")


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds (of the loop's clock) have passed;
    True when it was set.

    ``asyncio.wait_for(event.wait(), timeout)`` on Python 3.11 wraps the wait in a task of
    its own and, on timeout, cancels that task and waits for it: a bot idles thousands of
    times a session, so this waits in the calling task under ``asyncio.timeout`` instead
    (what ``wait_for`` itself does from Python 3.12 on).
    """
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(max(0.0, timeout)):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


class Bot:
    """Base of the exit-manager and the day-trader.

    Subclasses set ``BOT`` (the heartbeat name) and ``client_id``, implement
    :meth:`connect_cycle` (connect, then reconcile; return True when connected),
    :meth:`process_once` and :meth:`idle`, and may extend :meth:`stop`,
    :meth:`on_stopped` and :meth:`heartbeat_detail`.
    """

    BOT = "bot"

    def __init__(self, settings: Settings, coord: Coordinator, clock: Clock, ib: IB | None) -> None:
        self.settings = settings
        self.coord = coord
        self.clock = clock
        self.ib = ib or IB()
        self.state = "starting"
        self.connected = False
        self._stopping = asyncio.Event()

    # ------------------------------------------------------------------ the run loop

    async def run(self, *, install_signals: bool = True) -> None:
        """Connect, reconcile, then ``process_once`` / ``idle`` until :meth:`stop`.

        A failed step (broker or database trouble) is logged and retried on the next turn;
        a lost connection goes back to :meth:`connect_cycle`.
        """
        if install_signals:
            self._install_signal_handlers()
        heartbeat = asyncio.ensure_future(self._heartbeat_loop())
        try:
            while not self._stopping.is_set():
                if not self.connected:
                    await self.connect_cycle()
                    continue
                started = self.clock.now()
                try:
                    await self.process_once()
                except (DaytradingError, ConnectionError, TimeoutError) as exc:
                    log.warning("step failed; will retry", extra={"bot": self.BOT, "error": str(exc)})
                await self.idle((self.clock.now() - started).total_seconds())
        finally:
            heartbeat.cancel()
            self.on_stopped()
            self.state = "stopped"
            try:
                await asyncio.wait_for(self.db(self.coord.heartbeat, "stopped"), 5.0)
            except Exception:  # noqa: BLE001 - best effort on the way out
                log.debug("final heartbeat failed", exc_info=True)
            if self.ib.isConnected():
                self.ib.disconnect()
            log.info(f"{self.BOT} stopped")

    async def connect_cycle(self) -> None:
        """Connect (and reconcile); on failure wait before the next attempt."""
        raise NotImplementedError

    async def process_once(self) -> Any:
        """One sweep or cycle."""
        raise NotImplementedError

    async def idle(self, spent_market_s: float) -> None:
        """Wait before the next :meth:`process_once` (``spent_market_s``: market seconds the last one took)."""
        await wait_event(self._stopping, self._wall(1.0))

    def on_stopped(self) -> None:
        """Cancel the bot's own tasks when :meth:`run` ends."""

    async def db(self, fn: Any, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Run a blocking coordination call off the event loop (the loop never runs SQLite code).

        ``timeout`` (wall seconds) makes the call fail fast with
        :class:`~daytrading.errors.DatabaseBusyError` where the Coordinator supports it.
        """
        run_async = getattr(self.coord, "run_async", None)
        if run_async is not None:
            return await run_async(fn, *args, timeout=timeout, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)

    # ------------------------------------------------------------------ time

    def _wall(self, market_seconds: float, floor: float = 0.05) -> float:
        """Wall seconds for ``market_seconds`` of market time on this run's clock (at least ``floor``)."""
        return max(floor, market_seconds / max(self.clock.speed, 1e-9))

    def _order_wait(self, market_seconds: float) -> float:
        """Wall seconds to wait for IB to answer about an order (at least 2 s of wall time)."""
        return self._wall(market_seconds, floor=2.0)

    def stop(self) -> None:
        """Ask ``run()`` to finish (safe from signal handlers)."""
        self._stopping.set()

    def _install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM (and SIGBREAK on Windows, where the loop has no signal support) → :meth:`stop`."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGBREAK", None)):
            if sig is None:
                continue
            try:
                loop.add_signal_handler(sig, self.stop)
            except (NotImplementedError, RuntimeError, ValueError):
                with contextlib.suppress(ValueError, OSError):
                    signal.signal(sig, lambda *_: loop.call_soon_threadsafe(self.stop))

    def on_heartbeat(self) -> None:
        """Called on the loop at every heartbeat tick (``intervals.heartbeat`` wall seconds); must not block."""

    def heartbeat_detail(self) -> dict[str, Any]:
        """JSON-serialisable detail stored with each heartbeat."""
        return {"connected": self.connected}

    async def _heartbeat_loop(self) -> None:
        """Heartbeat every ``intervals.heartbeat`` wall seconds, never blocking the loop.

        The heartbeat file beside the database is written every tick (no SQLite: the
        supervisor sees this bot alive while the database is locked, full or damaged);
        the database row is written off the loop (:meth:`Coordinator.run_async`), one
        write in flight at a time. A failing database is logged, not fatal.
        """
        interval = self.settings.intervals.heartbeat
        pending: asyncio.Future[None] | None = None
        while True:
            maybe_hang_for_tests(self.BOT)
            detail = json.dumps(self.heartbeat_detail())
            self.coord.beat_file(self.state, detail)
            self.on_heartbeat()
            if pending is None or pending.done():
                if pending is not None and pending.exception() is not None:
                    log.warning("heartbeat row not written", extra={"bot": self.BOT, "error": str(pending.exception())})
                pending = asyncio.ensure_future(
                    self.coord.run_async(self.coord.heartbeat, self.state, detail, timeout=max(interval, 1.0)))
            await asyncio.sleep(interval)


def maybe_hang_for_tests(bot: str) -> None:
    """Test hook: when the file named by ``$DAYTRADING_TEST_HANG_FILE`` exists and names
    this bot, the process blocks forever (alive but silent, no heartbeat): how the
    supervisor's hang detection is tested."""
    path = os.environ.get("DAYTRADING_TEST_HANG_FILE")
    if not path or not os.path.exists(path):
        return
    try:
        with open(path, encoding="utf-8") as fh:
            names = fh.read()
    except OSError:
        return
    if bot in names:
        log.warning("test hang file names this bot: blocking the event loop", extra={"path": path})
        while True:
            time.sleep(3600)
