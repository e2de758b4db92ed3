"""Pure parts of a parameter sweep: the ``--sweep`` grid, metric directions, walk-forward windows.

Nothing here runs a backtest or talks to Dask, so every rule is tested directly.

* ``--sweep KEY=V1,V2,...`` lists values; ``--sweep KEY=START:STOP:STEP`` is an inclusive
  decimal range (``profit_target=0.01:0.03:0.01`` gives 0.01, 0.02, 0.03, computed in
  :class:`decimal.Decimal`, so no 0.030000000000000002). Several ``--sweep`` options build the
  full cross product, in the order given. Values stay strings until the settings model reads
  them (the same path as ``--set KEY=VALUE``), so every unit is the setting's own (fractions
  for percent-like settings).
* ``--walk-forward TRAIN:TEST`` rolls a window over the ordered sessions: choose on TRAIN
  sessions, score on the next TEST sessions, move on by TEST. Only full windows are used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from itertools import product
from typing import Any

from daytrading.errors import ConfigError

__all__ = [
    "MAXIMIZE",
    "MINIMIZE",
    "SweepSpec",
    "Window",
    "build_grid",
    "cell_label",
    "metric_direction",
    "parse_sweep",
    "parse_walk_forward",
    "score",
    "walk_forward_windows",
]

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

#: Largest grid accepted (cells). A typo such as ``0:1:0.0001`` must not submit 10,000 cells.
MAX_CELLS = 10_000

#: Metrics where larger is better (names as returned by ``compute_metrics``).
MAXIMIZE = frozenset(
    {"total_pnl", "total_return", "sharpe", "sortino", "profit_factor", "expectancy", "win_rate", "avg_win"}
)
#: Metrics where smaller is better. ``max_drawdown`` is a positive number of dollars and
#: ``max_drawdown_pct`` a positive fraction, so a smaller drawdown is the better cell.
MINIMIZE = frozenset({"max_drawdown", "max_drawdown_pct"})


@dataclass(frozen=True)
class SweepSpec:
    """One ``--sweep`` option: a settings key (dotted for nested, ``entry.rsi_max``) and its values.

    ``values`` are the exact strings handed to the settings model; ``numeric`` is True when
    every value parses as a number (then the values are ordered, which the optimizer uses).
    """

    key: str
    values: tuple[str, ...]
    numeric: bool


@dataclass(frozen=True)
class Window:
    """One walk-forward step: sessions chosen on (``train``) and scored on (``test``), ascending."""

    index: int
    train: tuple[date, ...]
    test: tuple[date, ...]


def parse_sweep(text: str) -> SweepSpec:
    """Parse one ``KEY=V1,V2,...`` or ``KEY=START:STOP:STEP`` option.

    Raises:
        ConfigError: the message quotes the option and says what is wrong (no ``=``, a bad key,
            an empty or repeated value, a range that is not numeric, a step that is not positive,
            START above STOP).
    """
    if "=" not in text:
        raise ConfigError(f"--sweep {text!r}: expected KEY=V1,V2,... or KEY=START:STOP:STEP")
    key, _, spec = (part.strip() for part in text.partition("="))
    if not _KEY_RE.match(key):
        raise ConfigError(f"--sweep {text!r}: {key!r} is not a settings key (like profit_target or entry.rsi_max)")
    if not spec:
        raise ConfigError(f"--sweep {text!r}: no values for {key}")
    values = _range_values(text, key, spec) if ":" in spec else _list_values(text, key, spec)
    return SweepSpec(key=key, values=values, numeric=all(_is_number(v) for v in values))


def _list_values(text: str, key: str, spec: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in spec.split(","))
    if any(not v for v in values):
        raise ConfigError(f"--sweep {text!r}: empty value in the list for {key}")
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ConfigError(f"--sweep {text!r}: value {value!r} is given twice for {key}")
        seen.add(value)
    return values


def _range_values(text: str, key: str, spec: str) -> tuple[str, ...]:
    parts = spec.split(":")
    if len(parts) != 3:
        raise ConfigError(f"--sweep {text!r}: a range for {key} is START:STOP:STEP (three numbers)")
    try:
        start, stop, step = (Decimal(p.strip()) for p in parts)
    except InvalidOperation:
        raise ConfigError(f"--sweep {text!r}: START, STOP and STEP for {key} must be numbers") from None
    if not all(d.is_finite() for d in (start, stop, step)):
        raise ConfigError(f"--sweep {text!r}: START, STOP and STEP for {key} must be finite numbers")
    if step <= 0:
        raise ConfigError(f"--sweep {text!r}: STEP for {key} must be positive, got {step}")
    if start > stop:
        raise ConfigError(f"--sweep {text!r}: START {start} is above STOP {stop} for {key}")
    count = int((stop - start) / step) + 1
    if count > MAX_CELLS:
        raise ConfigError(f"--sweep {text!r}: {count} values for {key}, more than {MAX_CELLS}")
    return tuple(format(start + i * step, "f") for i in range(count))


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def build_grid(specs: Sequence[SweepSpec]) -> list[dict[str, str]]:
    """The cross product of the specs, one ``{key: value}`` dict per cell, first key slowest.

    Raises:
        ConfigError: no spec, a key swept twice, or more than :data:`MAX_CELLS` cells.
    """
    if not specs:
        raise ConfigError("--sweep: give at least one KEY=VALUES")
    keys = [s.key for s in specs]
    for key in keys:
        if keys.count(key) > 1:
            raise ConfigError(f"--sweep: {key} is swept twice; give all its values in one --sweep")
    total = math.prod(len(s.values) for s in specs)
    if total > MAX_CELLS:
        raise ConfigError(f"--sweep: {total} cells, more than {MAX_CELLS}; use fewer values or --optimize")
    return [dict(zip(keys, combo, strict=True)) for combo in product(*(s.values for s in specs))]


def validate_cells(
    cells: Iterable[Mapping[str, str]], make_settings: Callable[[dict[str, str]], Any]
) -> list[Any]:
    """Build the settings of every cell before anything is submitted.

    Args:
        cells: the grid from :func:`build_grid`.
        make_settings: ``overrides -> Settings``; raises ConfigError naming the key and value
            (``settings_with(base, overrides)``).

    Raises:
        ConfigError: the first invalid cell, with the cell's values and the settings' message.
    """
    out = []
    for cell in cells:
        try:
            out.append(make_settings(dict(cell)))
        except ConfigError as exc:
            raise ConfigError(f"--sweep cell {cell_label(cell)} is invalid: {exc}") from None
    return out


def cell_label(cell: Mapping[str, Any]) -> str:
    """``profit_target=0.02, stop_loss=0.01`` (for messages, tables and the progress bar)."""
    return ", ".join(f"{k}={v}" for k, v in cell.items())


def metric_direction(metric: str) -> str:
    """``"maximize"`` or ``"minimize"`` for a metric name.

    Raises:
        ConfigError: a metric that cannot rank cells (names the metric and lists the choices).
    """
    if metric in MAXIMIZE:
        return "maximize"
    if metric in MINIMIZE:
        return "minimize"
    choices = ", ".join(sorted(MAXIMIZE | MINIMIZE))
    raise ConfigError(f"--optimize {metric!r}: not a metric that ranks results; choose one of {choices}")


def score(metrics: Mapping[str, Any], metric: str) -> float:
    """The metric turned into "larger is better" (minimized metrics negated).

    A missing, None or NaN value (e.g. a Sharpe ratio without trades) scores ``-inf``, so it
    ranks last and never wins.
    """
    value = metrics.get(metric)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return -math.inf
    if math.isnan(number):
        return -math.inf
    return -number if metric_direction(metric) == "minimize" else number


def parse_walk_forward(text: str) -> tuple[int, int]:
    """Parse ``TRAIN:TEST`` (numbers of sessions, both ≥ 1).

    Raises:
        ConfigError: naming the option's value.
    """
    parts = text.split(":")
    try:
        train, test = (int(p) for p in parts) if len(parts) == 2 else (0, 0)
    except ValueError:
        train, test = 0, 0
    if train < 1 or test < 1:
        raise ConfigError(
            f"--walk-forward {text!r}: expected TRAIN_SESSIONS:TEST_SESSIONS, two whole numbers ≥ 1 (e.g. 20:5)"
        )
    return train, test


def walk_forward_windows(sessions: Sequence[date], train: int, test: int) -> list[Window]:
    """Roll a TRAIN+TEST window over ``sessions`` (sorted here), moving on by TEST.

    Window k trains on ``sessions[k*test : k*test+train]`` and tests on the TEST sessions after
    them. Trailing sessions that do not fill a whole test window are not used.

    Raises:
        ConfigError: fewer than TRAIN + TEST sessions (names both counts).
    """
    ordered = sorted(set(sessions))
    if len(ordered) < train + test:
        raise ConfigError(
            f"--walk-forward {train}:{test} needs at least {train + test} sessions, the selection has {len(ordered)}"
        )
    windows = []
    for k, start in enumerate(range(0, len(ordered) - train - test + 1, test)):
        windows.append(
            Window(
                index=k,
                train=tuple(ordered[start : start + train]),
                test=tuple(ordered[start + train : start + train + test]),
            )
        )
    return windows
