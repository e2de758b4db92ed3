"""``daytrading status``: bots, positions, today's P&L and gate rejections in one table.

The same renderable is printed by the supervisor every ``intervals.status`` seconds
(:func:`render_status`); ``status --json`` prints :func:`status_rows` as JSON.

Sources (all read through the Coordinator):

* the supervisor's heartbeat (bot ``supervisor``), whose ``detail`` is JSON
  ``{"bots": {name: {"state", "pid", "started_at", "uptime_s", "restarts",
  "last_exit_code"}}, "sim": {...} | null}`` (the dashboard's entry adds its ``"url"``) — the authority on RUNNING / STOPPED /
  RESTARTING / CRASH_LOOP while it is fresh;
* each bot's own heartbeat (``exit-manager``, ``day-trader``): its state string
  (``running``, ``frozen``, ``disconnected``…) and its age in wall seconds;
* active positions, closed-today rows, trades (realised P&L), gate rejections.

Without a fresh supervisor heartbeat a bot counts as RUNNING when its own heartbeat
is younger than ``health_check`` seconds and not ``stopped``, else STOPPED.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from daytrading.clock import Clock, wall_time
from daytrading.config import Settings
from daytrading.coordination import Coordinator
from daytrading.ops.sessions import choose_session

BOTS = ("exit-manager", "day-trader")
SUPERVISOR = "supervisor"
#: Default "hung" threshold in wall seconds (``intervals.health_check``'s default).
HEALTH_CHECK_S = 60.0


def _age(ts: datetime | None, now_wall: float) -> float | None:
    return None if ts is None else round(max(0.0, now_wall - ts.timestamp()), 1)


def _supervisor_view(beats: dict[str, dict[str, Any]], now_wall: float, health_check: float) -> dict[str, Any]:
    row = beats.get(SUPERVISOR)
    if row is None:
        return {"alive": False, "pid": None, "heartbeat_age_s": None, "bots": {}, "sim": None}
    age = _age(row.get("last_seen"), now_wall)
    try:
        detail = json.loads(row.get("detail") or "{}")
    except (TypeError, ValueError):
        detail = {}
    alive = age is not None and age <= health_check and row.get("state") not in ("stopped",)
    return {"alive": alive, "pid": row.get("pid"), "state": row.get("state"), "heartbeat_age_s": age,
            "bots": detail.get("bots") or {}, "sim": detail.get("sim")}


def bot_rows(beats: dict[str, dict[str, Any]], now_wall: float, health_check: float = HEALTH_CHECK_S) -> list[dict[str, Any]]:
    """One row per bot: state (RUNNING/STOPPED/RESTARTING/CRASH_LOOP), pid, uptime, restarts, heartbeat.

    After the bots, one row per other child a live supervisor reports (the dashboard, with
    its ``url``; it writes no heartbeat, so its heartbeat fields are None).

    ``now_wall`` is wall POSIX seconds (heartbeats are wall time); ages and uptime are
    wall seconds. ``heartbeat_state`` is the bot's own state string; ``stop_prices`` what the
    exit-manager's stop runs on (``replay``, ``live``, ``delayed ...``), from its heartbeat.
    """
    sup = _supervisor_view(beats, now_wall, health_check)
    rows = []
    # the bots, then what else a live supervisor runs (the dashboard: no heartbeat of its own)
    extra = [name for name in sup["bots"] if name not in BOTS] if sup["alive"] else []
    for name in (*BOTS, *extra):
        hb = beats.get(name) or {}
        age = _age(hb.get("last_seen"), now_wall)
        fresh = age is not None and age <= health_check and hb.get("state") != "stopped"
        info = sup["bots"].get(name) if sup["alive"] else None
        if info:
            state = info.get("state") or "STOPPED"
            pid = info.get("pid")
            uptime = info.get("uptime_s")
            if uptime is None and info.get("started_at") and state == "RUNNING":
                uptime = _age(datetime.fromisoformat(info["started_at"]), now_wall)
            restarts = int(info.get("restarts") or 0)
            last_exit = info.get("last_exit_code")
        else:
            state = "RUNNING" if fresh else "STOPPED"
            pid = hb.get("pid") if fresh else None
            uptime = _age(hb.get("started_at"), now_wall) if fresh else None
            restarts, last_exit = None, None
        try:
            own = json.loads(hb.get("detail") or "{}")
        except (TypeError, ValueError):
            own = {}
        rows.append({
            "bot": name, "state": state, "pid": pid, "uptime_s": uptime, "restarts": restarts,
            "last_exit_code": last_exit, "heartbeat_state": hb.get("state"), "heartbeat_age_s": age,
            "stale": bool(hb) and not fresh,
            "stop_prices": own.get("stop_prices") if isinstance(own, dict) else None,
            "url": info.get("url") if info else None,
        })
    return rows


def pnl_percent(trades: list[Any]) -> float | None:
    """Realised P&L as a percent of the capital traded: Σ pnl / Σ(entry price × shares) × 100.

    ``trades`` are :class:`~daytrading.coordination.api.TradeView` rows; trades without an
    entry price are left out of both sums. ``None`` when nothing was traded.
    """
    pnl = sum(t.pnl or 0.0 for t in trades if t.entry_price)
    cost = sum(t.entry_price * t.quantity for t in trades if t.entry_price)
    return round(pnl / cost * 100.0, 4) if cost else None


def status_clock_rows(beats: dict[str, dict[str, Any]], now: datetime, now_wall: float,
                      health_check: float = HEALTH_CHECK_S) -> dict[str, Any]:
    """The part of :func:`status_rows` that changes with the clocks alone, from heartbeat rows
    (``coord.get_heartbeats()``): ``{"market_time", "supervisor", "bots"}`` (ages wall seconds)."""
    sup = _supervisor_view(beats, now_wall, health_check)
    return {"market_time": now.isoformat(timespec="seconds"),
            "supervisor": {k: sup[k] for k in ("alive", "pid", "heartbeat_age_s", "sim")},
            "bots": bot_rows(beats, now_wall, health_check)}


def status_rows(coord: Coordinator, clock: Clock, *, health_check: float = HEALTH_CHECK_S,
                now_wall: float | None = None, day: date | None = None) -> dict[str, Any]:
    """Everything the status table shows, as plain data (JSON-ready with ``default=str``).

    The session's figures (trades, P&L, closed today, gate rejections) are those of ``day``,
    default :func:`daytrading.ops.sessions.choose_session` (the clock's session when it has
    records, else the latest recorded one); positions and bots are always the live rows.

    Returns:
        ``{"market_time", "session_date", "session_source", "session_label", "supervisor": {...}, "bots": [...],
        "positions": [...], "closed_today": int, "trades": int, "realized_pnl": dollars,
        "realized_pnl_pct": percent of capital traded (see :func:`pnl_percent`) or None,
        "wins": int, "losses": int, "gate_rejections": {gate: count}, "freeze": {...} | None}``.
    """
    now_wall = wall_time() if now_wall is None else now_wall
    now = clock.now()
    choice = choose_session(coord, day, clock_day=coord.session_date(now))
    day = choice.day
    beats = coord.get_heartbeats()
    trades = coord.get_trades_by_date(day)
    positions = [
        {k: v for k, v in asdict(p).items() if k in (
            "symbol", "status", "quantity", "entry_price", "profit_target_price", "stop_loss_price",
            "agent_name", "entry_timestamp", "target_order_id", "exit_reason")}
        for p in coord.get_active_positions()
    ]
    live = status_clock_rows(beats, now, now_wall, health_check)
    return {
        "market_time": live["market_time"],
        **choice.as_dict(),
        "supervisor": live["supervisor"],
        "bots": live["bots"],
        "positions": positions,
        "closed_today": len(coord.get_closed_today(day)),
        "trades": len(trades),
        "wins": sum(1 for t in trades if (t.pnl or 0) > 0),
        "losses": sum(1 for t in trades if (t.pnl or 0) < 0),
        "realized_pnl": round(sum(t.pnl or 0.0 for t in trades), 2),
        "realized_pnl_pct": pnl_percent(trades),
        "gate_rejections": coord.gate_rejection_counts(day),
        "freeze": coord.freeze_info(),
    }


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _money(x: float | None) -> str:
    return "-" if x is None else f"{x:+,.2f} $"


def render_rows(data: dict[str, Any]) -> Any:
    """The rich renderable (a ``Group`` of tables) for :func:`status_rows` output."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    colours = {"RUNNING": "green", "STOPPED": "red", "RESTARTING": "yellow", "CRASH_LOOP": "bold red"}
    bots = Table(title=f"daytrading status — {data['market_time']} "
                       f"({data.get('session_label') or 'session ' + data['session_date']})")
    for col in ("bot", "state", "pid", "uptime", "restarts", "heartbeat", "age"):
        bots.add_column(col)
    for b in data["bots"]:
        age = "-" if b["heartbeat_age_s"] is None else f"{b['heartbeat_age_s']:.0f}s" + (" STALE" if b["stale"] else "")
        bots.add_row(b["bot"], Text(b["state"], style=colours.get(b["state"], "")), str(b["pid"] or "-"),
                     _dur(b["uptime_s"]), "-" if b["restarts"] is None else str(b["restarts"]),
                     b["heartbeat_state"] or b.get("url") or "-", age)
    sup = data["supervisor"]
    bots.caption = (f"supervisor pid {sup['pid']} (heartbeat {sup['heartbeat_age_s']:.0f}s)" if sup["alive"]
                    else "supervisor not running")
    parts: list[Any] = [bots]
    if data.get("freeze"):
        f = data["freeze"]
        parts.append(Text(f"GLOBAL FREEZE set by {f.get('set_by')} at {f.get('set_at')}: {f.get('value')} "
                          "(clear with `daytrading unfreeze`)", style="bold red"))
    pos = Table(title=f"active positions ({len(data['positions'])})")
    for col in ("symbol", "status", "qty", "entry $", "target $", "stop $", "by"):
        pos.add_column(col)
    for p in data["positions"]:
        pos.add_row(p["symbol"], p["status"], f"{p['quantity']:g}",
                    *("-" if p[k] is None else f"{p[k]:.2f}" for k in ("entry_price", "profit_target_price",
                                                                      "stop_loss_price")),
                    p["agent_name"])
    parts.append(pos)
    pct = data["realized_pnl_pct"]
    summary = Table(title=f"session {data['session_date']}", show_header=False)
    summary.add_column("what")
    summary.add_column("value")
    summary.add_row("closed today", str(data["closed_today"]))
    summary.add_row("trades (wins / losses)", f"{data['trades']} ({data['wins']} / {data['losses']})")
    summary.add_row("realised P&L", f"{_money(data['realized_pnl'])}" + ("" if pct is None else f" ({pct:+.2f} %)"))
    stop_prices = next((b.get("stop_prices") for b in data["bots"] if b.get("stop_prices")), None)
    if stop_prices:  # what the exit-manager's stop runs on (delayed data must be allowed explicitly)
        summary.add_row("stop prices", stop_prices)
    rej = data["gate_rejections"]
    summary.add_row("gate rejections", ", ".join(f"{g}={n}" for g, n in rej.items()) or "none")
    parts.append(summary)
    return Group(*parts)


def render_status(coord: Coordinator, clock: Clock, *, health_check: float = HEALTH_CHECK_S) -> Any:
    """The status table as a rich renderable (what ``daytrading status`` and the supervisor print)."""
    return render_rows(status_rows(coord, clock, health_check=health_check))


def cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading status``."""
    from daytrading.cli import _iso_date

    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.add_argument("--date", type=_iso_date,
                        help="session of the figures (default: current session, else the latest recorded)")


def cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading status``: exit 0 (1 when the database cannot be read)."""
    from daytrading.ops import console, open_db

    coord = open_db(settings, "status")
    data = status_rows(coord, coord.clock, health_check=settings.intervals.health_check,
                       day=getattr(args, "date", None))
    if getattr(args, "json", False):
        print(json.dumps(data, default=str, indent=2))
    else:
        console().print(render_rows(data))
    return 0


__all__ = ["bot_rows", "cli", "cli_args", "pnl_percent", "render_rows", "render_status", "status_rows"]

