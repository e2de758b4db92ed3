"""Does a busy dashboard slow the exit-manager's stops? (Dashboard under load vs none.)

Figure: the exit-manager's stop-exit latency — the gateway sending the first price at or
below a stop → the gateway receiving the bot's SELL MKT (wall ms, measured on the gateway
side exactly as ``bench_exit_latency.py`` does, with its code) — without a dashboard and with
a dashboard serving **50 concurrent SSE clients and 200 requests/s** on loopback, on the same
database the bot writes.

Design (one run, both conditions interleaved so that drift of the machine cancels):

* a *round* is one exit-latency run: an in-process sim-gateway on recorded 1-minute bars
  (2020-11-17), the real exit-manager subprocess, ``--positions`` positions whose stops the
  replay crosses (see ``bench_exit_latency.py``; closed-today rows are cleared between rounds
  so every round opens the same positions, about 20-30 exits each);
* a *block* is ``--block-rounds`` rounds (default 4, about a minute on an idle machine) in one
  condition: **quiet** (no dashboard process at all) or **loaded** (the real
  ``daytrading dashboard`` process on the rounds' database, started for the block, and a load
  process, this file with ``--load``: ``--sse-clients`` SSE clients reading every event and
  ``--rate`` GET/s paced evenly over 20 keep-alive connections, cycling through ``/``,
  ``/health``, ``/metrics`` and every ``/api/*`` read; the rounds start once every SSE client
  is connected);
* blocks come in pairs, ordered Q L, L Q, Q L, … (a linear drift then weighs on both
  conditions alike), until the loaded blocks add up to ``--minutes`` (default 10) of load;
  then more pairs while a ratio's 95 % interval still straddles the target and another pair
  ends before ``--max-wall``. Both conditions so run the same number of rounds and get about
  the same number of exits.

The dashboard runs below normal priority as it always does (``daytrading.dashboard.server.
lower_priority``), and so does the load process (it stands in for browsers and scrapers,
normally on other machines; it is plain asyncio streams sending pre-built requests, so it
costs little). Bounded: the load process stops when this script closes its stdin, or by itself
``--minutes`` + 5 minutes after it started; it never has more than 20 requests in flight (a tick
with none free is counted as skipped, not queued) and talks only to 127.0.0.1. The run stops
after the current pair once ``--max-wall`` minutes (default 25) have passed.

Printed: one line per block pair; per condition the exits, rounds, p50/p99/max (each
condition's exits pooled) with a 95 % interval from resampling whole rounds; the ratios
loaded/quiet with their intervals; the dashboard's achieved request rate, response p50/p99,
errors, SSE events delivered, its CPU (share of a core, and CPU milliseconds per GET answered,
SSE work included) and the load process's CPU. Target: loaded p50 and p99 at most 10 % above
quiet.

    python benchmarks/bench_dashboard.py [--minutes 10] [--block-rounds 4] [--positions 60] [--speed 390]
        [--sse-clients 50] [--rate 200] [--max-wall 25]
    python benchmarks/bench_dashboard.py --cpu-probe 60 [--probe-trades 500] [--probe-priority normal] [--probe-quiet]

Wall time ≈ 2 × ``--minutes`` + about 5 s per loaded block (21-22 minutes by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
ENDPOINTS = ("/api/status", "/api/positions", "/api/trades", "/api/gates", "/api/gates?symbol=TSLA",
             "/api/events", "/health", "/metrics", "/")
CONNECTIONS = 20
TARGET_RATIO = 1.10
READY = "load ready"


# --------------------------------------------------------------------------- the load process


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


async def _http_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One pre-built GET on a keep-alive connection; returns the status code (body read and dropped)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    at = head.lower().find(b"content-length:")
    length = int(head[at + 15:head.index(b"\r\n", at)]) if at >= 0 else 0
    await reader.readexactly(length)
    return int(head[9:12])


def _count_frames(buf: bytes, kinds: dict[str, list[int]]) -> bytes:
    """Count the complete SSE frames at the start of ``buf`` by kind (``[frames, bytes]``;
    comments as ``:``); returns the incomplete rest."""
    while True:
        end = buf.find(b"\n\n")
        if end < 0:
            return buf
        block, buf = buf[:end + 2], buf[end + 2:]
        kind = ":"
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                kind = line[7:].decode()
                break
        if kind == ":" and not block.startswith(b":"):
            kind = "retry" if block.startswith(b"retry:") else "?"
        held = kinds.setdefault(kind, [0, 0])
        held[0] += 1
        held[1] += len(block)


async def _sse(port: int, stop: asyncio.Event, stats: dict[str, Any], connected: asyncio.Event,
               clients: int) -> None:
    """One SSE client: counts frames and their bytes by event kind."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    if head[9:12] != b"200":
        writer.close()
        raise RuntimeError(f"the live stream answered {head[:12]!r}")
    chunked = b"chunked" in head.lower()
    stats["sse_connected"] += 1
    if stats["sse_connected"] == clients:
        connected.set()
    kinds: dict[str, list[int]] = stats["sse_kinds"]
    buf = b""
    try:
        while not stop.is_set():
            if chunked:  # Transfer-Encoding: chunked (uvicorn's streaming responses)
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    stats["sse_dropped"] += 1
                    return
                chunk = (await reader.readexactly(size + 2))[:-2]
            else:
                chunk = await reader.read(1 << 16)
                if not chunk:
                    stats["sse_dropped"] += 1
                    return
            stats["sse_bytes"] += len(chunk)
            buf = _count_frames(buf + chunk, kinds)
    except (OSError, asyncio.IncompleteReadError):
        stats["sse_dropped"] += 1
    finally:
        writer.close()


async def _load(port: int, seconds: float, rate: float, sse_clients: int, stop: asyncio.Event) -> dict[str, Any]:
    from collections import deque

    deadline = time.monotonic() + seconds
    stats: dict[str, Any] = {"requests": 0, "errors": 0, "error_kinds": {}, "reconnects": 0, "skipped": 0,
                             "status": {}, "latency_ms": [], "sse_connected": 0, "sse_dropped": 0, "sse_kinds": {},
                             "sse_bytes": 0}
    connected = asyncio.Event()
    if sse_clients == 0:
        connected.set()
    sse = [asyncio.create_task(_sse(port, stop, stats, connected, sse_clients)) for _ in range(sse_clients)]
    # first in, first out: every keep-alive connection is used in turn (a stack would leave the
    # bottom ones idle past uvicorn's keep-alive timeout, which then closes them)
    pool = deque([await asyncio.open_connection("127.0.0.1", port) for _ in range(CONNECTIONS)])
    await asyncio.wait_for(connected.wait(), 60)
    requests = [(path, _request(path)) for path in ENDPOINTS]
    latency: list[float] = stats["latency_ms"]
    status: dict[str, int] = stats["status"]
    kinds: dict[str, int] = stats["error_kinds"]

    async def one(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], path: str, request: bytes) -> None:
        t0 = time.perf_counter()
        if conn[0].at_eof():  # the server closed it while idle (keep-alive timeout): a client reconnects
            conn[1].close()
            stats["reconnects"] += 1
            conn = await asyncio.open_connection("127.0.0.1", port)
        try:
            code = await _http_get(*conn, request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            stats["errors"] += 1
            name = type(exc).__name__
            kinds[name] = kinds.get(name, 0) + 1
            conn[1].close()
            try:
                pool.append(await asyncio.open_connection("127.0.0.1", port))
            except OSError as again:
                kinds[f"reconnect {type(again).__name__}"] = kinds.get(f"reconnect {type(again).__name__}", 0) + 1
            return
        latency.append((time.perf_counter() - t0) * 1000)
        stats["requests"] += 1
        status[str(code)] = status.get(str(code), 0) + 1
        # /health answers 503 here by design (no day-trader runs in the benchmark): not an error
        if code >= 500 and path != "/health":
            stats["errors"] += 1
            kinds[f"HTTP {code}"] = kinds.get(f"HTTP {code}", 0) + 1
        pool.append(conn)

    print(READY, flush=True)
    cpu0, start, i = os.times(), time.monotonic(), 0
    tasks: set[asyncio.Task[None]] = set()
    while not stop.is_set() and time.monotonic() < deadline:
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
            continue
        if pool:  # a free keep-alive connection, taken now: never more than CONNECTIONS in flight
            path, request = requests[i % len(requests)]
            t = asyncio.create_task(one(pool.popleft(), path, request))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        else:
            stats["skipped"] += 1
        i += 1
    stats["seconds"] = time.monotonic() - start
    cpu1 = os.times()
    stats["cpu_s"] = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    for t in sse:
        t.cancel()
    await asyncio.gather(*sse, return_exceptions=True)
    for _, writer in pool:
        writer.close()
    stats["sse_events"] = sum(n for k, (n, _) in stats["sse_kinds"].items() if k not in (":", "retry"))
    return stats


def load_main(port: int, seconds: float, rate: float, sse_clients: int, out: Path) -> None:
    """``--load``: load the dashboard until stdin closes (or ``seconds`` pass); figures to ``out`` (JSON)."""
    from daytrading.dashboard.server import lower_priority

    lower_priority()  # the load stands in for browsers and scrapers: below the bots, like the dashboard

    async def run() -> dict[str, Any]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def watch_stdin() -> None:  # EOF: the benchmark is done with this block (or died)
            sys.stdin.buffer.read()
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch_stdin, daemon=True).start()
        return await _load(port, seconds, rate, sse_clients, stop)

    stats = asyncio.run(run())
    out.write_text(json.dumps(stats), encoding="utf-8")


# --------------------------------------------------------------------------- rounds and blocks


def _round_args(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(day=args.day, positions=args.positions, speed=args.speed, margin=5.0, horizon=90.0,
                              em_env=[], profile_em=None, details=False)


def _clear_closed(tmp: Path) -> None:
    """Let the next round open the same symbols again, as a new session would.

    Every round replays the same market hours of the day, so the previous round's closed rows,
    orders and executions fall inside the new claims' window: the execution ledger would say
    the new positions are already sold (held 0) and the exit-manager would rightly not sell
    them again. They go; trades and events stay (the dashboard keeps showing a full session).
    """
    import sqlite3

    db = tmp / "em.db"
    if not db.exists():
        return
    con = sqlite3.connect(db, timeout=30)
    try:
        with con:
            for table in ("closed_positions_today", "executions", "orders", "active_positions"):
                con.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
    finally:
        con.close()


FAILED_ROUNDS: list[str] = []


def run_round(args: argparse.Namespace, tmp: Path, attempts: int = 3) -> list[float]:
    """One exit-latency round; its stop-exit latencies (ms). A round whose set-up fails (seen on
    a loaded machine: an entry not confirmable) is run again, at most ``attempts`` times in all,
    so that both conditions keep the same number of rounds; failures are listed at the end."""
    import bench_exit_latency as bel

    for attempt in range(1, attempts + 1):
        _clear_closed(tmp)
        try:
            res = asyncio.run(bel.run_exit_manager(_round_args(args), tmp))
        except Exception as exc:
            FAILED_ROUNDS.append(f"{type(exc).__name__}: {exc}"[:200])
            print(f"round failed ({FAILED_ROUNDS[-1]}); attempt {attempt} of {attempts}", flush=True)
            if attempt == attempts:
                raise
            continue
        return list(res.latencies.values())
    raise AssertionError("unreachable")


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux /proc), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def start_dashboard(tmp: Path, port: int, **settings: str) -> subprocess.Popen[bytes]:
    """The real ``daytrading dashboard`` on the rounds' database, listening on ``port``
    (``settings``: more ``dashboard.*`` settings, e.g. ``PRIORITY="normal"``)."""
    import socket

    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYTRADING_")}
    env.update({"DAYTRADING_MODE": "sim", "DAYTRADING_PATHS__DATABASE": str(tmp / "em.db"),
                "DAYTRADING_PATHS__LOG_DIR": str(tmp / "logs"), "DAYTRADING_DASHBOARD__PORT": str(port),
                "PYTHONPATH": str(ROOT), **{f"DAYTRADING_DASHBOARD__{k}": v for k, v in settings.items()}})
    proc = subprocess.Popen([sys.executable, "-m", "daytrading", "dashboard"], env=env, cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "dashboard.err", "ab"))  # noqa: SIM115
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            raise RuntimeError(f"dashboard exited: {(tmp / 'dashboard.err').read_text()[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("dashboard did not listen within 60 s")


@dataclass
class Condition:
    """One condition's samples: latencies (ms) per round, and the loaded blocks' figures."""

    rounds: list[list[float]] = field(default_factory=list)
    seconds: float = 0.0
    dash_cpu_s: float | None = 0.0
    load: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exits(self) -> list[float]:
        return [v for r in self.rounds for v in r]


def quiet_block(args: argparse.Namespace, tmp: Path, cond: Condition) -> None:
    t0 = time.monotonic()
    for _ in range(args.block_rounds):
        cond.rounds.append(run_round(args, tmp))
    cond.seconds += time.monotonic() - t0


def loaded_block(args: argparse.Namespace, tmp: Path, cond: Condition, budget_s: float) -> None:
    """Start the dashboard and the load, run the block's rounds, stop both; figures into ``cond``."""
    from daytrading.sim_gateway.testing import free_port

    port = free_port()
    dash = start_dashboard(tmp, port)
    out = tmp / "load.json"
    out.unlink(missing_ok=True)
    load = subprocess.Popen([sys.executable, __file__, "--load", "--port", str(port), "--seconds", str(budget_s),
                             "--rate", str(args.rate), "--sse-clients", str(args.sse_clients), "--out", str(out)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert load.stdout is not None and load.stdin is not None
        line = load.stdout.readline().decode().strip()  # the load prints READY once every SSE client listens
        if line != READY:
            raise RuntimeError(f"load process failed to start (said {line!r}, exit {load.wait(10)})")
        cpu0, t0 = _cpu_seconds(dash.pid), time.monotonic()
        for _ in range(args.block_rounds):
            cond.rounds.append(run_round(args, tmp))
        cpu1, t1 = _cpu_seconds(dash.pid), time.monotonic()
        load.stdin.close()
        load.wait(60)
        cond.seconds += t1 - t0
        if cpu0 is None or cpu1 is None or cond.dash_cpu_s is None:
            cond.dash_cpu_s = None
        else:
            cond.dash_cpu_s += cpu1 - cpu0
        cond.load.append(json.loads(out.read_text()))
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
        dash.terminate()
        try:
            dash.wait(20)
        except subprocess.TimeoutExpired:
            dash.kill()
            dash.wait()


# --------------------------------------------------------------------------- CPU probe


def _grow_trades(tmp: Path, at_least: int) -> int:
    """Copy the round's trade rows until the session holds ``at_least`` (a full day's worth)."""
    import sqlite3

    con = sqlite3.connect(tmp / "em.db", timeout=30)
    try:
        cols = [r[1] for r in con.execute("PRAGMA table_info(trades)") if r[1] != "id"]
        names = ", ".join(cols)
        with con:
            while 0 < con.execute("SELECT count(*) FROM trades").fetchone()[0] < at_least:
                con.execute(f"INSERT INTO trades ({names}) SELECT {names} FROM trades")  # noqa: S608 - own columns
        return int(con.execute("SELECT count(*) FROM trades").fetchone()[0])
    finally:
        con.close()


def _writer(tmp: Path, stop: threading.Event, counts: dict[str, int]) -> None:
    """A bot's write pattern during trading: a heartbeat every 0.25 s, an event and an exit
    (a copy of the newest trade row) every second, each its own commit."""
    import sqlite3

    con = sqlite3.connect(tmp / "em.db", timeout=30, isolation_level=None)
    cols = ", ".join(r[1] for r in con.execute("PRAGMA table_info(trades)") if r[1] != "id")
    i = 0
    while not stop.wait(0.25):
        i += 1
        con.execute("UPDATE heartbeats SET last_seen = last_seen")
        counts["commits"] += 1
        if i % 4 == 0:
            con.execute("INSERT INTO events (ts, session_date, bot, level, kind, message) SELECT exit_time, session_date, "
                        "bot, 'INFO', 'probe', 'probe' FROM trades ORDER BY id DESC LIMIT 1")
            con.execute(f"INSERT INTO trades ({cols}) SELECT {cols} FROM trades ORDER BY id DESC LIMIT 1")  # noqa: S608
            counts["commits"] += 2
    con.close()


def cpu_probe(args: argparse.Namespace) -> None:
    """``--cpu-probe S``: the dashboard's CPU per GET over S seconds of the benchmark's load.

    One exit-latency round fills a database, its trades are copied up to ``--probe-trades``;
    then the dashboard (``--probe-priority`` if given, else its default) serves the load while
    a writer commits as a trading bot does. No rounds run: CPU seconds of the dashboard
    process (user + system) ÷ GETs answered, SSE work included.
    """
    from daytrading.sim_gateway.testing import free_port

    with tempfile.TemporaryDirectory(prefix="bench_dash_probe_") as d:
        tmp = Path(d)
        run_round(args, tmp)
        trades = _grow_trades(tmp, args.probe_trades)
        port = free_port()
        extra = {"PRIORITY": args.probe_priority} if args.probe_priority else {}
        dash = start_dashboard(tmp, port, **extra)
        out = tmp / "load.json"
        load = subprocess.Popen([sys.executable, __file__, "--load", "--port", str(port), "--seconds",
                                 str(args.cpu_probe + 120), "--rate", str(args.rate), "--sse-clients",
                                 str(args.sse_clients), "--out", str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        stop, counts = threading.Event(), {"commits": 0}
        writer = threading.Thread(target=_writer, args=(tmp, stop, counts), daemon=True)
        try:
            assert load.stdout is not None and load.stdin is not None
            if load.stdout.readline().decode().strip() != READY:
                raise RuntimeError("load process failed to start")
            if not args.probe_quiet:
                writer.start()
            cpu0, t0 = _cpu_seconds(dash.pid), time.monotonic()
            time.sleep(args.cpu_probe)
            cpu1, t1 = _cpu_seconds(dash.pid), time.monotonic()
            load.stdin.close()
            load.wait(60)
            stats = json.loads(out.read_text())
        finally:
            stop.set()
            if load.poll() is None:
                load.kill()
            dash.terminate()
            dash.wait(20)
    cpu = (cpu1 or 0.0) - (cpu0 or 0.0)
    lat = stats["latency_ms"]
    print(f"dashboard CPU probe — {args.cpu_probe:g} s, {trades} trades in the session, {counts['commits']} commits "
          f"by a writer{' (off: --probe-quiet)' if args.probe_quiet else ''}, {args.sse_clients} SSE clients, {args.rate:g} GET/s asked, priority "
          f"{args.probe_priority or 'default'}")
    print(f"{stats['requests'] / stats['seconds']:.1f} GET/s answered (skipped {stats['skipped']}, errors "
          f"{stats['errors']}), response p50 {pct(lat, 50):.1f} ms p99 {pct(lat, 99):.1f} ms, "
          f"{stats['sse_events']} SSE events ({stats['sse_bytes'] / 1e6:.1f} MB)")
    print(f"dashboard CPU {cpu:.2f} s = {cpu / (t1 - t0):.0%} of a core = {1000 * cpu / max(1, stats['requests']):.2f} ms "
          f"per GET answered (SSE work included); load process {stats['cpu_s']:.2f} s")
    for line in sse_lines([stats], args.sse_clients):
        print(line)


# --------------------------------------------------------------------------- figures


def sse_lines(loads: list[dict[str, Any]], clients: int) -> list[str]:
    """What the SSE clients received, by event kind: frames per client per second and bytes
    per frame (the dashboard writes each frame to every client); errors by kind."""
    seconds = sum(s["seconds"] for s in loads)
    kinds: dict[str, list[int]] = {}
    errors: dict[str, int] = {}
    for s in loads:
        for k, (n, b) in s.get("sse_kinds", {}).items():
            held = kinds.setdefault(k, [0, 0])
            held[0] += n
            held[1] += b
        for k, n in s.get("error_kinds", {}).items():
            errors[k] = errors.get(k, 0) + n
    per = max(1e-9, seconds * max(1, clients))
    parts = [f"{'keep-alive' if k == ':' else k} {n / per:.2f}/s x {b / max(1, n) / 1e3:.1f} kB"
             for k, (n, b) in sorted(kinds.items(), key=lambda kv: -kv[1][1])]
    total = sum(b for _, b in kinds.values())
    out = [f"SSE per client: {total / per / 1e3:.1f} kB/s; by kind (frames per client per second x bytes per frame): "
           + ", ".join(parts)]
    reconnects = sum(s.get("reconnects", 0) for s in loads)
    out.append(f"GET errors by kind: {errors or 'none'}; idle keep-alive connections the server had closed "
               f"(reconnected before use, as HTTP clients do; not errors): {reconnects}")
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def round_bootstrap(quiet: list[list[float]], loaded: list[list[float]], q: float, n: int = 2000,
                    seed: int = 1) -> tuple[float, float, float, float, float, float]:
    """95 % intervals of the ``q``-th percentile of each condition and of their ratio, resampling
    whole rounds (exits of one round are not independent: many stops cross together).

    Returns ``(quiet_lo, quiet_hi, loaded_lo, loaded_hi, ratio_lo, ratio_hi)``.
    """
    rng = np.random.default_rng(seed)
    qa = [np.asarray(r) for r in quiet if r]
    la = [np.asarray(r) for r in loaded if r]
    if not qa or not la:
        return (float("nan"),) * 6
    qs, ls = np.empty(n), np.empty(n)
    for k in range(n):
        qs[k] = np.percentile(np.concatenate([qa[i] for i in rng.integers(0, len(qa), len(qa))]), q)
        ls[k] = np.percentile(np.concatenate([la[i] for i in rng.integers(0, len(la), len(la))]), q)
    ratio = ls / qs
    lo, hi = 2.5, 97.5
    return (float(np.percentile(qs, lo)), float(np.percentile(qs, hi)), float(np.percentile(ls, lo)),
            float(np.percentile(ls, hi)), float(np.percentile(ratio, lo)), float(np.percentile(ratio, hi)))


def settled(quiet: Condition, loaded: Condition) -> bool:
    """Whether the p50 and p99 ratios' 95 % intervals each lie on one side of the target."""
    for q in (50, 99):
        lo, hi = round_bootstrap(quiet.rounds, loaded.rounds, q)[4:]
        if lo <= TARGET_RATIO < hi:
            return False
    return True


def pairs_needed(ratio: float, lo: float, hi: float, pairs: int) -> int | None:
    """Block pairs after which an interval as wide as ``[lo, hi]`` around ``ratio`` would clear the
    target, the interval shrinking as 1/sqrt(pairs); None when the ratio is on the target."""
    gap = abs(ratio - TARGET_RATIO)
    if gap < 1e-9:
        return None
    return max(pairs, int(np.ceil(pairs * ((hi - lo) / 2 / gap) ** 2)))


def report(args: argparse.Namespace, quiet: Condition, loaded: Condition, wall: float, notes: list[str]) -> None:
    q, ld = quiet.exits, loaded.exits
    print()
    print(f"dashboard load benchmark — {args.day}, {args.positions} positions at {args.speed:g}x per round, "
          f"{len(quiet.rounds) // args.block_rounds} block pairs of {args.block_rounds} rounds, wall {wall:.0f} s")
    print("stop-exit latency, gateway clock: first price <= stop SENT -> SELL MKT RECEIVED (wall ms); "
          "[95 % interval, resampling rounds]")
    print(f"{'':28s} {'rounds':>6s} {'exits':>6s} {'p50':>7s} {'':17s} {'p99':>7s} {'':17s} {'max':>7s}")
    b50, b99 = round_bootstrap(quiet.rounds, loaded.rounds, 50), round_bootstrap(quiet.rounds, loaded.rounds, 99)
    for name, cond, v, i50, i99 in (("no dashboard", quiet, q, b50[0:2], b99[0:2]),
                                    ("dashboard under load", loaded, ld, b50[2:4], b99[2:4])):
        print(f"{name:28s} {len(cond.rounds):6d} {len(v):6d} {pct(v, 50):7.1f} [{i50[0]:6.1f}, {i50[1]:6.1f}] "
              f"{pct(v, 99):7.1f} [{i99[0]:6.1f}, {i99[1]:6.1f}] {(max(v) if v else float('nan')):7.1f}")
    r50, r99 = pct(ld, 50) / pct(q, 50), pct(ld, 99) / pct(q, 99)
    met = r50 <= TARGET_RATIO and r99 <= TARGET_RATIO
    if b50[5] <= TARGET_RATIO and b99[5] <= TARGET_RATIO:
        sure = "both intervals below the target"
    elif b50[4] > TARGET_RATIO or b99[4] > TARGET_RATIO:
        sure = "an interval entirely above the target"
    else:
        pairs = max(1, len(quiet.rounds) // args.block_rounds)
        need = [pairs_needed(r, b[4], b[5], pairs) for r, b in ((r50, b50), (r99, b99)) if b[4] <= TARGET_RATIO < b[5]]
        more = max((n for n in need if n is not None), default=None)
        sure = ("the intervals straddle the target: about "
                f"{more} block pairs ({more * wall / pairs / 60:.0f} min wall) would tell" if more else
                "the ratio is on the target")
    print(f"ratio loaded / no dashboard: p50 x{r50:.3f} [{b50[4]:.3f}, {b50[5]:.3f}], "
          f"p99 x{r99:.3f} [{b99[4]:.3f}, {b99[5]:.3f}]; target <= x{TARGET_RATIO:.2f}: "
          f"{'MET' if met else 'NOT MET'} ({sure})")
    loads = loaded.load
    requests = sum(s["requests"] for s in loads)
    seconds = sum(s["seconds"] for s in loads)
    lat = [v for s in loads for v in s["latency_ms"]]
    codes: dict[str, int] = {}
    for s in loads:
        for k, n in s["status"].items():
            codes[k] = codes.get(k, 0) + n
    cpu = loaded.dash_cpu_s
    print(f"dashboard: {requests / max(1e-9, seconds):.1f} GET/s achieved of {args.rate:g} over {seconds:.0f} s of load "
          f"(skipped {sum(s['skipped'] for s in loads)}, errors {sum(s['errors'] for s in loads)}; status codes {codes}), "
          f"response p50 {pct(lat, 50):.1f} ms p99 {pct(lat, 99):.1f} ms; {args.sse_clients} SSE clients per block, "
          f"{sum(s['sse_events'] for s in loads)} events ({sum(s['sse_bytes'] for s in loads) / 1e6:.0f} MB) delivered, "
          f"{sum(s['sse_dropped'] for s in loads)} dropped")
    if cpu is not None:
        print(f"dashboard CPU: {cpu:.1f} s = {cpu / max(1e-9, loaded.seconds):.0%} of a core during the loaded rounds, "
              f"{1000 * cpu / max(1, requests):.2f} ms per GET answered (SSE work included)")
    load_cpu = sum(s["cpu_s"] for s in loads)
    print(f"load process CPU: {load_cpu:.1f} s = {load_cpu / max(1e-9, seconds):.0%} of a core")
    for line in sse_lines(loads, args.sse_clients):
        print(line)
    for note in notes:
        print(f"note: {note}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="minutes of dashboard load, all loaded blocks together")
    p.add_argument("--block-rounds", type=int, default=4, help="exit-latency rounds per block")
    p.add_argument("--positions", type=int, default=60)
    p.add_argument("--speed", type=float, default=390.0)
    p.add_argument("--day", default="2020-11-17")
    p.add_argument("--sse-clients", type=int, default=50)
    p.add_argument("--rate", type=float, default=200.0, help="GET requests per second")
    p.add_argument("--max-wall", type=float, default=25.0, help="minutes after which no new block pair starts")
    p.add_argument("--cpu-probe", type=float, default=0.0, metavar="S",
                   help="instead: measure the dashboard's CPU per GET over S seconds of the load (no rounds)")
    p.add_argument("--probe-trades", type=int, default=500, help="trades in the probe's session")
    p.add_argument("--probe-priority", default="", help="dashboard.priority for the probe (default: its default)")
    p.add_argument("--probe-quiet", action="store_true",
                   help="probe without the writer: nothing changes in the database (the stream's idle cost)")
    p.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.load:
        load_main(args.port, args.seconds, args.rate, args.sse_clients, Path(args.out))
        return
    if args.minutes <= 0 or args.block_rounds < 1 or args.rate <= 0 or args.sse_clients < 0:
        p.error("--minutes and --rate must be positive, --block-rounds at least 1, --sse-clients at least 0")
    if args.cpu_probe > 0:
        cpu_probe(args)
        return

    t_start = time.monotonic()
    quiet, loaded, notes = Condition(), Condition(), []
    budget_s = args.minutes * 60 + 300  # the load process's own deadline (it normally stops at its block's end)
    with tempfile.TemporaryDirectory(prefix="bench_dash_") as d:
        tmp = Path(d)
        pair = 0
        while True:
            elapsed = time.monotonic() - t_start
            if loaded.seconds >= args.minutes * 60:
                if settled(quiet, loaded):
                    break
                if elapsed + elapsed / pair > args.max_wall * 60:  # another pair would end past --max-wall
                    notes.append(f"the verdict is not settled after {pair} pairs; another would end past "
                                 f"--max-wall {args.max_wall:g} min")
                    break
                print(f"after {pair} pairs an interval straddles the target: one more pair", flush=True)
            elif elapsed > args.max_wall * 60:
                notes.append(f"stopped at --max-wall {args.max_wall:g} min with {loaded.seconds / 60:.1f} min of load")
                break
            order = ("quiet", "loaded") if pair % 2 == 0 else ("loaded", "quiet")
            line = []
            for kind in order:
                cond = quiet if kind == "quiet" else loaded
                n0 = len(cond.rounds)
                if kind == "quiet":
                    quiet_block(args, tmp, cond)
                else:
                    loaded_block(args, tmp, cond, budget_s)
                v = [x for r in cond.rounds[n0:] for x in r]
                line.append(f"{kind} {len(v)} exits p50 {pct(v, 50):.1f} p99 {pct(v, 99):.1f}")
            pair += 1
            print(f"pair {pair}: {'; '.join(line)} ms; {loaded.seconds / 60:.1f} of {args.minutes:g} min of load, "
                  f"{(time.monotonic() - t_start) / 60:.1f} min wall", flush=True)
    if FAILED_ROUNDS:
        notes.append(f"{len(FAILED_ROUNDS)} round(s) failed and were run again: {FAILED_ROUNDS}")
    if args.minutes < 10:
        notes.append(f"{args.minutes:g} minutes of load (the full benchmark is --minutes 10)")
    report(args, quiet, loaded, time.monotonic() - t_start, notes)


if __name__ == "__main__":
    main()
