"""``daytrading dashboard [--host 127.0.0.1] [--port 8787]``: serve the dashboard with uvicorn.

It runs below the bots on the CPU (:func:`lower_priority`, ``dashboard.priority``).
Refused at start (exit 2) when the bind address is not loopback and ``dashboard.token`` is
not set. Exit 3 when the port is already in use (the supervisor then does not restart it).
The token is never logged: uvicorn's access log is off and control requests are logged by
:mod:`daytrading.dashboard.controls` without headers.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys

from daytrading.config import Settings, dashboard_bind_error, dashboard_url, with_overrides

log = logging.getLogger("daytrading.dashboard")
BOT = "dashboard"
#: Exit code when the port is taken (another dashboard, another program).
EXIT_PORT_IN_USE = 3
#: Pending connections the listening socket queues.
BACKLOG = 2048
#: Wall seconds an idle keep-alive connection stays open (uvicorn's default is 5): a scraper or
#: monitor polling every 15-60 s keeps its connection instead of racing the server's close.
KEEP_ALIVE_S = 75


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when ``host`` contains ':').

    Raises:
        OSError: the address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if sys.platform != "win32":  # on Windows SO_REUSEADDR would let two servers share the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        # uvicorn's own default: while the idle-priority process waits for a core, a burst of
        # new connections (pages, scrapers) queues here instead of being dropped (the kernel
        # caps it at net.core.somaxconn)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


#: Windows priority class of ``below_normal`` and ``idle`` (see :func:`lower_priority`).
BELOW_NORMAL_PRIORITY_CLASS = 0x4000


def lower_priority(how: str = "idle") -> str:
    """Run this process below the bots on the CPU, so a busy dashboard never delays a stop;
    returns what was done (logged at start).

    Args:
        how: ``dashboard.priority``:

            * ``"idle"`` (default): on Linux the ``SCHED_IDLE`` policy for every thread of the
              process (threads started later inherit it): it runs only on a core no normal task
              wants, and a woken bot preempts it at once. Under ``nice`` alone the kernel still
              lets a running nice-10 task finish a slice of a few ms before a woken bot runs,
              which is what slowed stops. Other POSIX systems: nice 19. Windows:
              ``BELOW_NORMAL_PRIORITY_CLASS``, as for ``below_normal``: Windows schedules by
              strict priority, so a ready normal-priority bot thread already always preempts
              it; ``IDLE_PRIORITY_CLASS`` would add nothing for the bots but would put the page
              behind every other normal program on the machine (IB Gateway/TWS, a browser,
              a virus scan).
            * ``"below_normal"``: nice 10 (POSIX), ``BELOW_NORMAL_PRIORITY_CLASS`` (Windows).
            * ``"normal"``: unchanged.
    """
    if how == "normal":
        return "normal (unchanged)"
    try:
        if sys.platform == "win32":
            import ctypes

            kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
            kernel32.SetPriorityClass(kernel32.GetCurrentProcess(), BELOW_NORMAL_PRIORITY_CLASS)
            return "below normal"
        if how == "idle" and hasattr(os, "SCHED_IDLE") and sys.platform.startswith("linux"):
            tasks = [int(t) for t in os.listdir("/proc/self/task")]
            for tid in tasks:
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            return f"SCHED_IDLE ({len(tasks)} threads)"
        return f"nice {os.nice(19 if how == 'idle' else 10)}"
    except (OSError, AttributeError) as exc:
        return f"unchanged ({exc})"


def cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading dashboard`` (they override dashboard.host / dashboard.port)."""
    parser.add_argument("--host", dest="dash_host", default=None,
                        help="bind address (default dashboard.host = 127.0.0.1; others need dashboard.token)")
    parser.add_argument("--port", dest="dash_port", type=int, default=None, help="TCP port (default dashboard.port = 8787)")


def cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading dashboard``: serve until Ctrl+C / SIGTERM; exit 2 on a refused bind, 3 on a port in use."""
    import uvicorn

    from daytrading.dashboard.app import create_app
    from daytrading.runtime import build_clock, setup_logging

    settings = with_overrides(settings, {"dashboard": {"host": getattr(args, "dash_host", None),
                                                       "port": getattr(args, "dash_port", None)}}, "the command line")
    dash = settings.dashboard
    problem = dashboard_bind_error(dash)
    if problem:
        print(f"daytrading dashboard: refused: {problem}", file=sys.stderr)
        return 2
    clock = build_clock(settings)
    setup_logging(settings, BOT, clock)
    try:
        sock = bind_socket(dash.host, dash.port)
    except OSError as exc:
        in_use = exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1))
        message = (f"port {dash.host}:{dash.port} is already in use (another dashboard?); set dashboard.port "
                   "or --port, or stop the other program" if in_use else f"cannot bind {dash.host}:{dash.port}: {exc}")
        log.error(message)
        print(f"daytrading dashboard: {message}", file=sys.stderr)
        return EXIT_PORT_IN_USE if in_use else 1
    priority = lower_priority(dash.priority)
    app = create_app(settings, clock)
    url = dashboard_url(dash)
    log.info("dashboard serving", extra={"url": url, "database": str(settings.paths.database),
                                         "controls": bool(dash.token.get_secret_value()), "priority": priority})
    print(f"daytrading dashboard: serving {url} (database {settings.paths.database}, read-only; controls "
          f"{'enabled' if dash.token.get_secret_value() else 'disabled: no dashboard.token'})", flush=True)
    # http="auto": httptools (a C parser, a dependency) when installed, else h11 (pure Python, slower)
    # proxy_headers=False: the address a control request is logged with is the socket's peer;
    # uvicorn would otherwise take X-Forwarded-For from any local process (it trusts 127.0.0.1)
    config = uvicorn.Config(app, log_level="warning", access_log=False, loop="asyncio", http="auto",
                            timeout_graceful_shutdown=2, lifespan="on", proxy_headers=False,
                            timeout_keep_alive=KEEP_ALIVE_S, backlog=BACKLOG)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
