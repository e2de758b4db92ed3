"""Sweep outputs: ``sweep.csv``, one heat map PNG per pair of swept keys, ``report.html``, JSON.

* ``sweep.csv``: one row per cell in grid (or trial) order: ``cell``, ``rank`` (1 = best on the
  chosen metric), the swept keys, ``fingerprint``, ``error``, then every scalar metric of
  ``compute_metrics`` (dollars, fractions and counts as the backtest reports them; nested
  tables such as by-symbol are left out).
* ``heatmap_<key1>__<key2>.png``: the chosen metric over the two keys. With more than two swept
  keys each square shows the best value over the other keys (said in the title).
* ``report.html``: one page with the ranking, the walk-forward table (in-sample next to
  out-of-sample) and the heat maps embedded.
"""

from __future__ import annotations

import base64
import html
import math
from itertools import combinations
from pathlib import Path
from typing import Any

import pandas as pd

from daytrading.backtest.sweep import SweepOutcome, rank
from daytrading.backtest.sweep_grid import metric_direction, score

__all__ = ["cells_frame", "heatmap_grid", "to_json", "write_heatmaps", "write_outputs"]


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, int | float | str | bool)


def cells_frame(outcome: SweepOutcome) -> pd.DataFrame:
    """One row per cell (see the module docstring for the columns)."""
    ranks = {c.index: i + 1 for i, c in enumerate(rank(outcome.cells, outcome.metric)) if c.metrics is not None}
    rows = []
    for cell in outcome.cells:
        row: dict[str, Any] = {"cell": cell.index, "rank": ranks.get(cell.index)}
        row.update(cell.values)
        row["fingerprint"] = cell.fingerprint
        row["error"] = cell.error
        row.update({k: v for k, v in (cell.metrics or {}).items() if _scalar(v) and k not in row})
        rows.append(row)
    return pd.DataFrame(rows)


def to_json(outcome: SweepOutcome) -> dict[str, Any]:
    """``{"cells": [{"settings", "metrics", "fingerprint"}], "best": {...} | None, "walk_forward": [...]}``."""
    return {
        "cells": [c.as_json() for c in outcome.cells],
        "best": outcome.best.as_json() if outcome.best else None,
        "walk_forward": outcome.walk_forward,
    }


def _slug(key: str) -> str:
    return key.replace(".", "-")


def heatmap_grid(outcome: SweepOutcome, a: str, b: str) -> pd.DataFrame:
    """The metric over keys ``a`` (rows, ascending) × ``b`` (columns): best value over the other keys.

    Failed cells are left out; a combination without any finished cell is NaN.
    """
    frame = cells_frame(outcome)
    if frame.empty or outcome.metric not in frame:
        return pd.DataFrame()
    frame = frame[frame["error"].isna()].copy()
    frame["_score"] = [score({outcome.metric: v}, outcome.metric) for v in frame[outcome.metric]]
    best = frame.loc[frame.groupby([a, b])["_score"].idxmax()]
    grid = best.pivot(index=a, columns=b, values=outcome.metric).sort_index().sort_index(axis=1)
    return grid.astype(float)


def write_heatmaps(outcome: SweepOutcome, out: Path) -> list[Path]:
    """One PNG per pair of swept keys, on ``outcome.metric``; returns the paths (none for one key)."""
    from matplotlib.figure import Figure

    minimize = metric_direction(outcome.metric) == "minimize"
    paths = []
    for a, b in combinations(outcome.keys, 2):
        grid = heatmap_grid(outcome, a, b)
        if grid.empty:
            continue
        others = [k for k in outcome.keys if k not in (a, b)]
        fig = Figure(figsize=(1.2 * len(grid.columns) + 3, 0.8 * len(grid.index) + 2.2), dpi=100)
        ax = fig.add_subplot()
        values = grid.to_numpy(dtype=float)
        image = ax.imshow(values, cmap="RdYlGn_r" if minimize else "RdYlGn", aspect="auto", origin="lower")
        fig.colorbar(image, ax=ax, label=outcome.metric)
        ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
        ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index])
        ax.set_xlabel(b)
        ax.set_ylabel(a)
        for y, row in enumerate(values):
            for x, v in enumerate(row):
                ax.text(x, y, "–" if math.isnan(v) else f"{v:,.3g}", ha="center", va="center", fontsize=9)
        title = f"{outcome.metric} ({'lower' if minimize else 'higher'} is better)"
        if others:
            title += f"\nbest over {', '.join(others)}"
        ax.set_title(title)
        fig.tight_layout()
        path = out / f"heatmap_{_slug(a)}__{_slug(b)}.png"
        fig.savefig(path, format="png")
        paths.append(path)
    return paths


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:,.4g}", border=0, classes="t")


def _html(outcome: SweepOutcome, frame: pd.DataFrame, heatmaps: list[Path]) -> str:
    metric = html.escape(outcome.metric)
    ranked = frame.sort_values(["rank", "cell"], na_position="last")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Sweep report</title><style>",
        "body{font-family:sans-serif;margin:2em} table.t{border-collapse:collapse;font-size:13px}",
        "table.t td,table.t th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}",
        "</style></head><body>",
        f"<h1>Sweep: ranking on {metric}</h1>",
        f"<p>{len(outcome.cells)} cells, {outcome.runs_done} of {outcome.runs_total} session-runs done"
        f"{' (interrupted: only complete cells are shown)' if outcome.interrupted else ''}.</p>",
    ]
    if outcome.best:
        best = ", ".join(f"{html.escape(k)} = {html.escape(str(v))}" for k, v in outcome.best.values.items())
        parts.append(f"<p><b>Best:</b> {best}: {metric} = {html.escape(str(outcome.best.metrics.get(outcome.metric)))}</p>")
    parts.append(_table(ranked))
    if outcome.walk_forward:
        wf = pd.DataFrame(outcome.walk_forward)
        wf["settings"] = [", ".join(f"{k}={v}" for k, v in s.items()) for s in wf["settings"]]
        parts += [
            f"<h2>Walk-forward: best cell on the training sessions, scored on the next ones ({metric})</h2>",
            "<p>Out-of-sample far below in-sample means the parameters are fitted to noise.</p>",
            _table(wf),
        ]
    for path in heatmaps:
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(f"<h2>{html.escape(path.stem)}</h2><img alt='{html.escape(path.name)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_outputs(outcome: SweepOutcome, out: Path) -> list[Path]:
    """Write ``sweep.csv``, the heat maps and ``report.html`` into ``out`` (created); returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    frame = cells_frame(outcome)
    csv_path = out / "sweep.csv"
    frame.to_csv(csv_path, index=False)
    heatmaps = write_heatmaps(outcome, out)
    report = out / "report.html"
    report.write_text(_html(outcome, frame, heatmaps), encoding="utf-8")
    return [csv_path, *heatmaps, report]
