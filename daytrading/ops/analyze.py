"""``daytrading analyze --date D`` / ``analyze-today``: a session's trades in figures and a chart.

Figures (from the ``trades`` table of one XNYS session, through the Coordinator):

* P&L in dollars (Σ ``pnl``, commissions already subtracted) and in percent of the
  capital traded (Σ pnl / Σ entry × shares, see :func:`daytrading.ops.status.pnl_percent`);
* win rate as a **fraction** (wins / trades; a trade with ``pnl`` == 0 is neither win
  nor loss but counts as a trade);
* average win and average loss in dollars per trade;
* the same broken down by symbol and by exit reason.

The equity curve (cumulative realised P&L in dollars against exit time, New York) is
drawn with matplotlib's object API on the Agg canvas (no display needed) and written
as PNG to ``paths.report_dir``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from daytrading.clock import NY
from daytrading.config import Settings
from daytrading.coordination import Coordinator
from daytrading.coordination.api import TradeView


@dataclass(frozen=True)
class Stats:
    """Figures of a group of trades. Money in dollars; ``win_rate`` a fraction (0.5 = 50 %)."""

    trades: int
    wins: int
    losses: int
    win_rate: float | None
    pnl: float
    pnl_pct: float | None
    avg_win: float | None
    avg_loss: float | None
    shares: float

    @classmethod
    def of(cls, trades: Iterable[TradeView]) -> Stats:
        """Compute the figures of ``trades`` (``pnl`` None counts as 0)."""
        from daytrading.ops.status import pnl_percent

        ts = list(trades)
        pnls = [t.pnl or 0.0 for t in ts]
        wins = [p for p in pnls if p > 0]
        losses = [p for p in pnls if p < 0]
        return cls(
            trades=len(ts), wins=len(wins), losses=len(losses),
            win_rate=round(len(wins) / len(ts), 4) if ts else None,
            pnl=round(sum(pnls), 2), pnl_pct=pnl_percent(ts),
            avg_win=round(sum(wins) / len(wins), 2) if wins else None,
            avg_loss=round(sum(losses) / len(losses), 2) if losses else None,
            shares=sum(t.quantity for t in ts),
        )


@dataclass(frozen=True)
class Analysis:
    """One session's analysis: totals, per symbol, per exit reason, and the trades."""

    session_date: date
    total: Stats
    by_symbol: dict[str, Stats]
    by_reason: dict[str, Stats]
    trades: list[TradeView] = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        from dataclasses import asdict

        return {
            "session_date": self.session_date.isoformat(),
            "total": asdict(self.total),
            "by_symbol": {k: asdict(v) for k, v in self.by_symbol.items()},
            "by_reason": {k: asdict(v) for k, v in self.by_reason.items()},
            "trades": [asdict(t) for t in self.trades],
        }


def _group(trades: list[TradeView], key: str) -> dict[str, Stats]:
    groups: dict[str, list[TradeView]] = {}
    for t in trades:
        groups.setdefault(getattr(t, key), []).append(t)
    return {k: Stats.of(v) for k, v in sorted(groups.items())}


def analyze_trades(day: date, trades: list[TradeView]) -> Analysis:
    """Analysis of the given trades of session ``day``."""
    return Analysis(session_date=day, total=Stats.of(trades), by_symbol=_group(trades, "symbol"),
                    by_reason=_group(trades, "exit_reason"), trades=trades)


def analyze_session(coord: Coordinator, day: date | None = None) -> Analysis:
    """Analysis of session ``day`` (default: :func:`daytrading.ops.sessions.choose_session`'s:
    the clock's session when it has records, else the latest recorded one)."""
    from daytrading.ops.sessions import choose_session

    day = choose_session(coord, day).day
    return analyze_trades(day, coord.get_trades_by_date(day))


def equity_points(trades: list[TradeView]) -> list[tuple[Any, float]]:
    """Cumulative realised P&L (dollars) after each trade, by exit time (New York)."""
    out, total = [], 0.0
    for t in sorted(trades, key=lambda t: t.exit_time):
        total += t.pnl or 0.0
        out.append((t.exit_time.astimezone(NY), round(total, 2)))
    return out


def plot_equity_curve(trades: list[TradeView], path: Path, title: str) -> Path:
    """Write the equity-curve PNG (step line of cumulative P&L, one marker per trade) to ``path``."""
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    points = equity_points(trades)
    fig = Figure(figsize=(10, 4.5), dpi=100)
    ax = fig.add_subplot()
    if points:
        xs = [points[0][0]] + [p[0] for p in points]
        ys = [0.0] + [p[1] for p in points]
        ax.step(xs, ys, where="post", color="tab:blue", linewidth=1.6)
        colours = ["tab:green" if (t.pnl or 0) >= 0 else "tab:red"
                   for t in sorted(trades, key=lambda t: t.exit_time)]
        ax.scatter(xs[1:], ys[1:], c=colours, s=22, zorder=3)
        ax.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=NY))
    else:
        ax.text(0.5, 0.5, "no trades", ha="center", va="center", transform=ax.transAxes)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_title(title)
    ax.set_ylabel("cumulative realised P&L ($)")
    ax.set_xlabel("exit time (New York)")
    return save_chart(fig, ax, path)


def save_chart(fig: Any, ax: Any, path: Path) -> Path:
    """Finish a chart the way every report chart looks (light grid, tight layout) and write the PNG."""
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _fmt(x: float | None, spec: str = "+,.2f", suffix: str = "") -> str:
    return "-" if x is None else f"{x:{spec}}{suffix}"


def render_analysis(a: Analysis) -> Any:
    """Rich tables: totals, by symbol, by exit reason."""
    from rich.console import Group
    from rich.table import Table

    def table(title: str, first: str, groups: dict[str, Stats]) -> Table:
        t = Table(title=title)
        for col in (first, "trades", "wins", "losses", "win rate", "P&L $", "P&L %", "avg win $", "avg loss $"):
            t.add_column(col, justify="left" if col == first else "right")
        for name, s in groups.items():
            t.add_row(name, str(s.trades), str(s.wins), str(s.losses),
                      _fmt(None if s.win_rate is None else s.win_rate * 100, ".1f", " %"),
                      _fmt(s.pnl), _fmt(s.pnl_pct, "+.2f", " %"), _fmt(s.avg_win), _fmt(s.avg_loss))
        return t

    return Group(
        table(f"session {a.session_date}", "", {"all": a.total}),
        table("by symbol", "symbol", a.by_symbol),
        table("by exit reason", "reason", a.by_reason),
    )


def run_analysis(args: argparse.Namespace, settings: Settings, day: date | None) -> int:
    """Shared body of ``analyze`` and ``analyze-today``; exit 0."""
    from daytrading.ops import console, open_db

    from daytrading.ops.sessions import choose_session

    coord = open_db(settings, "analyze")
    choice = choose_session(coord, day)
    a = analyze_session(coord, choice.day)
    chart = None
    if not getattr(args, "no_chart", False):
        chart = plot_equity_curve(a.trades, Path(settings.paths.report_dir) / f"equity_{a.session_date}.png",
                                  f"equity curve — session {a.session_date}")
    if getattr(args, "json", False):
        print(json.dumps({**a.as_dict(), **choice.as_dict(), "chart": str(chart) if chart else None},
                         default=str, indent=2))
        return 0
    con = console()
    con.print(f"analysis of {choice.label}")
    con.print(render_analysis(a))
    if chart:
        con.print(f"equity curve: {chart}")
    return 0


def _common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no-chart", action="store_true", help="do not write the PNG chart")


def cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading analyze``."""
    from daytrading.cli import _iso_date

    parser.add_argument("--date", type=_iso_date, required=True, help="session date YYYY-MM-DD")
    _common_args(parser)


def cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading analyze --date D``."""
    return run_analysis(args, settings, args.date)


def today_cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading analyze-today``."""
    _common_args(parser)


def today_cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading analyze-today``: the current session on the configured clock, or the latest
    recorded one when the clock's has nothing (after a sim replay or backtest of a recorded day)."""
    return run_analysis(args, settings, None)
