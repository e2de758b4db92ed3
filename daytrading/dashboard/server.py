"""``daytrading dashboard [--host 127.0.0.1] [--port 8787]``: serve the dashboard with uvicorn.

It runs below normal CPU priority (:func:`lower_priority`): the bots come first.
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

from daytrading.config import Settings, dashboard_bind_error, with_overrides

log = logging.getLogger("daytrading.dashboard")
BOT = "dashboard"
#: Exit code when the port is taken (another dashboard, another program).
EXIT_PORT_IN_USE = 3


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
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def lower_priority() -> str:
    """Run this process below normal CPU priority (nice 10 on POSIX, BELOW_NORMAL on Windows), so a
    busy dashboard yields the CPU to the bots; returns what was done."""
    try:
        if sys.platform == "win32":
            import ctypes

            kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
            kernel32.SetPriorityClass(kernel32.GetCurrentProcess(), 0x4000)  # BELOW_NORMAL_PRIORITY_CLASS
            return "below normal"
        return f"nice {os.nice(10)}"
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
    priority = lower_priority()
    app = create_app(settings, clock)
    url = f"http://{'[' + dash.host + ']' if ':' in dash.host else dash.host}:{dash.port}/"
    log.info("dashboard serving", extra={"url": url, "database": str(settings.paths.database),
                                         "controls": bool(dash.token.get_secret_value()), "priority": priority})
    print(f"daytrading dashboard: serving {url} (database {settings.paths.database}, read-only; controls "
          f"{'enabled' if dash.token.get_secret_value() else 'disabled: no dashboard.token'})", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, loop="asyncio", http="h11",
                            timeout_graceful_shutdown=2, lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
