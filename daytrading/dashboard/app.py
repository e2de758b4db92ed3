"""The dashboard's web application (FastAPI): page, health, metrics, JSON API, live stream, controls.

Routes (OpenAPI schema at ``/openapi.json``; no Swagger UI, which would load from a CDN):

* ``GET /`` — the page (Jinja2, server-rendered), updated live from ``/api/stream``;
* ``GET /health`` — 200 or 503 with every check, its value and threshold (for monitoring);
* ``GET /metrics`` — Prometheus text format;
* ``GET /api/status``, ``/api/positions``, ``/api/trades?date=``, ``/api/gates?date=&symbol=``,
  ``/api/events?since=&level=&limit=``;
* ``GET /api/stream`` — Server-Sent Events: ``sync`` first (the page's state on every connect
  and reconnect: the whole trades table, or only the rows a page lacks when it says what it
  holds with ``Last-Event-ID`` or ``?after=``), then ``status``, ``positions``, ``fill``,
  ``exit`` (only the new trades, never the table), ``gate``, ``critical`` (each ``data`` is
  JSON; the page also gets rendered HTML fragments in ``html`` and rows in ``trade_rows``);
* ``POST /api/control/freeze|unfreeze|liquidate-all`` — only with ``dashboard.token`` set, as a
  bearer token (see :mod:`daytrading.dashboard.controls`).

Every database read runs in a worker thread on read-only connections; one snapshot is shared
by all requests for ``dashboard.poll_interval`` wall seconds, each answer is built once per
snapshot, and an identical GET within that interval gets the stored bytes (:class:`Answers`),
so 200 requests per second cost about as much as one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field, TypeAdapter

from daytrading.clock import NY, Clock
from daytrading.config import Settings
from daytrading.coordination.api import TradeView
from daytrading.dashboard import controls
from daytrading.dashboard.metrics import metrics_text
from daytrading.dashboard.reader import Cursor, Reader, TradeRows
from daytrading.dashboard.stream import Feed, StreamFull, frame, to_json

log = logging.getLogger("daytrading.dashboard")
HERE = Path(__file__).resolve().parent
SYMBOL_PATTERN = r"^[A-Za-z][A-Za-z0-9.\-]{0,15}$"


class TTLCache:
    """Values computed in a worker thread and shared for ``ttl`` wall seconds (one computation
    at a time per key; errors are not cached). A value's age counts from the start of its
    computation, so it never holds anything older than its timestamp says."""

    def __init__(self, ttl: float, size: int = 64) -> None:
        self.ttl = ttl
        self.size = size
        self._data: dict[Any, tuple[float, Any]] = {}
        self._locks: dict[Any, asyncio.Lock] = {}

    def _usable(self, key: Any, started_after: float | None) -> tuple[float, Any] | None:
        hit = self._data.get(key)
        if hit is None or time.monotonic() - hit[0] >= self.ttl:
            return None
        if started_after is not None and hit[0] < started_after:
            return None
        return hit

    async def get(self, key: Any, compute: Callable[[], Any], started_after: float | None = None) -> Any:
        """The cached value of ``key``, else ``compute()`` run in a thread.

        Args:
            started_after: a ``time.monotonic()`` reading; a value whose computation started
                before it is not used (the caller has seen newer rows than it may hold).
        """
        return (await self.entry(key, compute, started_after))[1]

    async def entry(self, key: Any, compute: Callable[[], Any], started_after: float | None = None
                    ) -> tuple[float, Any]:
        """Like :meth:`get`, with the ``time.monotonic()`` reading at which the value's
        computation started: ``(started, value)``."""
        hit = self._usable(key, started_after)
        if hit is not None:
            return hit
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self._usable(key, started_after)
            if hit is not None:
                return hit
            started = time.monotonic()
            value = await asyncio.to_thread(compute)
            self._data[key] = (started, value)
            if len(self._data) > self.size:
                oldest = min(self._data, key=lambda k: self._data[k][0])
                self._data.pop(oldest, None)
                self._locks.pop(oldest, None)
            return started, value


class PerTrade:
    """Strings made once per trade (a table row, its JSON), kept while the newest trades list
    seen holds the trade: the rows read incrementally are the same objects from one read to
    the next, so a new exit costs one string, not one per trade of the session."""

    def __init__(self, make: Callable[[int, Any], str]) -> None:
        self.make = make
        self._kept: dict[int, tuple[Any, str]] = {}  # id(TradeView) -> (it, its string)
        self._of: list[Any] | None = None  # the trades list the store was pruned for

    def get(self, trades: list[Any], wanted: Any) -> list[str]:
        """The strings of ``wanted``, ``(trades.id, TradeView)`` pairs of ``trades``."""
        kept = self._kept
        if self._of is not trades:  # a new read: keep only the trades it still holds
            held = {id(t) for t in trades}
            kept = self._kept = {k: v for k, v in kept.items() if k in held}
            self._of = trades
        out = []
        for tid, t in wanted:
            hit = kept.get(id(t))
            if hit is None or hit[0] is not t:
                hit = kept[id(t)] = (t, self.make(tid, t))
            out.append(hit[1])
        return out


class Answers:
    """Finished answers to GETs, kept for identical GETs within ``ttl`` wall seconds of the
    moment the data they show began to be read (served by :class:`ServeAnswers` without
    routing, query validation, rendering or encoding: 200 page loads and scrapes per second
    then cost about one answer each per poll interval).

    Identical = same path and the same raw query string. Only answers that a route stored with
    :meth:`store` (after validating its parameters and building the body) are served, so a
    malformed query never gets here; ``started`` is the ``time.monotonic()`` reading at which
    the oldest data in the body began to be read, so a served answer is never older than a
    freshly built one could be (the :class:`TTLCache` rule).
    """

    #: distinct path + query strings kept at most; the store is cleared when full
    SIZE = 256

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._kept: dict[tuple[str, bytes], tuple[float, dict[str, Any], dict[str, Any]]] = {}
        self.hits = 0

    def store(self, scope: dict[str, Any], started: float, response: Response) -> None:
        """Keep ``response`` (built from data read from ``started`` on) for identical GETs."""
        if scope.get("method") != "GET":
            return
        if len(self._kept) >= self.SIZE:
            self._kept.clear()
        self._kept[(scope["path"], scope.get("query_string", b""))] = (
            started,
            {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers},
            {"type": "http.response.body", "body": response.body})

    def lookup(self, scope: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The ASGI messages (start, body) of a fresh answer to this GET, else None."""
        if scope["method"] != "GET":
            return None
        hit = self._kept.get((scope["path"], scope.get("query_string", b"")))
        if hit is None or time.monotonic() - hit[0] >= self.ttl:
            return None
        self.hits += 1
        return hit[1], hit[2]


class ServeAnswers:
    """Pure ASGI middleware in front of the application: a GET with a fresh answer in
    ``answers`` gets it at once (two ``send`` calls of pre-built messages)."""

    def __init__(self, app: Any, answers: Answers) -> None:
        self.app = app
        self.answers = answers

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "http":
            hit = self.answers.lookup(scope)
            if hit is not None:
                await send(hit[0])
                await send(hit[1])
                return
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------- response models (OpenAPI)


class Check(BaseModel):
    """One health check: its name, verdict, the value seen and the threshold it is held to."""

    name: str
    ok: bool
    value: Any
    threshold: str


class Health(BaseModel):
    """``/health``: ``ok`` is true (HTTP 200) only when every check passes (else HTTP 503)."""

    ok: bool
    checks: list[Check]
    market_time: str
    session_date: str | None


class Bot(BaseModel):
    """A bot as ``daytrading status`` shows it (ages and uptime in wall seconds)."""

    bot: str
    state: str
    pid: int | None
    uptime_s: float | None
    restarts: int | None
    last_exit_code: int | None
    heartbeat_state: str | None
    heartbeat_age_s: float | None
    stale: bool


class Status(BaseModel):
    """Bots, the session's figures (dollars; ``realized_pnl_pct`` percent of capital traded) and health."""

    market_time: str
    session_date: str
    session_source: str
    session_label: str
    bots: list[Bot]
    positions: int
    closed_today: int
    trades: int
    wins: int
    losses: int
    realized_pnl: float
    realized_pnl_pct: float | None
    unrealized_pnl: float
    gate_rejections: dict[str, int]
    freeze: dict[str, Any] | None
    healthy: bool


class Position(BaseModel):
    """An active position with its last recorded price; distances in percent, ``last_age_s`` wall seconds."""

    symbol: str
    status: str
    quantity: float
    entry: float | None
    last: float | None
    last_age_s: float | None
    pnl: float | None
    pnl_pct: float | None
    target: float | None
    to_target_pct: float | None = Field(description="(target / last − 1) × 100: how far the price must rise")
    stop: float | None
    to_stop_pct: float | None = Field(description="(last / stop − 1) × 100: how far the price may fall")
    since: datetime | None


class Positions(BaseModel):
    market_time: str
    positions: list[Position]
    unrealized_pnl: float


class Trades(BaseModel):
    """A session's trades (``pnl`` dollars after commissions, ``pnl_pct`` percent)."""

    session_date: date
    trades: list[TradeView]
    realized_pnl: float


#: Encodes one trade as the ``Trades`` model encodes each of its ``trades``.
TRADE_JSON: TypeAdapter[TradeView] = TypeAdapter(TradeView)


class GateCount(BaseModel):
    gate: str
    rejections: int
    symbols: int
    latest_reason: str | None


class GateVerdict(BaseModel):
    symbol: str
    ts: datetime
    gate: str
    passed: bool
    reason: str


class Gates(BaseModel):
    """Rejections by gate and each symbol's latest verdict; with ``symbol``, its latest decisions."""

    session_date: str
    by_gate: list[GateCount]
    latest: list[GateVerdict]
    decisions: list[dict[str, Any]] | None = None


class EventRow(BaseModel):
    id: int
    ts: datetime
    session_date: date
    bot: str
    level: str
    kind: str
    symbol: str | None
    message: str
    data: Any = None


class Events(BaseModel):
    events: list[EventRow]
    next_since: int = Field(description="pass as ?since= to get only newer events")


class FreezeBody(BaseModel):
    reason: str = Field("frozen from the dashboard", min_length=1, max_length=200)


class LiquidateBody(BaseModel):
    confirm: Literal["LIQUIDATE"] = Field(description='must be exactly "LIQUIDATE"')


# ---------------------------------------------------------------------- rendering helpers


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))

    def money(x: float | None) -> str:
        return "-" if x is None else f"{x:+,.2f}"

    def num(x: float | None, spec: str = ".2f") -> str:
        return "-" if x is None else format(x, spec)

    def hm(ts: Any) -> str:
        if ts is None:
            return "-"
        if isinstance(ts, str):
            ts = datetime.fromisoformat(ts)
        return ts.astimezone(NY).strftime("%H:%M:%S")

    env.filters.update(money=money, num=num, hm=hm)
    return env


def _status_model(snap: dict[str, Any]) -> dict[str, Any]:
    s = snap["status"]
    keys = ("market_time", "session_date", "session_source", "session_label", "bots", "closed_today", "trades",
            "wins", "losses", "realized_pnl", "realized_pnl_pct", "gate_rejections", "freeze")
    return {**{k: s[k] for k in keys}, "positions": len(snap["positions"]), "unrealized_pnl": snap["unrealized_pnl"],
            "healthy": snap["health"]["ok"]}


class Dashboard:
    """The application's state: the reader, the shared snapshot cache, templates and the live feed."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.reader = Reader(settings, clock)
        self.cache = TTLCache(settings.dashboard.poll_interval)
        self.env = _templates()
        self.controls = bool(settings.dashboard.token.get_secret_value())
        self.cursor: Cursor | None = None
        self._responses: dict[Any, tuple[dict[str, Any], tuple[bytes, int, str]]] = {}
        self._rendered: tuple[dict[str, Any] | None, dict[str, str]] = (None, {})
        self._welcome: tuple[dict[str, Any] | None, bytes] = (None, b"")
        self._trades_html: tuple[list[Any], str | None, str] | None = None
        row = self.env.get_template("_trade.html")
        self._rows = PerTrade(lambda tid, t: row.render(t=t, id=tid) + "\n")
        self._json = PerTrade(lambda _tid, t: TRADE_JSON.dump_json(t).decode())
        self._cursor_lock = asyncio.Lock()
        self._state_sent: dict[str, tuple[str, float]] = {}  # kind -> (clock-free JSON, monotonic time sent)
        self.answers = Answers(settings.dashboard.poll_interval)
        self.feed = Feed(self.poll, settings.dashboard.poll_interval, settings.dashboard.max_stream_clients,
                         welcome=self.welcome)

    async def snapshot(self, day: date | None = None, started_after: float | None = None) -> dict[str, Any]:
        """The snapshot of session ``day`` (shared by every request for one poll interval); with
        ``started_after`` (a ``time.monotonic()`` reading), one read after that instant."""
        return await self.cache.get(("snapshot", day), lambda: self.reader.snapshot(day), started_after)

    async def respond(self, request: Request, key: Any, day: date | None,
                      build: Callable[[dict[str, Any]], tuple[bytes, int, str]], started: float | None = None
                      ) -> Response:
        """A response built once per snapshot: ``build(snap)`` → (body, status, media type),
        kept in :attr:`answers` for identical requests within the poll interval.

        200 requests per second then cost one rendering (page, JSON, metrics) per poll interval.

        Args:
            started: when other data in the body (beside the snapshot) began to be read
                (``time.monotonic()``); the older of the two dates the answer.
        """
        snap_started, snap = await self.cache.entry(("snapshot", day), lambda: self.reader.snapshot(day))
        hit = self._responses.get(key)
        if hit is None or hit[0] is not snap:
            if len(self._responses) > 256:
                self._responses.clear()
            hit = self._responses[key] = (snap, build(snap))
        body, status, media = hit[1]
        response = Response(body, status_code=status, media_type=media)
        self.answers.store(request.scope, min(snap_started, started or snap_started), response)
        return response

    def fragments(self, snap: dict[str, Any], *names: str) -> dict[str, str]:
        """The page's partial templates rendered for ``snap``, keyed by element id (each
        rendered once per snapshot: the stream's messages and every ``sync`` share them)."""
        if self._rendered[0] is not snap:
            self._rendered = (snap, {})
        done = self._rendered[1]
        ctx = {"snap": snap, "controls": self.controls}
        for name in names:
            if name in done:
                continue
            if name == "trades":  # the longest table: drawn again only for other rows (snapshots share them)
                held = self._trades_html
                if held is None or held[0] is not snap["trades"] or held[1] != snap.get("session_label"):
                    held = self._trades_html = (snap["trades"], snap.get("session_label"), self._trades_table(ctx))
                done[name] = held[2]
            else:
                done[name] = self.env.get_template(f"_{name}.html").render(ctx)
        return {name: done[name] for name in names}

    def _trades_table(self, ctx: dict[str, Any]) -> str:
        """The trades table's rows (``_trades.html``), each trade's row (``_trade.html``)
        rendered once: the rows read incrementally are the same objects from one read to the
        next, so a new exit costs one row, not the whole table."""
        trades = ctx["snap"]["trades"]
        if not trades:
            return self.env.get_template("_trades.html").render(ctx)
        return "\n" + "".join(self.trade_rows(trades, zip(trades.ids, trades, strict=True)))

    def trade_rows(self, trades: TradeRows, wanted: Any) -> list[str]:
        """The ``_trade.html`` rows of ``wanted`` (``(trades.id, TradeView)`` pairs of
        ``trades``), each rendered once and kept while ``trades`` holds it."""
        return self._rows.get(trades, wanted)

    def trades_json(self, data: dict[str, Any]) -> tuple[bytes, int, str]:
        """``/api/trades``'s body, byte for byte what the ``Trades`` model writes, with each
        trade encoded once (a new exit costs one trade's JSON, not the session's)."""
        trades = data["trades"]
        head = Trades.model_validate({**data, "trades": []}).model_dump_json()
        rows = self._json.get(trades, zip(getattr(trades, "ids", range(len(trades))), trades, strict=True))
        body = head.replace('"trades":[]', '"trades":[' + ",".join(rows) + "]", 1)
        return body.encode(), 200, "application/json"

    def new_trade_rows(self, snap: dict[str, Any], after: int) -> tuple[str, int]:
        """The rows of the snapshot's trades with a ``trades.id`` above ``after`` (rendered as
        in the table) and the session's number of trades: what a page that holds every trade
        up to ``after`` lacks."""
        trades = snap["trades"]
        ids = getattr(trades, "ids", [])
        rows = self.trade_rows(trades, [(i, t) for i, t in zip(ids, trades, strict=True) if i > after])
        return "".join(rows), len(trades)

    def page(self, snap: dict[str, Any], requested: date | None) -> str:
        """The whole page: its frame around the fragments (the same strings the stream sends);
        ``data-held`` on its body says which trades it shows (see :meth:`welcome`)."""
        held = held_id(snap["session_date"], max(getattr(snap["trades"], "ids", []), default=0))
        return self.env.get_template("index.html").render(
            snap=snap, controls=self.controls, requested=requested.isoformat() if requested else "", held=held,
            frag=self.fragments(snap, *self.FRAGMENTS), poll_ms=int(self.settings.dashboard.poll_interval * 1000))

    #: Every fragment of the page, keyed by element id.
    FRAGMENTS = ("health", "summary", "positions", "trades", "equity", "gates", "events")
    #: What a ``sync`` message carries besides the trades (the page draws the equity curve from
    #: the trades table's rows itself).
    SYNC_FRAGMENTS = ("health", "summary", "positions", "gates", "events")

    async def _ensure_cursor(self) -> Cursor:
        """The stream's cursor, read once (before any ``sync`` snapshot, so that no row can
        fall between the page a stream starts with and the rows it streams)."""
        async with self._cursor_lock:
            if self.cursor is None:
                self.cursor = await asyncio.to_thread(self.reader.cursor)
        return self.cursor

    async def welcome(self, subscribed: float, held: str | None = None) -> bytes:
        """The first message of a new stream, encoded: ``sync`` with the page's fragments from
        a snapshot read after ``subscribed`` (``time.monotonic()``), so a page that reconnects
        after a gap shows the exits recorded meanwhile.

        Args:
            held: what the page already shows, as an SSE event id ``"<session>:<trades.id>"``
                (the ``Last-Event-ID`` of a reconnect, or the ``after`` the page was rendered
                with): then only the trade rows above that id of that session are sent
                (``trade_rows``, with ``trades_total``); otherwise the whole trades table
                (``html.trades``). A full sync is encoded once per snapshot (50 pages
                reconnecting at once share one).
        """
        await self._ensure_cursor()
        snap = await self.snapshot(started_after=subscribed)
        event_id = held_id(snap["session_date"], max(getattr(snap["trades"], "ids", []), default=0))
        data = {"session_date": snap["session_date"], "market_time": snap["market_time"],
                "html": self.fragments(snap, *self.SYNC_FRAGMENTS)}
        after = parse_held(held, snap["session_date"])
        if after is not None:
            data["trade_rows"], data["trades_total"] = self.new_trade_rows(snap, after)
            return frame("sync", to_json(data), event_id).encode()
        if self._welcome[0] is not snap:
            data["html"] = {**data["html"], **self.fragments(snap, "trades")}
            data["trades_total"] = len(snap["trades"])
            self._welcome = (snap, frame("sync", to_json(data), event_id).encode())
        return self._welcome[1]

    #: Wall seconds after which a ``status`` or ``positions`` message is sent again although
    #: only its clocks moved (:data:`CLOCK_FIELDS`: market time, ages, uptime); any other change
    #: goes out at the next tick. Without it every tick would send both to every client.
    STATE_REFRESH_S = 5.0

    def _state_due(self, kind: str, data: dict[str, Any]) -> bool:
        """Whether the state message ``kind`` with ``data`` (without its HTML) is to be sent
        now: its clock-free content changed, or :attr:`STATE_REFRESH_S` passed since it was."""
        key = to_json(without_clocks(data))
        now = time.monotonic()
        last = self._state_sent.get(kind)
        if last is not None and last[0] == key and now - last[1] < self.STATE_REFRESH_S:
            return False
        self._state_sent[kind] = (key, now)
        return True

    async def poll(self) -> list[tuple[Any, ...]]:
        """One tick of the live stream: the state messages (when due, see :meth:`_state_due`)
        and one message per kind of new rows.

        An ``exit`` message carries only the new trades (``trades`` as JSON, ``trade_rows``
        rendered for the page, ``trades_total`` of the session) and the summary cards, never
        the table: its size does not grow with the session's trades. Its SSE id
        ``"<session>:<cursor>"`` says which trades a page that received it holds.
        """
        cursor = await self._ensure_cursor()
        streamed = cursor.trade  # every trade up to this id has gone out (or was in the page's sync)
        changes = await asyncio.to_thread(self.reader.changes, cursor)
        # The fragments must show at least the rows just streamed: a snapshot read before them
        # (cached by a page request) would render an exit's trades table without that exit,
        # and the cursor has moved past it, so it would never be sent again.
        seen = time.monotonic() if any(changes.values()) else None
        snap = await self.snapshot(started_after=seen)
        base = {"session_date": snap["session_date"], "market_time": snap["market_time"]}
        out: list[tuple[Any, ...]] = []
        status = {**base, "status": _status_model(snap), "health": snap["health"]} if snap.get("status") else None
        if status is not None and self._state_due("status", status):
            out.append(("status", {**status, "html": self.fragments(snap, "health", "summary")}))
        positions = {**base, "positions": snap["positions"]}
        if self._state_due("positions", positions):
            out.append(("positions", {**positions, "html": self.fragments(snap, "positions")}))
        if changes["fills"]:
            out.append(("fill", {**base, "fills": changes["fills"]}))
        if changes["trades"]:
            # the rows of every trade of the snapshot not yet streamed: those just read, and any
            # committed after them but before the snapshot, so that the page holds as many rows
            # as trades_total says (a later tick streams those again; the page replaces them)
            rows, total = self.new_trade_rows(snap, streamed)
            out.append(("exit", {**base, "trades": changes["trades"], "trade_rows": rows,
                                 "trades_total": total, "html": self.fragments(snap, "summary")},
                        held_id(snap["session_date"], cursor.trade)))
        if changes["gates"]:
            out.append(("gate", {**base, "decisions": changes["gates"][-50:], "count": len(changes["gates"]),
                                 "html": self.fragments(snap, "gates")}))
        notable = [e for e in changes["events"] if e["level"] in ("CRITICAL", "ERROR")]
        if notable:
            out.append(("critical", {**base, "events": notable, "html": self.fragments(snap, "events")}))
        return out


#: Fields that change with the clocks alone (see :attr:`Dashboard.STATE_REFRESH_S`).
CLOCK_FIELDS = frozenset({"market_time", "heartbeat_age_s", "uptime_s", "age_s", "last_age_s"})


def without_clocks(data: Any) -> Any:
    """``data`` (JSON-like) without the :data:`CLOCK_FIELDS` keys, at any depth."""
    if isinstance(data, dict):
        return {k: without_clocks(v) for k, v in data.items() if k not in CLOCK_FIELDS}
    if isinstance(data, list):
        return [without_clocks(v) for v in data]
    return data


HELD_PATTERN = r"^(\d{4}-\d{2}-\d{2})?:\d{1,18}$"


def held_id(session: str | None, trade_id: int) -> str:
    """The SSE event id ``"<session>:<trades.id>"`` saying that a page holds ``session``'s
    trades up to ``trade_id`` (read back by :func:`parse_held`)."""
    return f"{session or ''}:{trade_id}"


def parse_held(held: str | None, session: str | None) -> int | None:
    """The ``trades.id`` up to which a page holds session ``session``'s trades, from an SSE
    event id ``"<session>:<id>"``; None (send the whole table) when absent, malformed or of
    another session."""
    if not held or ":" not in held:
        return None
    day, _, number = held.partition(":")
    if day != (session or "") or not number.isdigit() or len(number) > 18:
        return None
    return int(number)


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    """The dashboard application for ``settings`` (database, log folder, dashboard.* settings)."""
    from daytrading.runtime import build_clock

    d = Dashboard(settings, clock or build_clock(settings))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        yield
        await d.feed.close()

    app = FastAPI(title="daytrading dashboard", version="1", docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Read-only view of the running system; controls need dashboard.token.")
    app.state.dashboard = d
    app.add_middleware(ServeAnswers, answers=d.answers)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_exception_handler(RequestValidationError, _bad_request)  # type: ignore[arg-type]
    _add_pages(app, d)
    _add_api(app, d)
    _add_controls(app, settings)
    return app


async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 whose ``message`` names each bad parameter, its value and the rule."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = {"query": "query parameter", "body": "field", "path": "path parameter"}.get(loc[0], loc[0]) \
            if loc else "input"
        parts.append(f"{where} '{'.'.join(loc[1:]) or '?'}' = {err.get('input')!r}: {err.get('msg')}")
    return JSONResponse(status_code=422, content={"message": "; ".join(parts) or "invalid request",
                                                  "detail": jsonable_encoder(exc.errors())})


def _json(model: type[BaseModel], data: dict[str, Any], status: int = 200) -> tuple[bytes, int, str]:
    """``data`` validated by its response model (the OpenAPI schema) and encoded once."""
    return model.model_validate(data).model_dump_json().encode(), status, "application/json"


def _add_pages(app: FastAPI, d: Dashboard) -> None:
    @app.get("/", response_class=HTMLResponse, summary="the dashboard page")
    async def page(request: Request, date: date | None = Query(  # noqa: B008
            None, description="session YYYY-MM-DD (default: current, else latest)")) -> Response:
        return await d.respond(request, ("page", date), date,
                               lambda snap: (d.page(snap, date).encode(), 200, "text/html"))

    @app.get("/health", response_model=Health, summary="200 when healthy, 503 otherwise",
             responses={503: {"model": Health, "description": "a check failed"}})
    async def health(request: Request) -> Response:
        def build(snap: dict[str, Any]) -> tuple[bytes, int, str]:
            body = {**snap["health"], "market_time": snap["market_time"], "session_date": snap["session_date"]}
            return _json(Health, body, 200 if body["ok"] else 503)

        return await d.respond(request, "health", None, build)

    @app.get("/metrics", summary="Prometheus text format", response_class=Response)
    async def metrics(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return await d.respond(request, "metrics", None, lambda snap: (metrics_text(snap), 200, CONTENT_TYPE_LATEST))

    @app.get("/api/stream", summary="Server-Sent Events: sync (first), status, positions, fill, exit, gate, critical",
             response_class=StreamingResponse)
    async def stream(request: Request, after: str | None = Query(  # noqa: B008
            None, pattern=HELD_PATTERN, description='"<session>:<trades.id>": the page holds that session\'s '
            'trades up to that id (the page\'s data-held); the Last-Event-ID header of a reconnect wins')) -> Response:
        try:
            frames = await d.feed.subscribe(request.headers.get("last-event-id") or after)
        except StreamFull as exc:
            raise HTTPException(503, str(exc)) from None
        return StreamingResponse(frames, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _add_api(app: FastAPI, d: Dashboard) -> None:
    async def respond(request: Request, key: Any, day: date | None, model: type[BaseModel],
                      data: Callable[[dict[str, Any]], dict[str, Any]], started: float | None = None,
                      encode: Callable[[dict[str, Any]], tuple[bytes, int, str]] | None = None) -> Response:
        snap = await d.snapshot(day)
        if snap.get("db_error") and not snap.get("status"):
            raise HTTPException(503, f"database not readable: {snap['db_error']}")
        return await d.respond(request, key, day, lambda s: (encode or (lambda v: _json(model, v)))(data(s)), started)

    @app.get("/api/status", response_model=Status, summary="bots, the session's P&L and counts")
    async def api_status(request: Request,
                         date: date | None = Query(None, description="session YYYY-MM-DD")) -> Response:  # noqa: B008
        return await respond(request, ("status", date), date, Status, _status_model)

    @app.get("/api/positions", response_model=Positions, summary="active positions with distances to target and stop")
    async def api_positions(request: Request) -> Response:
        return await respond(request, "positions", None, Positions, lambda snap: {
            "market_time": snap["market_time"], "positions": snap["positions"], "unrealized_pnl": snap["unrealized_pnl"]})

    @app.get("/api/trades", response_model=Trades, summary="trades of a session")
    async def api_trades(request: Request,
                         date: date | None = Query(None, description="session YYYY-MM-DD")) -> Response:  # noqa: B008
        return await respond(request, ("trades", date), date, Trades, lambda snap: {
            # the TradeView dataclasses as they are: pydantic takes them without copying or
            # re-validating (dataclasses.asdict of 750 trades cost ~30x the whole answer)
            "session_date": snap["session_date"], "trades": snap["trades"],
            "realized_pnl": snap["status"]["realized_pnl"]}, encode=d.trades_json)

    @app.get("/api/gates", response_model=Gates, summary="gate rejections by gate; a symbol's latest decisions")
    async def api_gates(request: Request,
                        date: date | None = Query(None, description="session YYYY-MM-DD"),  # noqa: B008
                        symbol: str | None = Query(None, pattern=SYMBOL_PATTERN, description="e.g. TSLA"),
                        limit: int = Query(50, ge=1, le=1000)) -> Response:
        decisions, started = None, None
        if symbol:
            snap = await d.snapshot(date)
            day = datetime.fromisoformat(snap["session_date"]).date() if snap.get("session_date") else date
            started, decisions = await d.cache.entry(("decisions", symbol.upper(), day, limit),
                                                     lambda: d.reader.coord.get_gate_decisions(symbol, day, limit))
        return await respond(request, ("gates", date, symbol and symbol.upper(), limit), date, Gates,
                             lambda snap: {**snap["gates"], "decisions": decisions}, started)

    @app.get("/api/events", response_model=Events, summary="events recorded after an id")
    async def api_events(request: Request, since: int = Query(0, ge=0, description="only events with a larger id"),
                         level: Literal["INFO", "WARNING", "ERROR", "CRITICAL"] | None = Query(None),  # noqa: B008
                         limit: int = Query(100, ge=1, le=1000)) -> Response:
        def build() -> bytes:
            rows = d.reader.events_since(since, level, limit)
            return _json(Events, {"events": rows, "next_since": max([since, *(r["id"] for r in rows)])})[0]

        started, body = await d.cache.entry(("events", since, level, limit), build)
        response = Response(body, media_type="application/json")
        d.answers.store(request.scope, started, response)
        return response


def _add_controls(app: FastAPI, settings: Settings) -> None:
    guard = Depends(controls.require_token(settings))

    @app.post("/api/control/freeze", summary="set the global freeze (bearer token)", dependencies=[guard])
    async def control_freeze(body: FreezeBody, request: Request) -> dict[str, Any]:
        return await controls.freeze(settings, body.reason, controls.client_of(request))

    @app.post("/api/control/unfreeze", summary="clear the global freeze (bearer token)", dependencies=[guard])
    async def control_unfreeze(request: Request) -> dict[str, Any]:
        return await controls.unfreeze(settings, controls.client_of(request))

    @app.post("/api/control/liquidate-all", dependencies=[guard],
              summary='freeze, cancel every order, flatten everything (bearer token; confirm = "LIQUIDATE")')
    async def control_liquidate(body: LiquidateBody, request: Request) -> dict[str, Any]:
        return await controls.liquidate(settings, controls.client_of(request))
