"""Recorded-data readers for the signals tests (real files from ``shared/data/market``).

Uses ``daytrading.marketdata.loader.load_bars`` when the data engineer's loader is
installed, else a small local reader of the same files (Alpha Vantage 1-minute:
``timestamp`` is the bar END in New York, newest row first → indexed by bar START).
"""

from __future__ import annotations

import gzip
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

from daytrading.clock import NY
from daytrading.signals.bars import Bar


def load_minute(minute_dir: Path, symbol: str) -> pd.DataFrame:
    """All 1-minute bars of ``symbol``: index = bar start (tz NY), columns open…volume."""
    try:  # the shared loader, when it has landed
        from daytrading.marketdata.loader import load_bars  # type: ignore[import-not-found]
    except ImportError:
        load_bars = None
    if load_bars is not None:
        try:
            frames = load_bars(minute_dir, [symbol], None, None)
            df = frames[symbol]
            if isinstance(df.index, pd.DatetimeIndex) and df.index.tz is not None:
                return df[["open", "high", "low", "close", "volume"]].sort_index()
        except Exception:  # noqa: BLE001 - fall back to the local reader
            pass
    (path,) = sorted(minute_dir.glob(f"{symbol}_1min_*.csv.gz"))
    df = pd.read_csv(path)
    df = df[["timestamp", "open", "high", "low", "close", "volume"]]
    ts = pd.to_datetime(df["timestamp"], errors="coerce", format="%Y-%m-%d %H:%M:%S")
    df = df[ts.notna()].copy()
    df.index = (ts[ts.notna()] - pd.Timedelta(minutes=1)).dt.tz_localize(NY)
    df.index.name = "start"
    df = df.drop(columns="timestamp").astype(float).sort_index()
    return df


def day(df: pd.DataFrame, d: date) -> pd.DataFrame:
    """The rows of one New York date."""
    return df[df.index.date == d]


def to_bars(df: pd.DataFrame) -> list[Bar]:
    """DataFrame rows → :class:`Bar` (index = bar start)."""
    return [
        Bar(time=t.to_pydatetime(), open=o, high=h, low=low, close=c, volume=v)
        for t, o, h, low, c, v in zip(df.index, df["open"], df["high"], df["low"], df["close"],
                                       df["volume"], strict=True)
    ]


def load_lean_seconds(market_dir: Path, symbol: str, d: date) -> pd.DataFrame:
    """Lean 1-second TRADE bars: no header, ms after midnight NY, deci-cent prices."""
    path = market_dir / "lean" / "second" / f"{symbol}_1sec_trade_{d.isoformat()}.csv.gz"
    with gzip.open(path, "rt") as fh:
        df = pd.read_csv(fh, header=None, names=["ms", "open", "high", "low", "close", "volume"])
    midnight = datetime(d.year, d.month, d.day, tzinfo=NY)
    df.index = pd.DatetimeIndex([midnight + timedelta(milliseconds=int(m)) for m in df["ms"]])
    df.index.name = "start"
    for col in ("open", "high", "low", "close"):
        df[col] = df[col] / 10_000.0
    df["volume"] = df["volume"].astype(float)
    return df.drop(columns="ms")
