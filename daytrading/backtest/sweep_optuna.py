"""``--optimize METRIC --trials N``: an Optuna TPE search whose trials run as Dask tasks.

The search space is the ``--sweep`` options: a numeric spec (a list of numbers or a
START:STOP:STEP range) is an ordered integer index into its values, so TPE sees neighbours
as close; other lists are categorical. A trial's settings go through the same settings model
as a grid cell; a combination the model refuses (``stop_loss`` not below ``profit_target``)
is told to Optuna as a failed trial with the reason, and counts as a trial.

Trials run concurrently, as many as the cluster has workers (``constant_liar`` keeps
parallel TPE suggestions apart); each trial is one Dask task per session, and its metric is
combined in the client like a grid cell's.

Storage is the SQLite file ``optuna.db`` in ``--out``. The study's name is a hash of the
search definition (metric, space, sessions, seed, symbols, base settings, data), so the same
command resumes its own study and a changed command starts a new one in the same file.
``--trials N`` is the total: a study that already holds N finished trials runs none, one
interrupted after 4 of 6 runs the 2 missing. Trials interrupted by Ctrl+C are marked failed
with ``interrupted`` and not counted.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from daytrading.backtest.sweep import Benchmark, CellOutcome, SweepOutcome, SweepRunner, best_of, finish_cell
from daytrading.backtest.sweep_grid import SweepSpec, metric_direction
from daytrading.errors import ConfigError

__all__ = ["STORAGE_FILE", "run_search", "study_name"]

STORAGE_FILE = "optuna.db"


def study_name(definition: dict[str, Any]) -> str:
    """``sweep-<hash>`` of a JSON-able search definition (see the module docstring)."""
    blob = json.dumps(definition, sort_keys=True, default=str)
    return "sweep-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def _suggest(trial: Any, spec: SweepSpec) -> str:
    if spec.numeric:
        return spec.values[trial.suggest_int(spec.key, 0, len(spec.values) - 1)]
    return trial.suggest_categorical(spec.key, list(spec.values))


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(metrics, default=str))


def run_search(
    runner: SweepRunner,
    specs: Sequence[SweepSpec],
    make_settings: Callable[[dict[str, str]], Any],
    sessions: Sequence[date],
    metric: str,
    trials: int,
    out: Path,
    *,
    name: str,
    seed: int = 0,
    parallel: int = 1,
    benchmark: Benchmark | None = None,
    on_cell: Callable[[CellOutcome, CellOutcome | None], None] | None = None,
) -> SweepOutcome:
    """Run (or resume) the search until the study holds ``trials`` finished trials.

    Args:
        runner: the :class:`SweepRunner` on the cluster.
        specs: the search space (``--sweep`` options).
        make_settings: ``overrides -> Settings`` (``settings_with`` on the base settings).
        sessions: the sessions every trial runs.
        metric: the objective (its direction from :func:`metric_direction`: drawdown is minimized).
        trials: total number of finished trials wanted in the study.
        out: folder of the SQLite storage (created).
        name: the study name (:func:`study_name`).
        seed: seeds TPE (mixed with the number of trials already stored, so a resumed search
            does not replay its first random suggestions).
        parallel: trials in flight at once (the number of workers).
        benchmark: benchmark returns per set of sessions (``sweep.data_benchmark``); None = none.
        on_cell: called after each finished trial with its outcome and the best so far.

    Returns:
        A :class:`SweepOutcome` whose cells are every finished trial of the study, old and new
        (``index`` = trial number). There is no walk-forward table.

    Raises:
        ConfigError: ``trials`` below 1 or a metric that cannot be optimized.
    """
    import optuna
    from optuna.trial import TrialState

    direction = metric_direction(metric)
    if trials < 1:
        raise ConfigError(f"--trials {trials}: need at least 1")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(out / STORAGE_FILE).resolve()}"
    study = optuna.create_study(study_name=name, storage=storage, direction=direction, load_if_exists=True)
    stored = len(_finished(study.trials))
    study.sampler = optuna.samplers.TPESampler(
        seed=seed * 100_003 + stored, constant_liar=True, n_startup_trials=max(1, min(10, trials // 2))
    )
    todo = max(0, trials - stored)
    keys = [s.key for s in specs]
    inflight: dict[int, Any] = {}
    best = best_of(_outcomes(study.trials, keys), metric)
    state = {"asked": 0}

    def fill() -> None:
        while state["asked"] < todo and len(inflight) < max(1, parallel):
            state["asked"] += 1
            trial = study.ask()
            overrides = {s.key: _suggest(trial, s) for s in specs}
            trial.set_user_attr("overrides", overrides)
            try:
                settings = make_settings(overrides)
            except ConfigError as exc:
                trial.set_user_attr("error", str(exc))
                study.tell(trial, state=TrialState.FAIL)
                continue
            inflight[trial.number] = trial
            runner.submit(trial.number, settings, sessions)

    interrupted = False
    try:
        while True:
            fill()
            if not inflight:
                break
            for run in runner.cells():
                trial = inflight.pop(run.cell_id)
                outcome = finish_cell(run, run.cell_id, keys, benchmark)
                _tell(study, trial, outcome, metric)
                if outcome.metrics is not None:
                    best = best_of([c for c in (best, outcome) if c is not None], metric)
                if on_cell:
                    on_cell(outcome, best)
                fill()
    except KeyboardInterrupt:
        interrupted = True
        for trial in inflight.values():
            trial.set_user_attr("interrupted", True)
            study.tell(trial, state=TrialState.FAIL)
    cells = _outcomes(study.trials, keys)
    return SweepOutcome(metric, keys, cells, best_of(cells, metric), [], interrupted, runner.done, runner.total)


def _finished(trials: Sequence[Any]) -> list[Any]:
    from optuna.trial import TrialState

    return [
        t for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.FAIL) and not t.user_attrs.get("interrupted")
    ]


def _tell(study: Any, trial: Any, outcome: CellOutcome, metric: str) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("settings", outcome.values)
    if outcome.metrics is None:
        trial.set_user_attr("error", outcome.error)
        study.tell(trial, state=TrialState.FAIL)
        return
    trial.set_user_attr("metrics", _jsonable(outcome.metrics))
    trial.set_user_attr("fingerprint", outcome.fingerprint)
    value = outcome.metrics.get(metric)
    number = float(value) if isinstance(value, int | float) else math.nan
    if math.isnan(number):
        trial.set_user_attr("error", f"{metric} is undefined for these settings (no trades?)")
        study.tell(trial, state=TrialState.FAIL)
        return
    study.tell(trial, number)


def _outcomes(trials: Sequence[Any], keys: Sequence[str]) -> list[CellOutcome]:
    """Every finished (not interrupted) trial as a cell, metrics from its stored attributes."""
    out = []
    for t in _finished(trials):
        attrs = t.user_attrs
        values = attrs.get("settings") or dict(attrs.get("overrides") or {})
        metrics = attrs.get("metrics") if "fingerprint" in attrs else None
        error = None if metrics is not None else attrs.get("error", "failed")
        out.append(CellOutcome(t.number, {k: values.get(k) for k in keys}, None, metrics,
                               attrs.get("fingerprint"), error, {}))
    return out
