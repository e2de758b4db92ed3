"""Indicator updates per second for 500 symbols: incremental vs recomputing with ``ta``.

Data: the 39 real symbols of ``shared/data/market/alphavantage_1min`` (1-minute bars,
pre-market and after hours included), one session each (``--day``, or the symbol's
first session if it has no bars that day), plus ``--warm-sessions`` earlier sessions
of history. 500 symbols are made by **replicating** those 39 real series under new
names (symbol i replays source i mod 39); nothing is synthesised.

* incremental: :class:`daytrading.signals.indicators.IndicatorSet.update` for every
  bar of every symbol, interleaved in time order as a live bot would see them (the
  warm-up history is fed first and not timed).
* naive: on each new bar, recompute RSI(14) and ATR(14) with ``ta`` over the symbol's
  whole history so far and the session VWAP with ``ta`` over today's regular bars.
  Far too slow to run for every update, so it is **sampled**: ``--naive-samples``
  history lengths spread evenly over the session, for a few symbols; the mean cost of
  one recompute is the per-update cost estimate, extrapolated to all updates. The
  naive cost counted is only the ``ta`` computation on a ready-made DataFrame slice
  (no appending to a frame), so it flatters the naive approach.

Also prints 5-second → 30-second aggregation throughput on real Lean SPY seconds.

    python benchmarks/bench_signals.py [--symbols 500] [--day 2020-11-17] [--naive-samples 40]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import ta

from daytrading.clock import NY, calendar
from daytrading.signals.bars import Bar, BarAggregator
from daytrading.signals.indicators import IndicatorSet

ROOT = Path(__file__).resolve().parents[1]
MARKET = (ROOT.parent / "shared" / "data" / "market").resolve()


def load_minute(path: Path) -> pd.DataFrame:
    """Alpha Vantage 1-minute file → frame indexed by bar START (timestamp is the end)."""
    df = pd.read_csv(path)
    ts = pd.to_datetime(df["timestamp"], errors="coerce", format="%Y-%m-%d %H:%M:%S")
    df = df[ts.notna()][["open", "high", "low", "close", "volume"]].astype(float)
    df.index = (ts[ts.notna()] - pd.Timedelta(minutes=1)).dt.tz_localize(NY)
    return df.sort_index()


def to_bars(df: pd.DataFrame) -> list[Bar]:
    return [Bar(t.to_pydatetime(), o, h, lo, c, v) for t, o, h, lo, c, v in
            zip(df.index, df["open"], df["high"], df["low"], df["close"], df["volume"], strict=True)]


def pick(df: pd.DataFrame, day: date, warm: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    days = sorted(set(df.index.date))
    d = day if day in days else days[min(warm, len(days) - 1)]
    i = days.index(d)
    hist = df[(df.index.date >= days[max(0, i - warm)]) & (df.index.date < d)]
    return hist, df[df.index.date == d]


def naive_update(hist: pd.DataFrame, open_ts: pd.Timestamp, close_ts: pd.Timestamp) -> float:
    """What a bot without incremental state does on each bar: recompute with ta."""
    rsi = ta.momentum.RSIIndicator(hist["close"], 14).rsi().iloc[-1]
    atr = ta.volatility.AverageTrueRange(hist["high"], hist["low"], hist["close"], 14).average_true_range().iloc[-1]
    reg = hist[(hist.index >= open_ts) & (hist.index < close_ts)]
    vwap = float("nan")
    if len(reg):
        vwap = ta.volume.VolumeWeightedAveragePrice(reg["high"], reg["low"], reg["close"], reg["volume"],
                                                    window=len(reg), fillna=True).volume_weighted_average_price().iloc[-1]
    return rsi + atr + vwap


def bench_aggregator() -> tuple[int, float] | None:
    path = MARKET / "lean" / "second" / "SPY_1sec_trade_2013-10-10.csv.gz"
    if not path.exists():
        return None
    with gzip.open(path, "rt") as fh:
        sec = pd.read_csv(fh, header=None, names=["ms", "open", "high", "low", "close", "volume"])
    midnight = datetime(2013, 10, 10, tzinfo=NY)
    sec.index = pd.DatetimeIndex([midnight + timedelta(milliseconds=int(m)) for m in sec["ms"]])
    five = sec.resample("5s", label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).dropna()
    bars = [Bar(t.to_pydatetime(), o / 1e4, h / 1e4, lo / 1e4, c / 1e4, v) for t, o, h, lo, c, v in
            zip(five.index, five["open"], five["high"], five["low"], five["close"], five["volume"], strict=True)]
    agg = BarAggregator(30)
    t0 = time.perf_counter()
    for b in bars:
        agg.add(b)
    return len(bars), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--day", type=date.fromisoformat, default=date(2020, 11, 17))
    ap.add_argument("--warm-sessions", type=int, default=1, help="earlier sessions fed before timing")
    ap.add_argument("--naive-samples", type=int, default=40, help="history lengths sampled per naive symbol")
    ap.add_argument("--naive-symbols", type=int, default=5)
    args = ap.parse_args()

    files = sorted((MARKET / "alphavantage_1min").glob("*_1min_*.csv.gz"))
    t_load = time.perf_counter()
    sources = []
    for f in files:
        hist, today = pick(load_minute(f), args.day, args.warm_sessions)
        sources.append((f.name.split("_1min_")[0], hist, today, to_bars(hist), to_bars(today)))
    print(f"loaded {len(sources)} real symbols in {time.perf_counter() - t_load:.1f} s; "
          f"{args.symbols} symbols = replicas of them (symbol i replays source i mod {len(sources)})")
    cal = calendar()
    for d in {s[2].index[0].date() for s in sources}:
        cal.session(d)  # calendar lookups outside the timed part

    # ---------------------------------------------------------------- incremental
    sets, streams = [], []
    for i in range(args.symbols):
        name, _, _, hist_bars, today_bars = sources[i % len(sources)]
        ind = IndicatorSet(f"{name}#{i // len(sources)}")
        ind.warm(hist_bars)
        sets.append(ind)
        streams.append(today_bars)
    events = sorted(((b.time, i, b) for i, bars in enumerate(streams) for b in bars), key=lambda e: (e[0], e[1]))
    t0 = time.perf_counter()
    for _, i, bar in events:
        sets[i].update(bar)
    inc_s = time.perf_counter() - t0
    n = len(events)
    inc_rate = n / inc_s
    print(f"incremental: {n:,} updates ({args.symbols} symbols, one session of 1-min bars) in {inc_s:.2f} s "
          f"= {inc_rate:,.0f} updates/s ({inc_s / n * 1e6:.1f} µs/update)")

    # ---------------------------------------------------------------- naive (sampled)
    costs, lengths = [], []
    for name, hist, today, _, _ in sources[: args.naive_symbols]:
        s = cal.session(today.index[0].date())
        open_ts, close_ts = pd.Timestamp(s.open), pd.Timestamp(s.close)
        full = pd.concat([hist, today])
        m = len(today)
        ks = sorted({len(hist) + 1 + (m - 1) * j // max(1, args.naive_samples - 1) for j in range(args.naive_samples)})
        for k in ks:
            if k < 15:
                continue
            sl = full.iloc[:k]
            t = time.perf_counter()
            naive_update(sl, open_ts, close_ts)
            costs.append(time.perf_counter() - t)
            lengths.append(k)
        print(f"  naive sample {name}: {len(ks)} recomputes over histories of {min(ks)}–{max(ks)} bars")
    per_update = statistics.fmean(costs)
    naive_rate = 1.0 / per_update
    print(f"naive (ta recompute over the growing history, sampled {len(costs)} updates, mean history "
          f"{statistics.fmean(lengths):.0f} bars): {per_update * 1e3:.2f} ms/update = {naive_rate:,.0f} updates/s; "
          f"extrapolated to all {n:,} updates: {per_update * n:,.0f} s")
    print(f"ratio incremental / naive: {inc_rate / naive_rate:,.0f}×")
    need = args.symbols / 30.0
    print(f"live need at one 30-s bar per symbol: {need:.1f} updates/s — incremental headroom "
          f"{inc_rate / need:,.0f}×, naive headroom {naive_rate / need:.2f}×")

    agg = bench_aggregator()
    if agg:
        k, secs = agg
        print(f"aggregator: {k:,} real 5-s bars (SPY 2013-10-10) → 30-s bars in {secs:.3f} s = {k / secs:,.0f} bars/s")


if __name__ == "__main__":
    main()
