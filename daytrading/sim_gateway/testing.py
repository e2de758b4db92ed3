"""Test helpers: an in-process gateway, a gateway subprocess, free ports (API kept stable).

* :func:`running_gateway` — async context manager: a :class:`SimGateway` in this event loop
  on ephemeral loopback ports (``gw.port``, ``gw.admin_port``).
* :class:`GatewayProcess` — ``python -m daytrading sim-gateway …`` as a real subprocess;
  ``ctl()`` sends admin commands, ``report()`` returns the run's report (see
  :mod:`.admin`). Its replay clock (``start``, ``epoch``, ``speed``) is exposed so bots in the
  test share market time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from daytrading.sim_gateway.admin import AdminError, request
from daytrading.sim_gateway.cli import build_gateway

__all__ = ["BAD_IB_LOG", "GatewayProcess", "IbLogGuard", "free_port", "running_gateway", "wait_until"]

#: ib_async log lines that mean the gateway sent something wrong or incomplete (notes §10).
BAD_IB_LOG = ("Error handling fields", "request timed out", "No order found", "Unknown reqId",
              "Exception in callback")

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (bind to 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class IbLogGuard(logging.Handler):
    """Collects a client library's log records that signal a protocol problem (:data:`BAD_IB_LOG`);
    ``logger`` is the library's logger name (``ib_async``, ``ib_insync``).

    Use as a context manager; ``guard.bad`` lists the offending messages, ``guard.check()``
    raises AssertionError when there are any.
    """

    def __init__(self, extra: Sequence[str] = (), *, logger: str = "ib_async") -> None:
        super().__init__(level=logging.DEBUG)
        self.logger = logger
        self.patterns = (*BAD_IB_LOG, *extra)
        self.bad: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        msg = record.getMessage()
        if any(p in msg for p in self.patterns):
            self.bad.append(msg)

    def __enter__(self) -> IbLogGuard:
        lg = logging.getLogger(self.logger)
        self._old_level = lg.level
        lg.setLevel(logging.DEBUG if lg.level == logging.NOTSET or lg.level > logging.INFO else lg.level)
        lg.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        lg = logging.getLogger(self.logger)
        lg.removeHandler(self)
        lg.setLevel(self._old_level)

    def check(self) -> None:
        """Raise AssertionError listing the bad ib_async log lines, if any."""
        assert not self.bad, f"ib_async reported protocol problems: {self.bad[:5]}"


async def wait_until(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``cond()`` (every 10 ms) until truthy; AssertionError naming ``what`` after ``timeout`` wall s."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running_gateway(
    *,
    data: str | Path | None = None,
    session_date: date | None = None,
    symbols: Sequence[str] | None = None,
    speed: float = 390.0,
    start: datetime | str | None = None,
    epoch: float | None = None,
    cash: float = 100_000.0,
    faults: str | Path | Mapping[str, Any] | list[dict[str, Any]] | None = None,
    shortable: Mapping[str, bool] | None = None,
    seed: int = 7,
    slippage: float = 0.0,
    log_dir: str | Path | None = None,
) -> AsyncIterator[Any]:
    """An in-process gateway on ephemeral 127.0.0.1 ports; stopped on exit.

    ``start`` defaults to 09:25 New York on ``session_date``; ``epoch`` to the moment the
    data are loaded. ``faults``: a TOML path or scenario entries (list of dicts with ``at``
    and ``action``).
    """
    gw = build_gateway(data=data, session_date=session_date, speed=speed, start=start, epoch=epoch,
                       symbols=symbols, cash=cash, port=0, admin_port=0, faults=faults, shortable=shortable,
                       seed=seed, slippage=slippage, log_dir=log_dir)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


class GatewayProcess:
    """``python -m daytrading sim-gateway`` as a subprocess, for tests of other processes.

    Args:
        data: data folder/file (None = synthetic); session_date: the replayed date.
        speed, start, epoch: the replay clock (``start`` default 09:25 New York; ``epoch``
            default: when the gateway is ready, read back through the admin ``clock``).
        port: API port (default a free one); the admin port is another free port.
        symbols, cash, faults_file, log_dir, extra_args: passed to the command line.

    Attributes (after ``__enter__``): port, admin_port, start (tz-aware), epoch (wall s), speed,
    proc, log_path.
    """

    def __init__(self, *, data: str | Path | None, session_date: date | None, speed: float = 390.0,
                 start: datetime | None = None, epoch: float | None = None, port: int | None = None,
                 symbols: Sequence[str] | None = None, cash: float = 100_000.0,
                 faults_file: str | Path | None = None, log_dir: str | Path | None = None,
                 extra_args: Sequence[str] = ()) -> None:
        from daytrading.sim_gateway.cli import DEFAULT_SYNTHETIC_DATE, parse_start

        self.data = data
        self.session_date = session_date
        self.speed = float(speed)
        self.start = parse_start(start, session_date or DEFAULT_SYNTHETIC_DATE)
        self.epoch: float | None = epoch
        self._own_ports = port is None
        self.port = port or free_port()
        self.admin_port = self._other_port(self.port)
        self.symbols = list(symbols) if symbols else None
        self.cash = cash
        self.faults_file = faults_file
        self.log_dir = Path(log_dir) if log_dir else None
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._out: Any = None

    @staticmethod
    def _other_port(taken: int) -> int:
        port = free_port()
        while port == taken:
            port = free_port()
        return port

    def argv(self) -> list[str]:
        """The command line used to start the gateway."""
        argv = [sys.executable, "-m", "daytrading", "sim-gateway", "--speed", repr(self.speed),
                "--port", str(self.port), "--admin-port", str(self.admin_port), "--start", self.start.isoformat(),
                "--cash", repr(self.cash)]
        if self.data is not None:
            argv += ["--data", str(self.data)]
        if self.session_date is not None:
            argv += ["--date", self.session_date.isoformat()]
        if self.epoch is not None:
            argv += ["--epoch", repr(self.epoch)]
        if self.symbols:
            argv += ["--symbols", ",".join(self.symbols)]
        if self.faults_file:
            argv += ["--faults", str(self.faults_file)]
        if self.log_dir is not None:
            argv += ["--log-dir", str(self.log_dir)]
        return argv + self.extra_args

    def __enter__(self) -> GatewayProcess:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.log_path = self.log_dir / "sim_gateway.out"
            self._out = open(self.log_path, "ab")  # noqa: SIM115 - closed in __exit__
        else:
            self._out = tempfile.NamedTemporaryFile(prefix="sim_gateway_", suffix=".out", delete=False)  # noqa: SIM115
            self.log_path = Path(self._out.name)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(PROJECT_ROOT), *([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])])}
        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(self.argv(), stdout=self._out, stderr=subprocess.STDOUT, env=env,
                                    cwd=str(PROJECT_ROOT))

        self.proc = spawn()
        deadline = time.monotonic() + 90
        retries = 3  # free_port() can race with another process taking the port before the gateway binds it
        while True:
            if self.proc.poll() is not None:
                out = self.output()
                if retries and self.proc.returncode == 2 and out.rstrip().endswith("address already in use"):
                    retries -= 1
                    if self._own_ports:
                        self.port = free_port()
                    self.admin_port = self._other_port(self.port)
                    self.proc = spawn()
                    continue
                self._cleanup()
                raise RuntimeError(f"sim-gateway exited with code {self.proc.returncode}:\n{out[-3000:]}")
            try:
                clock = request(self.admin_port, "clock", timeout=2)
                break
            except AdminError:
                if time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"sim-gateway not ready within 90 s:\n{self.output()[-3000:]}") from None
                time.sleep(0.05)
        self.epoch = float(clock["epoch"])
        self.start = datetime.fromisoformat(clock["start"])
        self.speed = float(clock["speed"])
        return self

    def output(self) -> str:
        """What the gateway printed so far (stdout + stderr)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def ctl(self, command: str, **params: Any) -> Any:
        """Send an admin command (e.g. ``ctl("outage", seconds=60, data_lost=True)``); returns its result.

        Raises:
            AdminError: unreachable gateway or a refused command.
        """
        return request(self.admin_port, command, **params)

    def report(self) -> dict[str, Any]:
        """The gateway's report: positions, open orders, orders, executions, min_position, shorts,
        short_sells, rejected_short_sells, synthetic, clock (see :mod:`.admin`)."""
        return request(self.admin_port, "report")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._out is not None:
            with contextlib.suppress(Exception):
                self._out.close()
            self._out = None
