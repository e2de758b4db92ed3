"""Sweep outputs from a hand-made outcome: sweep.csv, heat maps per pair of keys, report.html, JSON."""

from __future__ import annotations

import json
import math
from itertools import product

import pandas as pd
import pytest

from daytrading.backtest.sweep import CellOutcome, SweepOutcome, best_of, rank
from daytrading.backtest.sweep_report import heatmap_grid, to_json, write_outputs

KEYS = ["profit_target", "stop_loss", "entry.rsi_max"]


def _outcome(metric: str = "max_drawdown") -> SweepOutcome:
    cells = []
    for i, (pt, sl, rsi) in enumerate(product((0.02, 0.03), (0.005, 0.01), (55.0, 60.0))):
        drawdown = round(1000 * pt + 10_000 * sl - rsi, 2)  # distinct, hand-computable
        metrics = {"total_pnl": 100.0 * i - 250.0, "trades": i + 1, "sharpe": (i - 3) / 4,
                   "max_drawdown": drawdown, "by_symbol": {"NIO": 1.0}}
        cells.append(CellOutcome(i, {"profit_target": pt, "stop_loss": sl, "entry.rsi_max": rsi}, None,
                                 metrics, f"fp{i}", None, {}))
    # one failed cell: it is listed, never ranked, never on a heat map
    cells[5] = CellOutcome(5, cells[5].values, None, None, None, "session 2020-11-27: DataError: boom", {})
    wf = [{"window": 1, "train_from": "2020-11-02", "train_to": "2020-11-06", "test_from": "2020-11-09",
           "test_to": "2020-11-10", "settings": {"profit_target": 0.02, "stop_loss": 0.005, "entry.rsi_max": 60.0},
           "in_sample": 12.0, "out_of_sample": 30.0, "in_sample_pnl": 10.0, "out_of_sample_pnl": -5.0,
           "in_sample_trades": 3, "out_of_sample_trades": 1}]
    return SweepOutcome(metric, KEYS, cells, best_of(cells, metric), wf, runs_done=16, runs_total=16)


def test_ranking_minimizes_drawdown_and_puts_failed_cells_last():
    outcome = _outcome()
    ranked = rank(outcome.cells, "max_drawdown")
    drawdowns = [c.metrics["max_drawdown"] for c in ranked if c.metrics]
    assert drawdowns == sorted(drawdowns)
    assert ranked[-1].index == 5
    assert outcome.best.index == ranked[0].index
    assert outcome.best.values == {"profit_target": 0.02, "stop_loss": 0.005, "entry.rsi_max": 60.0}
    assert rank(outcome.cells, "sharpe")[0].index == 7


def test_heat_map_grid_is_the_best_over_the_other_keys():
    grid = heatmap_grid(_outcome(), "profit_target", "stop_loss")
    assert list(grid.index) == [0.02, 0.03] and list(grid.columns) == [0.005, 0.01]
    # best (smallest) drawdown over rsi_max 55/60 is at rsi 60: 1000·pt + 10000·sl − 60
    assert grid.loc[0.02, 0.005] == pytest.approx(20 + 50 - 60)
    assert grid.loc[0.03, 0.01] == pytest.approx(30 + 100 - 60)
    # cell 5 (pt 0.03, sl 0.005, rsi 60) failed: that square falls back to rsi 55
    assert grid.loc[0.03, 0.005] == pytest.approx(30 + 50 - 55)


def test_outputs_csv_heatmaps_html_and_json(tmp_path):
    outcome = _outcome()
    paths = write_outputs(outcome, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == [
        "heatmap_profit_target__entry-rsi_max.png", "heatmap_profit_target__stop_loss.png",
        "heatmap_stop_loss__entry-rsi_max.png", "report.html", "sweep.csv",
    ]
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = pd.read_csv(tmp_path / "sweep.csv")
    assert len(csv) == 8 and list(csv["cell"]) == list(range(8))
    assert {"rank", *KEYS, "fingerprint", "error", "total_pnl", "trades", "sharpe", "max_drawdown"} <= set(csv)
    assert "by_symbol" not in csv  # nested tables are not CSV columns
    assert math.isnan(csv.loc[5, "rank"]) and "DataError: boom" in csv.loc[5, "error"]
    assert csv.loc[csv["rank"] == 1, "cell"].item() == outcome.best.index
    page = (tmp_path / "report.html").read_text()
    assert "ranking on max_drawdown" in page and "Walk-forward" in page and "2020-11-09" in page
    assert page.count("data:image/png;base64,") == 3
    doc = json.loads(json.dumps(to_json(outcome), default=str))
    assert set(doc) == {"cells", "best", "walk_forward"}
    assert set(doc["cells"][0]) == {"settings", "metrics", "fingerprint"}
    assert doc["cells"][5]["error"].startswith("session 2020-11-27")
    assert doc["best"]["fingerprint"] == outcome.best.fingerprint
    assert doc["walk_forward"][0]["out_of_sample"] == 30.0


def test_unreachable_scheduler_is_named(tmp_path):
    import socket

    from daytrading.backtest.sweep import open_client
    from daytrading.errors import OperationalError

    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(OperationalError, match=f"--scheduler {address}: cannot reach the Dask scheduler"), \
                open_client(scheduler=address, connect_timeout=1.0):
            pass


@pytest.mark.parametrize("n", [3, 12])
def test_the_console_summary_says_how_many_cells_it_shows_and_fits_80_columns(n, capsys, monkeypatch):
    from daytrading.backtest.sweep_cli import _print_summary

    monkeypatch.setenv("COLUMNS", "80")
    cells = [CellOutcome(i, {"profit_target": round(0.01 + i / 1000, 3), "entry.rsi_max": 55.0}, None,
                         {"sharpe": 1.5 - i / 10, "total_pnl": -1256.14 + i, "trades": 40 + i, "max_drawdown": -2345.6},
                         f"{i:02d}d7ff6a1234567890", None, {}) for i in range(n)]
    wf = [{"window": 1, "train_from": "2020-11-02", "train_to": "2020-11-10", "test_from": "2020-11-11",
           "test_to": "2020-11-13", "settings": {"profit_target": 0.018, "entry.rsi_max": 55.0},
           "in_sample": 1.234, "out_of_sample": -0.456, "out_of_sample_pnl": -256.14}]
    _print_summary(SweepOutcome("sharpe", ["profit_target", "entry.rsi_max"], cells, cells[0], wf), [])
    out = capsys.readouterr().out
    assert (f"(all {n} cells)" if n <= 10 else f"(top 10 of {n} cells)") in out
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "…" not in out  # nothing cut off: long values fold onto a second line instead
    for text in ("2020-11-02", "2020-11-10", "2020-11-11", "2020-11-13", "00d7ff6a", "-256.1", "-1,256", "-2,346"):
        assert text in out, text
