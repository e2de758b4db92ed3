"""Load recorded bar files into per-symbol DataFrames (bar START, America/New_York).

Every loader returns, per symbol, a DataFrame indexed by the bar's **start** time
(tz-aware ``America/New_York``, strictly ascending, index name ``time``) with columns
``open, high, low, close`` (float dollars) and ``volume`` (int64 shares). The frame's
``attrs`` carry ``bar_seconds`` (60 for minute bars, 1 for second bars) and ``files``
(the source paths).

File formats recognised by name (see ``shared/data/market/README.md``):

=================================== ============================================== ==========
file name                           format                                         time label
=================================== ============================================== ==========
``SYM_1min_<first>_<last>.csv[.gz]`` Alpha Vantage intraday: ``timestamp`` naive      bar END
                                    New York, newest row first; HCAC quirks (a
                                    leading empty column, float volumes, a trailing
                                    error-message line, which is skipped)
``SYM_1min_trade_<date>.csv.gz``     QuantConnect Lean minute trade bars, no header, bar START
``SYM_1sec_trade_<date>.csv.gz``     ms after midnight, prices in deci-cents (÷10,000)
``lumibot/*.csv``                   ``time,open,high,low,close,volume``, naive New  bar END
                                    York or with offset (XYZ_1Min runs 09:31–16:00,
                                    which only fits end labels)
``*.parquet``                       our own canonical frames (DatetimeIndex or a    bar START
                                    ``time`` column), e.g. ``df.to_parquet``
other ``*.csv[.gz]``                ``time``/``timestamp`` + OHLCV columns           bar START
=================================== ============================================== ==========

Quote files (``*_quote_*``), tick files and daily files (``*_1day_*``) are ignored by
:func:`load_bars`; daily files are read by :func:`load_daily`.

Parsed files are cached per (path, size, mtime), so reloading a session is cheap.

Errors: every problem raises :class:`daytrading.errors.DataError` naming the file and the
field/value (missing file or folder, missing columns, unparseable rows, bars out of
order, duplicate timestamps, an unknown date or symbol).
"""

from __future__ import annotations

import functools
import logging
import re
import zlib
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from daytrading.clock import NY, calendar
from daytrading.errors import DataError

log = logging.getLogger(__name__)

__all__ = [
    "BAR_COLUMNS",
    "available_dates",
    "load_bars",
    "load_daily",
    "load_session",
    "previous_closes",
    "synthetic_session",
]

BAR_COLUMNS = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")

#: Session window replayed by the sim-gateway (IB's extended hours), New York time.
SESSION_START = time(4, 0)
SESSION_END = time(20, 0)

_AV_RE = re.compile(r"^(?P<sym>.+?)_1min_\d{4}-\d{2}-\d{2}_\d{4}-\d{2}-\d{2}\.csv(\.gz)?$")
_LEAN_RE = re.compile(r"^(?P<sym>.+?)_(?P<res>1min|1sec)_trade_(?P<day>\d{4}-\d{2}-\d{2})\.csv(\.gz)?$")
#: A file with more unusable bars than this (and more than this fraction of its bars) is
#: skipped as a whole, reported once, instead of bar by bar.
MAX_BAD_BARS = 10
MAX_BAD_FRACTION = 0.05
_SKIP_RE = re.compile(r"(_quote_|_tick_|_1day_|^MANIFEST)", re.IGNORECASE)


# --------------------------------------------------------------------------- files


def _files_of(source: Path) -> list[Path]:
    """Bar files of a folder (not recursive) or the single file ``source``."""
    if not source.exists():
        raise DataError(f"market data source {source} does not exist")
    if source.is_file():
        return [source]
    files = sorted(
        p
        for p in source.iterdir()
        if p.is_file()
        and (p.name.endswith((".csv", ".csv.gz", ".parquet")))
        and not _SKIP_RE.search(p.name)
    )
    if not files:
        raise DataError(f"market data folder {source} holds no bar files (*.csv, *.csv.gz, *.parquet)")
    return files


def _symbol_of(path: Path) -> str:
    """Symbol from a file name: the part before the first ``_`` (``TSLA_1min_…`` → TSLA)."""
    name = path.name
    for suffix in (".gz", ".csv", ".parquet"):
        name = name.removesuffix(suffix)
    return name.split("_", 1)[0].upper()


@functools.lru_cache(maxsize=512)
def _parse_cached(path_str: str, size: int, mtime_ns: int  # noqa: ARG001 - cache key
                  ) -> tuple[pd.DataFrame, tuple[DataError, ...]]:
    problems: list[DataError] = []
    frame = _parse_file(Path(path_str), problems)
    return frame, tuple(problems)


def _parse(path: Path, skipped: list[dict[str, object]] | None = None) -> pd.DataFrame:
    """The file's frame. Unusable bars raise the first problem, or (with ``skipped``) are
    left out and reported there (and in the log)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise DataError(f"cannot read market data file {path}: {exc}", file=path) from exc
    frame, problems = _parse_cached(str(path), st.st_size, st.st_mtime_ns)
    if not problems:
        return frame
    first = problems[0]
    if skipped is None:
        raise first
    total = len(frame) + len(problems)
    if len(problems) > MAX_BAD_BARS and len(problems) > MAX_BAD_FRACTION * total:
        raise DataError(f"{path}: {len(problems)} of {total} bars unusable (first: {first}); "
                        "the file is skipped (mislabelled columns?)",
                        file=path, line=first.line, field=first.field, value=first.value)
    log.warning("skipping %d unusable bar(s) of %s; first: %s", len(problems), path, first,
                extra={"skip": first.as_skip()})
    skipped.extend(p.as_skip() for p in problems)
    return frame


def _parse_file(path: Path, problems: list[DataError]) -> pd.DataFrame:
    """Parse one bar file into the canonical frame (see module docstring); unusable bars
    are left out and described in ``problems``."""
    name = path.name
    if _LEAN_RE.match(name):
        return _parse_lean(path, problems)
    if name.endswith(".parquet"):
        return _parse_parquet(path, problems)
    if _AV_RE.match(name):
        return _parse_csv(path, problems, end_label=True, descending=True)
    return _parse_csv(path, problems, end_label=path.parent.name.lower() == "lumibot", descending=False)


def _read_csv(path: Path, **kw) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kw)
    except FileNotFoundError as exc:
        raise DataError(f"market data file {path} does not exist", file=path) from exc
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse market data file {path}: {exc}", file=path) from exc


def _parse_csv(path: Path, problems: list[DataError], *, end_label: bool, descending: bool) -> pd.DataFrame:
    raw = _read_csv(path)
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    time_col = next((c for c in ("timestamp", "time", "datetime", "date") if c in raw.columns), None)
    if time_col is None:
        raise DataError(
            f"{path}: no time column (expected one of timestamp/time/datetime/date; "
            f"found {list(raw.columns)})", file=path, line=1, field="time", value=",".join(raw.columns)
        )
    _require_columns(path, raw.columns)
    text = raw[time_col]
    stamps = pd.to_datetime(text, errors="coerce", format="ISO8601")
    bad = stamps.isna().to_numpy()
    if bad.any():
        # Alpha Vantage's error-message line (HCAC): no timestamp and no prices -> skip it.
        message_rows = bad & raw[list(PRICE_COLUMNS)].isna().all(axis=1).to_numpy()
        if (bad & ~message_rows).any():
            i = int(np.flatnonzero(bad & ~message_rows)[0])
            raise DataError(
                f"{path}: line {i + 2}: field {time_col!r} has unparseable value {text.iloc[i]!r}",
                file=path, line=i + 2, field=time_col, value=text.iloc[i],
            )
        for i in np.flatnonzero(message_rows):
            log.info("skipping non-bar line %d of %s: %r", i + 2, path, str(raw.iloc[i, 0])[:80])
        raw = raw.loc[~bad]
        stamps = stamps.loc[~bad]
    index = pd.DatetimeIndex(stamps)
    if index.tz is None:
        index = index.tz_localize(NY, ambiguous="raise", nonexistent="raise")
    else:
        index = index.tz_convert(NY)
    line_of = (np.flatnonzero(~bad) + 2) if bad.any() else np.arange(len(raw)) + 2
    _check_order(path, index, descending=descending, line_of=line_of, field=time_col)
    frame = _frame(path, raw, index, problems, line_of)
    if descending:
        frame = frame.iloc[::-1]
    if end_label:
        frame.index = frame.index - pd.Timedelta(minutes=1)
    frame.index.name = "time"
    frame.attrs = {"bar_seconds": 60, "files": [str(path)]}
    return frame


def _parse_lean(path: Path, problems: list[DataError]) -> pd.DataFrame:
    m = _LEAN_RE.match(path.name)
    assert m is not None
    raw = _read_csv(path, header=None, names=["ms", *BAR_COLUMNS])
    day = date.fromisoformat(m.group("day"))
    midnight = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=NY))
    ms = pd.to_numeric(raw["ms"], errors="coerce")
    if ms.isna().any():
        i = int(np.flatnonzero(ms.isna().to_numpy())[0])
        raise DataError(f"{path}: line {i + 1}: field 'time' has unparseable value {raw['ms'].iloc[i]!r}",
                        file=path, line=i + 1, field="time", value=raw["ms"].iloc[i])
    index = pd.DatetimeIndex(midnight + pd.to_timedelta(ms.to_numpy(), unit="ms"))
    scaled = raw.copy()
    for c in PRICE_COLUMNS:
        scaled[c] = pd.to_numeric(scaled[c], errors="coerce") / 10_000.0
    _check_order(path, index, descending=False, line_of=None, field="time", first_line=1)
    frame = _frame(path, scaled, index, problems, np.arange(len(scaled)) + 1)
    frame.index.name = "time"
    frame.attrs = {"bar_seconds": 60 if m.group("res") == "1min" else 1, "files": [str(path)]}
    return frame


def _parse_parquet(path: Path, problems: list[DataError]) -> pd.DataFrame:
    try:
        raw = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot parse market data file {path}: {exc}") from exc
    raw.columns = [str(c).lower() for c in raw.columns]
    if not isinstance(raw.index, pd.DatetimeIndex):
        col = next((c for c in ("time", "timestamp", "datetime", "date") if c in raw.columns), None)
        if col is None:
            raise DataError(f"{path}: needs a DatetimeIndex or a time column; found {list(raw.columns)}")
        raw = raw.set_index(col)
    _require_columns(path, raw.columns)
    index = pd.DatetimeIndex(raw.index)
    index = index.tz_localize(NY) if index.tz is None else index.tz_convert(NY)
    _check_order(path, index, descending=False, line_of=None, field="time", first_line=0)
    frame = _frame(path, raw.reset_index(drop=True), index, problems, np.arange(len(raw)))
    frame.index.name = "time"
    step = np.diff(frame.index.as_unit("ns").asi8).min() / 1e9 if len(frame) > 1 else 60.0
    frame.attrs = {"bar_seconds": 1 if step < 60 else 60, "files": [str(path)]}
    return frame


def _require_columns(path: Path, columns: Iterable[str]) -> None:
    missing = [c for c in BAR_COLUMNS if c not in set(columns)]
    if missing:
        raise DataError(f"{path}: missing required column(s) {missing}; found {list(columns)}",
                        file=path, line=1, field=missing[0], value=",".join(map(str, columns)))


def _frame(path: Path, raw: pd.DataFrame, index: pd.DatetimeIndex, problems: list[DataError],
           line_of: np.ndarray) -> pd.DataFrame:
    """Numeric OHLCV frame. A bar with a non-numeric or negative value, or whose high/low
    do not bracket its open/close, is left out and described in ``problems`` (file, line,
    field, value)."""
    out = {}
    drop = np.zeros(len(raw), dtype=bool)
    for c in BAR_COLUMNS:
        col = raw[c]
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
        bad = (np.isnan(values) | (values < 0)) & ~drop
        for i in np.flatnonzero(bad):
            problems.append(DataError(f"{path}: line {int(line_of[i])}: bar {index[i]}: field {c!r} has invalid "
                                      f"value {col.iloc[i]!r}", file=path, line=int(line_of[i]), field=c,
                                      value=col.iloc[i]))
        drop |= bad
        out[c] = np.where(np.isnan(values), 0.0, values)
    frame = pd.DataFrame(out, index=index)
    hi_bad = (frame["high"] < frame[["open", "close", "low"]].max(axis=1) - 1e-9).to_numpy() & ~drop
    lo_bad = (frame["low"] > frame[["open", "close", "high"]].min(axis=1) + 1e-9).to_numpy() & ~drop
    for i in np.flatnonzero(hi_bad | lo_bad):
        row = frame.iloc[i]
        field, value = ("high", row.high) if hi_bad[i] else ("low", row.low)
        problems.append(DataError(
            f"{path}: line {int(line_of[i])}: bar {frame.index[i]}: high/low do not bracket open/close "
            f"(open={row.open}, high={row.high}, low={row.low}, close={row.close})",
            file=path, line=int(line_of[i]), field=field, value=value))
    drop |= hi_bad | lo_bad
    if drop.any():
        frame = frame.loc[~drop]
    frame["volume"] = np.rint(frame["volume"].to_numpy()).astype(np.int64)
    return frame


def _check_order(
    path: Path,
    index: pd.DatetimeIndex,
    *,
    descending: bool,
    line_of: np.ndarray | None,
    field: str,
    first_line: int = 2,
) -> None:
    """Raise DataError at the first bar that breaks the file's claimed (strict) order."""
    if len(index) < 2:
        return
    diffs = np.diff(index.asi8)
    bad = diffs >= 0 if descending else diffs <= 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0]) + 1
        line = int(line_of[i]) if line_of is not None else i + first_line
        order = "descending (newest first)" if descending else "ascending"
        kind = "duplicate" if diffs[i - 1] == 0 else "out of order"
        raise DataError(
            f"{path}: line {line}: {kind} bar: field {field!r} value {index[i]} follows "
            f"{index[i - 1]}; the file must be strictly {order}", file=path, line=line, field=field, value=index[i]
        )


# --------------------------------------------------------------------------- public


def load_bars(
    source: str | Path,
    symbols: Iterable[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    *,
    skipped: list[dict[str, object]] | None = None,
) -> dict[str, pd.DataFrame]:
    """Load bar files per symbol.

    Args:
        source: a folder of bar files (not searched recursively) or one file; formats in
            the module docstring.
        symbols: only these symbols (case-insensitive); each must be present.
        start, end: keep bars whose New York date is within ``[start, end]`` (inclusive).
        skipped: when given, an unusable file or bar does not fail the load: it is left
            out, logged (WARNING) and appended here as ``{file, line, field, value, reason}``
            (the backtest's report of skipped data). Without it the first problem raises.

    Returns:
        ``{symbol: DataFrame}`` sorted by symbol; each frame indexed by bar START
        (tz-aware America/New_York, strictly ascending) with columns open/high/low/close
        (float dollars) and volume (int shares). Several files of one symbol (e.g. Lean's
        one file per day) are concatenated. Symbols without bars in the date range are
        left out.

    Raises:
        DataError: missing file/folder, unreadable file, missing columns, unparseable
            rows, bars out of order, overlapping files, or a requested symbol not found.
    """
    src = Path(source)
    files = _files_of(src)
    wanted = None if symbols is None else {s.upper() for s in symbols}
    by_symbol: dict[str, list[Path]] = {}
    for f in files:
        sym = _symbol_of(f)
        if wanted is None or sym in wanted:
            by_symbol.setdefault(sym, []).append(f)
    if wanted is not None:
        missing = sorted(wanted - set(by_symbol))
        if missing:
            have = sorted({_symbol_of(f) for f in files})
            raise DataError(f"symbol(s) {missing} not found in {src} (available: {', '.join(have)})")
    lo = pd.Timestamp(datetime.combine(start, time(0)), tz=NY) if start else None
    hi = pd.Timestamp(datetime.combine(end + timedelta(days=1), time(0)), tz=NY) if end else None
    out: dict[str, pd.DataFrame] = {}
    for sym in sorted(by_symbol):
        parts = []
        for f in by_symbol[sym]:
            try:
                parts.append(_parse(f, skipped))
            except DataError as exc:
                if skipped is None:
                    raise
                log.warning("skipping unusable market data file: %s", exc, extra={"skip": exc.as_skip()})
                skipped.append(exc.as_skip())
        parts = [p for p in parts if len(p)]
        if not parts:
            continue
        frame = parts[0] if len(parts) == 1 else _concat(sym, parts)
        a = 0 if lo is None else int(frame.index.searchsorted(lo, side="left"))
        b = len(frame) if hi is None else int(frame.index.searchsorted(hi, side="left"))
        if a >= b:
            continue
        sliced = frame.iloc[a:b].copy()
        sliced.attrs = dict(frame.attrs)
        out[sym] = sliced
    return out


def _concat(sym: str, parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = sorted(parts, key=lambda p: p.index[0] if len(p) else pd.Timestamp.max.tz_localize(NY))
    frame = pd.concat(parts)
    if not frame.index.is_monotonic_increasing or frame.index.has_duplicates:
        files = [f for p in parts for f in p.attrs.get("files", [])]
        raise DataError(f"files of {sym} overlap in time: {files}")
    frame.attrs = {
        "bar_seconds": min(p.attrs.get("bar_seconds", 60) for p in parts),
        "files": [f for p in parts for f in p.attrs.get("files", [])],
    }
    return frame


def available_dates(source: str | Path, symbols: Iterable[str] | None = None, *,
                    skipped: list[dict[str, object]] | None = None) -> list[date]:
    """Sorted New York dates that have at least one bar in ``source`` (for ``symbols``);
    ``skipped`` as in :func:`load_bars`."""
    days: set[date] = set()
    for frame in load_bars(source, symbols, skipped=skipped).values():
        days.update(pd.unique(frame.index.date))
    return sorted(days)


def load_session(
    source: str | Path, session_date: date, symbols: Iterable[str] | None = None, *,
    skipped: list[dict[str, object]] | None = None,
) -> dict[str, pd.DataFrame]:
    """Bars of one session: bar starts from 04:00 to before 20:00 New York on ``session_date``.

    Returns the same shape as :func:`load_bars`; symbols without bars that day are left
    out (e.g. ASML after 2020-12-11).

    Raises:
        DataError: as :func:`load_bars`, or no symbol has bars on ``session_date``
            ("no bars for <date> in <source> (available: first … last)").
    """
    frames = load_bars(source, symbols, skipped=skipped)
    day0 = pd.Timestamp(datetime.combine(session_date, SESSION_START), tz=NY)
    day1 = pd.Timestamp(datetime.combine(session_date, SESSION_END), tz=NY)
    out: dict[str, pd.DataFrame] = {}
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    for sym, frame in frames.items():
        idx = frame.index
        if len(idx):
            first = idx[0] if first is None else min(first, idx[0])
            last = idx[-1] if last is None else max(last, idx[-1])
        a = int(idx.searchsorted(day0, side="left"))
        b = int(idx.searchsorted(day1, side="left"))
        if a < b:
            part = frame.iloc[a:b].copy()
            part.attrs = dict(frame.attrs)
            out[sym] = part
    if not out:
        span = f"{first.date()} … {last.date()}" if first is not None and last is not None else "none"
        raise DataError(f"no bars for {session_date.isoformat()} in {source} (available: {span})")
    return out


# --------------------------------------------------------------------------- daily

#: Yahoo daily O/H/L/C are split-adjusted as of 2024-03-08: multiply by this factor to get
#: 2020–21 as-traded prices (and divide volume by it). Source: shared/data/market/README.md
#: ("yahoo_daily" table). T's factor (spin-off adjustment) is approximate.
YAHOO_FACTORS: dict[str, float] = {"AMZN": 20.0, "GOOG": 20.0, "NVDA": 4.0, "TSLA": 3.0, "WMT": 3.0, "T": 1.301}
#: Daily files filed under another name: Yahoo files FB as META; HCAC's daily rows are in GOEV's file.
_DAILY_ALIASES: dict[str, tuple[str, ...]] = {"FB": ("FB", "META"), "HCAC": ("HCAC", "GOEV")}
#: Lean's FB daily file holds an unrelated company before Facebook's IPO.
_LEAN_FIRST_VALID = {"FB": pd.Timestamp("2012-05-18")}


def load_daily(symbol: str, data_root: str | Path) -> pd.DataFrame | None:
    """Daily bars of ``symbol`` at as-traded (unadjusted) prices, or None when no file has it.

    Looks in ``data_root`` (the ``shared/data/market`` folder, or a folder of daily files)
    in this order: ``lean/daily`` (unadjusted, deci-cents ÷ 10,000), ``alphavantage_daily``
    (unadjusted; HCAC's rows are in GOEV's file), ``yahoo_daily`` (split-adjusted; scaled
    back by :data:`YAHOO_FACTORS`; FB is filed as META).

    Returns:
        DataFrame indexed by session date (naive ``DatetimeIndex``, ascending) with columns
        open/high/low/close (float dollars) and volume (int shares).

    Raises:
        DataError: a daily file exists but cannot be parsed.
    """
    root = Path(data_root)
    sym = symbol.upper()
    names = _DAILY_ALIASES.get(sym, (sym,))
    candidates: list[tuple[str, Path]] = []
    for kind, folder in (("lean", root / "lean" / "daily"), ("av", root / "alphavantage_daily"),
                         ("yahoo", root / "yahoo_daily"), ("any", root)):
        if not folder.is_dir():
            continue
        for name in names:
            candidates += [(kind, p) for p in sorted(folder.glob(f"{name}_1day_*.csv*"))]
    if not candidates:
        return None
    kind, path = candidates[0]
    st = path.stat()
    frame = _parse_daily_cached(str(path), kind, sym, st.st_size, st.st_mtime_ns)
    return frame.copy()


@functools.lru_cache(maxsize=128)
def _parse_daily_cached(path_str: str, kind: str, sym: str, size: int, mtime_ns: int) -> pd.DataFrame:  # noqa: ARG001
    path = Path(path_str)
    if kind == "lean":
        raw = _read_csv(path, header=None, names=["date", *BAR_COLUMNS])
        idx = pd.to_datetime(raw["date"].astype(str).str[:8], format="%Y%m%d", errors="coerce")
        for c in PRICE_COLUMNS:
            raw[c] = pd.to_numeric(raw[c], errors="coerce") / 10_000.0
    else:
        raw = _read_csv(path)
        raw.columns = [str(c).strip().lower() for c in raw.columns]
        col = "date" if "date" in raw.columns else "timestamp"
        if col not in raw.columns:
            raise DataError(f"{path}: no date column (expected Date or timestamp); found {list(raw.columns)}")
        _require_columns(path, raw.columns)
        idx = pd.to_datetime(raw[col], errors="coerce", format="ISO8601")
    if idx.isna().any():
        i = int(np.flatnonzero(idx.isna().to_numpy())[0])
        raise DataError(f"{path}: line {i + 2}: unparseable date")
    frame = pd.DataFrame(
        {c: pd.to_numeric(raw[c], errors="coerce").to_numpy(dtype=np.float64) for c in BAR_COLUMNS},
        index=pd.DatetimeIndex(idx, name="date"),
    ).sort_index()
    if kind == "yahoo" and sym in YAHOO_FACTORS:
        f = YAHOO_FACTORS[sym]
        frame[list(PRICE_COLUMNS)] *= f
        frame["volume"] /= f
    if kind == "lean" and sym in _LEAN_FIRST_VALID:
        frame = frame.loc[frame.index >= _LEAN_FIRST_VALID[sym]]
    frame = frame.dropna()
    frame["volume"] = np.rint(frame["volume"].to_numpy()).astype(np.int64)
    frame.attrs = {"files": [path_str], "kind": kind}
    return frame


def previous_closes(
    bars: dict[str, pd.DataFrame],
    session_date: date,
    *,
    source: str | Path | None = None,
    data_root: str | Path | None = None,
) -> dict[str, float]:
    """Previous session's close per symbol (dollars), for the ``close`` tick and scanners.

    Prefers the official close from :func:`load_daily` (``data_root``; default: the parent
    of ``source`` when it is a folder of the shared data set) when its last row before
    ``session_date`` is the previous XNYS session. Otherwise falls back to the close of the
    last regular-hours bar (bar start before the session close, 16:00 or 13:00 on half
    days) of the previous session in the minute data ``source`` (the README's gap table
    uses this definition). Symbols with neither are left out.
    """
    cal = calendar()
    prev_day = cal.previous_session(session_date)
    if data_root is None and source is not None:
        src = Path(source)
        parent = src.parent if src.is_dir() else src.parent.parent
        if (parent / "yahoo_daily").is_dir() or (parent / "lean").is_dir():
            data_root = parent
    out: dict[str, float] = {}
    minute: dict[str, pd.DataFrame] | None = None
    for sym in bars:
        if data_root is not None:
            daily = load_daily(sym, data_root)
            if daily is not None:
                before = daily.loc[daily.index < pd.Timestamp(session_date)]
                if len(before) and before.index[-1].date() == prev_day:
                    out[sym] = _cents(float(before["close"].iloc[-1]))
                    continue
        if source is None:
            continue
        if minute is None:
            try:
                minute = load_bars(source, list(bars), start=prev_day, end=prev_day, skipped=[])
            except DataError:
                minute = {}
        frame = minute.get(sym)
        if frame is None or not len(frame):
            continue
        close_t = pd.Timestamp(cal.session(prev_day).close)
        regular = frame.loc[frame.index < close_t]
        if len(regular):
            out[sym] = _cents(float(regular["close"].iloc[-1]))
    return out


def _cents(price: float) -> float:
    """Round away float noise of scaled daily prices: cents at $1 and above, else 0.0001."""
    return round(price, 2 if price >= 1.0 else 4)


# --------------------------------------------------------------------------- synthetic


def synthetic_session(session_date: date, symbols: Iterable[str], seed: int) -> dict[str, pd.DataFrame]:
    """Seeded synthetic minute bars for one session (used when no data is given).

    Deterministic in (``session_date``, symbol, ``seed``): a geometric random walk
    (0.1 % per minute in regular hours, 0.05 % outside) from a start price between $10 and
    $300; every regular-hours minute has a bar; pre-market (04:00–) and after-hours (–20:00)
    minutes have a bar with probability 0.3. Volume is log-normal, larger in regular hours.
    Regular hours come from the XNYS calendar (13:00 close on half days). NOT real data:
    the sim-gateway says so loudly wherever it is used.

    Returns:
        the same shape as :func:`load_session`.
    """
    cal = calendar()
    if cal.is_session(session_date):
        sess = cal.session(session_date)
        open_t, close_t = pd.Timestamp(sess.open), pd.Timestamp(sess.close)
    else:
        open_t = pd.Timestamp(datetime.combine(session_date, time(9, 30)), tz=NY)
        close_t = pd.Timestamp(datetime.combine(session_date, time(16, 0)), tz=NY)
    day0 = pd.Timestamp(datetime.combine(session_date, SESSION_START), tz=NY)
    minutes = pd.date_range(day0, periods=16 * 60, freq="1min")
    regular = (minutes >= open_t) & (minutes < close_t)
    out: dict[str, pd.DataFrame] = {}
    for sym in sorted({s.upper() for s in symbols}):
        rng = np.random.default_rng([seed, zlib.crc32(sym.encode()), session_date.toordinal()])
        keep = regular | (rng.random(len(minutes)) < 0.3)
        n = int(keep.sum())
        reg = regular[keep]
        sigma = np.where(reg, 0.001, 0.0005)
        price0 = float(rng.uniform(10.0, 300.0))
        closes = price0 * np.exp(np.cumsum(rng.normal(0.0, sigma)))
        opens = np.concatenate([[price0], closes[:-1]]) * np.exp(rng.normal(0.0, sigma / 4))
        wick = np.abs(rng.normal(0.0, sigma, size=(2, n))) * closes
        highs = np.maximum(opens, closes) + wick[0]
        lows = np.minimum(opens, closes) - wick[1]
        vol = np.rint(rng.lognormal(np.where(reg, 8.0, 5.0), 1.0)).astype(np.int64) + 1
        frame = pd.DataFrame(
            {
                "open": np.round(opens, 2),
                "high": np.round(highs, 2),
                "low": np.round(lows, 2),
                "close": np.round(closes, 2),
                "volume": vol,
            },
            index=pd.DatetimeIndex(minutes[keep], name="time"),
        )
        frame["high"] = frame[["open", "high", "close"]].max(axis=1)
        frame["low"] = frame[["open", "low", "close"]].min(axis=1)
        frame.attrs = {"bar_seconds": 60, "files": [], "synthetic": True}
        out[sym] = frame
    return out
