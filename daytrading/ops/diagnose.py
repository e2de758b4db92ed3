"""``daytrading diagnose``: "why are there no trades?" as a list of checks, each OK/FAIL with the fix.

Checks, in the order a trader would look:

1. **database** opens (schema migrated, not corrupt);
2. **supervisor**, **exit-manager**, **day-trader** alive: heartbeat younger than
   ``intervals.health_check`` wall seconds and in a trading state (``frozen``,
   ``disconnected``… fail with the matching fix);
3. **freeze**: the global freeze is not set;
4. **session open**: the clock's market time is inside a regular XNYS session (holidays
   and early closes from exchange_calendars) and before the entry cut-off
   (close − ``eod_flatten_minutes`` − ``entry_cutoff_minutes``);
5. **scanner output**: the last ``Scanner refresh`` log line of the day-trader kept at
   least one symbol and is not older than two scanner intervals (market time);
6. **gate rejections**: today's rejections by gate, the commonest first, with the fix of
   the gate that rejects most (informational: OK when nothing is rejected or trades exist);
7. **broker connection**: a read-only connection with ``ib.tools_client_id`` (skipped
   with ``--no-broker``).

Exit code 0 when every check is OK (or SKIP), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from daytrading.clock import Clock, calendar, wall_time
from daytrading.config import Settings
from daytrading.errors import DaytradingError

#: What to do when a gate rejects most candidates.
GATE_FIXES = {
    "session": "entries happen only in regular hours before the entry cut-off; wait for the session",
    "freeze": "the global freeze is set; `daytrading unfreeze` after checking why it was set",
    "active": "the symbol is already held; nothing to do",
    "closed_today": "no re-entry after a close in the same session (by design)",
    "cooldown": "lower cooldown_minutes if re-trying a symbol sooner is intended",
    "max_positions": "all position slots are used; raise max_concurrent_positions or wait for exits",
    "max_new_entries": "raise max_new_entries_per_cycle to enter more symbols per cycle",
    "daily_loss": "the daily loss limit was reached; no more entries today (daily_loss_limit)",
    "buying_power": "not enough funds for the allocation; check allocation and the account's buying power",
    "min_notional": "the position would be smaller than min_notional; raise allocation or lower min_notional",
    "llm": "the LLM review rejected; check llm.* keys and llm.on_failure, or set llm.enabled = false",
    "rule": "no entry rule fired (price > VWAP, RSI < rsi_max, ATR ≥ atr_min; or gap-and-go); market conditions",
}
TRADING_STATES = {"running"}
STATE_FIXES = {
    "frozen": "the bot stands down because of the global freeze: `daytrading unfreeze`",
    "disconnected": "the bot lost the broker: check IB Gateway / the sim-gateway and the port",
    "broker-down": "IB reports lost connectivity (1100): check the gateway's internet connection",
    "connecting": "the bot cannot connect: check IB Gateway is running with the API enabled on ib.port",
    "reconciling": "the exit-manager is reconciling; wait a few seconds",
    "stopped": "the bot stopped: start it with `daytrading supervisor` (or start_supervisor.bat)",
}


@dataclass(frozen=True)
class Check:
    """One diagnosis: ``status`` OK / FAIL / SKIP, what was seen, and the fix when not OK."""

    name: str
    status: str
    detail: str
    fix: str = ""


def check_bot(name: str, beats: dict[str, dict[str, Any]], health_check: float, now_wall: float) -> Check:
    """Heartbeat present, fresh and in a trading state (``supervisor``: any state but stopped)."""
    hb = beats.get(name)
    start = ("start everything with `daytrading supervisor` (start_supervisor.bat / .sh)" if name == "supervisor"
             else "the supervisor starts it; is the supervisor running?")
    if hb is None:
        return Check(name, "FAIL", "no heartbeat ever written", start)
    age = now_wall - hb["last_seen"].timestamp()
    if age > health_check:
        return Check(name, "FAIL", f"last heartbeat {age:.0f} s ago (state {hb['state']}, pid {hb['pid']})",
                     f"it is dead or hung (> {health_check:.0f} s); {start}")
    state = hb["state"]
    ok = state != "stopped" if name == "supervisor" else state in TRADING_STATES
    detail = f"state {state}, pid {hb['pid']}, heartbeat {age:.0f} s ago"
    return Check(name, "OK" if ok else "FAIL", detail, "" if ok else STATE_FIXES.get(state, start))


def check_freeze(info: dict[str, Any] | None) -> Check:
    """The global freeze flag."""
    if info is None:
        return Check("freeze", "OK", "no global freeze")
    return Check("freeze", "FAIL", f"set by {info.get('set_by')} at {info.get('set_at')}: {info.get('value')}",
                 "after checking the account, `daytrading unfreeze`")


def check_session(now: datetime, settings: Settings) -> Check:
    """Market time inside a regular XNYS session and before the entry cut-off."""
    cal = calendar()
    day = now.date()
    if not cal.is_session(day):
        nxt = cal.next_session(day)
        return Check("session open", "FAIL", f"{day} is not a trading session (weekend or holiday)",
                     f"next session {nxt} opens {cal.session(nxt).open:%H:%M} New York")
    s = cal.session(day)
    cutoff = s.close - timedelta(minutes=settings.eod_flatten_minutes + settings.entry_cutoff_minutes)
    when = f"market time {now:%Y-%m-%d %H:%M:%S} New York"
    if now < s.open:
        return Check("session open", "FAIL", f"{when}; the session opens {s.open:%H:%M}",
                     "entries start at the open (pre-market only for gap-and-go candidates)")
    if now >= s.close:
        return Check("session open", "FAIL", f"{when}; the session closed {s.close:%H:%M}",
                     f"next session {cal.next_session(day)}")
    if now >= cutoff:
        return Check("session open", "FAIL", f"{when}; past the entry cut-off {cutoff:%H:%M}"
                     + (" (early close)" if s.is_early_close else ""),
                     "no new entries this close to the flatten time (entry_cutoff_minutes, eod_flatten_minutes)")
    return Check("session open", "OK", f"{when}; open {s.open:%H:%M}–{s.close:%H:%M}, entries until {cutoff:%H:%M}")


def last_scanner_refresh(log_dir: Path) -> dict[str, Any] | None:
    """The newest ``Scanner refresh`` record in ``log_dir/*.jsonl`` (by its ``time``), or None."""
    from daytrading.ops.tools import read_log_records

    if not Path(log_dir).is_dir():
        return None
    records = [r for r in read_log_records(log_dir, grep="Scanner refresh")
               if str(r.get("msg", "")).startswith("Scanner refresh")]
    return records[-1] if records else None


def check_scanner(log_dir: Path, now: datetime, settings: Settings) -> Check:
    """The day-trader's last scanner refresh kept candidates and is recent."""
    fix = ("check the watchlist file (paths.watchlist), the IB scanner subscription, "
           "scanner.polygon_api_key and the scanner.* price/volume filters")
    rec = last_scanner_refresh(log_dir)
    if rec is None:
        return Check("scanner output", "FAIL", f"no 'Scanner refresh' line in {log_dir}/*.jsonl",
                     "is the day-trader running? " + fix)
    counts = rec.get("counts") or {}
    kept = counts.get("kept")
    stamp = rec.get("market_time") or rec.get("time")
    detail = f"{rec.get('msg')} at {stamp}"
    if kept == 0:
        return Check("scanner output", "FAIL", detail, "no candidate survived; " + fix)
    try:
        when = datetime.fromisoformat(str(stamp))
        age = (now - when).total_seconds()
    except (TypeError, ValueError):
        age = None
    if age is not None and age > 2 * settings.intervals.scanner_refresh:
        return Check("scanner output", "FAIL", f"{detail} ({age / 60:.0f} market minutes ago)",
                     "the day-trader stopped refreshing candidates; check its log (`daytrading logs --bot day-trader`)")
    return Check("scanner output", "OK", detail + (f" (symbols: {', '.join(rec['symbols'][:10])})"
                                                   if rec.get("symbols") else ""))


def check_gates(counts: dict[str, int], trades: int) -> Check:
    """Today's gate rejections; FAIL when candidates are rejected and nothing traded."""
    if not counts:
        return Check("gate rejections", "OK" if trades else "FAIL",
                     "no rejection recorded today" + (f"; {trades} trades" if trades else ""),
                     "" if trades else "no candidate reached the gates: see 'scanner output' and 'day-trader'")
    text = ", ".join(f"{g}={n}" for g, n in counts.items())
    top = next(iter(counts))
    if trades:
        return Check("gate rejections", "OK", f"{text}; {trades} trades today")
    return Check("gate rejections", "FAIL", f"{text}; no trades today (`daytrading why --summary`)",
                 f"most rejections by '{top}': {GATE_FIXES.get(top, 'see `daytrading why --summary`')}")


async def check_broker(settings: Settings) -> Check:
    """A read-only connection with the tools client id."""
    from daytrading.ops.tools import connection_report

    try:
        info = await connection_report(settings, settings.ib.tools_client_id)
    except DaytradingError as exc:
        return Check("broker connection", "FAIL", str(exc),
                     "start IB Gateway/TWS with the API enabled on ib.port (or the sim-gateway), check ib.host")
    kind = {True: "paper", False: "LIVE", None: "?"}[info["paper"]]
    return Check("broker connection", "OK",
                 f"{info['endpoint']} server version {info['server_version']}, account {info['account']} ({kind})")


def diagnose(settings: Settings, *, broker: bool = True, clock: Clock | None = None,
             now_wall: float | None = None) -> list[Check]:
    """Run every check; never raises for a failed check (it becomes a FAIL)."""
    from daytrading.ops import open_db
    from daytrading.runtime import build_clock

    clock = clock or build_clock(settings)
    now = clock.now()
    now_wall = wall_time() if now_wall is None else now_wall
    checks: list[Check] = []
    try:
        coord = open_db(settings, "diagnose")
        checks.append(Check("database", "OK", f"{settings.paths.database} opens"))
    except DaytradingError as exc:
        coord = None
        checks.append(Check("database", "FAIL", str(exc), "fix or move the file aside; `daytrading db init`"))
    if coord is not None:
        beats = coord.get_heartbeats()
        hc = settings.intervals.health_check
        checks += [check_bot(n, beats, hc, now_wall) for n in ("supervisor", "exit-manager", "day-trader")]
        checks.append(check_freeze(coord.freeze_info()))
    checks.append(check_session(now, settings))
    checks.append(check_scanner(Path(settings.paths.log_dir), now, settings))
    if coord is not None:
        day = coord.session_date(now)
        checks.append(check_gates(coord.gate_rejection_counts(day), len(coord.get_trades_by_date(day))))
    if broker:
        checks.append(asyncio.run(check_broker(settings)))
    else:
        checks.append(Check("broker connection", "SKIP", "--no-broker"))
    return checks


def cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading diagnose``."""
    parser.add_argument("--no-broker", action="store_true", help="skip the broker connection check")
    parser.add_argument("--json", action="store_true")


def cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading diagnose``: 0 when all checks pass, 1 otherwise."""
    from rich.table import Table
    from rich.text import Text

    from daytrading.ops import console

    checks = diagnose(settings, broker=not args.no_broker)
    failed = any(c.status == "FAIL" for c in checks)
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
        return 1 if failed else 0
    table = Table(title="diagnose: why are there no trades?")
    for col in ("check", "result", "seen", "fix"):
        table.add_column(col)
    styles = {"OK": "green", "FAIL": "bold red", "SKIP": "yellow"}
    for c in checks:
        table.add_row(c.name, Text(c.status, style=styles[c.status]), c.detail, c.fix)
    console().print(table)
    return 1 if failed else 0
