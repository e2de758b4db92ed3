"""Pure functions of recorded state: health checks, positions with distances, the equity curve.

No I/O here: every function takes rows as the Coordinator returns them and wall/market
times as arguments, so each rule is tested directly.

Units: prices dollars, P&L dollars, distances and P&L percentages in **percent**
(1.8 = 1.8 %), ages wall seconds, times tz-aware (New York when shown).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from html import escape
from typing import Any

from daytrading.clock import NY

BOTS = ("exit-manager", "day-trader")
#: Heartbeat states in which the exit-manager holds a live broker connection.
CONNECTED_STATES = ("running", "frozen", "reconciling")
#: CRITICAL event kinds whose open state is shown by a live condition instead of a time window
#: (the freeze flag, the supervisor's crash-loop state).
LIVE_CONDITION_KINDS = ("freeze", "liquidate_all", "restart")


def _detail(hb: dict[str, Any] | None) -> dict[str, Any]:
    try:
        data = json.loads((hb or {}).get("detail") or "{}")
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _age(ts: datetime | None, now_wall: float) -> float | None:
    return None if ts is None else round(max(0.0, now_wall - ts.timestamp()), 1)


def recorded_prices(beats: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Last prices the exit-manager recorded in its heartbeat: ``{symbol: {"last": $, "at": datetime}}``.

    ``at`` is when the bot received the price (wall time, UTC) or ``None``.
    """
    out: dict[str, dict[str, Any]] = {}
    for symbol, item in (_detail(beats.get("exit-manager")).get("prices") or {}).items():
        try:
            last = float(item["last"])
            at = datetime.fromisoformat(item["at"]) if item.get("at") else None
        except (KeyError, TypeError, ValueError):
            continue
        out[str(symbol)] = {"last": last, "at": at}
    return out


def position_rows(positions: list[Any], prices: dict[str, dict[str, Any]], now_wall: float) -> list[dict[str, Any]]:
    """Rows of the positions table: P&L and distances as in ``daytrading monitor``, plus the price's age.

    ``pnl`` = (last − entry) × shares; ``to_target_pct`` = (target / last − 1) × 100 (positive:
    the target is above the price); ``to_stop_pct`` = (last / stop − 1) × 100 (positive: the
    price is above the stop); ``last_age_s`` wall seconds since the bot received the price.
    """
    from daytrading.ops.tools import position_rows as monitor_rows

    rows = monitor_rows(positions, {s: p["last"] for s, p in prices.items()})
    for row in rows:
        at = (prices.get(row["symbol"]) or {}).get("at")
        row["last_age_s"] = _age(at, now_wall)
    return rows


def unrealized_pnl(rows: list[dict[str, Any]]) -> float:
    """Σ of the rows' ``pnl`` (dollars); positions without a price count 0."""
    return round(sum(r["pnl"] or 0.0 for r in rows), 2)


def bot_check(name: str, hb: dict[str, Any] | None, supervised: dict[str, Any] | None, now_wall: float,
              stale_after: float) -> dict[str, Any]:
    """One bot's heartbeat check.

    Fresh = a heartbeat younger than ``stale_after`` wall seconds, state not ``stopped``, and,
    while a supervisor reports the bot, written by the process the supervisor runs now (after
    a restart the old process's last heartbeat does not count).
    """
    age = _age((hb or {}).get("last_seen"), now_wall)
    value: dict[str, Any] = {"age_s": age, "state": (hb or {}).get("state"), "pid": (hb or {}).get("pid")}
    ok = hb is not None and age is not None and age <= stale_after and hb.get("state") != "stopped"
    if supervised is not None:
        value["supervised_pid"] = supervised.get("pid")
        value["supervisor_state"] = supervised.get("state")
        ok = ok and supervised.get("state") == "RUNNING" and supervised.get("pid") == (hb or {}).get("pid")
    return {"name": f"{name} heartbeat", "ok": bool(ok), "value": value,
            "threshold": f"age <= {stale_after:g} s, not stopped, from the process the supervisor runs"}


def critical_open(events: list[dict[str, Any]], freeze: dict[str, Any] | None, supervised: dict[str, Any],
                  now_market: datetime, window_minutes: float) -> list[dict[str, Any]]:
    """What is CRITICAL and still open.

    * the global freeze while it is set;
    * a bot in CRASH_LOOP while the supervisor says so;
    * any other CRITICAL event (outage, short position, failed target or exit…) for
      ``window_minutes`` market minutes after it was recorded.
    """
    out: list[dict[str, Any]] = []
    if freeze:
        out.append({"kind": "freeze", "message": f"global freeze: {freeze.get('value')}",
                    "since": freeze.get("set_at"), "by": freeze.get("set_by")})
    for name, info in supervised.items():
        if (info or {}).get("state") == "CRASH_LOOP":
            out.append({"kind": "crash_loop", "message": f"{name} is in a crash loop", "since": None, "by": "supervisor"})
    window = timedelta(minutes=window_minutes)
    for e in events:
        if e.get("level") != "CRITICAL" or e.get("kind") in LIVE_CONDITION_KINDS:
            continue
        ts = e.get("ts")
        if ts is not None and timedelta(0) <= now_market - ts <= window:
            out.append({"kind": e.get("kind"), "message": e.get("message"), "since": ts, "by": e.get("bot"),
                        "symbol": e.get("symbol")})
    return out


def health_report(*, beats: dict[str, dict[str, Any]], supervisor: dict[str, Any], critical: list[dict[str, Any]],
                  db_error: str | None, now_wall: float, stale_after: float) -> dict[str, Any]:
    """The ``/health`` body: ``{"ok", "checks": [{"name", "ok", "value", "threshold"}…]}``.

    ``supervisor`` is :func:`daytrading.ops.status._supervisor_view`'s result; its per-bot
    view is used only while it is alive. ``db_error`` is the read error, ``None`` when readable.
    """
    checks = [{"name": "database readable", "ok": db_error is None, "value": db_error or "ok",
               "threshold": "a read-only query succeeds"}]
    sup_bots = supervisor.get("bots") or {} if supervisor.get("alive") else {}
    for name in BOTS:
        checks.append(bot_check(name, beats.get(name), sup_bots.get(name) if sup_bots else None, now_wall,
                                stale_after))
    em = beats.get("exit-manager")
    connected = bool(_detail(em).get("connected")) and (em or {}).get("state") in CONNECTED_STATES
    checks.append({"name": "exit-manager connected", "ok": connected,
                   "value": {"connected": _detail(em).get("connected"), "state": (em or {}).get("state")},
                   "threshold": f"connected and state in {', '.join(CONNECTED_STATES)}"})
    checks.append({"name": "nothing CRITICAL open", "ok": not critical, "value": critical,
                   "threshold": "no freeze, no crash loop, no CRITICAL event in the window"})
    return {"ok": all(c["ok"] for c in checks), "checks": checks}


def equity_points(trades: list[Any]) -> list[tuple[datetime, float]]:
    """Cumulative realised P&L (dollars) after each trade, by exit time (New York)."""
    from daytrading.ops.analyze import equity_points as points

    return points(trades)


def equity_svg(trades: list[Any], width: int = 800, height: int = 160) -> str:
    """The session's equity curve as inline SVG: a step line of cumulative realised P&L.

    The y axis spans the curve and zero; the x axis exit times (New York). Only numbers and
    escaped text go into the markup.
    """
    points = equity_points(trades)
    pad = 28
    if not points:
        return (f'<svg viewBox="0 0 {width} {height}" class="equity" role="img" aria-label="equity curve">'
                f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no trades yet</text></svg>')
    t0 = points[0][0].timestamp()
    t1 = max(points[-1][0].timestamp(), t0 + 60)
    ys = [0.0] + [p[1] for p in points]
    lo, hi = min(ys), max(ys)
    hi = hi if hi > lo else lo + 1.0

    def x(ts: float) -> float:
        return round(pad + (ts - t0) / (t1 - t0) * (width - 2 * pad), 1)

    def y(v: float) -> float:
        return round(height - pad - (v - lo) / (hi - lo) * (height - 2 * pad), 1)

    path = [f"M{x(t0)},{y(0.0)}"]
    for ts, v in points:
        path.append(f"H{x(ts.timestamp())}V{y(v)}")
    last = points[-1][1]
    colour = "#1a7f37" if last >= 0 else "#cf222e"
    label = escape(f"{last:+,.2f} $")
    first, end = (escape(points[0][0].astimezone(NY).strftime("%H:%M")),
                  escape(points[-1][0].astimezone(NY).strftime("%H:%M")))
    return (f'<svg viewBox="0 0 {width} {height}" class="equity" role="img" aria-label="equity curve {label}">'
            f'<line x1="{pad}" x2="{width - pad}" y1="{y(0.0)}" y2="{y(0.0)}" class="zero"/>'
            f'<path d="{"".join(path)}" fill="none" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{pad}" y="{height - 8}">{first}</text>'
            f'<text x="{width - pad}" y="{height - 8}" text-anchor="end">{end}</text>'
            f'<text x="{width - pad}" y="16" text-anchor="end">{label}</text></svg>')
