"""The backtest's loop: virtual time that never stands still under a self-re-arming timer."""

from __future__ import annotations

import asyncio

from daytrading.backtest.loop import TICK, new_loop


def test_a_timer_rearmed_for_now_lets_time_move_on():
    """ib_async's throttle re-arms ``call_at(times[0] + 1)`` until ``now - times[0] > 1``: on a
    virtual clock that lands exactly on ``times[0] + 1`` this spun forever at one instant."""
    loop = new_loop(start=0.0)
    calls = []

    def throttle(first: float) -> None:
        t = loop.time()
        calls.append(t)
        if len(calls) > 1000:  # spinning at one instant: give up so the test fails, not hangs
            done.set_result(None)
        elif not t - first > 1.0:
            loop.call_at(first + 1.0, throttle, first)
        else:
            done.set_result(t)

    done = loop.create_future()
    loop.call_at(1.0, throttle, 0.0)
    try:
        end = loop.run_until_complete(asyncio.wait_for(done, 10))
    finally:
        loop.close()
    assert end is not None, f"time stood still at {calls[-1]}"
    assert 1.0 < end <= 1.0 + 3 * TICK
    assert len(calls) == 2


def test_ordinary_timers_and_sleeps_keep_their_times():
    loop = new_loop(start=100.0)

    async def main():
        t0 = loop.time()
        await asyncio.sleep(2.5)
        t1 = loop.time()
        await asyncio.sleep(0)
        return t0, t1, loop.time()

    try:
        t0, t1, t2 = loop.run_until_complete(main())
    finally:
        loop.close()
    assert t0 == 100.0 and t1 == 102.5 and t2 == 102.5
    assert dict(loop.executor_calls) == {}
