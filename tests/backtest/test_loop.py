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


def _count_passes(loop: asyncio.AbstractEventLoop) -> list[int]:
    """Count the loop's passes (``_run_once`` calls) from now on; the count is ``[n]``, updated in place."""
    passes = [0]
    run_once = loop._run_once  # type: ignore[attr-defined]

    def counted() -> None:
        passes[0] += 1
        run_once()

    loop._run_once = counted  # type: ignore[attr-defined]
    return passes


def _timer_times(loop: asyncio.AbstractEventLoop, delays: list[float]) -> tuple[list[tuple[float, int]], int]:
    """Run timers ``call_later(d)`` chained one after another; (loop time, index) of each run
    and the number of loop passes it took."""
    seen: list[tuple[float, int]] = []
    passes = _count_passes(loop)
    done = loop.create_future()

    def fire(i: int) -> None:
        seen.append((loop.time(), i))
        if i + 1 < len(delays):
            loop.call_later(delays[i + 1], fire, i + 1)
            loop.call_later(delays[i + 1] * 0.999999, seen.append, (-1.0, i))  # a second timer, just before
        else:
            done.set_result(None)

    loop.call_later(delays[0], fire, 0)
    try:
        loop.run_until_complete(done)
    finally:
        loop.close()
    return [(round(t, 9), i) for t, i in seen], passes[0]


def test_timers_between_ticks_run_when_plain_looptime_runs_them_in_one_jump_each():
    """looptime lands a timer between two ticks one tick short, idles and jumps again; this loop
    jumps once, and every timer still runs at the very loop time, and in the order, it would have."""
    import looptime

    from daytrading.backtest.loop import NOOP_CYCLES

    delays = [4.9999993, 5.0000004, 0.0000003, 0.0000007, 12.3456789, 1e-7, 2.0, 86400.5, 0.25 + 1e-10]
    plain = looptime.make_event_loop_class(asyncio.SelectorEventLoop)(start=30000.0000021,
                                                                    noop_cycles=NOOP_CYCLES, resolution=TICK)
    want, plain_passes = _timer_times(plain, delays)
    got, passes = _timer_times(new_loop(start=30000.0000021), delays)
    assert got == want
    assert passes < plain_passes


def test_timers_never_run_early_whatever_the_platform_clock_resolution(monkeypatch):
    """asyncio runs a timer once it is less than ``time.monotonic``'s resolution away: 15.6 ms on
    Windows before Python 3.13. On a virtual clock that ran a timer 5 ms early there."""
    import time

    real = time.get_clock_info

    def windows_like(name: str):  # noqa: ANN202 - a SimpleNamespace like the real one
        info = real(name)
        if name == "monotonic":
            info.resolution = 0.015625
        return info

    monkeypatch.setattr(time, "get_clock_info", windows_like)
    loop = new_loop(start=0.0)
    seen: list[float] = []
    loop.call_at(1.0, lambda: seen.append(loop.time()))
    loop.call_at(1.005, lambda: seen.append(loop.time()))
    loop.call_at(1.01, loop.stop)
    try:
        loop.run_forever()
    finally:
        loop.close()
    assert seen == [1.0, 1.005]


def test_no_op_cycles_cost_no_loop_pass_and_io_is_still_seen_before_a_jump():
    """looptime's idle passes before each jump are polls inside one select: a chain of timers
    takes about one pass per timer, and bytes written by a timer are read at that timer's time."""
    import socket

    loop = new_loop(start=0.0)
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    passes = _count_passes(loop)
    written: list[float] = []
    read: list[float] = []

    def on_readable() -> None:
        b.recv(64)
        read.append(loop.time())

    loop.add_reader(b.fileno(), on_readable)

    def fire(i: int) -> None:
        if i % 10 == 0:
            a.send(b"x")
            written.append(loop.time())
        if i < 99:
            loop.call_later(1.0, fire, i + 1)
        else:
            loop.call_later(1.0, loop.stop)

    loop.call_later(1.0, fire, 0)
    try:
        loop.run_forever()
    finally:
        loop.remove_reader(b.fileno())
        loop.close()
        a.close()
        b.close()
    assert read == written and len(written) == 10
    assert passes[0] <= 100 + 2 * 10 + 5, passes[0]
