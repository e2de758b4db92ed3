"""Metrics of a backtest: the numbers a trader judges the rules by.

Library: **empyrical-reloaded** (the maintained fork of Quantopian's ``empyrical``) for
the return statistics (Sharpe, Sortino, max drawdown, beta, compounded return). Chosen
over quantstats because it is a small set of pure functions over a returns series with
an explicit annualisation argument, light dependencies (numpy, pandas, scipy) and no
plotting, HTML or network code, so the metrics stay testable by hand; quantstats wraps
the same formulas in a reporting layer (and pulls seaborn/yfinance) that this project
does not need. Trade statistics (win rate, profit factor, expectancy) are plain sums and
means of the trades' P&L, defined below.

Conventions:

* money in US dollars; every ratio and return is a **fraction** (0.05 = 5 %), not percent;
* a session's return = its realised P&L / equity at its start (starting capital plus the
  P&L of the earlier sessions); sessions without trades count as 0 return;
* Sharpe and Sortino are computed on those daily returns with a risk-free rate of 0 and
  annualised by √252 (``annualization=252`` trading days per year);
* max drawdown runs on the equity after each trade (in exit-time order, starting from the
  starting capital): dollars = the largest fall from a running peak (a positive number),
  percent = that fall over the peak (empyrical's ``max_drawdown`` of the per-trade
  returns), with the exit times of the peak (``start``; the start of the run when the
  peak is the starting capital) and of the trough (``end``);
* exposure = the share of regular-session time during which at least one position was
  held (union of the trades' entry–exit intervals over the sessions' regular hours);
* benchmark: buy-and-hold of one ETF (QQQ by default; SPY when recorded) over the same
  sessions from the recorded minute bars: each session's return is its last regular-hours
  close over the previous session's last regular close (the first session: over its
  opening price); beta = empyrical's ``beta`` of the daily returns against it, and
  ``vs_benchmark`` = total return − the benchmark's compounded return.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ANNUALIZATION = 252  #: trading days per year for Sharpe/Sortino (√252 scaling)
EXIT_REASONS = ("target", "stop", "eod")


def _num(x: float | None, digits: int = 6) -> float | None:
    if x is None:
        return None
    x = float(x)
    if math.isnan(x) or math.isinf(x):
        return None
    return round(x, digits)


def _group(trades: Sequence[Any], key: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for t in trades:
        k = key(t)
        g = out.setdefault(k, {"trades": 0, "wins": 0, "pnl": 0.0})
        g["trades"] += 1
        g["wins"] += 1 if t.pnl > 0 else 0
        g["pnl"] += t.pnl
    for g in out.values():
        g["pnl"] = round(g["pnl"], 2)
        g["win_rate"] = round(g["wins"] / g["trades"], 4)
        g["avg_pnl"] = round(g["pnl"] / g["trades"], 2)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["pnl"]))


def exit_reason_group(reason: str) -> str:
    """``target``, ``stop``, ``eod`` or ``other`` (manual, reconciled, liquidate_all...)."""
    return reason if reason in EXIT_REASONS else "other"


def _drawdown(trades: Sequence[Any], capital: float, first: datetime | None) -> dict[str, Any]:
    import empyrical

    ordered = sorted(trades, key=lambda t: t.exit_time)
    equity = capital + np.cumsum([t.pnl for t in ordered]) if ordered else np.array([])
    path = np.concatenate([[capital], equity])
    times: list[Any] = [first, *[t.exit_time for t in ordered]]
    peaks = np.maximum.accumulate(path)
    falls = peaks - path
    if not len(path) or falls.max() <= 0:
        return {"max_drawdown": 0.0, "max_drawdown_pct": 0.0, "max_drawdown_start": None,
                "max_drawdown_end": None}
    end = int(falls.argmax())
    start = int(np.argmax(path[: end + 1] == peaks[end]))
    returns = pd.Series(path[1:] / path[:-1] - 1.0)
    pct = -float(empyrical.max_drawdown(returns))
    return {"max_drawdown": round(float(falls[end]), 2), "max_drawdown_pct": round(pct, 6),
            "max_drawdown_start": _iso(times[start]), "max_drawdown_end": _iso(times[end])}


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _exposure(trades: Sequence[Any], sessions: Sequence[Any]) -> float | None:
    total = sum(float(getattr(s, "session_seconds", 0.0) or 0.0) for s in sessions)
    if total <= 0:
        return None
    spans = sorted((t.entry_time.timestamp(), t.exit_time.timestamp()) for t in trades if t.entry_time)
    held, cur_a, cur_b = 0.0, None, None
    for a, b in spans:
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                held += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None:
        held += cur_b - cur_a
    return round(min(1.0, held / total), 6)


def daily_returns(sessions: Sequence[Any], starting_capital: float) -> pd.Series:
    """Each session's return (fraction): its P&L over the equity at its start; indexed by date."""
    equity = float(starting_capital)
    values, index = [], []
    for s in sorted(sessions, key=lambda s: s.date):
        values.append(s.pnl / equity if equity > 0 else 0.0)
        index.append(pd.Timestamp(s.date))
        equity += s.pnl
    return pd.Series(values, index=pd.DatetimeIndex(index), dtype=float)


def compute_metrics(
    trades: Sequence[Any],
    sessions: Sequence[Any],
    starting_capital: float,
    benchmark: pd.Series | None = None,
) -> dict[str, Any]:
    """Every metric of the report (module docstring for the definitions).

    Args:
        trades: :class:`~daytrading.backtest.TradeRecord` of all sessions (``pnl`` dollars after
            commissions, tz-aware times).
        sessions: the :class:`~daytrading.backtest.SessionResult` of each session (``date``,
            ``pnl``, ``session_seconds``).
        starting_capital: dollars (the sim account's cash).
        benchmark: optional daily returns (fraction) of the benchmark, indexed by session
            date (:func:`benchmark_returns`); with ``benchmark.name`` as its symbol.

    Returns:
        Plain JSON-able dict: ``total_pnl`` ($), ``total_return`` (fraction of starting
        capital), ``trades``, ``win_rate``, ``avg_win``/``avg_loss`` ($, loss negative),
        ``profit_factor`` (gross wins / |gross losses|; None without losses), ``expectancy``
        ($ per trade), ``sharpe``, ``sortino`` (annualised √252; None with fewer than two
        sessions or no variation), ``max_drawdown`` ($, positive), ``max_drawdown_pct``,
        ``max_drawdown_start``/``_end`` (ISO), ``exposure`` (fraction), ``best_session``/
        ``worst_session`` ({date, pnl}), ``by_exit_reason``, ``by_symbol`` ({key: trades,
        wins, win_rate, pnl, avg_pnl}), ``sessions``, ``commission`` ($), and with a
        benchmark: ``benchmark``, ``benchmark_return``, ``vs_benchmark``, ``beta``.

    Raises:
        ValueError: ``starting_capital`` is not positive.
    """
    import empyrical

    if not starting_capital > 0:
        raise ValueError(f"starting_capital must be > 0 dollars, got {starting_capital!r}")
    pnls = np.array([t.pnl for t in trades], dtype=float)
    wins, losses = pnls[pnls > 0], pnls[pnls < 0]
    total = float(pnls.sum()) if len(pnls) else 0.0
    returns = daily_returns(sessions, starting_capital)
    sharpe = sortino = None
    if len(returns) >= 2 and float(returns.std()) > 0:
        sharpe = _num(empyrical.sharpe_ratio(returns, annualization=ANNUALIZATION), 4)
        sortino = _num(empyrical.sortino_ratio(returns, annualization=ANNUALIZATION), 4)
    ordered = sorted(sessions, key=lambda s: s.date)
    first = None
    if ordered:
        from daytrading.clock import calendar

        with_cal = calendar()
        first = with_cal.session(ordered[0].date).open if with_cal.is_session(ordered[0].date) else None
    best = max(ordered, key=lambda s: s.pnl, default=None)
    worst = min(ordered, key=lambda s: s.pnl, default=None)
    out: dict[str, Any] = {
        "total_pnl": round(total, 2),
        "total_return": round(total / starting_capital, 6),
        "starting_capital": float(starting_capital),
        "sessions": len(ordered),
        "trades": len(pnls),
        "win_rate": round(len(wins) / len(pnls), 4) if len(pnls) else None,
        "avg_win": round(float(wins.mean()), 2) if len(wins) else None,
        "avg_loss": round(float(losses.mean()), 2) if len(losses) else None,
        "profit_factor": round(float(wins.sum() / -losses.sum()), 4) if len(losses) else None,
        "expectancy": round(total / len(pnls), 2) if len(pnls) else None,
        "commission": round(sum(t.commission for t in trades), 2),
        "sharpe": sharpe,
        "sortino": sortino,
        **_drawdown(trades, starting_capital, first),
        "exposure": _exposure(trades, ordered),
        "best_session": {"date": best.date.isoformat(), "pnl": round(best.pnl, 2)} if best else None,
        "worst_session": {"date": worst.date.isoformat(), "pnl": round(worst.pnl, 2)} if worst else None,
        "by_exit_reason": _group(trades, lambda t: exit_reason_group(t.exit_reason)),
        "by_symbol": _group(trades, lambda t: t.symbol),
    }
    if benchmark is not None and len(benchmark):
        bench = benchmark.reindex(returns.index).fillna(0.0)
        bench_total = float(empyrical.cum_returns_final(bench))
        out["benchmark"] = str(benchmark.name or "benchmark")
        out["benchmark_return"] = round(bench_total, 6)
        out["vs_benchmark"] = round(float(empyrical.cum_returns_final(returns)) - bench_total, 6)
        out["beta"] = _num(empyrical.beta(returns, bench), 4) if len(returns) >= 2 else None
    return out


def benchmark_returns(data: str | Path, days: Iterable[date], symbols: Sequence[str] = ("SPY", "QQQ")
                      ) -> pd.Series | None:
    """Daily buy-and-hold returns (fraction) of the first of ``symbols`` recorded in ``data``.

    Session return = last regular-hours close / previous session's last regular close − 1;
    the first session's return is measured from its first regular-hours open. Returns None
    when none of ``symbols`` is in ``data``; a session without bars of the symbol gets 0.
    The series' ``name`` is the symbol.
    """
    from daytrading.clock import calendar
    from daytrading.errors import DataError
    from daytrading.marketdata.loader import load_bars

    days = sorted(days)
    if not days:
        return None
    frame = None
    for sym in symbols:
        try:
            frame = load_bars(data, [sym], start=days[0], end=days[-1]).get(sym)
        except DataError:
            continue
        if frame is not None and len(frame):
            break
    if frame is None or not len(frame):
        return None
    cal = calendar()
    values, prev = [], None
    for d in days:
        s = cal.session(d)
        part = frame[(frame.index >= s.open) & (frame.index < s.close)]
        if not len(part):
            values.append(0.0)
            continue
        base = prev if prev is not None else float(part["open"].iloc[0])
        close = float(part["close"].iloc[-1])
        values.append(close / base - 1.0)
        prev = close
    return pd.Series(values, index=pd.DatetimeIndex([pd.Timestamp(d) for d in days]), name=sym, dtype=float)
