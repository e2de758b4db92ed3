"""IB historical-data pacing, driven by a fake monotonic clock (no real sleeping)."""

from __future__ import annotations

import asyncio
import heapq
import itertools

import pytest

from daytrading.signals.pacing import HistoricalPacer, PacingLimits

EXACT = PacingLimits(margin=0.0)


class FakeMonotonic:
    """A monotonic clock the test moves by hand; ``sleep`` resolves when it gets there."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.t + seconds, next(self._seq), fut))
        await fut

    def advance(self, seconds: float) -> None:
        self.t += seconds
        while self._sleepers and self._sleepers[0][0] <= self.t:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def next_wake(self) -> float | None:
        live = [d for d, _, f in self._sleepers if not f.done()]
        return min(live) if live else None


async def settle() -> None:
    """Let every ready task run (yields to the loop; no wall time passes)."""
    for _ in range(50):
        await asyncio.sleep(0)


def make(limits: PacingLimits = EXACT) -> tuple[HistoricalPacer, FakeMonotonic]:
    clock = FakeMonotonic()
    return HistoricalPacer(limits, monotonic=clock, sleep=clock.sleep), clock


async def run_requests(pacer, clock, keys, groups=None, *, hold=None):
    """Start one task per request (in order); drive the fake clock until all are sent.
    Returns the (send time, key) log in grant order."""
    log: list[tuple[float, object]] = []

    async def one(i, key):
        group = None if groups is None else groups[i]
        async with pacer.slot(key, group=group):
            log.append((clock(), key))
            if hold is not None:
                await clock.sleep(hold)

    tasks = [asyncio.ensure_future(one(i, k)) for i, k in enumerate(keys)]
    await settle()
    while not all(t.done() for t in tasks):
        wake = clock.next_wake()
        assert wake is not None, "requests stuck with nothing to wake them"
        clock.advance(wake - clock())
        await settle()
    for t in tasks:
        t.result()
    return log


def check_ib_rules(log, groups, limits=EXACT):
    """Independent check of IB's three small-bar rules over a send log."""
    times = [t for t, _ in log]
    for i in range(len(times)):
        in_window = [t for t in times if times[i] - limits.window < t <= times[i]]
        assert len(in_window) <= 60
    by_key: dict[object, list[float]] = {}
    by_group: dict[object, list[float]] = {}
    for (t, key), g in zip(log, groups, strict=True):
        by_key.setdefault(key, []).append(t)
        by_group.setdefault(g, []).append(t)
    for ts in by_key.values():
        assert all(b - a >= 15.0 for a, b in itertools.pairwise(ts))
    for ts in by_group.values():
        assert all(ts[i + 5] - ts[i] >= 2.0 for i in range(len(ts) - 5))


async def test_sixty_per_ten_minutes_then_queued():
    pacer, clock = make()
    t0 = clock()
    keys = [(f"S{i:03d}", "TRADES", "30 secs") for i in range(61)]
    tasks = [asyncio.ensure_future(pacer.acquire(k)) for k in keys]
    await settle()
    assert sum(t.done() for t in tasks) == 60 and pacer.pending == 1
    assert pacer.would_wait(("NEW", "TRADES", "30 secs")) == pytest.approx(600.0)
    clock.advance(599.9)
    await settle()
    assert not tasks[60].done()
    clock.advance(0.1)
    await settle()
    assert tasks[60].done() and pacer.pending == 0 and clock() - t0 == pytest.approx(600.0)


async def test_identical_request_waits_fifteen_seconds():
    pacer, clock = make()
    key = ("AAPL", "TRADES", "30 secs", "3600 S")
    await pacer.acquire(key)
    assert pacer.would_wait(key) == 15.0
    assert pacer.would_wait(("AAPL", "TRADES", "30 secs", "7200 S")) == 0.0
    task = asyncio.ensure_future(pacer.acquire(key))
    clock.advance(14.0)
    await settle()
    assert not task.done() and pacer.would_wait(key) == pytest.approx(1.0)
    clock.advance(1.0)
    await settle()
    assert task.done()


async def test_at_most_five_per_contract_in_two_seconds():
    pacer, clock = make()
    group = ("AAPL", "SMART", "TRADES")
    keys = [("AAPL", "TRADES", "30 secs", f"{n}00 S") for n in range(1, 8)]
    log = await run_requests(pacer, clock, keys, [group] * 7)
    t0 = log[0][0]
    assert [round(t - t0, 6) for t, _ in log] == [0, 0, 0, 0, 0, 2.0, 2.0]
    check_ib_rules(log, [group] * 7)


async def test_hundred_symbols_backfill_respects_every_rule_and_stays_fifo():
    pacer, clock = make()
    # each symbol: a 30-s backfill, one symbol asked twice (identical), and a burst on one contract
    keys = [(f"S{i:03d}", "TRADES", "30 secs") for i in range(100)]
    keys += [("S007", "TRADES", "30 secs")] + [("S050", "TRADES", "30 secs", f"{n} S") for n in range(6)]
    groups = [k[0] for k in keys]
    log = await run_requests(pacer, clock, keys, groups)
    assert [k for _, k in log] == keys  # first in, first out
    check_ib_rules(log, groups)
    t0 = log[0][0]
    assert log[59][0] == t0 and log[60][0] == t0 + 600.0  # as fast as the rules allow
    # 107 requests: 60 now, the rest after ten minutes, except S050's sixth request in two
    # seconds (its first went at t0), which waits 2 s more
    assert [t - t0 for t, _ in log[60:]] == [600.0] * 46 + [602.0]
    assert pacer.granted == 107 and pacer.pending == 0


async def test_default_margin_adds_slack_to_every_window():
    pacer, clock = make(PacingLimits())
    key = ("AAPL", "TRADES", "30 secs")
    await pacer.acquire(key)
    assert pacer.would_wait(key) == pytest.approx(15.5)


async def test_bid_ask_counts_twice():
    pacer, clock = make()
    for i in range(30):
        await pacer.acquire((f"S{i}", "BID_ASK", "30 secs"))
    assert pacer.would_wait(("X", "TRADES", "30 secs")) == pytest.approx(600.0)
    pacer2, _ = make()
    for i in range(59):
        await pacer2.acquire((f"S{i}", "TRADES", "30 secs"))
    assert pacer2.would_wait(("X", "TRADES", "30 secs")) == 0.0
    assert pacer2.would_wait(("X", "BID_ASK", "30 secs")) == pytest.approx(600.0)
    with pytest.raises(ValueError, match="pacing cost must be a positive integer, got 0"):
        pacer2.would_wait("X", cost=0)


async def test_open_request_cap_and_release_on_error():
    pacer, clock = make(PacingLimits(margin=0.0, max_open=2))
    entered: list[str] = []
    gates = {k: asyncio.Event() for k in "abc"}

    async def req(k):
        async with pacer.slot(k):
            entered.append(k)
            await gates[k].wait()
            if k == "a":
                raise RuntimeError("IB error 162")

    tasks = {k: asyncio.ensure_future(req(k)) for k in "abc"}
    await settle()
    assert entered == ["a", "b"] and pacer.open_requests == 2 and pacer.pending == 1
    gates["a"].set()
    await settle()
    assert entered == ["a", "b", "c"]
    with pytest.raises(RuntimeError):
        tasks["a"].result()
    gates["b"].set()
    gates["c"].set()
    await settle()
    assert pacer.open_requests == 0


async def test_cancelled_waiter_leaves_the_queue():
    pacer, clock = make()
    key = ("AAPL", "TRADES", "30 secs")
    await pacer.acquire(key)
    first = asyncio.ensure_future(pacer.acquire(key))  # waits 15 s (identical)
    second = asyncio.ensure_future(pacer.acquire(("MSFT", "TRADES", "30 secs")))  # behind it (FIFO)
    await settle()
    assert pacer.pending == 2 and not second.done()
    first.cancel()
    await settle()
    assert second.done() and pacer.pending == 0 and pacer.granted == 2


async def test_pause_after_a_pacing_violation():
    pacer, clock = make()
    pacer.pause(30.0)
    task = asyncio.ensure_future(pacer.acquire("k"))
    await settle()
    assert not task.done() and pacer.would_wait("other") == 30.0
    clock.advance(30.0)
    await settle()
    assert task.done()


def test_limits_are_validated():
    with pytest.raises(ValueError, match="max_requests must be a positive integer, got 0"):
        PacingLimits(max_requests=0)
    with pytest.raises(ValueError, match="window must be ≥ 0 seconds"):
        PacingLimits(window=-1)
