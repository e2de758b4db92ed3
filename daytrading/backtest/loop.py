"""The backtest's event loop: ``looptime``'s virtual clock, made safe for a whole session.

:func:`new_loop` returns an asyncio selector loop whose clock is ``looptime``'s: when every
task waits and no socket is readable, the loop's time jumps to the next timer. Two rules
are added on top, both about time standing still, neither visible to the code that runs:

* **Time never stands still under a timer that keeps re-arming itself.** A timer scheduled
  at or before the loop's present time (``call_at(when <= loop.time())``) is moved one
  tick (:data:`TICK`, one microsecond) into the future. On a real loop the clock always
  moves between two callbacks; on a virtual loop it does not, and a callback that
  reschedules itself "for now" spins forever. ib_async's request throttle does exactly
  that: after 45 requests within one second (the day-trader subscribing to 39 symbols at
  once) it re-arms ``call_at(times[0] + 1)``, and at that instant ``t − times[0] > 1`` is
  false, so without this rule the loop livelocks at the same virtual microsecond.
* **No wall time leaks in through threads.** ``looptime`` advances virtual time in step
  with real time while a ``run_in_executor`` future is pending, so a thread-pool call would
  make the result depend on the machine's load. The backtest runs everything inline; this
  loop counts every executor call in :attr:`BacktestLoop.executor_calls` (by function
  name) so that a test can assert there were none.

Three changes make the same run cheaper, with the same callbacks at the same loop times:

* **One time jump per timer.** ``looptime`` keeps time in whole ticks and steps to the
  *nearest* tick of the next timer's time; a timer between two ticks (``call_later(4.9999)``
  from a float market time) is often landed on one tick short, where asyncio does not run it
  yet, so the loop idles and jumps again, one tick. :meth:`BacktestLoop._select` works out
  where that chain of jumps ends (:func:`landing`, looptime's and asyncio's arithmetic) and
  asks looptime for that step at once. In a 39-symbol session this halved the jumps (23k to
  12k) and the loop passes.
* **No executor bookkeeping per pass.** looptime checks its set of executor futures on every
  idle pass; here that set is kept empty-cheap (:class:`_Futures`).
* **No loop pass per no-op cycle.** Before each time jump looptime wants :data:`NOOP_CYCLES`
  idle passes (plus the one that starts counting them), each only a ``select(0)`` poll. An idle
  pass runs nothing (no callback is ready, the time stands, so no timer comes due), so
  :meth:`BacktestLoop._select` makes those polls itself, in the same order with the same
  arguments, until a socket is readable or looptime jumps: the same polls, about two asyncio
  passes fewer per jump.

And one rule for every platform: asyncio runs a timer once its time is less than
``now + clock resolution`` away, the resolution being ``time.monotonic``'s (1 ns on Linux,
15.6 ms on Windows with Python before 3.13). On a virtual clock that would let a Windows
run take timers up to 15.6 ms early: :data:`POP_MARGIN` fixes it at Linux's 1 ns.
"""

from __future__ import annotations

import asyncio
import weakref
from asyncio.base_events import MAXIMUM_SELECT_TIMEOUT
from collections import Counter
from typing import Any

import looptime

#: looptime's no-op cycles before a time jump (its default is 42; each costs one loop pass and
#: one selector poll: at 5 a 39-symbol session made 209k loop passes, at 1 it makes 116k, with
#: the same fills). looptime jumps only when no callback is ready and ``select(0)`` finds no
#: readable socket. On Linux a frame written to a loopback socket in this process is readable
#: as soon as ``send()`` returns, but on Windows loopback TCP it is not guaranteed to be readable
#: by the very next ``select(0)``: a jump before the peer has read it would make fills depend
#: on OS scheduling. One cycle keeps that margin of one more poll; never set it to 0.
NOOP_CYCLES = 1
#: The loop's time resolution (looptime's default), seconds.
TICK = 1e-6
#: Ticks per second (looptime's integer clock).
PER_S = round(1 / TICK)
#: A timer runs once its time is less than this many seconds ahead of the loop (asyncio's
#: ``_clock_resolution``, fixed at Linux's value so that every platform runs the same).
POP_MARGIN = 1e-9


def landing(now: int, when: float, timeout: float, margin: float = POP_MARGIN) -> int:
    """The tick (looptime's integer clock) at which a timer at loop time ``when`` runs when the
    loop, idle at tick ``now``, is asked to sleep ``timeout`` seconds (asyncio's
    ``min(max(0, when − time()), MAXIMUM_SELECT_TIMEOUT)``).

    looptime steps ``round(timeout / TICK)`` ticks, one more when ``0 < timeout < TICK``;
    asyncio then runs the timer if ``when < time() + margin``, else the loop sleeps again
    from there. This repeats that arithmetic (the same float operations) to its end.
    """
    while True:
        step = round(timeout * PER_S)
        if 0 < timeout < TICK:
            step += 1
        now += step
        if when < now / PER_S + margin or step <= 0:
            return now
        timeout = min(max(0, when - now / PER_S), MAXIMUM_SELECT_TIMEOUT)


class _Futures(weakref.WeakSet):  # type: ignore[type-arg]
    """looptime's set of pending executor futures; iterating it empty costs nothing."""

    def __iter__(self):  # noqa: ANN204 - as WeakSet's
        if not self.data:
            return iter(())
        return super().__iter__()


class BacktestLoop(looptime.make_event_loop_class(asyncio.SelectorEventLoop)):  # type: ignore[misc]
    """looptime's selector loop with the two rules of :mod:`daytrading.backtest.loop`.

    Build it with :func:`new_loop`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: ``run_in_executor`` calls seen, by function name (should stay empty).
        self.executor_calls: Counter[str] = Counter()
        self._clock_resolution = POP_MARGIN
        if not isinstance(getattr(self, "_LoopTimeEventLoop__noop_cycles", None), int):
            raise RuntimeError("looptime changed: no __noop_cycles count to read")
        futures = "_LoopTimeEventLoop__sync_futures"
        if not isinstance(getattr(self, futures, None), weakref.WeakSet):
            raise RuntimeError(f"looptime changed: no {futures} WeakSet to replace")
        setattr(self, futures, _Futures())
        self._looptime_select = self._selector.select
        self._selector.select = self._select  # type: ignore[method-assign]

    def _select(self, timeout: float | None) -> list[tuple[Any, Any]]:
        """looptime's select, asked for the whole step to the next timer (:func:`landing`); its
        no-op cycles before a time jump run here, one poll each, not one loop pass each."""
        if not timeout or timeout >= MAXIMUM_SELECT_TIMEOUT or not self._scheduled:
            return self._looptime_select(timeout)
        t = self.time()
        now = round(t * PER_S)
        timeout = (landing(now, self._scheduled[0]._when, timeout, self._clock_resolution) - now) / PER_S
        # looptime's own count (set by __init__ or a later setup_looptime): the set-up pass, the
        # no-op passes, the jump
        for _ in range(self._LoopTimeEventLoop__noop_cycles + 2):  # type: ignore[attr-defined]
            ready = self._looptime_select(timeout)
            if ready or self.time() != t:
                break
        return ready

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> asyncio.TimerHandle:
        """Schedule ``callback`` at loop time ``when``; a time not in the future becomes now + :data:`TICK`."""
        now = self.time()
        if when <= now:
            when = now + TICK
        return super().call_at(when, callback, *args, context=context)

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> asyncio.Future[Any]:
        """As asyncio's, counted in :attr:`executor_calls` (a thread lets wall time into the run)."""
        self.executor_calls[getattr(func, "__qualname__", repr(func))] += 1
        return super().run_in_executor(executor, func, *args)


def new_loop(*, start: float = 0.0, noop_cycles: int = NOOP_CYCLES) -> BacktestLoop:
    """A new :class:`BacktestLoop` whose time starts at ``start`` (loop seconds)."""
    return BacktestLoop(start=start, noop_cycles=noop_cycles, resolution=TICK)
