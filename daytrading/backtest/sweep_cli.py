"""The sweep options of ``daytrading backtest`` and their entry point.

The ``backtest`` command adds these options with :func:`add_arguments`; when :func:`wanted`
says one is given, it resolves the base settings (``--set``) and the sessions (``--from``,
``--to``, ``--dates``) as for a single backtest and hands over to :func:`run`.

Everything is validated before anything is submitted: the ``--sweep`` syntax, every grid
cell through the settings model, the metric, the walk-forward windows and the data folder on
every worker. Errors are :class:`~daytrading.errors.ConfigError` (exit 2) or
:class:`~daytrading.errors.OperationalError` (exit 1) naming the option and the value.

Exit codes of :func:`run`: 0 done, 1 some cells failed (each error is in the outputs),
130 interrupted by Ctrl+C (the complete cells are written).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from daytrading.errors import ConfigError

__all__ = ["add_arguments", "run", "wanted"]

DEFAULT_METRIC = "sharpe"
DEFAULT_TRIALS = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--sweep``, ``--metric``, ``--optimize``, ``--trials``, ``--walk-forward``, ``--workers``, ``--scheduler``."""
    g = parser.add_argument_group("parameter sweep on Dask (any of --sweep / --optimize / --walk-forward)")
    g.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2|START:STOP:STEP",
                   help="sweep a settings key over values or an inclusive range (repeat for a grid)")
    g.add_argument("--metric", default=None, metavar="METRIC",
                   help=f"metric that ranks grid cells and chooses in walk-forward (default {DEFAULT_METRIC})")
    g.add_argument("--optimize", default=None, metavar="METRIC",
                   help="Optuna TPE search over the --sweep space instead of the full grid")
    g.add_argument("--trials", type=int, default=None, metavar="N",
                   help=f"total trials of the --optimize search, resumed from --out (default {DEFAULT_TRIALS})")
    g.add_argument("--walk-forward", default=None, metavar="TRAIN:TEST",
                   help="choose the best cell on TRAIN sessions, score it on the next TEST, roll by TEST")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local Dask worker processes (default: number of cores)")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="use a running Dask cluster, e.g. tcp://10.0.0.5:8786 (the data folder must be readable by its workers)")


def wanted(args: argparse.Namespace) -> bool:
    """True when a sweep option is given (then the backtest command calls :func:`run`)."""
    return bool(getattr(args, "sweep", None) or getattr(args, "optimize", None) or getattr(args, "walk_forward", None))


def _symbols(args: argparse.Namespace) -> tuple[str, ...] | None:
    value = getattr(args, "symbols", None)
    if not value:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(s.strip().upper() for s in items if s.strip()) or None


def _check_combination(args: argparse.Namespace) -> str:
    """The ranking metric, after refusing option combinations that make no sense."""
    from daytrading.backtest.sweep_grid import metric_direction

    if not args.sweep:
        raise ConfigError("--optimize and --walk-forward need --sweep KEY=VALUES to say what to vary")
    if args.workers is not None and args.scheduler:
        raise ConfigError("--workers starts a local cluster and --scheduler uses an existing one: give one of them")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: need at least 1")
    if args.trials is not None and not args.optimize:
        raise ConfigError("--trials needs --optimize METRIC")
    if args.optimize and args.walk_forward:
        raise ConfigError("--walk-forward runs on a --sweep grid, not with --optimize")
    if args.optimize and args.metric and args.metric != args.optimize:
        raise ConfigError(f"--metric {args.metric} and --optimize {args.optimize}: give one metric")
    metric = args.optimize or args.metric or DEFAULT_METRIC
    metric_direction(metric)
    return metric


def _data(args: argparse.Namespace, settings: Any) -> Path:
    """``--data``, else the settings' ``sim.data``, absolute (the path the workers must read)."""
    return Path(getattr(args, "data", None) or settings.sim.data).resolve()


def _definition(args: argparse.Namespace, settings: Any, sessions: Sequence[date], metric: str) -> dict[str, Any]:
    return {
        "metric": metric, "sweep": list(args.sweep), "sessions": [d.isoformat() for d in sessions],
        "seed": getattr(args, "seed", 0) or 0, "symbols": list(_symbols(args) or ()),
        "data": str(_data(args, settings)), "settings": settings.model_dump_json(),
        **({"window": str(args.window)} if getattr(args, "window", None) else {}),
    }


def run(args: argparse.Namespace, settings: Any, sessions: Sequence[date]) -> int:
    """Run the sweep, search or walk-forward the options ask for; see the module docstring.

    Args:
        args: the parsed ``backtest`` options (``data``, ``symbols``, ``seed``, ``out``, ``json``,
            ``quiet`` and the options of :func:`add_arguments`).
        settings: the base settings (``--set`` applied).
        sessions: the selected sessions, ascending.

    Raises:
        ConfigError: bad ``--sweep``/``--walk-forward``/metric/option combination or an invalid cell.
        OperationalError: no cluster, or a worker that cannot read the data folder.
    """
    from daytrading.backtest import settings_with
    from daytrading.backtest.cli import parse_window
    from daytrading.backtest.sweep import SweepRunner, check_workers, data_benchmark, open_client, run_grid
    from daytrading.backtest.sweep_grid import (
        build_grid,
        parse_sweep,
        parse_walk_forward,
        validate_cells,
        walk_forward_windows,
    )
    from daytrading.backtest.sweep_optuna import run_search, study_name
    from daytrading.backtest.sweep_report import to_json, write_outputs

    metric = _check_combination(args)
    specs = [parse_sweep(text) for text in args.sweep]
    grid = build_grid(specs)
    sessions = sorted(sessions)
    if not sessions:
        raise ConfigError("no sessions selected (check --from/--to/--dates against the data)")
    windows = []
    if args.walk_forward:
        windows = walk_forward_windows(sessions, *parse_walk_forward(args.walk_forward))

    def make_settings(overrides: dict[str, str]) -> Any:
        return settings_with(settings, overrides)

    cells = [] if args.optimize else list(zip(grid, validate_cells(grid, make_settings), strict=True))
    if args.optimize:  # every value of every key must at least be valid on its own
        validate_cells([{s.key: v} for s in specs for v in s.values], make_settings)
    out = Path(args.out) if getattr(args, "out", None) else Path(settings.paths.report_dir) / "sweep"
    data = _data(args, settings)
    benchmark = data_benchmark(data)
    trials = args.trials if args.trials is not None else DEFAULT_TRIALS
    total = (trials if args.optimize else len(cells)) * len(sessions)
    with open_client(args.workers, args.scheduler) as client, _Progress(args, total, metric) as progress:
        nworkers = check_workers(client, data)
        runner = SweepRunner(client, data, seed=getattr(args, "seed", 0) or 0, symbols=_symbols(args),
                             window=parse_window(getattr(args, "window", None)), on_run=progress.run_done)
        if args.optimize:
            outcome = run_search(runner, specs, make_settings, sessions, metric, trials, out,
                                 name=study_name(_definition(args, settings, sessions, metric)),
                                 seed=getattr(args, "seed", 0) or 0, parallel=nworkers, benchmark=benchmark,
                                 on_cell=progress.cell_done)
        else:
            outcome = run_grid(runner, cells, sessions, metric, windows=windows, benchmark=benchmark,
                               on_cell=progress.cell_done)
    paths = write_outputs(outcome, out)
    if getattr(args, "json", False):
        print(json.dumps(to_json(outcome), indent=2, default=str))
    else:
        _print_summary(outcome, paths)
    if outcome.interrupted:
        print(f"interrupted: {len(outcome.cells)} complete cells written to {out}", file=sys.stderr)
        return 130
    return 1 if any(c.error for c in outcome.cells) else 0


class _Progress:
    """Rich bar of session-runs done / total with the best cell so far (stderr; off with --quiet).

    When stderr is not a terminal (rich would draw nothing), one plain line per finished
    session-run instead: ``session-runs 12/90 done; best sharpe 1.2 @ profit_target=0.02``.
    """

    def __init__(self, args: argparse.Namespace, total: int, metric: str) -> None:
        self.enabled = not getattr(args, "quiet", False)
        self.total = total
        self.metric = metric
        self._progress: Any = None
        self._task: Any = None
        self.plain = False
        self._best = ""

    def __enter__(self) -> _Progress:
        from daytrading.backtest.cli import _stderr_is_terminal

        self.plain = self.enabled and not _stderr_is_terminal()  # a log: one line per run instead of a bar
        if self.enabled and not self.plain:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("session-runs"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                TextColumn("{task.description}"), console=Console(stderr=True), transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def run_done(self, done: int, total: int) -> None:
        if self.plain:
            print(f"session-runs {done}/{max(total, self.total)} done{self._best}", file=sys.stderr, flush=True)
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=max(total, self.total))

    def cell_done(self, cell: Any, best: Any) -> None:
        if (self._progress is not None or self.plain) and best is not None and best.metrics is not None:
            from daytrading.backtest.sweep_grid import cell_label

            value = best.metrics.get(self.metric)
            shown = f"{value:,.4g}" if isinstance(value, int | float) else str(value)
            self._best = f"; best {self.metric} {shown} @ {cell_label(best.values)}"
            if self._progress is not None:
                self._progress.update(self._task, description=self._best[2:])


def _print_summary(outcome: Any, paths: list[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    from daytrading.backtest.sweep import rank

    console = Console()
    ranked = rank(outcome.cells, outcome.metric)
    shown = ranked[:10]
    scope = f"top {len(shown)} of {len(ranked)}" if len(shown) < len(ranked) else f"all {len(ranked)}"
    # readable at 80 columns: figures never wrap, the swept keys and the failure text fold
    table = Table(title=f"sweep ranked by {outcome.metric} ({scope} cells)")
    table.add_column("#", justify="right", no_wrap=True)
    for key in outcome.keys:
        table.add_column(key, justify="right", overflow="fold")
    for col in (outcome.metric, "P&L $", "trades", "max DD $"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("fingerprint", overflow="fold")
    for i, cell in enumerate(shown, 1):
        m = cell.metrics or {}
        table.add_row(str(i), *[str(cell.values.get(k)) for k in outcome.keys],
                      *[_fmt(m.get(c)) for c in (outcome.metric, "total_pnl", "trades", "max_drawdown")],
                      cell.fingerprint[:8] if cell.fingerprint else (cell.error or ""))
    console.print(table)
    if outcome.walk_forward:
        wf = Table(title=f"walk-forward ({outcome.metric}: in-sample vs out-of-sample)")
        wf.add_column("#", justify="right", no_wrap=True)
        wf.add_column("train", no_wrap=True)
        wf.add_column("test", no_wrap=True)
        wf.add_column("chosen", overflow="fold")
        for col in ("IS", "OOS", "OOS\nP&L $"):  # in-sample, out-of-sample: the title spells them out
            wf.add_column(col, justify="right", no_wrap=True)
        for row in outcome.walk_forward:
            wf.add_row(str(row["window"]), f"{row['train_from']}\n{row['train_to']}",
                       f"{row['test_from']}\n{row['test_to']}",
                       "\n".join(f"{k}={v}" for k, v in row["settings"].items()),
                       _fmt(row["in_sample"]), _fmt(row["out_of_sample"]), _fmt(row["out_of_sample_pnl"]))
        console.print(wf)
    for path in paths:
        console.print(f"wrote {path}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    return "" if value is None else str(value)
