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
"""

from __future__ import annotations

import asyncio
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


class BacktestLoop(looptime.make_event_loop_class(asyncio.SelectorEventLoop)):  # type: ignore[misc]
    """looptime's selector loop with the two rules of :mod:`daytrading.backtest.loop`.

    Build it with :func:`new_loop`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: ``run_in_executor`` calls seen, by function name (should stay empty).
        self.executor_calls: Counter[str] = Counter()

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
