"""The ``daytrading`` command line (also ``python -m daytrading``).

Global options (``--config``, ``--mode``, ``--db``, ``--log-dir``, ``--port``…) become
command-line overrides of the settings (highest precedence). Every command exits
with 0 on success, 1 on a failed check, 2 on bad input or configuration, and
prints one clear message instead of a traceback for errors a user can cause.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import date
from typing import Any

from daytrading.config import Settings, load_settings
from daytrading.errors import ConfigError, DaytradingError

log = logging.getLogger("daytrading.cli")

#: Commands implemented in other modules: name → ("module:function", help).
#: The function takes ``(args, settings)`` and returns an exit code; it may also
#: offer ``add_arguments(parser)`` as ``module:function_args``.
EXTERNAL_COMMANDS: dict[str, tuple[str, str]] = {
    "exit-manager": ("daytrading.bots.exit_manager:cli", "run the exit-manager bot (clientId 10)"),
    "day-trader": ("daytrading.bots.day_trader:cli", "run the day-trader bot (clientId 2)"),
    "supervisor": ("daytrading.bots.supervisor:cli", "start and watch both bots (and the sim-gateway in sim mode)"),
    "status": ("daytrading.ops.status:cli", "show bots, positions, P&L and gate rejections"),
    "stop": ("daytrading.bots.supervisor:stop_cli", "ask a running supervisor to stop (stop file)"),
    "liquidate-all": ("daytrading.ops.liquidate:cli", "EMERGENCY: freeze, cancel all orders, flatten everything"),
    "unfreeze": ("daytrading.ops.liquidate:unfreeze_cli", "clear the global freeze set by liquidate-all"),
    "test-connection": ("daytrading.ops.tools:test_connection_cli", "connect with a spare client id and report"),
    "analyze-today": ("daytrading.ops.analyze:today_cli", "P&L and win rate of today's session, with a chart"),
    "analyze": ("daytrading.ops.analyze:cli", "P&L and win rate of a session (--date), with a chart"),
    "orders": ("daytrading.ops.tools:orders_cli", "open and today's orders with status"),
    "monitor": ("daytrading.ops.tools:monitor_cli", "live table of positions, P&L, distance to target and stop"),
    "logs": ("daytrading.ops.tools:logs_cli", "filter and follow the JSON-lines logs"),
    "diagnose": ("daytrading.ops.diagnose:cli", "why are there no trades? checks with fixes"),
    "why": ("daytrading.ops.tools:why_cli", "last gate decisions for a symbol (or --summary)"),
    "dashboard": ("daytrading.dashboard.server:cli", "serve the web dashboard, /health and /metrics (read-only)"),
    "backtest": ("daytrading.backtest.cli:cli", "replay recorded sessions through the production bots (virtual time)"),
    "sim-gateway": ("daytrading.sim_gateway:main", "run the simulated IB Gateway (TWS protocol)"),
    "sim-gateway-ctl": ("daytrading.sim_gateway:ctl_main", "inject faults into a running sim-gateway"),
}

#: Commands that parse their own arguments (argv passed through untouched).
PASSTHROUGH = {"sim-gateway", "sim-gateway-ctl"}


def _console() -> Any:
    from rich.console import Console

    return Console()


def _print_table(title: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    from rich.table import Table

    columns = columns or (list(rows[0].keys()) if rows else [])
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[_fmt(row.get(c)) for c in columns])
    if not rows:
        table.caption = "(none)"
    _console().print(table)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.2f}"
    if hasattr(value, "isoformat"):
        return value.isoformat(timespec="seconds") if hasattr(value, "hour") else value.isoformat()
    return str(value)


def _emit(args: argparse.Namespace, title: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    if getattr(args, "json", False):
        print(json.dumps(rows, default=str, indent=2))
    else:
        _print_table(title, rows, columns)


# ---------------------------------------------------------------------- config


def cmd_config_show(args: argparse.Namespace, settings: Settings) -> int:
    """Print the effective settings with secrets masked."""
    data = settings.masked()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    rows: list[dict[str, Any]] = []

    def walk(prefix: str, obj: dict[str, Any]) -> None:
        for key, value in obj.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(name + ".", value)
            else:
                rows.append({"setting": name, "value": json.dumps(value) if isinstance(value, list) else value})

    walk("", data)
    _print_table("effective settings (secrets masked)", rows, ["setting", "value"])
    return 0


# ---------------------------------------------------------------------- db


def _coordinator(settings: Settings, bot: str = "cli", migrate: bool = True) -> Any:
    from daytrading.runtime import open_coordinator

    return open_coordinator(settings, bot, migrate=migrate)


def cmd_db_init(args: argparse.Namespace, settings: Settings) -> int:
    """Create or upgrade the database schema (Alembic) and print its status."""
    from daytrading.db.engine import make_engine, pragma
    from daytrading.db.migrate import upgrade

    path = settings.paths.database
    existed = path.exists()
    rev = upgrade(path, backup_dir=settings.paths.backup_dir, keep=settings.paths.backup_keep)
    engine = make_engine(path)
    info = {
        "database": str(path.resolve()),
        "created": not existed,
        "revision": rev,
        "journal_mode": pragma(engine, "journal_mode"),
        "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(pragma(engine, "synchronous")),
        "busy_timeout_ms": pragma(engine, "busy_timeout"),
    }
    engine.dispose()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_table("database", [{"property": k, "value": v} for k, v in info.items()], ["property", "value"])
    return 0


def cmd_db_backup(args: argparse.Namespace, settings: Settings) -> int:
    """Online backup of the database into the backup directory."""
    from daytrading.db.backup import backup_database

    path = backup_database(settings.paths.database, settings.paths.backup_dir, keep=settings.paths.backup_keep,
                           label=args.label)
    print(json.dumps({"backup": str(path)}) if args.json else f"backup written: {path}")
    return 0


def cmd_db_integrity(args: argparse.Namespace, settings: Settings) -> int:
    """PRAGMA integrity_check; exit 1 when not ok."""
    from daytrading.db.backup import integrity_check

    lines = integrity_check(settings.paths.database)
    ok = lines == ["ok"]
    if args.json:
        print(json.dumps({"database": str(settings.paths.database), "ok": ok, "result": lines}))
    else:
        print(f"{settings.paths.database}: {'ok' if ok else 'NOT OK'}")
        if not ok:
            for line in lines[:20]:
                print(f"  {line}")
    return 0 if ok else 1


def cmd_db_positions(args: argparse.Namespace, settings: Settings) -> int:
    """Active positions (claims, open, exiting)."""
    coord = _coordinator(settings)
    rows = [asdict(p) for p in coord.get_active_positions()]
    cols = ["symbol", "status", "quantity", "entry_price", "profit_target_price", "stop_loss_price",
            "agent_name", "entry_timestamp", "target_order_id", "exit_reason"]
    _emit(args, "active positions", rows, cols)
    return 0


def cmd_db_closed_today(args: argparse.Namespace, settings: Settings) -> int:
    """Symbols closed in the current (or given) session."""
    coord = _coordinator(settings)
    rows = coord.get_closed_today(args.date)
    cols = ["symbol", "close_date", "quantity", "entry_price", "exit_price", "exit_reason", "profit_loss_pct",
            "agent_name", "timestamp"]
    _emit(args, f"closed in session {args.date or coord.session_date()}", rows, cols)
    return 0


def cmd_db_trades(args: argparse.Namespace, settings: Settings) -> int:
    """Trades of a session with P&L in dollars and percent."""
    coord = _coordinator(settings)
    trades = [asdict(t) for t in coord.get_trades_by_date(args.date)]
    cols = ["symbol", "quantity", "entry_time", "entry_price", "exit_time", "exit_price", "pnl", "pnl_pct",
            "exit_reason", "bot"]
    _emit(args, f"trades of session {args.date or coord.session_date()}", trades, cols)
    return 0


# ---------------------------------------------------------------------- parser


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def client_id_arg(text: str) -> int:
    """argparse type of every ``--client-id``: an IB API client id, an integer 0 … 2³¹−1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"client id must be an integer, got {text!r}") from None
    if not 0 <= value <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"client id must be between 0 and 2147483647, got {value}")
    return value


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand.

    Only the options of ``command`` (the one being run) are loaded from its module, so
    a broken or slow optional module never affects the other commands.
    """
    parser = argparse.ArgumentParser(prog="daytrading", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="TOML settings file (default daytrading.toml if present)")
    parser.add_argument("--mode", choices=["sim", "paper", "live"], help="override the mode setting")
    parser.add_argument("--db", dest="database", help="database file (paths.database)")
    parser.add_argument("--log-dir", help="log folder (paths.log_dir)")
    parser.add_argument("--host", help="IB host (ib.host)")
    parser.add_argument("--port", type=int,
                        help="broker API port: ib.port, and in sim mode the sim-gateway's port (sim.port)")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    cfg = sub.add_parser("config", help="show the effective settings")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION")
    show = cfg_sub.add_parser("show", help="print settings, secrets masked")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_config_show)

    db = sub.add_parser("db", help="database: init, upgrade, backup, integrity, positions, closed-today, trades")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION")
    for name, func, help_ in (
        ("init", cmd_db_init, "create the schema (Alembic baseline) and show status"),
        ("upgrade", cmd_db_init, "migrate to the newest schema (backs up first)"),
        ("integrity", cmd_db_integrity, "PRAGMA integrity_check (exit 1 when not ok)"),
        ("positions", cmd_db_positions, "active positions"),
    ):
        p = db_sub.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)
    p = db_sub.add_parser("backup", help="online backup into the backup directory")
    p.add_argument("--label", default="manual")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_db_backup)
    for name, func, help_ in (
        ("closed-today", cmd_db_closed_today, "symbols closed in the session"),
        ("trades", cmd_db_trades, "trades of a session"),
    ):
        p = db_sub.add_parser(name, help=help_)
        p.add_argument("--date", type=_iso_date, help="session date YYYY-MM-DD (default: current session)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)

    for name, (target, help_) in EXTERNAL_COMMANDS.items():
        module_name, func_name = target.split(":")
        p = sub.add_parser(name, help=help_, add_help=name not in PASSTHROUGH)
        p.set_defaults(func=None, external=target)
        if name in PASSTHROUGH:
            p.add_argument("rest", nargs=argparse.REMAINDER)
            continue
        adder = _load_optional(f"{module_name}:{func_name}_args") if name == command else None
        if adder is not None:
            adder(p)
    return parser


def _load_optional(target: str) -> Callable[..., Any] | None:
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None
        raise
    return getattr(module, func_name, None)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "mode": args.mode,
        "log_level": args.log_level,
        "paths": {"database": args.database, "log_dir": args.log_dir},
        "ib": {"host": args.host, "port": args.port},
        # sim mode connects to the sim-gateway (sim.port), so --port must mean that port there
        "sim": {"port": args.port},
        **(getattr(args, "settings_overrides", None) or {}),
    }


_VALUE_OPTIONS = {"--config", "--mode", "--db", "--log-dir", "--host", "--port", "--log-level"}


def _command_of(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` (skipping global options and their values)."""
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token.startswith("-"):
            skip = token in _VALUE_OPTIONS
            continue
        return token
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    from daytrading.bots.lifeline import follow_parent

    follow_parent()  # a child of the supervisor dies with it (no-op otherwise)
    argv = list(sys.argv[1:] if argv is None else argv)
    # pass-through commands parse their own options
    for i, token in enumerate(argv):
        if token in PASSTHROUGH:
            target = EXTERNAL_COMMANDS[token][0]
            func = _load_optional(target)
            if func is None:
                print(f"daytrading: command {token!r} is not available in this build", file=sys.stderr)
                return 2
            return int(func(argv[i + 1 :]) or 0)
        if not token.startswith("-"):
            break
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if getattr(args, "func", None) is None and not getattr(args, "external", None):
        parser.parse_args([*argv, "--help"])
        return 2
    try:
        settings = load_settings(args.config, _overrides(args))
        if getattr(args, "external", None):
            func = _load_optional(args.external)
            if func is None:
                print(f"daytrading: command {args.command!r} is not available yet in this build", file=sys.stderr)
                return 2
            return int(func(args, settings) or 0)
        return int(args.func(args, settings) or 0)
    except DaytradingError as exc:
        print(f"daytrading {args.command}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
