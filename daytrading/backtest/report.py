"""The backtest report: the JSON document, the terminal summary, and the files of ``--out``.

Layout after freqtrade's backtest summary: a per-session table, a per-symbol table, an
exit-reason table and one summary block. ``--out DIR`` writes:

* ``report.html`` — one page, the tables and the charts embedded (base64 PNG);
* ``trades.csv``, ``sessions.csv``, ``metrics.json``;
* ``equity.png`` (equity curve, drawdown underneath), ``pnl_by_session.png``,
  ``pnl_by_symbol.png``, ``pnl_by_exit_reason.png``.

Money in dollars; ``pnl_pct`` columns are percent of the starting capital (not fractions).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Exactly these top-level keys in ``--json`` (and in metrics order in the summary).
JSON_KEYS = ("fingerprint", "settings", "sessions", "trades", "metrics", "skipped")

_TRADE_FIELDS = ("symbol", "entry_time", "exit_time", "quantity", "entry_price", "exit_price", "stop_price",
                 "target_price", "exit_reason", "pnl", "commission")
_SESSION_FIELDS = ("date", "trades", "wins", "pnl", "skipped")


def build_document(fingerprint: str, settings: dict[str, Any], results: Sequence[Any], trades: Sequence[Any],
                   metrics: dict[str, Any], failed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``--json`` document: keys :data:`JSON_KEYS` only.

    ``sessions``: ``{date, trades, wins, pnl ($), skipped (count)}`` per session;
    ``trades``: :meth:`TradeRecord.as_dict` (ISO New York times); ``skipped``: every data
    problem (``{file, line, field, value, reason}``, with ``session``) and session failures.
    """
    sessions = [{"date": r.date.isoformat(), "trades": len(r.trades), "wins": sum(1 for t in r.trades if t.pnl > 0),
                 "pnl": round(r.pnl, 2), "skipped": len(r.skipped)} for r in results]
    skipped = [{**s, "session": r.date.isoformat()} for r in results for s in r.skipped] + list(failed)
    return {"fingerprint": fingerprint, "settings": settings, "sessions": sessions,
            "trades": [t.as_dict() for t in trades], "metrics": metrics, "skipped": skipped}


# ---------------------------------------------------------------------- terminal


def _money(x: float | None) -> str:
    return "–" if x is None else f"{x:+,.2f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f} %"


def _group_table(title: str, key: str, groups: dict[str, dict[str, Any]], capital: float) -> Any:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in (key, "trades", "wins", "win %", "avg P&L $", "total P&L $", "total %"):
        t.add_column(col, justify="left" if col == key else "right")
    for name, g in groups.items():
        t.add_row(name, str(g["trades"]), str(g["wins"]), f"{100 * g['win_rate']:.1f}", _money(g["avg_pnl"]),
                  _money(g["pnl"]), f"{100 * g['pnl'] / capital:.2f}")
    return t


def summary_renderables(doc: dict[str, Any]) -> list[Any]:
    """The four blocks of the summary as rich renderables (per session, per symbol, exit reason, summary)."""
    from rich.table import Table

    m = doc["metrics"]
    capital = float(m.get("starting_capital") or 1.0)
    per_session = Table(title="PER-SESSION", title_justify="left")
    for col in ("session", "trades", "wins", "P&L $", "skipped data"):
        per_session.add_column(col, justify="left" if col == "session" else "right")
    for s in doc["sessions"]:
        per_session.add_row(s["date"], str(s["trades"]), str(s["wins"]), _money(s["pnl"]), str(s["skipped"]))
    summary = Table(title="SUMMARY", title_justify="left", show_header=False)
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    rows = [
        ("Sessions", str(m["sessions"])),
        ("Starting capital", f"{capital:,.2f} $"),
        ("Total P&L", f"{_money(m['total_pnl'])} $ ({_pct(m['total_return'])})"),
        ("Trades / win rate", f"{m['trades']} / {_pct(m['win_rate'])}"),
        ("Avg win / avg loss", f"{_money(m['avg_win'])} / {_money(m['avg_loss'])} $"),
        ("Profit factor", "–" if m["profit_factor"] is None else f"{m['profit_factor']:.2f}"),
        ("Expectancy per trade", f"{_money(m['expectancy'])} $"),
        ("Sharpe / Sortino (daily, √252)", f"{m['sharpe'] if m['sharpe'] is not None else '–'} / "
                                           f"{m['sortino'] if m['sortino'] is not None else '–'}"),
        ("Max drawdown", f"{m['max_drawdown']:,.2f} $ ({_pct(m['max_drawdown_pct'])})"),
        ("Drawdown from / to", f"{m['max_drawdown_start'] or '–'} → {m['max_drawdown_end'] or '–'}"),
        ("Exposure (time in market)", _pct(m["exposure"])),
        ("Best session", f"{m['best_session']['date']} {_money(m['best_session']['pnl'])} $" if m["best_session"] else "–"),
        ("Worst session", f"{m['worst_session']['date']} {_money(m['worst_session']['pnl'])} $" if m["worst_session"] else "–"),
        ("Commissions", f"{m['commission']:,.2f} $"),
    ]
    if "benchmark" in m:
        rows += [(f"{m['benchmark']} buy-and-hold", _pct(m["benchmark_return"])),
                 (f"Return vs {m['benchmark']}", _pct(m["vs_benchmark"])),
                 (f"Beta to {m['benchmark']}", "–" if m["beta"] is None else f"{m['beta']:.3f}")]
    rows += [("Skipped data", str(len(doc["skipped"]))), ("Fingerprint", doc["fingerprint"][:16])]
    for k, v in rows:
        summary.add_row(k, v)
    return [per_session, _group_table("PER-SYMBOL", "symbol", m["by_symbol"], capital),
            _group_table("EXIT REASON", "exit reason", m["by_exit_reason"], capital), summary]


def print_summary(doc: dict[str, Any], console: Any = None) -> None:
    """Print the summary tables (and the skipped data, if any) to ``console`` (default stdout)."""
    from rich.console import Console

    console = console or Console()
    for block in summary_renderables(doc):
        console.print(block)
    for s in doc["skipped"][:20]:
        console.print(f"[yellow]skipped[/]: {s.get('reason')}", highlight=False)
    if len(doc["skipped"]) > 20:
        console.print(f"[yellow]… and {len(doc['skipped']) - 20} more skipped (see --json or --out)[/]")


# ---------------------------------------------------------------------- files


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def charts(doc: dict[str, Any], capital: float) -> dict[str, bytes]:
    """PNG bytes of the four charts, by file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    trades = sorted(doc["trades"], key=lambda t: t["exit_time"])
    equity = capital + np.cumsum([0.0, *[t["pnl"] for t in trades]])
    peak = np.maximum.accumulate(equity)
    out: dict[str, bytes] = {}
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax1.plot(range(len(equity)), equity, color="#1f77b4")
    ax1.set_ylabel("equity $")
    ax1.set_title("Equity after each trade")
    ax2.fill_between(range(len(equity)), equity - peak, 0, color="#d62728", alpha=0.5)
    ax2.set_ylabel("drawdown $")
    ax2.set_xlabel("trade #")
    out["equity.png"] = _png(fig)

    def bars(labels: list[str], values: list[float], title: str) -> bytes:
        fig, ax = plt.subplots(figsize=(9, 3.5))
        ax.bar(labels, values, color=["#2ca02c" if v >= 0 else "#d62728" for v in values])
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(title)
        ax.set_ylabel("P&L $")
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        return _png(fig)

    out["pnl_by_session.png"] = bars([s["date"] for s in doc["sessions"]], [s["pnl"] for s in doc["sessions"]],
                                     "P&L per session")
    m = doc["metrics"]
    out["pnl_by_symbol.png"] = bars(list(m["by_symbol"]), [g["pnl"] for g in m["by_symbol"].values()],
                                    "P&L by symbol")
    out["pnl_by_exit_reason.png"] = bars(list(m["by_exit_reason"]), [g["pnl"] for g in m["by_exit_reason"].values()],
                                         "P&L by exit reason")
    return out


def _html_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(doc: dict[str, Any], pngs: dict[str, bytes]) -> str:
    """One self-contained HTML page: summary, tables, charts embedded as base64 PNG."""
    m = doc["metrics"]
    scalars = {k: v for k, v in m.items() if not isinstance(v, dict)}
    groups = {name: [{"key": k, **g} for k, g in m[name].items()] for name in ("by_symbol", "by_exit_reason")}
    imgs = "".join(f'<h3>{html.escape(name)}</h3><img alt="{html.escape(name)}" src="data:image/png;base64,'
                   f'{base64.b64encode(data).decode()}">' for name, data in pngs.items())
    cols = ("key", "trades", "wins", "win_rate", "pnl", "avg_pnl")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Backtest report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}img{{max-width:100%}}</style></head><body>
<h1>Backtest report</h1><p>Fingerprint <code>{html.escape(doc['fingerprint'])}</code>;
settings {html.escape(json.dumps(doc['settings'], default=str))}</p>
<h2>Summary</h2>{_html_table([{'metric': k, 'value': v} for k, v in scalars.items()], ('metric', 'value'))}
<h2>Per session</h2>{_html_table(doc['sessions'], _SESSION_FIELDS)}
<h2>Per symbol</h2>{_html_table(groups['by_symbol'], cols)}
<h2>Exit reason</h2>{_html_table(groups['by_exit_reason'], cols)}
<h2>Charts</h2>{imgs}
<h2>Trades</h2>{_html_table(doc['trades'], _TRADE_FIELDS)}
<h2>Skipped data</h2>{_html_table(doc['skipped'], ('session', 'file', 'line', 'field', 'value', 'reason'))}
</body></html>"""


def write_outputs(doc: dict[str, Any], results: Sequence[Any], out: Path, capital: float) -> dict[str, Path]:
    """Write every file of ``--out`` into ``out`` (created); returns them by name.

    Raises:
        OperationalError: the folder cannot be created or written (names it).
    """
    from daytrading.errors import OperationalError

    try:
        out.mkdir(parents=True, exist_ok=True)
        pngs = charts(doc, capital)
        paths: dict[str, Path] = {}
        for name, data in pngs.items():
            (out / name).write_bytes(data)
            paths[name] = out / name
        with (out / "trades.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(_TRADE_FIELDS))
            w.writeheader()
            w.writerows(doc["trades"])
        with (out / "sessions.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(_SESSION_FIELDS))
            w.writeheader()
            w.writerows(doc["sessions"])
        (out / "metrics.json").write_text(json.dumps(doc["metrics"], indent=2, default=str), encoding="utf-8")
        (out / "report.html").write_text(render_html(doc, pngs), encoding="utf-8")
    except OSError as exc:
        raise OperationalError(f"cannot write the report to {out}: {exc.strerror or exc}") from exc
    for name in ("trades.csv", "sessions.csv", "metrics.json", "report.html"):
        paths[name] = out / name
    return paths
