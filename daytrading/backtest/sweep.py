"""Parameter sweeps over backtests on Dask distributed: one task per (cell, session).

* :func:`open_client` starts a :class:`distributed.LocalCluster` (``workers`` processes, one
  thread each, default = the number of cores) or connects to an existing scheduler
  (``tcp://HOST:8786``). The recorded data folder must be readable at the same path on every
  worker; :func:`check_workers` asks each worker before anything is submitted.
* :class:`SweepRunner` submits one task per (cell, session). A task is
  ``run_session(data, session, settings, seed, symbols)`` on a worker; its
  :class:`~daytrading.backtest.SessionResult` comes back to the client, where a cell's metrics
  are combined from its sessions' trades (:func:`combine`, ``compute_metrics``), never on a
  worker. Bars are parsed once per worker process and file: the loader caches parsed files
  per (path, size, mtime) in the worker's process, and tasks of the same session reuse them.
* Runs are deterministic, so a run is identified by a hash of everything it depends on (data,
  session, settings, seed, symbols): the same run asked twice of one runner is computed once
  (an optimizer that suggests the same settings again gets them for free), and a task lost
  with a dead worker is recomputed by Dask (``distributed.scheduler.allowed-failures``, default
  3) with the same result. Each runner submits under its own Dask keys (hash + a per-runner
  token), so two sweeps on one shared cluster never hand each other released results.
* Ctrl+C (KeyboardInterrupt) in :meth:`SweepRunner.cells` cancels the pending futures; the cells
  already complete are kept by the caller.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any

from daytrading.errors import DataError, OperationalError

log = logging.getLogger(__name__)

__all__ = [
    "LOCAL_CLUSTER_CONFIG",
    "CellRun",
    "SessionRun",
    "SweepRunner",
    "check_workers",
    "combine",
    "data_benchmark",
    "open_client",
    "quiet_bot_logs",
    "run_task",
    "session_bars",
    "warm_up_worker",
]


# --------------------------------------------------------------------------- worker side


@dataclass(frozen=True)
class SessionRun:
    """One session-run of a sweep: what its task is given, and what identifies it.

    ``data`` is the data folder (absolute, the same path on every worker); ``window`` =
    (start, end) times of day, New York, to replay only that part of the session
    (``run_session``'s ``start``/``end``); None = the whole session.
    """

    data: str
    session: date
    settings: Any
    seed: int = 0
    symbols: tuple[str, ...] | None = None
    window: tuple[time, time] | None = None

    def key(self) -> str:
        """Identity of the run: the same inputs give the same key (runs are deterministic)."""
        span = f"{self.window[0].isoformat()}-{self.window[1].isoformat()}" if self.window else ""
        blob = "\0".join([self.data, self.session.isoformat(), self.settings.model_dump_json(), str(self.seed),
                          ",".join(self.symbols or ()), span])
        return f"backtest-{self.session.isoformat()}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}"


def run_task(run: SessionRun) -> Any:
    """One backtest session on a worker (the task function; importable by every worker).

    Returns the :class:`~daytrading.backtest.SessionResult` of ``run_session``.

    Raises:
        DataError: the data folder is missing on this worker (names the worker's host and path).
    """
    _thread_event_loop()
    from daytrading.backtest import run_session

    quiet_bot_logs()

    path = Path(run.data)
    if not path.exists():
        raise DataError(f"data folder {run.data} does not exist on worker host {os.uname().nodename}")
    from daytrading.backtest.cli import window_span

    return run_session(path, run.session, run.settings, seed=run.seed,
                       symbols=list(run.symbols) if run.symbols else None, **window_span(run.session, run.window))


def quiet_bot_logs() -> None:
    """Silence the bots' and ib_async's loggers in this process (``daytrading backtest``, a sweep's
    tasks and workers).

    A replay drives the production bots, whose warnings (cancelled orders, the gateway closing
    at the end of the replay, a missing watchlist file) would flood a worker's log or a terminal.
    """
    for name in ("daytrading", "ib_async"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _thread_event_loop() -> None:
    """Give a Dask worker thread the default event loop a main thread has.

    Dask runs tasks in worker threads, which have no event loop; ``eventkit`` (under
    ib_async) asks for one when it is imported and for timers. The backtest itself runs on
    its own looptime loop either way, so a run on a worker is the run made alone.
    """
    import asyncio

    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


def _check_data(data: str) -> str | None:
    """On a worker: None when ``data`` is a readable folder with files, else the reason."""
    path = Path(data)
    host = os.uname().nodename
    try:
        if not path.is_dir():
            return f"{data} is not a folder on worker host {host}"
        names = sorted(p.name for p in path.iterdir())
    except OSError as exc:
        return f"{data} cannot be read on worker host {host}: {exc.strerror or exc}"
    if not names:
        return f"{data} is empty on worker host {host}"
    if not os.access(path, os.R_OK | os.X_OK):
        return f"{data} is not readable by the worker's user on host {host}"
    return None


# --------------------------------------------------------------------------- client side


#: Dask configuration of the local cluster's workers. The statistical profiler
#: (``distributed.worker.profile``) is off: every 10 ms it walks the stack of the running task
#: on the worker's event-loop thread, holding the GIL, and a backtest's asyncio stacks are deep,
#: so it took about 0.5 s of CPU per whole-session run (6 %) that the run then waited for. Turn
#: it off on an existing cluster with ``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False`` in the
#: environment of ``dask worker`` (or ``distributed: worker: profile: enabled: false`` in its
#: Dask config file).
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {"distributed.worker.profile.enabled": False}


@contextmanager
def open_client(
    workers: int | None = None,
    scheduler: str | None = None,
    *,
    connect_timeout: float = 20.0,
    config: Mapping[str, Any] | None = None,
    warm_up: bool = True,
) -> Iterator[Any]:
    """A Dask client on a new local cluster or on an existing scheduler.

    The local cluster's workers run with :data:`LOCAL_CLUSTER_CONFIG` and, with ``warm_up``,
    import the backtest and build the exchange calendar when they start (:func:`warm_up_worker`),
    so the first task of each worker does not pay for it; each worker still parses the recorded
    files on its first task that needs them.

    Args:
        workers: number of local worker processes (one thread each); None = ``os.cpu_count()``.
            Ignored with ``scheduler``.
        scheduler: address of a running scheduler, e.g. ``tcp://10.0.0.5:8786``.
        connect_timeout: seconds to keep trying to reach ``scheduler``.
        config: Dask configuration of the local cluster (None = :data:`LOCAL_CLUSTER_CONFIG`;
            ``{}`` = Dask's defaults). Ignored with ``scheduler``: an existing cluster keeps its own.
        warm_up: register the warm-up worker plugin (on the local cluster, or on the existing
            one of ``scheduler``, where it warms the workers there now and those that join later).

    Raises:
        OperationalError: the scheduler cannot be reached (names the address), or ``workers``
            is below 1.
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{connect_timeout}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise OperationalError(
                f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc}); is `dask scheduler` running there?"
            ) from None
        try:
            if warm_up:
                _register_warm_up(client, scheduler)
            yield client
        finally:
            client.close()
        return
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise OperationalError(f"--workers {n}: need at least 1 worker")
    # the scheduler always serves HTTP (its dashboard, /health); without an address it takes
    # 8787, the daytrading dashboard's default port: a sweep beside a running supervisor would
    # then keep the page from starting, or lose its own. A free loopback port instead.
    # The nannies hand the configuration in force now to the worker processes they start.
    with dask.config.set(dict(LOCAL_CLUSTER_CONFIG if config is None else config)):
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
    client = Client(cluster)
    try:
        client.register_plugin(_ignore_ctrl_c_plugin(), name="daytrading-ignore-ctrl-c")
        if warm_up:
            client.register_plugin(_warm_up_plugin(), name="daytrading-warm-up")
        yield client
    finally:
        client.close()
        cluster.close()


def _register_warm_up(client: Any, scheduler: str) -> None:
    """Register the warm-up plugin on an existing cluster; a worker that refuses it is only logged.

    A worker that cannot import this package fails the plugin; :func:`check_workers` names it
    and its reason just after, so that message is the one the user sees.
    """
    try:
        client.register_plugin(_warm_up_plugin(), name="daytrading-warm-up")
    except Exception as exc:  # noqa: BLE001 - any worker-side error; check_workers reports it properly
        log.warning("warm-up plugin not registered on the cluster",
                    extra={"scheduler": scheduler, "error": f"{type(exc).__name__}: {exc}"})


def warm_up_worker() -> dict[str, float]:
    """Import what a backtest run needs and build the exchange calendar, in this process.

    Done once per worker process when it starts (the warm-up worker plugin), instead
    of in its first task: about 3 s of CPU here (imports of the bots, the sim-gateway,
    ib_async and pandas about 2.3 s; the XNYS calendar about 0.7 s). Also quiets the bots' and
    ib_async's logs as :func:`run_task` does. Returns the seconds (wall clock) each step took.
    """
    import time as _time

    start = _time.perf_counter()
    import daytrading.backtest.runner
    import daytrading.bots.day_trader
    import daytrading.bots.exit_manager
    import daytrading.sim_gateway  # noqa: F401 - imported for its side effect: loaded once, here
    from daytrading.clock import calendar

    imported = _time.perf_counter()
    calendar()
    quiet_bot_logs()
    return {"imports": imported - start, "calendar": _time.perf_counter() - imported}


def _warm_up_plugin() -> Any:
    """Worker plugin that runs :func:`warm_up_worker` when a worker starts (or at once on a running one).

    Applied to workers the nanny restarts as well; what it measured is kept in the worker's
    ``daytrading_warm_up`` attribute (seconds per step).
    """
    from distributed import WorkerPlugin

    class WarmUp(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            worker.daytrading_warm_up = warm_up_worker()

    return WarmUp()


def _ignore_ctrl_c_plugin() -> Any:
    """Worker plugin of the local cluster: its processes share the terminal, so Ctrl+C reaches them too.

    The client handles Ctrl+C (cancels the futures, keeps what is done, closes the cluster);
    the workers ignore SIGINT instead of dying with a traceback each. Applied to workers the
    nanny restarts as well.
    """
    from distributed import WorkerPlugin

    class IgnoreCtrlC(WorkerPlugin):
        def setup(self, worker: Any) -> None:  # noqa: ARG002 - WorkerPlugin interface
            import signal
            import threading

            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreCtrlC()


def check_workers(client: Any, data: Path, *, timeout: float = 60.0) -> int:
    """Ask every worker whether it can read ``data``; returns the number of workers.

    Waits up to ``timeout`` seconds for a first worker (an existing cluster may be starting).

    Raises:
        OperationalError: no worker, a worker that cannot import this package, or a worker
            that cannot read the folder (names each worker's address and the reason).
    """
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise OperationalError(f"no Dask worker joined the scheduler within {timeout:.0f} s") from None
    try:
        answers = client.run(_check_data, str(data))
    except (ImportError, ModuleNotFoundError) as exc:
        raise OperationalError(
            f"a Dask worker cannot import daytrading ({exc}); install the same version on every worker"
        ) from None
    bad = {addr: why for addr, why in answers.items() if why}
    if bad:
        lines = "; ".join(f"{addr}: {why}" for addr, why in sorted(bad.items()))
        raise OperationalError(
            f"the data folder must be readable at the same path by every Dask worker: {lines}"
        )
    return len(answers)


#: ``sessions -> benchmark daily returns or None``: ``backtest.metrics.benchmark_returns`` bound
#: to the data folder (and cached), so a cell's metrics match ``daytrading backtest`` alone.
Benchmark = Callable[[tuple[date, ...]], Any]


def combine(results: Sequence[Any], settings: Any, benchmark: Benchmark | None = None) -> tuple[dict[str, Any], str]:
    """Metrics and fingerprint of one cell from its sessions' results (in the client).

    ``results`` are :class:`SessionResult` objects; the metrics are ``compute_metrics`` over
    all their trades (in session order) with ``settings.sim.cash`` dollars of starting
    capital and the benchmark of those sessions, the fingerprint is ``fingerprint(results)``:
    the same as ``daytrading backtest --set`` gives for the same settings alone.
    """
    from daytrading.backtest import fingerprint
    from daytrading.backtest.metrics import compute_metrics

    ordered = sorted(results, key=lambda r: r.date)
    trades = [t for r in ordered for t in r.trades]
    bench = benchmark(tuple(r.date for r in ordered)) if benchmark else None
    metrics = compute_metrics(trades, ordered, settings.sim.cash, benchmark=bench)
    return dict(metrics), fingerprint(ordered)


def data_benchmark(data: Path) -> Benchmark:
    """The benchmark returns of ``data`` (SPY, else QQQ buy-and-hold) per tuple of sessions, cached."""
    import functools

    from daytrading.backtest.metrics import benchmark_returns

    @functools.lru_cache(maxsize=256)
    def bench(days: tuple[date, ...]) -> Any:
        return benchmark_returns(data, list(days))

    return bench


@dataclass
class CellRun:
    """One cell's runs: id, its settings, and its sessions' results once they are back."""

    cell_id: Any
    settings: Any
    sessions: tuple[date, ...]
    results: dict[date, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def complete(self) -> bool:
        """All sessions back, or failed."""
        return self.error is not None or len(self.results) == len(self.sessions)


class SweepRunner:
    """Submits (cell, session) runs to Dask and yields cells as their last session comes back.

    Args:
        client: a :class:`distributed.Client`.
        data: recorded data folder (absolute; the same path must exist on the workers).
        seed: the backtest seed of every run.
        symbols: restrict the runs to these symbols (None = every symbol in the data).
        window: replay only (start, end) times of day, New York, of each session (None = all of it).
        on_run: called in the client after each session-run is back, with ``(done, total)``.
    """

    def __init__(
        self,
        client: Any,
        data: Path,
        *,
        seed: int = 0,
        symbols: Sequence[str] | None = None,
        window: tuple[time, time] | None = None,
        on_run: Callable[[int, int], None] | None = None,
    ) -> None:
        from distributed import as_completed

        self.client = client
        self.data = str(Path(data).resolve())
        self.seed = seed
        self.symbols = tuple(symbols) if symbols else None
        self.window = window
        self.on_run = on_run
        self.done = 0
        self.total = 0
        self._cells: dict[Any, CellRun] = {}
        self._waiting: dict[str, list[tuple[Any, date]]] = {}
        self._futures: dict[str, Any] = {}
        self._keys: dict[str, str] = {}
        self._finished: dict[str, Any] = {}
        self._queue = as_completed()
        self._nonce = uuid.uuid4().hex[:8]
        self._ready: list[CellRun] = []
        self._costs: dict[date, int] = {}

    def _cost(self, session: date) -> int:
        """The session's estimated run cost (bars replayed, :func:`session_bars`), once per session."""
        if session not in self._costs:
            self._costs[session] = session_bars(Path(self.data), session, self.symbols, self.window)
        return self._costs[session]

    def submit(self, cell_id: Any, settings: Any, sessions: Sequence[date]) -> None:
        """Submit one task per session of a cell (runs already done or in flight are reused)."""
        cell = CellRun(cell_id, settings, tuple(sorted(sessions)))
        self._cells[cell_id] = cell
        self.total += len(cell.sessions)
        for session in cell.sessions:
            run = SessionRun(self.data, session, settings, self.seed, self.symbols, self.window)
            key = run.key()
            if key in self._finished:
                cell.results[session] = self._finished[key]
                self._count()
                continue
            self._waiting.setdefault(key, []).append((cell_id, session))
            if key not in self._futures:
                # longest runs first, so a worker is not left with a long one at the end
                # while the others idle; equal costs keep the order of submission
                future = self.client.submit(run_task, run, key=f"{key}-{self._nonce}", pure=False,
                                            priority=self._cost(session))
                self._keys[future.key] = key
                self._futures[key] = future
                self._queue.add(future)
        if cell.complete:
            self._ready.append(cell)

    def _count(self) -> None:
        self.done += 1
        if self.on_run:
            self.on_run(self.done, self.total)

    @property
    def pending(self) -> int:
        """Session-runs submitted and not back yet."""
        return self.total - self.done

    def cells(self) -> Iterator[CellRun]:
        """Yield each submitted cell once, when all its sessions are back or one failed.

        More cells may be submitted while iterating (the optimizer does). A failed run (an
        exception in the backtest, or a session that killed its workers too often) marks its
        cell with ``error`` naming the session, and the sweep goes on.

        Raises:
            KeyboardInterrupt: after cancelling every pending future (see :meth:`cancel`).
        """
        try:
            while True:
                while self._ready:
                    yield self._ready.pop(0)
                if not self._futures:
                    return
                self._arrived(next(self._queue))
        except KeyboardInterrupt:
            self.cancel()
            raise

    def _arrived(self, future: Any) -> None:
        key = self._keys.pop(future.key, None)
        if key is None or self._futures.pop(key, None) is None:
            return  # cancelled earlier
        waiting = self._waiting.pop(key, [])
        if future.status == "finished":
            result = future.result()
            self._finished[key] = result
            error = None
        else:
            result, error = None, self._describe(future)
        for cell_id, session in waiting:
            cell = self._cells[cell_id]
            was_complete = cell.complete
            if error is None:
                cell.results[session] = result
            elif cell.error is None:
                cell.error = f"session {session.isoformat()}: {error}"
            self._count()
            if cell.complete and not was_complete:
                self._ready.append(cell)
        future.release()

    @staticmethod
    def _describe(future: Any) -> str:
        from distributed import KilledWorker

        if future.status == "cancelled":
            return "cancelled"
        exc = future.exception()
        if isinstance(exc, KilledWorker):
            return f"the run killed its Dask worker too many times ({exc}); out of memory?"
        return f"{type(exc).__name__}: {exc}"

    def cancel(self) -> None:
        """Cancel every future not yet back (Ctrl+C); finished results stay."""
        pending = list(self._futures.values())
        if pending:
            self.client.cancel(pending)
        self._futures.clear()
        self._queue.clear()


def session_bars(data: Path, session: date, symbols: Sequence[str] | None = None,
                 window: tuple[time, time] | None = None) -> int:
    """Number of recorded bars a run of ``session`` replays (all its symbols; within ``window``).

    A run's time grows with the bars it replays, so this orders the tasks of a sweep (longest
    first). Read in the client from the loader's cache of parsed files (``list_sessions`` has
    parsed them already); 0 when the session has no bars (its run reports why).
    """
    from daytrading.marketdata.loader import load_session

    try:
        frames = load_session(data, session, list(symbols) if symbols else None)
    except DataError:
        return 0
    if window is None:
        return sum(len(f) for f in frames.values())
    from daytrading.backtest.cli import window_span

    span = window_span(session, window)
    return sum(int(f.index.searchsorted(span["end"])) - int(f.index.searchsorted(span["start"])) for f in frames.values())


def sessions_of(results: Mapping[date, Any], wanted: Sequence[date]) -> list[Any]:
    """The results of the ``wanted`` sessions, in session order."""
    return [results[d] for d in sorted(wanted)]


# --------------------------------------------------------------------------- grid and walk-forward


@dataclass
class CellOutcome:
    """A finished cell: its swept values, metrics over all its sessions, fingerprint.

    ``values`` maps each swept key to the effective (typed) setting, ``metrics`` is
    ``compute_metrics``' dict (None when a run failed, then ``error`` names the session),
    ``results`` the per-session :class:`SessionResult` by date.
    """

    index: int
    values: dict[str, Any]
    settings: Any
    metrics: dict[str, Any] | None
    fingerprint: str | None
    error: str | None
    results: dict[date, Any]

    def as_json(self) -> dict[str, Any]:
        """``{"settings", "metrics", "fingerprint"}`` (plus ``"error"`` when a run failed)."""
        out: dict[str, Any] = {"settings": self.values, "metrics": self.metrics, "fingerprint": self.fingerprint}
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class SweepOutcome:
    """Everything a sweep produced; ``interrupted`` when Ctrl+C stopped it (complete cells kept)."""

    metric: str
    keys: list[str]
    cells: list[CellOutcome]
    best: CellOutcome | None
    walk_forward: list[dict[str, Any]]
    interrupted: bool = False
    runs_done: int = 0
    runs_total: int = 0


def effective_value(settings: Any, key: str) -> Any:
    """The value of a dotted settings key (``entry.rsi_max``) in ``settings``, JSON-friendly."""
    obj = settings
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj if isinstance(obj, int | float | str | bool) or obj is None else str(obj)


def finish_cell(run: CellRun, index: int, keys: Sequence[str], benchmark: Benchmark | None = None) -> CellOutcome:
    """Combine a complete :class:`CellRun` into a :class:`CellOutcome` (in the client)."""
    values = {k: effective_value(run.settings, k) for k in keys}
    if run.error:
        return CellOutcome(index, values, run.settings, None, None, run.error, dict(run.results))
    metrics, fp = combine(list(run.results.values()), run.settings, benchmark)
    return CellOutcome(index, values, run.settings, metrics, fp, None, dict(run.results))


def best_of(cells: Sequence[CellOutcome], metric: str) -> CellOutcome | None:
    """The cell with the best ``metric`` (ties: the earlier cell); None if no cell has metrics."""
    from daytrading.backtest.sweep_grid import score

    ranked = [c for c in cells if c.metrics is not None]
    if not ranked:
        return None
    return max(ranked, key=lambda c: (score(c.metrics, metric), -c.index))


def rank(cells: Sequence[CellOutcome], metric: str) -> list[CellOutcome]:
    """Cells best first by ``metric``; failed cells last, in grid order."""
    from daytrading.backtest.sweep_grid import score

    return sorted(
        cells,
        key=lambda c: (c.metrics is None, -(score(c.metrics, metric) if c.metrics else 0.0), c.index),
    )


def run_grid(
    runner: SweepRunner,
    cells: Sequence[tuple[dict[str, str], Any]],
    sessions: Sequence[date],
    metric: str,
    *,
    windows: Sequence[Any] = (),
    benchmark: Benchmark | None = None,
    on_cell: Callable[[CellOutcome, CellOutcome | None], None] | None = None,
) -> SweepOutcome:
    """Run every (cell, session) on the runner's cluster and rank the cells.

    Args:
        runner: the :class:`SweepRunner` (its client, data, seed and symbols).
        cells: ``(overrides, settings)`` per cell, already validated (``validate_cells``).
        sessions: the sessions every cell runs.
        metric: the ranking metric (``sweep_grid.metric_direction`` knows its sign).
        windows: walk-forward windows (``walk_forward_windows``); empty = no walk-forward.
        benchmark: benchmark returns per set of sessions (:func:`data_benchmark`); None = none.
        on_cell: called in the client after each finished cell with it and the best so far.

    Ctrl+C cancels the pending runs and returns the cells already complete
    (``interrupted=True``, no walk-forward).
    """
    keys = list(cells[0][0]) if cells else []
    for index, (_overrides, settings) in enumerate(cells):
        runner.submit(index, settings, sessions)
    done: list[CellOutcome] = []
    best: CellOutcome | None = None
    interrupted = False
    try:
        for run in runner.cells():
            outcome = finish_cell(run, run.cell_id, keys, benchmark)
            done.append(outcome)
            best = best_of([c for c in (best, outcome) if c is not None], metric)
            if on_cell:
                on_cell(outcome, best)
    except KeyboardInterrupt:
        interrupted = True
    done.sort(key=lambda c: c.index)
    table = [] if interrupted or not windows else walk_forward(done, windows, metric, benchmark)
    return SweepOutcome(metric, keys, done, best_of(done, metric), table, interrupted, runner.done, runner.total)


def walk_forward(
    cells: Sequence[CellOutcome], windows: Sequence[Any], metric: str, benchmark: Benchmark | None = None
) -> list[dict[str, Any]]:
    """The walk-forward table: per window, the best cell on its training sessions, scored on its test sessions.

    Returns one row per window: ``window``, ``train_from``/``train_to``/``test_from``/``test_to``
    (ISO dates), ``settings`` (the chosen cell's swept values), ``in_sample`` and
    ``out_of_sample`` (``metric`` on the training and on the test sessions), and the same two for
    ``total_pnl`` (dollars) and ``trades``. Cells that failed are never chosen.
    """
    from daytrading.backtest.sweep_grid import score

    ok = [c for c in cells if c.metrics is not None]
    rows: list[dict[str, Any]] = []
    for window in windows:
        if not ok:
            break
        scored = []
        for cell in ok:
            metrics, _ = combine(sessions_of(cell.results, window.train), cell.settings, benchmark)
            scored.append((score(metrics, metric), -cell.index, cell, metrics))
        _, _, chosen, train_metrics = max(scored, key=lambda s: s[:2])
        test_metrics, _ = combine(sessions_of(chosen.results, window.test), chosen.settings, benchmark)
        rows.append({
            "window": window.index + 1,
            "train_from": window.train[0].isoformat(),
            "train_to": window.train[-1].isoformat(),
            "test_from": window.test[0].isoformat(),
            "test_to": window.test[-1].isoformat(),
            "settings": dict(chosen.values),
            "in_sample": train_metrics.get(metric),
            "out_of_sample": test_metrics.get(metric),
            "in_sample_pnl": train_metrics.get("total_pnl"),
            "out_of_sample_pnl": test_metrics.get("total_pnl"),
            "in_sample_trades": train_metrics.get("trades"),
            "out_of_sample_trades": test_metrics.get("trades"),
        })
    return rows
