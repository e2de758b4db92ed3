"""``daytrading backtest``: the production bots over recorded sessions, with the report.

::

    daytrading backtest --data PATH [--from YYYY-MM-DD] [--to YYYY-MM-DD | --dates D1,D2,...]
                        [--symbols A,B,...] [--set KEY=VALUE ...] [--seed N] [--out DIR]
                        [--json] [--quiet]

Without ``--from``/``--to``/``--dates`` every session in the data is replayed. ``--set`` takes
any settings key (dotted for sections: ``entry.rsi_max=55``) and is validated like the
config file. A rich progress bar over the sessions shows the running P&L (stderr; off with
``--quiet`` or ``--json``); when stderr is not a terminal (a log file, a scheduled task) it
is one plain line per finished session instead: date, trades, P&L $ and running P&L $. ``--json`` prints one JSON document with exactly the keys
``fingerprint``, ``settings``, ``sessions``, ``trades``, ``metrics``, ``skipped``.
``--out DIR`` writes report.html, trades.csv, sessions.csv, metrics.json and PNG charts
(:mod:`daytrading.backtest.report`). The sweep options (:mod:`.sweep_cli`) hand over to the
Dask sweep.

Exit codes: 0 done, 1 a session could not run (its error is in the report's skipped list),
2 bad options or settings (the message names the option and the value), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from daytrading.config import Settings
from daytrading.errors import ConfigError, DaytradingError

__all__ = ["cli", "cli_args", "parse_sets", "parse_window", "resolve_sessions"]


def cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading backtest`` (and the sweep's)."""
    parser.add_argument("--data", default=None,
                        help="folder of recorded bar files (default: settings sim.data)")
    parser.add_argument("--from", dest="date_from", default=None, metavar="YYYY-MM-DD",
                        help="first session (default: the first in the data)")
    parser.add_argument("--to", dest="date_to", default=None, metavar="YYYY-MM-DD",
                        help="last session, inclusive (default: the last in the data)")
    parser.add_argument("--dates", default=None, metavar="D1,D2,...", help="these sessions only (not with --to)")
    parser.add_argument("--symbols", default=None, metavar="A,B,...",
                        help="replay only these symbols (default: every symbol with bars that day)")
    parser.add_argument("--window", default=None, metavar="HH:MM-HH:MM",
                        help="replay only this part of each session, New York time (e.g. 09:25-10:30; "
                             "default: pre-market open to the close)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting for this run, e.g. profit_target=0.02 or entry.rsi_max=55 (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated market's random choices (default 0)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write report.html, trades.csv, sessions.csv, metrics.json and PNG charts here")
    parser.add_argument("--json", action="store_true", help="print one JSON document to stdout instead of tables")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary tables")
    try:
        from daytrading.backtest import sweep_cli
    except ImportError:  # pragma: no cover - the sweep is optional in a trimmed build
        return
    sweep_cli.add_arguments(parser)


def parse_sets(items: list[str]) -> dict[str, str]:
    """``["a.b=1", ...]`` → ``{"a.b": "1"}``.

    Raises:
        ConfigError: an item without ``=`` or with an empty key (names the item).
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. profit_target=0.02)")
        out[key.strip()] = value.strip()
    return out


def parse_window(text: str | None) -> tuple[time, time] | None:
    """``--window HH:MM-HH:MM`` as (start, end) times of day, New York; None when not given.

    Raises:
        ConfigError: not two times ``HH:MM`` joined by ``-``, or the end not after the start.
    """
    if not text:
        return None
    first, sep, second = str(text).partition("-")
    try:
        if not sep:
            raise ValueError
        start, end = (time(*map(int, part.strip().split(":", 1))) for part in (first, second))
    except ValueError:
        raise ConfigError(f"--window {text!r}: expected HH:MM-HH:MM (New York), e.g. 09:25-10:30") from None
    if end <= start:
        raise ConfigError(f"--window {text!r}: the end {end:%H:%M} must be after the start {start:%H:%M}")
    return start, end


def window_span(day: date, window: tuple[time, time] | None) -> dict[str, datetime]:
    """``run_session``'s ``start``/``end`` keywords for ``window`` on ``day`` (empty: the whole session)."""
    if window is None:
        return {}
    from daytrading.clock import NY

    return {"start": datetime.combine(day, window[0], NY), "end": datetime.combine(day, window[1], NY)}


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected a date YYYY-MM-DD") from None


def resolve_sessions(args: argparse.Namespace, data: Path) -> list[date]:
    """The sessions to replay from ``--from``/``--to``/``--dates``.

    Raises:
        ConfigError: a bad date, ``--dates`` with ``--to``, a date that is not a session in
            the data, or an empty selection (each names the option and value).
        DataError: the data folder is missing or holds no bar files.
    """
    from daytrading.backtest import list_sessions

    start = _date(args.date_from, "--from") if args.date_from else None
    end = _date(args.date_to, "--to") if args.date_to else None
    if args.dates and end is not None:
        raise ConfigError("--dates cannot be combined with --to; give one or the other")
    available = list_sessions(data)
    if args.dates:
        wanted = [_date(d, "--dates") for d in str(args.dates).split(",") if d.strip()]
        missing = [d.isoformat() for d in wanted if d not in available]
        if missing:
            raise ConfigError(f"--dates {','.join(missing)}: not a session with recorded bars in {data}")
        days = sorted({d for d in wanted if start is None or d >= start})
    else:
        days = [d for d in available if (start is None or d >= start) and (end is None or d <= end)]
    if not days:
        span = f"{available[0]} … {available[-1]}" if available else "none"
        raise ConfigError(f"no session selected in {data} (--from {args.date_from}, --to {args.date_to}; "
                          f"recorded sessions: {span})")
    return days


def _symbols(args: argparse.Namespace) -> list[str] | None:
    if not args.symbols:
        return None
    if isinstance(args.symbols, list):
        return [s.upper() for s in args.symbols]
    return [s.strip().upper() for s in str(args.symbols).split(",") if s.strip()]


def cli(args: argparse.Namespace, settings: Settings) -> int:
    """Run the backtest (or hand over to the sweep) and print / write the report."""
    from daytrading.backtest import settings_with

    overrides = parse_sets(args.sets)
    settings = settings_with(settings, overrides) if overrides else settings
    data = Path(args.data or settings.sim.data)
    sessions = resolve_sessions(args, data)
    parse_window(getattr(args, "window", None))  # a bad --window is refused before anything runs
    try:
        from daytrading.backtest import sweep_cli
    except ImportError:  # pragma: no cover
        sweep_cli = None  # type: ignore[assignment]
    if sweep_cli is not None and sweep_cli.wanted(args):
        return int(sweep_cli.run(args, settings, sessions) or 0)
    return run_backtest(args, settings, data, sessions, overrides)


def run_backtest(args: argparse.Namespace, settings: Settings, data: Path, sessions: list[date],
                 overrides: dict[str, str]) -> int:
    """Replay ``sessions`` one by one (progress bar), then print and write the report."""
    from daytrading.backtest import fingerprint, run_session
    from daytrading.backtest.metrics import benchmark_returns, compute_metrics
    from daytrading.backtest.report import build_document, print_summary, write_outputs
    from daytrading.backtest.sweep import quiet_bot_logs

    quiet_bot_logs()  # the bots' own logs would drown the report
    symbols = _symbols(args)
    window = parse_window(getattr(args, "window", None))
    results, failed = [], []
    quiet = bool(args.quiet or args.json)
    plain = not quiet and not _stderr_is_terminal()
    progress = _progress(quiet or plain)
    with progress:
        task = progress.add_task("sessions", total=len(sessions), pnl=0.0)
        running = 0.0
        for n, day in enumerate(sessions, 1):
            progress.update(task, description=f"session {day.isoformat()}")
            try:
                r = run_session(data, day, settings, seed=args.seed, symbols=symbols, **window_span(day, window))
            except DaytradingError as exc:
                failed.append({"file": str(data), "line": None, "field": "session", "value": day.isoformat(),
                               "reason": f"session {day.isoformat()} not replayed: {exc}"})
                if plain:
                    print(f"session {day.isoformat()} ({n}/{len(sessions)}): not replayed: {exc}",
                          file=sys.stderr, flush=True)
            else:
                results.append(r)
                running += r.pnl
                if plain:
                    print(f"session {day.isoformat()} ({n}/{len(sessions)}): {len(r.trades)} trades, "
                          f"P&L {r.pnl:+,.2f} $, running {running:+,.2f} $", file=sys.stderr, flush=True)
            progress.update(task, advance=1, pnl=running)
    trades = [t for r in results for t in r.trades]
    bench = benchmark_returns(data, [r.date for r in results])
    metrics = compute_metrics(trades, results, settings.sim.cash, benchmark=bench)
    doc = build_document(fingerprint(results), _effective_settings(settings, overrides, args.seed),
                         results, trades, metrics, failed)
    if args.json:
        json.dump(doc, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif not args.quiet:
        print_summary(doc)
    if args.out:
        paths = write_outputs(doc, results, Path(args.out), settings.sim.cash)
        if not args.json:
            print(f"report written: {paths['report.html']}", file=sys.stderr)
    return 1 if failed else 0


def _effective_settings(settings: Settings, overrides: dict[str, str], seed: int) -> dict[str, Any]:
    """Settings that differ from the defaults (dotted keys, secrets masked), plus ``seed``."""
    from daytrading.config import load_settings

    defaults = load_settings(env_file=None).masked()
    mine = settings.masked()
    out: dict[str, Any] = {}

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict):
            for k in a:
                walk(a[k], (b or {}).get(k) if isinstance(b, dict) else None, f"{prefix}{k}.")
        elif a != b and not prefix.startswith(("paths.", "ib.", "sim.port", "sim.start", "sim.epoch")):
            out[prefix[:-1]] = a

    walk(mine, defaults, "")
    for key, value in overrides.items():
        out.setdefault(key, value)
    out["seed"] = seed
    return out


def _stderr_is_terminal() -> bool:
    """True when stderr is a terminal as rich sees it (its live bar draws nothing otherwise)."""
    from rich.console import Console

    return Console(stderr=True).is_terminal


def _progress(quiet: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("P&L {task.fields[pnl]:+,.2f} $"), TimeElapsedColumn(),
                    console=Console(stderr=True), disable=quiet, transient=False)
