"""Loader on the real recorded files (Alpha Vantage incl. HCAC quirks, Lean, lumibot) and its errors."""

from __future__ import annotations

import gzip
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from daytrading.clock import NY
from daytrading.errors import DataError
from daytrading.marketdata import (
    available_dates,
    load_bars,
    load_daily,
    load_session,
    previous_closes,
    synthetic_session,
)


def _raw_rows(path: Path) -> list[str]:
    with gzip.open(path, "rt") as fh:
        return fh.read().splitlines()


def test_session_is_start_labelled_ascending_new_york(minute_data_dir: Path) -> None:
    bars = load_session(minute_data_dir, date(2020, 11, 17), ["TSLA", "NIO"])
    tsla = bars["TSLA"]
    assert str(tsla.index.tz) == "America/New_York"
    assert tsla.index.is_monotonic_increasing and not tsla.index.has_duplicates
    assert list(tsla.columns) == ["open", "high", "low", "close", "volume"]
    assert tsla["volume"].dtype.kind == "i"
    # README: the bar stamped 09:31 (END) holds the opening cross: official open 460.17, 2,142,589 shares
    opening = tsla.loc[pd.Timestamp("2020-11-17 09:30", tz=NY)]
    assert opening["open"] == 460.17 and opening["volume"] == 2_142_589
    assert tsla.index[0] >= pd.Timestamp("2020-11-17 04:00", tz=NY)
    assert tsla.index[-1] == pd.Timestamp("2020-11-17 19:59", tz=NY)  # the bar stamped 20:00
    assert tsla.attrs["bar_seconds"] == 60


def test_values_match_raw_file_rows(minute_data_dir: Path) -> None:
    path = next(minute_data_dir.glob("QCOM_1min_*.csv.gz"))
    rows = [r.split(",") for r in _raw_rows(path)[1:]]
    by_end = {r[0]: r for r in rows}
    bars = load_bars(path)["QCOM"]
    raw = by_end["2020-11-05 09:31:00"]
    bar = bars.loc[pd.Timestamp("2020-11-05 09:30", tz=NY)]
    assert [bar["open"], bar["high"], bar["low"], bar["close"]] == [float(x) for x in raw[1:5]]
    assert bar["volume"] == int(raw[5])
    assert len(bars) == len(rows)


def test_hcac_quirks(minute_data_dir: Path) -> None:
    hcac = load_bars(minute_data_dir, ["HCAC"])["HCAC"]
    raw = _raw_rows(next(minute_data_dir.glob("HCAC_1min_*.csv.gz")))
    assert raw[-1].startswith('"    ""Error Message""')
    assert len(hcac) == len(raw) - 2  # header and the error line dropped
    assert hcac["volume"].dtype.kind == "i" and hcac["volume"].iloc[-1] == 737
    assert hcac.index[-1] == pd.Timestamp("2020-12-21 19:59", tz=NY)
    assert hcac.loc[pd.Timestamp("2020-12-07 09:30", tz=NY), "open"] == 17.31


def test_available_dates_and_unknown_date(minute_data_dir: Path) -> None:
    days = available_dates(minute_data_dir, ["ASML"])
    assert days[0] == date(2020, 10, 26) and days[-1] == date(2020, 12, 11)
    with pytest.raises(DataError, match=r"no bars for 2020-12-14 .*available: 2020-10-26 … 2020-12-11"):
        load_session(minute_data_dir, date(2020, 12, 14), ["ASML"])
    # a date some symbols lack: they are left out, the others load
    s = load_session(minute_data_dir, date(2020, 12, 14), ["ASML", "TSLA"])
    assert set(s) == {"TSLA"}


def test_missing_source_file_symbol(minute_data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_bars(tmp_path / "nope")
    with pytest.raises(DataError, match="no bar files"):
        load_bars(tmp_path)
    with pytest.raises(DataError, match=r"symbol\(s\) \['ZZZZ'\] not found"):
        load_bars(minute_data_dir, ["TSLA", "ZZZZ"])


def _write_gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def test_missing_column_names_file_and_column(minute_data_dir: Path, tmp_path: Path) -> None:
    rows = _raw_rows(next(minute_data_dir.glob("AAPL_1min_*.csv.gz")))[:50]
    cut = [",".join(r.split(",")[:5]) for r in rows]  # drop volume
    f = _write_gz(tmp_path / "AAPL_1min_2021-01-08_2021-01-08.csv.gz", cut)
    with pytest.raises(DataError, match=r"AAPL_1min_2021-01-08_2021-01-08.csv.gz: missing required column\(s\) \['volume'\]"):
        load_bars(f)


def test_out_of_order_names_line_and_values(minute_data_dir: Path, tmp_path: Path) -> None:
    rows = _raw_rows(next(minute_data_dir.glob("AAPL_1min_*.csv.gz")))[:50]
    rows[10], rows[11] = rows[11], rows[10]  # newest-first file with two rows swapped
    f = _write_gz(tmp_path / "AAPL_1min_2021-01-08_2021-01-08.csv.gz", rows)
    with pytest.raises(DataError, match=r"line 12: out of order bar: field 'timestamp' .*strictly descending"):
        load_bars(f)
    dup = _raw_rows(next(minute_data_dir.glob("AAPL_1min_*.csv.gz")))[:20]
    dup[5] = dup[4]
    with pytest.raises(DataError, match="duplicate bar"):
        load_bars(_write_gz(tmp_path / "MSFT_1min_2021-01-08_2021-01-08.csv.gz", dup))


def test_unparseable_values_name_field_and_value(minute_data_dir: Path, tmp_path: Path) -> None:
    rows = _raw_rows(next(minute_data_dir.glob("AAPL_1min_*.csv.gz")))[:20]
    parts = rows[3].split(",")
    parts[2] = "12x.5"
    rows[3] = ",".join(parts)
    with pytest.raises(DataError, match=r"field 'high' has invalid value '12x.5'"):
        load_bars(_write_gz(tmp_path / "AAPL_1min_2021-01-08_2021-01-08.csv.gz", rows))
    rows = _raw_rows(next(minute_data_dir.glob("AAPL_1min_*.csv.gz")))[:20]
    rows[4] = "not-a-time," + rows[4].split(",", 1)[1]
    with pytest.raises(DataError, match=r"line 5: field 'timestamp' has unparseable value 'not-a-time'"):
        load_bars(_write_gz(tmp_path / "AAPL_1min_2021-01-08_2021-01-08.csv.gz", rows))


def test_lean_minute_and_lumibot(market_data_dir: Path) -> None:
    spy = load_bars(market_data_dir / "lean" / "minute", ["SPY"], start=date(2013, 10, 7), end=date(2013, 10, 7))["SPY"]
    first = spy.loc[pd.Timestamp("2013-10-07 09:30", tz=NY)]
    raw = [r.split(",") for r in _raw_rows(market_data_dir / "lean/minute/SPY_1min_trade_2013-10-07.csv.gz")]
    row = next(r for r in raw if r[0] == "34200000")  # 09:30 = START label
    assert first["open"] == int(row[1]) / 10_000 and first["volume"] == int(row[5])
    xyz = load_bars(market_data_dir / "lumibot" / "XYZ_1Min.csv")["XYZ"]
    day = xyz.loc["2020-01-02"]
    assert day.index[0] == pd.Timestamp("2020-01-02 09:30", tz=NY)  # file's 09:31 is the bar end
    assert day.index[-1] == pd.Timestamp("2020-01-02 15:59", tz=NY)


def test_parquet_round_trip(minute_data_dir: Path, tmp_path: Path) -> None:
    bars = load_session(minute_data_dir, date(2020, 12, 4), ["LAZR"])["LAZR"]
    bars.to_parquet(tmp_path / "LAZR.parquet")
    back = load_bars(tmp_path / "LAZR.parquet")["LAZR"]
    pd.testing.assert_frame_equal(back, bars, check_freq=False, check_index_type=False)


def test_previous_closes_official_and_minute_fallback(minute_data_dir: Path) -> None:
    day = date(2020, 11, 17)
    bars = load_session(minute_data_dir, day, ["TSLA", "PDD"])
    prev = previous_closes(bars, day, source=minute_data_dir)
    assert prev["TSLA"] == 408.09  # Yahoo ×3 scaled back to the official close (README)
    assert prev["PDD"] == 142.03
    hcac = load_session(minute_data_dir, date(2020, 12, 7), ["HCAC"])
    assert previous_closes(hcac, date(2020, 12, 7), source=minute_data_dir)["HCAC"] == 13.45  # GOEV file
    # XLF has no daily file: close of the last regular bar of the half day 2020-11-27 (stamped 13:00)
    xlf = load_session(minute_data_dir, date(2020, 11, 30), ["XLF"])
    raw = {r.split(",")[0]: r.split(",") for r in _raw_rows(next(minute_data_dir.glob("XLF_1min_*.csv.gz")))[1:]}
    assert previous_closes(xlf, date(2020, 11, 30), source=minute_data_dir)["XLF"] == float(raw["2020-11-27 13:00:00"][4])


def test_load_daily(market_data_dir: Path) -> None:
    fb = load_daily("FB", market_data_dir)
    assert fb is not None and fb.index[0] >= pd.Timestamp("2012-05-18")
    tsla = load_daily("TSLA", market_data_dir)
    assert tsla is not None and round(tsla.loc["2020-11-16", "close"], 2) == 408.09
    assert load_daily("XLF", market_data_dir) is None


def test_synthetic_session_is_seeded_and_follows_the_calendar() -> None:
    a = synthetic_session(date(2020, 11, 27), ["AAA", "BBB"], seed=7)
    b = synthetic_session(date(2020, 11, 27), ["AAA", "BBB"], seed=7)
    c = synthetic_session(date(2020, 11, 27), ["AAA", "BBB"], seed=8)
    pd.testing.assert_frame_equal(a["AAA"], b["AAA"])
    assert not a["AAA"].equals(c["AAA"])
    aaa = a["AAA"]
    regular = aaa.loc[(aaa.index >= pd.Timestamp("2020-11-27 09:30", tz=NY)) & (aaa.index < pd.Timestamp("2020-11-27 13:00", tz=NY))]
    assert len(regular) == 210  # half day: every regular minute has a bar
    assert (aaa["high"] >= aaa[["open", "close"]].max(axis=1)).all()
    assert (aaa["low"] <= aaa[["open", "close"]].min(axis=1)).all()


def test_cached_reload_is_fast(minute_data_dir: Path) -> None:
    load_session(minute_data_dir, date(2020, 12, 4))
    t = time.perf_counter()
    again = load_session(minute_data_dir, date(2020, 12, 7))
    elapsed = time.perf_counter() - t
    assert len(again) >= 35
    print(f"cached load of {len(again)} symbols: {elapsed * 1000:.0f} ms")
