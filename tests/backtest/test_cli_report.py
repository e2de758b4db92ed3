"""``daytrading backtest``: option errors name the option, the JSON document's schema, the --out files,
and data problems reported instead of refusing the folder."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date

import pytest

from daytrading.backtest import fingerprint
from daytrading.backtest.metrics import compute_metrics
from daytrading.backtest.report import JSON_KEYS, build_document, write_outputs
from daytrading.marketdata.loader import load_bars


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daytrading", "backtest", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.mark.parametrize(("args", "named"), [
    (["--set", "entry.rsi_mx=55"], "entry.rsi_mx"),
    (["--set", "profit_target=abc"], "profit_target"),
    (["--set", "novalue"], "novalue"),
    (["--dates", "2020-11-26"], "2020-11-26"),
    (["--from", "2020-13-01"], "--from"),
])
def test_bad_options_exit_2_naming_the_option(minute_data_dir, args, named):
    res = _cli("--data", str(minute_data_dir), *args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert named in res.stderr and "Traceback" not in res.stderr


def test_json_document_schema_and_out_files(tsla_window, tmp_path):
    results = tsla_window[:1]
    trades = [t for r in results for t in r.trades]
    metrics = compute_metrics(trades, results, 100_000.0)
    doc = build_document(fingerprint(results), {"seed": 3}, results, trades, metrics, [])
    assert tuple(doc) == JSON_KEYS
    json.loads(json.dumps(doc))  # plain JSON
    assert doc["sessions"] == [{"date": "2020-11-17", "trades": 1, "wins": 0, "pnl": results[0].pnl,
                                "skipped": len(results[0].skipped)}]
    trade = doc["trades"][0]
    assert set(trade) == {"symbol", "entry_time", "exit_time", "quantity", "entry_price", "exit_price",
                          "stop_price", "target_price", "exit_reason", "pnl", "commission"}
    assert trade["exit_time"].endswith("-05:00")  # ISO, New York
    for key in ("total_pnl", "total_return", "trades", "win_rate", "avg_win", "avg_loss", "profit_factor",
                "expectancy", "sharpe", "sortino", "max_drawdown", "max_drawdown_pct", "exposure",
                "best_session", "worst_session", "by_exit_reason", "by_symbol"):
        assert key in doc["metrics"], key
    paths = write_outputs(doc, results, tmp_path / "out", 100_000.0)
    for name in ("report.html", "trades.csv", "sessions.csv", "metrics.json", "equity.png", "pnl_by_session.png",
                 "pnl_by_symbol.png", "pnl_by_exit_reason.png"):
        assert paths[name].is_file() and paths[name].stat().st_size > 0, name
    page = paths["report.html"].read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 4 and "TSLA" in page
    assert paths["trades.csv"].read_text(encoding="utf-8").splitlines()[1].startswith("TSLA,")
    assert json.loads(paths["metrics.json"].read_text(encoding="utf-8"))["trades"] == 1


def test_mislabelled_file_is_skipped_and_reported_not_the_folder(market_data_dir):
    skipped: list[dict] = []
    bars = load_bars(market_data_dir / "lumibot", skipped=skipped)
    assert "SPY" in bars and "XYZ" in bars  # the good files still load
    assert len(skipped) == 1
    s = skipped[0]
    assert s["file"].endswith("XYZ_1D.csv") and s["line"] == 2 and s["field"] in ("high", "low")
    assert float(s["value"]) > 0 and "do not bracket" in s["reason"]
    with pytest.raises(Exception, match="XYZ_1D.csv: line 2"):
        load_bars(market_data_dir / "lumibot")  # without a skipped list it still refuses, naming the bar


def test_bad_bar_inside_a_good_file_is_skipped_with_line_field_value(tmp_path):
    f = tmp_path / "ABC_bars.csv"
    f.write_text("time,open,high,low,close,volume\n"
                 "2020-11-17 09:30:00,10,10.5,9.9,10.2,100\n"
                 "2020-11-17 09:31:00,10.2,x,10.1,10.3,200\n"
                 "2020-11-17 09:32:00,10.3,10.4,10.2,10.35,300\n", encoding="utf-8")
    skipped: list[dict] = []
    frame = load_bars(tmp_path, skipped=skipped)["ABC"]
    assert len(frame) == 2 and list(frame["volume"]) == [100, 300]
    assert skipped == [{"file": str(f), "line": 3, "field": "high", "value": "x", "reason": skipped[0]["reason"]}]
    assert "line 3" in skipped[0]["reason"]


def test_sessions_without_premarket_bars_are_reported(minute_data_dir, tsla_window):
    from daytrading.backtest.runner import premarket_gaps
    from daytrading.clock import calendar
    from daytrading.marketdata.loader import load_session

    day = date(2020, 12, 21)  # MKSI and USD have no bar before 09:30 that day (thin names)
    gaps = premarket_gaps(load_session(minute_data_dir, day), calendar().session(day))
    assert sorted(g["reason"].split(":")[0] for g in gaps) == ["MKSI", "USD"]
    assert all(g["value"] == "2020-12-21" and g["field"] == "time" and g["file"].endswith(".csv.gz") for g in gaps)
    # TSLA has pre-market bars on 2020-11-17: nothing reported for it
    assert not [s for s in tsla_window[0].skipped if "TSLA" in s["reason"]]


def test_window_option_is_parsed_and_bad_ones_are_named():
    from datetime import date, time

    from daytrading.backtest.cli import parse_window, window_span
    from daytrading.errors import ConfigError

    assert parse_window(None) is None
    assert parse_window("09:25-10:30") == (time(9, 25), time(10, 30))
    span = window_span(date(2020, 11, 17), parse_window("9:29-9:40"))
    assert span["start"].isoformat() == "2020-11-17T09:29:00-05:00"
    assert span["end"].isoformat() == "2020-11-17T09:40:00-05:00"
    for bad, named in (("09:25", "expected HH:MM-HH:MM"), ("10:30-09:25", "must be after the start"),
                       ("25:00-26:00", "expected HH:MM-HH:MM")):
        with pytest.raises(ConfigError, match=named) as err:
            parse_window(bad)
        assert "--window" in str(err.value) and bad in str(err.value)


def test_progress_into_a_log_is_one_plain_line_per_session_and_quiet_stays_quiet(minute_data_dir, tsla_window, capsys):
    """stderr is not a terminal here (captured), as with a log file: rich's bar would print nothing."""
    from daytrading.cli import main as cli_main

    args = ["backtest", "--data", str(minute_data_dir), "--dates", "2020-11-17", "--symbols", "TSLA",
            "--window", "09:20-09:40", "--seed", "3"]
    assert cli_main(args) == 0
    err = capsys.readouterr().err
    r = tsla_window[0]
    assert (f"session 2020-11-17 (1/1): {len(r.trades)} trades, P&L {r.pnl:+,.2f} $, running {r.pnl:+,.2f} $\n"
            in err), err
    assert cli_main([*args, "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert cli_main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["sessions"][0]["pnl"] == r.pnl and "session 2020-11-17" not in captured.out
