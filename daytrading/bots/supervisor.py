"""The supervisor: starts the bots (and, in sim mode, the sim-gateway), watches them by
process exit *and* by database heartbeat, restarts them, resets the day, shows status.

* **Daily reset** at start and whenever the exchange session date changes: closed-today
  rows of earlier sessions are cleared and the database is backed up.
* **Start order**: sim-gateway (sim mode, with the shared replay clock) → exit-manager
  → (as soon as its heartbeat says ``running``, i.e. connected and reconciled, and 5 s
  of wall time at the latest) → day-trader.
* **Watchdog**: a bot whose process exits, or whose heartbeat is older than
  ``intervals.health_check`` wall seconds (a hung bot is a dead bot), is killed and
  restarted: the exit-manager at once, the day-trader with exponential back-off
  (1 s doubling, capped at 60 s). More than 5 restarts in 5 minutes is a crash loop:
  reported as CRITICAL, in the status table and in the database, not hidden.
* **Status** every ``intervals.status`` seconds (and ``daytrading status``).
* **Stop**: Ctrl+C, SIGTERM, or the stop file (``daytrading stop``): the day-trader
  first, then the exit-manager, each gracefully (SIGTERM / CTRL_BREAK) with a timeout
  and then a kill. Positions stay at the broker.
* **The database may fail; the supervisor does not.** Every database call of the
  watch loop is fail-fast (:data:`DB_WAIT` seconds) and guarded: a locked, full or
  damaged database is logged CRITICAL (once per outage, then every
  :data:`DB_TROUBLE_REPEAT` seconds), events are kept in memory and written when the
  database works again, and the bots keep running. The watchdog then judges a bot by
  its process and its heartbeat file (:mod:`daytrading.coordination.freeze`), whichever
  heartbeat is fresher, and a late heartbeat does not get a bot killed while the
  database fails (its loop may be waiting on it). Any other error in one watch pass is
  logged CRITICAL and the next pass runs.
* **Children die with the supervisor** (even SIGKILL): one process group plus a
  parent-death signal on POSIX, a kill-on-close job object on Windows
  (:mod:`daytrading.bots.lifeline`); the sim-gateway is stopped however ``run()`` ends.
* **Sim run end**: after the replay session's close the bots are stopped, and a
  session report (trades, win rate, P&L, exits by reason, invariant checks) and
  charts are written; the exit code is 1 when an invariant failed.

All children get the same replay clock (``DAYTRADING_SIM__START/EPOCH/SPEED``) and the
same database/log paths through environment variables. Unless ``sim.epoch`` is set, the
replay starts (market time ``sim.start``) when the sim-gateway has loaded its data, not when
the supervisor starts, so a slow data load never eats into the session.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from daytrading.bots import lifeline
from daytrading.clock import NY, Clock, ReplayClock, calendar
from daytrading.config import Settings, dashboard_url
from daytrading.coordination import Coordinator
from daytrading.errors import ConfigError, OperationalError
import contextlib

log = logging.getLogger("daytrading.supervisor")

BOT = "supervisor"
#: Default replay day: TSLA and LI gapped up ≥ 5 % (recorded in ../shared/data/market).
DEFAULT_SIM_DATE = date(2020, 11, 17)
IS_WINDOWS = os.name == "nt"
#: Fail-fast budget (wall seconds) of each database call in the watch loop.
DB_WAIT = 0.5
#: While the database stays unusable, the CRITICAL log line is repeated this often (wall seconds).
DB_TROUBLE_REPEAT = 60.0
#: Events kept in memory while the database cannot take them (oldest dropped first).
PENDING_EVENTS = 500


def freshest_beat(pid: int | None, *beats: dict[str, Any] | None) -> dict[str, Any] | None:
    """The freshest heartbeat of process ``pid`` among ``beats`` (database row, heartbeat file...).

    ``last_seen`` may be an aware/naive datetime (naive = UTC) or ISO text; the result
    has it as an aware UTC datetime. Beats of another pid (an earlier process) are ignored.
    """
    best = None
    for hb in beats:
        if not hb or hb.get("pid") != pid:
            continue
        last = hb["last_seen"]
        if isinstance(last, str):
            last = datetime.fromisoformat(last)
        if last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        if best is None or last > best["last_seen"]:
            best = {**hb, "last_seen": last}
    return best


def hung_verdict(beat: dict[str, Any] | None, running_for: float, health_check: float,
                 now: datetime) -> tuple[bool, float | None]:
    """Watchdog decision for a live process: ``(hung, heartbeat age in wall seconds)``.

    ``beat`` is :func:`freshest_beat` of the process (None: it never heartbeated since it
    started). Hung: no heartbeat for ``max(health_check, 20)`` s since the start, or a
    heartbeat older than ``health_check`` s. Pure; ``now`` is aware UTC wall time.
    """
    if beat is None:
        return running_for > max(health_check, 20.0), None
    age = (now - beat["last_seen"]).total_seconds()
    return age > health_check, age


def stop_file(settings: Settings) -> Path:
    """The stop file the supervisor polls (``STOP`` beside the database)."""
    return Path(settings.paths.database).resolve().parent / "STOP"


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    restart_at_once: bool
    #: watched by heartbeat as well as by process exit (the dashboard writes no heartbeat)
    watch_heartbeat: bool = True
    #: exit codes after which the child is not restarted (the dashboard's refused bind or port in use)
    final_codes: tuple[int, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    started_wall: float | None = None
    started_at: datetime | None = None
    restarts: int = 0
    restart_times: deque[float] = field(default_factory=lambda: deque(maxlen=20))
    next_start: float = 0.0
    backoff: float = 1.0
    last_exit_code: int | None = None
    state: str = "STOPPED"
    log_path: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def crash_loop(self, now: float) -> bool:
        """More than 5 restarts within the last 5 minutes of wall time."""
        return sum(1 for t in self.restart_times if now - t < 300) > 5


class Supervisor:
    """Start, watch and stop the bots. ``run()`` returns the process exit code."""

    def __init__(self, settings: Settings, *, config: str | None = None, sim: bool | None = None,
                 run_to_end: bool = True) -> None:
        self.settings = settings
        self.config = config
        self.sim = settings.is_sim if sim is None else sim
        self.run_to_end = run_to_end
        self.db_path = Path(settings.paths.database).resolve()
        self.log_dir = Path(settings.paths.log_dir).resolve()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.clock: Clock
        self.gateway: subprocess.Popen[bytes] | None = None
        self.env = dict(os.environ)
        self._stop = False
        self._session: date | None = None
        self.coord: Coordinator | None = None
        self._epoch_fixed = True  # sim mode without sim.epoch: the gateway picks it (_prepare_env)
        self.children: dict[str, Child] = {}
        self._last_status = 0.0
        self.sim_date: date | None = None
        self.exit_code = 0
        self._db_down_since: float | None = None
        self._db_last_critical = 0.0
        self._pending_events: deque[tuple[str, str, str]] = deque(maxlen=PENDING_EVENTS)
        self._group = None if IS_WINDOWS else lifeline.ProcessGroup()
        self._job: lifeline.KillOnCloseJob | None = None
        self._last_pass_error = 0.0

    # ------------------------------------------------------------------ setup

    def _python(self) -> list[str]:
        base = [sys.executable, "-m", "daytrading"]
        if self.config:
            base += ["--config", self.config]
        return base

    def _prepare_env(self) -> None:
        env = self.env
        env["DAYTRADING_PATHS__DATABASE"] = str(self.db_path)
        env["DAYTRADING_PATHS__LOG_DIR"] = str(self.log_dir)
        env["DAYTRADING_ALLOCATION"] = str(self.settings.allocation)
        env["PYTHONUNBUFFERED"] = "1"
        env[lifeline.ENV] = str(os.getpid())
        if not self.sim:
            self.clock = _live_clock()
            return
        sim = self.settings.sim
        self.sim_date = sim.session_date or DEFAULT_SIM_DATE
        cal = calendar()
        if not cal.is_session(self.sim_date):
            raise ConfigError(f"sim.session_date = {self.sim_date} is not an XNYS trading session")
        start = sim.start or datetime(self.sim_date.year, self.sim_date.month, self.sim_date.day, 9, 0, tzinfo=NY)
        if start.tzinfo is None:
            start = start.replace(tzinfo=NY)
        # Without sim.epoch the replay starts when the sim-gateway has loaded its data (it picks
        # the epoch then; _start_gateway reads it back). A supervisor that fixed the epoch here
        # lost the replay's first market hours to the data load on a slow or busy machine: at
        # 390x, 30 s of loading is 3 h 15 min of the session. This provisional epoch only serves
        # until then.
        self._epoch_fixed = sim.epoch is not None
        epoch = sim.epoch or (time.time() + 3.0)
        self.clock = ReplayClock(start=start, epoch=epoch, speed=sim.speed)
        env["DAYTRADING_MODE"] = "sim"
        env["DAYTRADING_SIM__START"] = start.isoformat()
        env["DAYTRADING_SIM__EPOCH"] = repr(epoch)
        env["DAYTRADING_SIM__SPEED"] = repr(sim.speed)
        env["DAYTRADING_SIM__SESSION_DATE"] = self.sim_date.isoformat()
        env["DAYTRADING_SIM__PORT"] = str(sim.port)

    def _start_gateway(self) -> None:
        sim = self.settings.sim
        argv = [sys.executable, "-m", "daytrading", "sim-gateway",
                "--date", self.sim_date.isoformat(), "--speed", repr(sim.speed), "--port", str(sim.port),
                "--start", self.env["DAYTRADING_SIM__START"],
                *(["--epoch", self.env["DAYTRADING_SIM__EPOCH"]] if self._epoch_fixed else []),
                "--account", sim.account, "--cash", repr(sim.cash), "--log-dir", str(self.log_dir),
                # the fill model of the backtest (docs/fill-model.md): same path step, same order latency
                "--path-step", repr(sim.path_step_s), "--order-latency-ms", repr(sim.order_latency_ms)]
        data = Path(sim.data)
        if str(sim.data) not in ("", "synthetic"):
            argv += ["--data", str(data.resolve())]
        if sim.symbols:
            argv += ["--symbols", ",".join(sim.symbols)]
        if sim.admin_port:
            argv += ["--admin-port", str(sim.admin_port)]
        _check_port_free(sim.port)
        out = open(self.log_dir / "sim_gateway.out", "ab")  # noqa: SIM115 - lives as long as the child
        self.gateway = self._popen(argv, out)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.gateway.poll() is not None:
                raise OperationalError(
                    f"sim-gateway exited with code {self.gateway.returncode}; see {self.log_dir / 'sim_gateway.out'}"
                )
            if _port_open(sim.port):
                if not self._epoch_fixed:
                    self._adopt_gateway_clock(deadline)
                log.info("sim-gateway ready", extra={"port": sim.port, "date": self.sim_date.isoformat(),
                                                     "epoch": self.clock.epoch})
                return
            time.sleep(0.05)
        raise OperationalError(f"sim-gateway did not listen on 127.0.0.1:{sim.port} within 60 s")

    def _admin_port(self) -> int:
        """The sim-gateway's admin port: ``sim.admin_port``, else the one after ``sim.port`` (the gateway's default)."""
        return self.settings.sim.admin_port or self.settings.sim.port + 1

    def _adopt_gateway_clock(self, deadline: float) -> None:
        """Take the replay epoch the sim-gateway chose when its data were loaded, for this
        process (and its coordinator) and for every bot started from now on.

        Raises:
            OperationalError: the gateway's admin port gave no clock before ``deadline``
                (``time.monotonic()`` seconds).
        """
        from daytrading.sim_gateway import AdminError, request

        admin = self._admin_port()
        while True:
            try:
                epoch = float(request(admin, "clock", timeout=2)["epoch"])
                break
            except AdminError as exc:
                if time.monotonic() > deadline or (self.gateway is not None and self.gateway.poll() is not None):
                    raise OperationalError(f"sim-gateway gave no replay clock on admin port {admin}: {exc}") from None
                time.sleep(0.05)
        assert isinstance(self.clock, ReplayClock)
        self.clock = ReplayClock(start=self.clock.start, epoch=epoch, speed=self.clock.speed)
        if self.coord is not None:
            self.coord.clock = self.clock
        self.env["DAYTRADING_SIM__EPOCH"] = repr(epoch)

    def _daily_reset(self) -> None:
        """Clear closed-today rows of earlier sessions and back up the database."""
        from daytrading.db.backup import backup_database

        assert self.coord is not None
        session = self.coord.session_date()
        if session == self._session:
            return
        removed = self.coord.clear_closed_today(before=session)
        try:
            path = backup_database(self.db_path, self.settings.paths.backup_dir, keep=self.settings.paths.backup_keep)
        except Exception as exc:  # noqa: BLE001 - a failed backup must not stop trading
            log.warning("database backup failed", extra={"error": str(exc)})
            path = None
        self._session = session
        log.info("daily reset", extra={"session": session.isoformat(), "closed_today_cleared": removed,
                                       "backup": str(path) if path else None})

    # ------------------------------------------------------------------ children

    def _popen(self, argv: list[str], out: Any) -> subprocess.Popen[bytes]:
        """Start a child in the children's process group (POSIX) or kill-on-close job (Windows)."""
        common: dict[str, Any] = {"env": self.env, "stdout": out, "stderr": subprocess.STDOUT,
                                  "stdin": subprocess.DEVNULL}
        if IS_WINDOWS:
            proc = subprocess.Popen(argv, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP,  # type: ignore[attr-defined]
                                    **common)
            try:
                if self._job is None:
                    self._job = lifeline.KillOnCloseJob()
                self._job.assign(proc)
            except OSError as exc:
                log.error("child not in the kill-on-close job; it may outlive a crashed supervisor",
                          extra={"pid": proc.pid, "error": str(exc)})
            return proc
        assert self._group is not None
        try:
            proc = subprocess.Popen(argv, **self._group.popen_kwargs(), **common)
        except PermissionError:  # the group vanished between the check and the spawn: lead a new one
            self._group.pgid = None
            proc = subprocess.Popen(argv, **self._group.popen_kwargs(), **common)
        self._group.joined(proc.pid)
        return proc

    def _spawn(self, child: Child) -> None:
        child.log_path = self.log_dir / f"{child.name.replace('-', '_')}.out"
        out = open(child.log_path, "ab")  # noqa: SIM115
        child.proc = self._popen(child.argv, out)
        child.started_wall = time.monotonic()
        child.started_at = datetime.now(tz=UTC)
        child.state = "RUNNING"
        log.info("started", extra={"bot": child.name, "pid": child.proc.pid})

    # ------------------------------------------------------------------ the database, guarded

    def _db(self, what: str, call: Any, *args: Any, default: Any = None, write: bool = False, **kwargs: Any) -> Any:
        """``call(*args, **kwargs)`` fail-fast; on any error: CRITICAL (rate-limited), ``default``.

        Only a successful ``write`` ends an outage (under a write lock reads still work).
        """
        assert self.coord is not None
        try:
            with self.coord.fail_fast(DB_WAIT):
                result = call(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - locked, full, damaged: the bots keep running
            self._db_trouble(what, exc)
            return default
        if write and self._db_down_since is not None:
            log.warning("database usable again", extra={"down_s": round(time.monotonic() - self._db_down_since, 1)})
            self._db_down_since = None
            self._flush_events()
        return result

    def _db_trouble(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if self._db_down_since is None:
            self._db_down_since = now
        if now - self._db_last_critical >= DB_TROUBLE_REPEAT or self._db_last_critical < self._db_down_since:
            # the first failure of an outage, then once a minute
            self._db_last_critical = now
            log.critical("database unusable; the bots keep running, the watchdog uses process state and "
                         "heartbeat files", extra={"during": what, "error": f"{type(exc).__name__}: {exc}",
                                                   "down_s": round(now - self._db_down_since, 1),
                                                   "events_pending": len(self._pending_events)})

    def _event(self, level: str, kind: str, message: str) -> None:
        """Record an event now, or keep it until the database takes it."""
        self._pending_events.append((level, kind, message))
        self._flush_events()

    def _flush_events(self) -> None:
        assert self.coord is not None
        while self._pending_events:
            level, kind, message = self._pending_events[0]
            try:
                with self.coord.fail_fast(DB_WAIT):
                    self.coord.record_event(level, kind, message)
            except Exception as exc:  # noqa: BLE001
                self._db_trouble("record_event", exc)
                return
            self._pending_events.popleft()

    def _beats(self) -> dict[str, dict[str, Any]]:
        """Every heartbeat by bot, the database row or the heartbeat file, whichever is fresher per process."""
        assert self.coord is not None
        rows = self._db("get_heartbeats", self.coord.get_heartbeats, default={}) or {}
        files = self.coord.heartbeat_files()
        out: dict[str, dict[str, Any]] = {}
        for name in set(rows) | set(files):
            child = self.children.get(name)
            pid = child.proc.pid if child and child.proc else (rows.get(name) or files.get(name) or {}).get("pid")
            best = freshest_beat(pid, rows.get(name), files.get(name))
            if best is not None:
                out[name] = best
        return out

    def _wait_ready(self, name: str, timeout: float) -> bool:
        """Wait until ``name``'s heartbeat is ``running`` and newer than its start."""
        assert self.coord is not None
        child = self.children[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop:
            hb = self._beats().get(name)
            if hb and hb["state"] in ("running", "frozen") and hb["pid"] == child.pid:
                return True
            if child.proc and child.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def _watch(self) -> None:
        """One watchdog pass over the children."""
        assert self.coord is not None
        now = time.monotonic()
        beats = self._beats()
        for child in self.children.values():
            if child.proc is None:
                if now >= child.next_start:
                    self._spawn(child)
                continue
            code = child.proc.poll()
            hung = False
            if code is None and child.started_wall is not None and child.watch_heartbeat:
                hung, age = hung_verdict(freshest_beat(child.proc.pid, beats.get(child.name)),
                                         now - child.started_wall, self.settings.intervals.health_check,
                                         datetime.now(tz=UTC))
                if hung and self._db_down_since is not None:
                    # its loop may be waiting on the failing database: not hung, and killing it stops nothing
                    log.warning("bot's heartbeat is late while the database fails; not killed",
                                extra={"bot": child.name, "pid": child.proc.pid, "heartbeat_age_s": age})
                    hung = False
                if hung:
                    log.error("bot hung (no heartbeat); killing", extra={"bot": child.name, "pid": child.proc.pid,
                                                                          "heartbeat_age_s": age})
                    self._event("ERROR", "hung", f"{child.name} hung: heartbeat age {age}")
                    _kill(child.proc)
                    code = child.proc.wait()
            if code is None:
                continue
            child.last_exit_code = code
            child.proc = None
            if code in child.final_codes:
                child.state, child.next_start = "STOPPED", float("inf")
                log.warning("exited and is not restarted (see its log)", extra={"bot": child.name, "exit_code": code,
                                                                                "log": str(child.log_path)})
                continue
            child.restarts += 1
            child.restart_times.append(now)
            if child.restart_at_once:
                delay = 0.0
            else:
                delay = child.backoff
                child.backoff = min(60.0, child.backoff * 2)
            child.next_start = now + delay
            child.state = "CRASH_LOOP" if child.crash_loop(now) else "RESTARTING"
            level = logging.CRITICAL if child.state == "CRASH_LOOP" else logging.ERROR
            log.log(level, "bot exited; restarting", extra={"bot": child.name, "exit_code": code, "hung": hung,
                                                            "restart_in_s": delay, "restarts": child.restarts})
            self._event("CRITICAL" if child.state == "CRASH_LOOP" else "ERROR", "restart",
                        f"{child.name} exited ({code}); restart #{child.restarts} in {delay:.0f} s")
            if delay == 0:
                self._spawn(child)
        self._reset_backoffs(now)

    def _reset_backoffs(self, now: float) -> None:
        """A child that stayed up for 2 minutes gets its restart back-off reset."""
        for child in self.children.values():
            if child.proc and child.started_wall and now - child.started_wall > 120:
                child.backoff = 1.0

    def _write_heartbeat(self) -> None:
        assert self.coord is not None
        bots = {}
        now = time.monotonic()
        for c in self.children.values():
            bots[c.name] = {"state": c.state if c.proc else ("RESTARTING" if c.restarts else "STOPPED"),
                            "pid": c.pid, "started_at": c.started_at.isoformat() if c.started_at else None,
                            "uptime_s": round(now - c.started_wall, 1) if c.started_wall and c.proc else None,
                            "restarts": c.restarts, "last_exit_code": c.last_exit_code}
            if c.name == "dashboard":
                bots[c.name]["url"] = dashboard_url(self.settings.dashboard)
        sim = {"port": self.settings.sim.port, "session_date": self.sim_date.isoformat()} if self.sim else None
        # the heartbeat file first (inside heartbeat()), then the row, fail-fast and guarded
        self._db("heartbeat", self.coord.heartbeat, "running" if not self._stop else "stopping",
                 json.dumps({"bots": bots, "sim": sim}), write=True)

    def _print_status(self) -> None:
        try:
            from rich.console import Console

            from daytrading.ops.status import render_status

            Console(stderr=False).print(render_status(self.coord, self.clock))
        except Exception as exc:  # noqa: BLE001 - status is informational
            assert self.coord is not None
            rows = self._db("status", self.coord.get_active_positions)
            pnl = self._db("status", self.coord.realized_pnl)
            print(f"[supervisor] {self.clock.now():%H:%M:%S} active={'?' if rows is None else len(rows)} "
                  f"realized_pnl={'?' if pnl is None else f'{pnl:.2f}'} ({exc.__class__.__name__})", flush=True)

    # ------------------------------------------------------------------ run

    def run(self) -> int:
        """Run until stopped (or, in sim mode, until the replay session has ended).

        However it ends (stop, replay over, an error), the bots are stopped in order and
        the sim-gateway after them.
        """
        from daytrading.config import dashboard_bind_error
        from daytrading.runtime import open_coordinator

        problem = dashboard_bind_error(self.settings.dashboard) if self.settings.dashboard.enabled else None
        if problem:
            raise ConfigError(f"{problem} (or set dashboard.enabled = false)")
        self._install_signals()
        self._prepare_env()
        sf = stop_file(self.settings)
        if sf.exists():
            sf.unlink()
        self.coord = open_coordinator(self.settings, BOT, self.clock)
        self._db("daily reset", self._daily_reset)  # a locked database: retried by every watch pass
        try:
            try:
                self._start_children()
                status_every = max(15.0, self.settings.intervals.status / max(self.clock.speed, 1.0)) if self.sim \
                    else self.settings.intervals.status
                while not self._stop and not self._one_pass(sf, status_every):
                    time.sleep(0.2)
            finally:
                self._shutdown()
            if self.sim and self.run_to_end:
                self.exit_code = max(self.exit_code, self._sim_report())
        finally:
            if self.gateway is not None:
                _terminate(self.gateway, 10)
            if self._group is not None:
                self._group.kill()  # anything left in the children's group (nothing, normally)
            self._write_heartbeat()
        return self.exit_code

    def _start_children(self) -> None:
        """The sim-gateway (sim mode), the exit-manager, then (when it is ready, 5 s at most) the day-trader,
        then the dashboard (``dashboard.enabled``)."""
        if self.sim:
            self._start_gateway()
        em = Child("exit-manager", [*self._python(), "exit-manager"], restart_at_once=True)
        dt = Child("day-trader", [*self._python(), "day-trader"], restart_at_once=False)
        self.children = {"exit-manager": em}
        self._spawn(em)
        ready = self._wait_ready("exit-manager", 5.0)
        log.info("exit-manager ready" if ready else "exit-manager not ready after 5 s; starting the day-trader anyway")
        self.children["day-trader"] = dt
        self._spawn(dt)
        if self.settings.dashboard.enabled:  # its death never touches the bots: restarted like the day-trader
            from daytrading.dashboard.server import EXIT_PORT_IN_USE

            self.children["dashboard"] = Child("dashboard", [*self._python(), "dashboard"], restart_at_once=False,
                                               watch_heartbeat=False, final_codes=(2, EXIT_PORT_IN_USE))
            self._spawn(self.children["dashboard"])

    def _one_pass(self, sf: Path, status_every: float) -> bool:
        """One pass of the watch loop; True when the run should end.

        An unexpected error is logged CRITICAL (at most every :data:`DB_TROUBLE_REPEAT` s)
        and the next pass runs: the watchdog must outlive its own bugs.
        """
        if sf.exists():
            log.info("stop file found; stopping", extra={"path": str(sf)})
            sf.unlink(missing_ok=True)
            return True
        if self.gateway is not None and self.gateway.poll() is not None:
            log.critical("sim-gateway died", extra={"exit_code": self.gateway.returncode})
            self.exit_code = 1
            return True
        try:
            self._watch()
            self._write_heartbeat()
            self._db("daily reset", self._daily_reset)
            if time.monotonic() - self._last_status >= status_every:
                self._last_status = time.monotonic()
                self._print_status()
            if self.sim and self.run_to_end and self._sim_finished():
                log.info("replay session over; stopping")
                return True
        except Exception:  # noqa: BLE001 - keep watching; the error is reported
            if time.monotonic() - self._last_pass_error >= DB_TROUBLE_REPEAT:
                self._last_pass_error = time.monotonic()
                log.critical("watch pass failed; continuing", exc_info=True)
        return False

    def _sim_finished(self) -> bool:
        """Market time is past the close and nothing is active (or 30 market minutes past).

        While the database cannot be read, only the 30-minute rule ends the run.
        """
        assert self.coord is not None and self.sim_date is not None
        s = calendar().session(self.sim_date)
        now = self.clock.now()
        if now < s.close:
            return False
        if now >= s.close + timedelta(minutes=30):
            return True
        active = self._db("sim end check", self.coord.get_active_positions)
        return active is not None and not active

    def _shutdown(self) -> None:
        """Day-trader first, then the exit-manager, then the dashboard: graceful, then killed after a timeout."""
        self._stop = True
        for name in ("day-trader", "exit-manager", "dashboard"):
            child = self.children.get(name)
            if child and child.proc and child.proc.poll() is None:
                log.info("stopping", extra={"bot": name, "pid": child.proc.pid})
                code = _terminate(child.proc, 15)
                child.last_exit_code = code
            if child:
                child.proc = None
                child.state = "STOPPED"
        log.info("bots stopped; positions (if any) stay at the broker")

    def _sim_report(self) -> int:
        """Print the session report; 1 when an invariant failed."""
        gw_report = None
        try:
            from daytrading.sim_gateway import request as admin_request

            admin = self._admin_port()
            gw_report = admin_request(admin, "report")
        except Exception as exc:  # noqa: BLE001
            log.warning("could not read the gateway report", extra={"error": str(exc)})
        try:
            from daytrading.marketdata.loader import load_session
            from daytrading.ops.report import session_report

            bars = None
            try:
                bars = load_session(self.settings.sim.data, self.sim_date)
            except Exception:  # noqa: BLE001
                bars = None
            rep = session_report(self.coord, self.sim_date, gateway_report=gw_report, bars=bars,
                                 out_dir=Path(self.settings.paths.report_dir))
            print(rep.text, flush=True)
            return 0 if getattr(rep, "ok", True) else 1
        except Exception as exc:  # noqa: BLE001
            log.warning("session report failed", extra={"error": str(exc)})
            assert self.coord is not None
            trades = self._db("session report", self.coord.get_trades_by_date, self.sim_date)
            if trades is None:
                print(f"session {self.sim_date}: no report, the database cannot be read", flush=True)
                return 1
            print(f"session {self.sim_date}: {len(trades)} trades, realized P&L "
                  f"{sum(t.pnl or 0 for t in trades):.2f} $", flush=True)
            return 0

    def _install_signals(self) -> None:
        def handler(*_: Any) -> None:
            self._stop = True

        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGBREAK", None)):
            if sig is not None:
                with contextlib.suppress(ValueError, OSError):
                    signal.signal(sig, handler)


# ---------------------------------------------------------------------- process helpers


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """Graceful stop (SIGTERM / CTRL_BREAK_EVENT), then kill after ``timeout`` wall seconds."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        if IS_WINDOWS:
            proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
        else:
            proc.terminate()
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("did not stop in time; killing", extra={"pid": proc.pid})
        _kill(proc)
        return proc.wait()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        proc.kill()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _check_port_free(port: int) -> None:
    if _port_open(port):
        raise OperationalError(
            f"port 127.0.0.1:{port} is already in use (another sim-gateway or supervisor?); "
            "stop it or set sim.port to a free port"
        )


def _live_clock() -> Clock:
    from daytrading.clock import LiveClock

    return LiveClock()


# ---------------------------------------------------------------------- command line


def cli_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``daytrading supervisor``."""
    parser.add_argument("--allocation", type=float, default=None, help="fraction of net liquidation (default 0.25)")
    parser.add_argument("--sim", action="store_true", help="run against the embedded sim-gateway (mode = sim)")
    parser.add_argument("--data", default=None, help="sim: bar files folder or file (default sim.data)")
    parser.add_argument("--date", default=None, help="sim: session date YYYY-MM-DD (default 2020-11-17)")
    parser.add_argument("--speed", type=float, default=None, help="sim: market seconds per wall second (default 390)")
    parser.add_argument("--no-end", action="store_true", help="sim: keep running after the replay session ends")


def cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading supervisor``."""
    from daytrading.config import with_overrides
    from daytrading.runtime import setup_logging

    extra: dict[str, Any] = {}
    sim: dict[str, Any] = {}
    if args.allocation is not None:
        extra["allocation"] = args.allocation
    if args.sim:
        extra["mode"] = "sim"
    if args.data:
        sim["data"] = args.data
    if args.date:
        sim["session_date"] = args.date
    if args.speed:
        sim["speed"] = args.speed
    if sim:
        extra["sim"] = sim
    if extra:  # validated on top of the global options (--port, --db…) already applied
        settings = with_overrides(settings, extra)
    setup_logging(settings, BOT)
    sup = Supervisor(settings, config=args.config, sim=settings.is_sim, run_to_end=not args.no_end)
    return sup.run()


def stop_cli(args: argparse.Namespace, settings: Settings) -> int:
    """``daytrading stop``: ask a running supervisor to stop (writes the stop file)."""
    path = stop_file(settings)
    path.write_text(datetime.now(tz=UTC).isoformat(), encoding="utf-8")
    print(f"stop requested ({path}); the supervisor stops the day-trader, then the exit-manager")
    return 0
