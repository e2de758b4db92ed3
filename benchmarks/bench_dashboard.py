"""Does a busy dashboard slow the exit-manager's stops? (Dashboard under load vs none.)

Figure: the exit-manager's stop-exit latency — the gateway sending the first price at or
below a stop → the gateway receiving the bot's SELL MKT (wall ms, measured on the gateway
side exactly as ``bench_exit_latency.py`` does, with its code) — without a dashboard and with
a dashboard serving **50 concurrent SSE clients and 200 requests/s** on loopback, on the same
database the bot writes.

Phases, in one run (drift of the machine shows as a difference between 1 and 3):

1. ``--quiet-rounds`` exit-latency rounds without a dashboard;
2. ``--minutes`` (default 10) of dashboard load: the real ``daytrading dashboard`` process on the
   rounds' database, and a load process (this file with ``--load``: 50 SSE clients reading every
   event, 200 GET/s paced every 5 ms over 20 keep-alive connections, cycling through ``/``,
   ``/health``, ``/metrics`` and every ``/api/*`` read); exit-latency rounds run back to back
   the whole time. The dashboard runs below normal priority (nice 10, as always) and so does the
   load process (it stands in for browsers and scrapers, normally on other machines);
3. ``--quiet-rounds`` rounds without a dashboard again.

Each round: an in-process sim-gateway on recorded 1-minute bars (2020-11-17), the real
exit-manager subprocess, ``--positions`` positions whose stops the replay crosses (see
``bench_exit_latency.py``); closed-today rows are cleared between rounds so every round opens
the same positions. Bounded: the load process stops by itself at its deadline, never has more
than 20 requests in flight (a tick with none free is counted as skipped, not queued), and
talks only to 127.0.0.1.

Printed: p50/p99/max per phase (all rounds' exits pooled), the ratio loaded/quiet, the
dashboard's achieved request rate, response p50/p99, errors, SSE events delivered, and its CPU.
Target: loaded p50 and p99 at most 10 % above quiet.

    python benchmarks/bench_dashboard.py [--minutes 10] [--quiet-rounds 3] [--positions 60] [--speed 390]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
ENDPOINTS = ("/api/status", "/api/positions", "/api/trades", "/api/gates", "/api/gates?symbol=TSLA",
             "/api/events", "/health", "/metrics", "/")
SSE_CLIENTS, RATE, CONNECTIONS = 50, 200.0, 20
TARGET_RATIO = 1.10


# --------------------------------------------------------------------------- the load process


async def _http_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    """One GET on a keep-alive connection; returns the status code (body read and dropped)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def _sse(port: int, deadline: float, stats: dict[str, Any]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    await writer.drain()
    stats["sse_connected"] += 1
    try:
        while time.monotonic() < deadline:
            try:
                line = await asyncio.wait_for(reader.readline(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if not line:
                stats["sse_dropped"] += 1
                return
            if line.startswith(b"event: "):
                stats["sse_events"] += 1
    finally:
        writer.close()


async def _load(port: int, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    stats: dict[str, Any] = {"requests": 0, "errors": 0, "skipped": 0, "status": {}, "latency_ms": [], "sse_connected": 0,
                             "sse_dropped": 0, "sse_events": 0}
    sse = [asyncio.create_task(_sse(port, deadline, stats)) for _ in range(SSE_CLIENTS)]
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    async def one(path: str) -> None:
        conn = pool.get_nowait()
        t0 = time.perf_counter()
        try:
            status = await _http_get(*conn, path)
            stats["latency_ms"].append((time.perf_counter() - t0) * 1000)
            stats["requests"] += 1
            stats["status"][str(status)] = stats["status"].get(str(status), 0) + 1
            # /health answers 503 here by design (no day-trader runs in the benchmark): not an error
            stats["errors"] += status >= 500 and path != "/health"
            pool.put_nowait(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            stats["errors"] += 1
            conn[1].close()
            pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    tasks: set[asyncio.Task[None]] = set()
    start, i = time.monotonic(), 0
    while time.monotonic() < deadline:
        due = start + i / RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        if pool.empty():
            stats["skipped"] += 1
        else:
            t = asyncio.create_task(one(ENDPOINTS[i % len(ENDPOINTS)]))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        i += 1
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*sse, return_exceptions=True)
    stats["seconds"] = seconds
    return stats


def load_main(port: int, seconds: float, out: Path) -> None:
    """``--load``: run the load for ``seconds`` and write its figures to ``out`` (JSON)."""
    with contextlib.suppress(OSError):
        os.nice(10)  # the load stands in for browsers and scrapers; the dashboard itself runs at nice 10 too
    stats = asyncio.run(_load(port, seconds))
    lat = stats.pop("latency_ms")
    stats["p50_ms"] = float(np.percentile(lat, 50)) if lat else None
    stats["p99_ms"] = float(np.percentile(lat, 99)) if lat else None
    out.write_text(json.dumps(stats), encoding="utf-8")


# --------------------------------------------------------------------------- rounds


def _round_args(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(day=args.day, positions=args.positions, speed=args.speed, margin=5.0, horizon=90.0,
                              em_env=[], profile_em=None, details=False)


def _clear_closed(tmp: Path, day: date) -> None:
    """Let the next round open the same symbols again, as a new session would.

    Every round replays the same market hours of ``day``, so the previous round's closed rows,
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


def run_round(args: argparse.Namespace, tmp: Path) -> list[float]:
    import bench_exit_latency as bel

    _clear_closed(tmp, date.fromisoformat(args.day))
    res = asyncio.run(bel.run_exit_manager(_round_args(args), tmp))
    return list(res.latencies.values())


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux /proc), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def start_dashboard(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYTRADING_")}
    env.update({"DAYTRADING_MODE": "sim", "DAYTRADING_PATHS__DATABASE": str(tmp / "em.db"),
                "DAYTRADING_PATHS__LOG_DIR": str(tmp / "logs"), "DAYTRADING_DASHBOARD__PORT": str(port),
                "PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen([sys.executable, "-m", "daytrading", "dashboard"], env=env, cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "dashboard.err", "wb"))  # noqa: SIM115
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            raise RuntimeError(f"dashboard exited: {(tmp / 'dashboard.err').read_text()[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError("dashboard did not listen within 60 s")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="minutes of dashboard load (phase 2)")
    p.add_argument("--quiet-rounds", type=int, default=3, help="rounds without a dashboard before and after")
    p.add_argument("--positions", type=int, default=60)
    p.add_argument("--speed", type=float, default=390.0)
    p.add_argument("--day", default="2020-11-17")
    p.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.load:
        load_main(args.port, args.seconds, Path(args.out))
        return
    if args.minutes <= 0 or args.quiet_rounds < 1:
        p.error("--minutes must be positive and --quiet-rounds at least 1")
    from daytrading.sim_gateway.testing import free_port

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_dash_") as d:
        tmp = Path(d)
        before: list[float] = []
        for i in range(args.quiet_rounds):
            before += run_round(args, tmp)
            print(f"quiet round {i + 1}: {len(before)} exits so far", flush=True)
        port = free_port()
        dash = start_dashboard(tmp, port)
        cpu0, t0 = _cpu_seconds(dash.pid), time.monotonic()
        seconds = args.minutes * 60
        load = subprocess.Popen([sys.executable, __file__, "--load", "--port", str(port), "--seconds", str(seconds),
                                 "--out", str(tmp / "load.json")])
        loaded: list[float] = []
        rounds = 0
        try:
            while load.poll() is None:
                loaded += run_round(args, tmp)
                rounds += 1
                print(f"loaded round {rounds}: {len(loaded)} exits so far, "
                      f"{max(0.0, seconds - (time.monotonic() - t0)):.0f} s of load left", flush=True)
            load.wait()
        finally:
            if load.poll() is None:
                load.send_signal(signal.SIGTERM)
            cpu1, t1 = _cpu_seconds(dash.pid), time.monotonic()
            dash.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                dash.wait(20)
        stats = json.loads((tmp / "load.json").read_text())
        after: list[float] = []
        for i in range(args.quiet_rounds):
            after += run_round(args, tmp)
            print(f"quiet round {args.quiet_rounds + i + 1}: {len(after)} exits after the load", flush=True)
    quiet = before + after
    print()
    print(f"dashboard load benchmark — {args.day}, {args.positions} positions at {args.speed:g}x per round, "
          f"wall {time.perf_counter() - t_start:.0f} s")
    print("stop-exit latency, gateway clock: first price <= stop SENT -> SELL MKT RECEIVED (wall ms)")
    print(f"{'':34s} {'exits':>6s} {'p50':>8s} {'p99':>8s} {'max':>8s}")
    for name, v in (("no dashboard, before", before), ("no dashboard, after", after), ("no dashboard, all", quiet),
                    (f"dashboard under load ({rounds} rounds)", loaded)):
        print(f"{name:34s} {len(v):6d} {pct(v, 50):8.1f} {pct(v, 99):8.1f} {(max(v) if v else float('nan')):8.1f}")
    r50, r99 = pct(loaded, 50) / pct(quiet, 50), pct(loaded, 99) / pct(quiet, 99)
    print(f"ratio loaded / no dashboard: p50 x{r50:.3f}, p99 x{r99:.3f}; target <= x{TARGET_RATIO:.2f}: "
          f"{'MET' if r50 <= TARGET_RATIO and r99 <= TARGET_RATIO else 'NOT MET'}")
    rate = stats["requests"] / max(1e-9, stats["seconds"])
    cpu = (cpu1 - cpu0) / max(1e-9, t1 - t0) if cpu0 is not None and cpu1 is not None else None
    print(f"dashboard: {rate:.1f} requests/s achieved of {RATE:g} (skipped {stats['skipped']}, errors "
          f"{stats['errors']}; status codes {stats['status']}), response p50 {stats['p50_ms']:.1f} ms p99 {stats['p99_ms']:.1f} ms; "
          f"{stats['sse_connected']} SSE clients, {stats['sse_events']} events delivered, {stats['sse_dropped']} dropped; "
          + (f"dashboard CPU {cpu:.0%} of a core" if cpu is not None else "dashboard CPU n/a"))
    if args.minutes < 10:
        print(f"note: {args.minutes:g} minutes of load (the full benchmark is --minutes 10)")


if __name__ == "__main__":
    main()
