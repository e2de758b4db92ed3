"""The end-of-session report (printed by the supervisor at the end of a sim run).

:func:`session_report` gathers, for one XNYS session:

* the figures of :mod:`daytrading.ops.analyze` (trades, win rate, P&L, exits by reason);
* the invariant checks of the architecture page, each ``OK`` / ``FAIL`` / ``SKIP``:

  - **never short** (invariant 4): the gateway report's ``shorts`` is empty and no
    ``min_position`` is below zero (SKIP without a gateway report);
  - **no re-entry** (invariant 2): no symbol has a trade entered at or after an earlier
    trade's exit, and no filled BUY order was created after the symbol's first close;
  - **every position protected** (invariant 5): every entry has a SELL LMT profit target
    recorded within ``protect_within_s`` market seconds of its entry time (either side: the
    exit-manager protects a fill before the day-trader confirms it), unless the position was
    already closed by then;
  - **flat at end**: no active row in the database and (with a gateway report) no
    position at the gateway;
  - **database matches gateway**: per symbol, shares sold at the gateway (its
    ``executions``) equal the shares of the database's trades;

* PNG charts: the equity curve and one chart per traded symbol (close price from
  ``bars`` with entries ▲ and exits ▼ marked, exits coloured by reason).

Times are New York; prices dollars; quantities shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from daytrading.clock import NY
from daytrading.coordination import Coordinator
from daytrading.coordination.api import TradeView
from daytrading.ops.analyze import Analysis, analyze_trades, plot_equity_curve, save_chart

#: Wall seconds within which the exit-manager must have placed a target (scaled by clock speed).
PROTECT_WALL_SECONDS = 5.0
#: Lower bound of the protection window in market seconds.
PROTECT_MIN_MARKET_SECONDS = 60.0

REASON_COLOURS = {"target": "tab:green", "stop": "tab:red", "eod": "tab:orange", "liquidate_all": "black",
                  "reconciled": "tab:purple", "manual": "tab:grey"}


@dataclass(frozen=True)
class Check:
    """One invariant check: ``status`` is ``OK``, ``FAIL`` or ``SKIP``; ``detail`` says why."""

    name: str
    status: str
    detail: str

    @property
    def failed(self) -> bool:
        """True when the check ran and failed."""
        return self.status == "FAIL"


@dataclass(frozen=True)
class SessionReport:
    """The report: ``text`` to print, ``chart_paths`` written, ``checks``; ``ok`` when none failed."""

    session_date: date
    text: str
    chart_paths: list[Path]
    checks: list[Check]
    analysis: Analysis = field(repr=False)

    @property
    def ok(self) -> bool:
        """True when no invariant check failed (SKIPs are not failures)."""
        return not any(c.failed for c in self.checks)


# ---------------------------------------------------------------------- checks


def check_never_short(gateway_report: dict[str, Any] | None) -> Check:
    """Invariant 4 from the gateway's own bookkeeping (``shorts``, ``min_position``)."""
    if gateway_report is None:
        return Check("never short", "SKIP", "no gateway report")
    shorts = gateway_report.get("shorts") or []
    below = {s: q for s, q in (gateway_report.get("min_position") or {}).items() if q < 0}
    if shorts or below:
        return Check("never short", "FAIL", f"shorts={shorts!r} min_position<0={below!r}")
    return Check("never short", "OK", "no position ever went below zero")


def check_no_reentry(trades: list[TradeView], orders: list[dict[str, Any]]) -> Check:
    """Invariant 2: nothing entered in a symbol after its first close of the session."""
    first_close: dict[str, datetime] = {}
    problems: list[str] = []
    for t in sorted(trades, key=lambda t: t.exit_time):
        closed = first_close.get(t.symbol)
        if closed is not None and t.entry_time is not None and t.entry_time >= closed:
            problems.append(f"{t.symbol} re-entered at {t.entry_time.astimezone(NY):%H:%M:%S} "
                            f"after closing at {closed.astimezone(NY):%H:%M:%S}")
        first_close.setdefault(t.symbol, t.exit_time)
    for o in orders:
        closed = first_close.get(o["symbol"])
        if (closed is not None and o["side"] == "BUY" and (o.get("filled_quantity") or 0) > 0
                and o["created_at"] > closed):
            problems.append(f"{o['symbol']} BUY order {o['order_id']} filled after the close at "
                            f"{closed.astimezone(NY):%H:%M:%S}")
    if problems:
        return Check("no re-entry", "FAIL", "; ".join(sorted(set(problems))))
    return Check("no re-entry", "OK", f"{len(first_close)} closed symbols, none re-entered")


def _is_target(o: dict[str, Any]) -> bool:
    ref = o.get("order_ref") or ""
    return o["side"] == "SELL" and (o.get("purpose") == "target" or ref.startswith("dt-target:")
                                    or o["order_type"] == "LMT")


def check_protected(trades: list[TradeView], open_rows: list[Any], orders: list[dict[str, Any]],
                    within: timedelta) -> Check:
    """Invariant 5: a profit target recorded within ``within`` of every entry."""
    targets: dict[str, list[datetime]] = {}
    for o in orders:
        if _is_target(o):
            targets.setdefault(o["symbol"], []).append(o["created_at"])
    entries: list[tuple[str, datetime, datetime | None]] = [
        (t.symbol, t.entry_time, t.exit_time) for t in trades if t.entry_time is not None
    ]
    entries += [(r.symbol, r.entry_timestamp, None) for r in open_rows
                if r.status in ("OPEN", "EXITING") and r.entry_timestamp is not None]
    bad = []
    for symbol, entered, exited in entries:
        # the target may precede the entry's confirmation: it is placed at the first fill
        placed = any(entered - within <= ts <= entered + within for ts in targets.get(symbol, []))
        if placed or (exited is not None and exited - entered <= within):
            continue
        bad.append(f"{symbol} entered {entered.astimezone(NY):%H:%M:%S} without a target within "
                   f"{within.total_seconds():.0f} s")
    if bad:
        return Check("every position protected", "FAIL", "; ".join(bad))
    return Check("every position protected", "OK",
                 f"{len(entries)} entries, each with a target within {within.total_seconds():.0f} s (or closed sooner)")


def check_flat(open_rows: list[Any], gateway_report: dict[str, Any] | None) -> Check:
    """No active row left, and (with a report) no position left at the gateway."""
    held = {s: q for s, q in ((gateway_report or {}).get("positions") or {}).items() if q}
    problems = []
    if open_rows:
        problems.append("database rows " + ", ".join(f"{r.symbol}:{r.status}" for r in open_rows))
    if held:
        problems.append(f"gateway positions {held}")
    if problems:
        return Check("flat at end", "FAIL", "; ".join(problems))
    return Check("flat at end", "OK", "nothing held" + ("" if gateway_report else " (database only)"))


def check_db_matches_gateway(trades: list[TradeView], gateway_report: dict[str, Any] | None) -> Check:
    """Per symbol: shares sold at the gateway == shares of the database's trades."""
    if gateway_report is None or "executions" not in gateway_report:
        return Check("database matches gateway", "SKIP", "no gateway executions")
    sold: dict[str, float] = {}
    for e in gateway_report["executions"]:
        if str(e.get("side", "")).upper() in ("SLD", "SELL"):
            sold[e["symbol"]] = sold.get(e["symbol"], 0.0) + float(e.get("shares") or 0)
    booked: dict[str, float] = {}
    for t in trades:
        booked[t.symbol] = booked.get(t.symbol, 0.0) + t.quantity
    diff = {s: (booked.get(s, 0.0), sold.get(s, 0.0)) for s in set(sold) | set(booked)
            if abs(booked.get(s, 0.0) - sold.get(s, 0.0)) > 1e-6}
    if diff:
        text = ", ".join(f"{s}: db {d:g} vs gateway {g:g}" for s, (d, g) in sorted(diff.items()))
        return Check("database matches gateway", "FAIL", text)
    return Check("database matches gateway", "OK", f"{len(sold)} symbols, shares sold match the trades")


# ---------------------------------------------------------------------- charts


def close_series(df: Any, day: date) -> Any:
    """The close prices of ``df`` on ``day`` as a pandas Series indexed by New York time.

    Accepts a DataFrame with a DatetimeIndex or a ``timestamp``/``time``/``date``/
    ``datetime`` column, and a ``close`` column (any case). Naive times are New York.

    Raises:
        ValueError: no time index/column or no close column (names the columns seen).
    """
    import pandas as pd

    frame = df.rename(columns={c: str(c).lower() for c in df.columns})
    if not isinstance(frame.index, pd.DatetimeIndex):
        col = next((c for c in ("timestamp", "time", "datetime", "date") if c in frame.columns), None)
        if col is None:
            raise ValueError(f"bars need a time index or column, got columns {list(df.columns)}")
        frame = frame.set_index(pd.to_datetime(frame[col]))
    if "close" not in frame.columns:
        raise ValueError(f"bars need a 'close' column, got columns {list(df.columns)}")
    idx = frame.index
    idx = idx.tz_localize(NY) if idx.tz is None else idx.tz_convert(NY)
    series = pd.Series(frame["close"].to_numpy(dtype=float), index=idx).sort_index()
    return series[series.index.date == day]


def plot_symbol(symbol: str, day: date, trades: list[TradeView], bars: Any | None, path: Path) -> Path:
    """Write one symbol's PNG: close price (when ``bars`` given), entries ▲, exits ▼ by reason."""
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), dpi=100)
    ax = fig.add_subplot()
    if bars is not None:
        series = close_series(bars, day)
        if len(series):
            ax.plot(series.index, series.to_numpy(), color="tab:blue", linewidth=0.9, label="close")
    for i, t in enumerate(trades):
        if t.entry_time is not None and t.entry_price is not None:
            ax.scatter([t.entry_time.astimezone(NY)], [t.entry_price], marker="^", s=80, color="tab:green",
                       zorder=3, label="entry" if i == 0 else None)
        ax.scatter([t.exit_time.astimezone(NY)], [t.exit_price], marker="v", s=80, zorder=3,
                   color=REASON_COLOURS.get(t.exit_reason, "tab:grey"), label=f"exit ({t.exit_reason})")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=False))
    if unique:
        ax.legend(unique.values(), unique.keys(), loc="best", fontsize=8)
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=NY))
    ax.set_title(f"{symbol} — session {day}")
    ax.set_ylabel("price ($)")
    ax.set_xlabel("time (New York)")
    return save_chart(fig, ax, path)


# ---------------------------------------------------------------------- report


def followup_commands(session_date: date, database: str | Path | None = None) -> list[str]:
    """The exact commands that look further into ``session_date`` (the report's last lines).

    ``--db`` is written out when ``database`` is not ``trading_history.db`` in the working
    directory (the default), so each line works as printed from the same directory.
    """
    prefix = "daytrading"
    if database:
        db = Path(database)
        if db.resolve() != (Path.cwd() / "trading_history.db").resolve():
            prefix += f" --db {db}"
    d = session_date.isoformat()
    return [f"{prefix} analyze --date {d}", f"{prefix} why --summary --date {d}",
            f"{prefix} orders --no-broker --date {d}", f"{prefix} db trades --date {d}",
            f"{prefix} dashboard    (then open http://127.0.0.1:8787/?date={d})"]



def _text(a: Analysis, checks: list[Check], charts: list[Path]) -> str:
    t = a.total
    lines = [f"=== session report {a.session_date} ===",
             f"trades {t.trades}  wins {t.wins}  losses {t.losses}  win rate "
             + ("-" if t.win_rate is None else f"{t.win_rate * 100:.1f} %"),
             f"realised P&L {t.pnl:+,.2f} $" + ("" if t.pnl_pct is None else f" ({t.pnl_pct:+.2f} % of capital traded)"),
             "average win " + ("-" if t.avg_win is None else f"{t.avg_win:+,.2f} $")
             + "  average loss " + ("-" if t.avg_loss is None else f"{t.avg_loss:+,.2f} $"),
             "exits by reason: " + (", ".join(f"{r}={s.trades}" for r, s in a.by_reason.items()) or "none")]
    if a.trades:
        lines.append("trades:")
        for tr in a.trades:
            entry = "-" if tr.entry_time is None else f"{tr.entry_time.astimezone(NY):%H:%M:%S}"
            lines.append(
                f"  {tr.symbol:<6} {tr.quantity:>7g} sh  in {entry} @ {tr.entry_price or 0:.2f}  "
                f"out {tr.exit_time.astimezone(NY):%H:%M:%S} @ {tr.exit_price:.2f}  "
                f"{tr.exit_reason:<13} P&L {tr.pnl or 0:+,.2f} $")
    lines.append("invariant checks:")
    lines += [f"  [{c.status:<4}] {c.name}: {c.detail}" for c in checks]
    lines += [f"chart: {p}" for p in charts]
    return "\n".join(lines)


def session_report(
    coord: Coordinator,
    session_date: date,
    *,
    gateway_report: dict[str, Any] | None,
    bars: dict[str, Any] | None,
    out_dir: Path,
    protect_within_s: float | None = None,
) -> SessionReport:
    """Build the session report and write its charts into ``out_dir``.

    Args:
        gateway_report: the sim-gateway's ``report`` (``positions``, ``executions``,
            ``shorts``, ``min_position``…), or ``None`` (gateway checks become SKIP).
        bars: recorded bars per symbol (DataFrames, see :func:`close_series`), or ``None``
            (symbol charts then show only the entries and exits).
        protect_within_s: market seconds allowed between an entry and its target; default
            ``max(60, 5 × clock speed)`` — five wall seconds of the replay.

    A chart that cannot be drawn is named in the text; it never stops the report.
    """
    trades = coord.get_trades_by_date(session_date)
    orders = coord.get_orders(session_date)
    open_rows = [r for r in coord.get_active_positions() if r.session_date == session_date]
    a = analyze_trades(session_date, trades)
    if protect_within_s is None:
        speed = float(getattr(coord.clock, "speed", 1.0) or 1.0)
        protect_within_s = max(PROTECT_MIN_MARKET_SECONDS, PROTECT_WALL_SECONDS * speed)
    checks = [
        check_never_short(gateway_report),
        check_no_reentry(trades, orders),
        check_protected(trades, open_rows, orders, timedelta(seconds=protect_within_s)),
        check_flat(open_rows, gateway_report),
        check_db_matches_gateway(trades, gateway_report),
    ]
    out_dir = Path(out_dir)
    charts: list[Path] = []
    notes: list[str] = []
    try:
        charts.append(plot_equity_curve(trades, out_dir / f"equity_{session_date}.png",
                                        f"equity curve — session {session_date}"))
    except Exception as exc:  # noqa: BLE001 - a chart must not stop the report
        notes.append(f"equity chart failed: {exc}")
    by_symbol: dict[str, list[TradeView]] = {}
    for t in trades:
        by_symbol.setdefault(t.symbol, []).append(t)
    for symbol, ts in sorted(by_symbol.items()):
        try:
            charts.append(plot_symbol(symbol, session_date, ts, (bars or {}).get(symbol),
                                      out_dir / f"{symbol}_{session_date}.png"))
        except Exception as exc:  # noqa: BLE001
            notes.append(f"{symbol} chart failed: {exc}")
    text = _text(a, checks, charts) + "".join(f"\nnote: {n}" for n in notes)
    text += "\nnext:\n" + "\n".join(f"  {c}" for c in followup_commands(session_date, coord.engine.url.database))
    if gateway_report and gateway_report.get("synthetic"):
        banner = "*** SYNTHETIC SESSION: seeded random bars, NOT recorded market data ***"
        text = f"{banner}\n{text}\n{banner}"
    return SessionReport(session_date=session_date, text=text, chart_paths=charts, checks=checks, analysis=a)
