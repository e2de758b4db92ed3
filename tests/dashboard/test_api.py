"""The dashboard's HTTP API over a real SQLite file written through the Coordinator (FastAPI's
TestClient: the real app and routes, in process)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from daytrading.clock import ManualClock
from daytrading.dashboard import views
from daytrading.dashboard.app import create_app
from daytrading.ops.status import status_rows
from tests.ops._util import at, manual_coord, round_trip, settings_for

TOKEN = "s3cret-token-for-tests"


def _beat(coord, bot: str, state: str, **detail) -> None:
    coord.heartbeat(state, json.dumps(detail), bot=bot)


@pytest.fixture()
def world(tmp_path):
    settings = settings_for(tmp_path)
    clock = ManualClock(at(9, 45))
    coord = manual_coord(settings, "exit-manager", clock)
    round_trip(coord, clock, "AAPL", 10, 100.0, 101.8, "target", at(9, 45), at(10, 30), order_id=1)
    round_trip(coord, clock, "TSLA", 5, 400.0, 396.4, "stop", at(10, 0), at(10, 20), order_id=2)
    clock.set(at(11, 0))
    assert coord.claim_entry("NIO", 100).ok
    coord.confirm_entry("NIO", 100, 40.0, entry_time=at(11, 0))
    coord.record_gate_decisions([
        {"symbol": "MSFT", "gate": "max_positions", "passed": False, "reason": "4 of 4", "when": at(11, 1)},
        {"symbol": "NVDA", "gate": "max_positions", "passed": False, "reason": "3 of 3", "when": at(11, 2)},
        {"symbol": "INTC", "gate": "cooldown", "passed": False, "reason": "5 min < 30", "when": at(11, 3)},
        {"symbol": "INTC", "gate": "session", "passed": True, "reason": "open", "when": at(11, 4)},
    ])
    received = datetime.now(tz=UTC) - timedelta(seconds=4)
    _beat(coord, "exit-manager", "running", connected=True,
          prices={"NIO": {"last": 40.4, "at": received.isoformat()}})
    _beat(coord, "day-trader", "running", connected=True)
    return settings, clock, coord


def _run(coro):
    """``coro`` on a new event loop that is never made the thread's current loop: after
    ``asyncio.run`` the main thread has none, and a later first import of ib_async (eventkit
    asks for one at import) in the same worker would fail."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def _client(settings, clock, **dash) -> TestClient:
    from daytrading.config import with_overrides

    if dash:
        settings = with_overrides(settings, {"dashboard": dash})
    return TestClient(create_app(settings, clock))


def test_health_200_when_every_check_passes_and_503_naming_the_failure(world):
    settings, clock, coord = world
    client = _client(settings, clock)
    res = client.get("/health")
    assert res.status_code == 200, res.json()
    body = res.json()
    assert body["ok"] and {c["name"] for c in body["checks"]} == {
        "database readable", "exit-manager heartbeat", "day-trader heartbeat", "exit-manager connected",
        "nothing CRITICAL open"}
    assert all("threshold" in c and "value" in c for c in body["checks"])
    _beat(coord, "exit-manager", "disconnected", connected=False)
    res = client.get("/health")  # the cache lives one poll interval; a new client reads afresh
    res = _client(settings, clock).get("/health")
    assert res.status_code == 503
    failed = [c for c in res.json()["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["exit-manager connected"]
    assert failed[0]["value"] == {"connected": False, "state": "disconnected"}


def test_health_503_for_an_unreadable_database_and_an_open_critical(world, tmp_path):
    settings, clock, coord = world
    coord.record_event("CRITICAL", "exit_failed", "TSLA: SELL rejected 5 times", symbol="TSLA")
    res = _client(settings, clock).get("/health")
    assert res.status_code == 503
    crit = next(c for c in res.json()["checks"] if c["name"] == "nothing CRITICAL open")
    assert not crit["ok"] and crit["value"][0]["kind"] == "exit_failed"
    clock.advance(31 * 60)  # past dashboard.critical_window_minutes of market time
    assert _client(settings, clock).get("/health").json()["checks"][-1]["ok"]
    missing = settings_for(tmp_path / "nothing-here")
    res = _client(missing, clock).get("/health")
    assert res.status_code == 503
    db = res.json()["checks"][0]
    assert db["name"] == "database readable" and not db["ok"] and "unable to open" in db["value"]
    assert not (tmp_path / "nothing-here" / "trading.db").exists()  # read-only: nothing created
    assert _client(missing, clock).get("/api/status").status_code == 503


def test_status_positions_trades_gates_events(world):
    settings, clock, coord = world
    client = _client(settings, clock)
    status = client.get("/api/status").json()
    expected = status_rows(coord, clock)
    assert status["realized_pnl"] == expected["realized_pnl"] == round(18.0 - 18.0, 2)
    assert status["trades"] == 2 and status["session_date"] == "2020-11-17"
    [nio] = client.get("/api/positions").json()["positions"]
    assert nio["symbol"] == "NIO" and nio["last"] == 40.4
    assert nio["to_target_pct"] == pytest.approx((40.72 / 40.4 - 1) * 100, abs=1e-3)
    assert nio["to_stop_pct"] == pytest.approx((40.4 / 39.64 - 1) * 100, abs=1e-3)
    assert 3.5 <= nio["last_age_s"] <= 60
    assert client.get("/api/positions").json()["unrealized_pnl"] == pytest.approx(40.0)
    trades = client.get("/api/trades", params={"date": "2020-11-17"}).json()
    assert [t["symbol"] for t in trades["trades"]] == ["TSLA", "AAPL"]
    assert client.get("/api/trades", params={"date": "2020-11-18"}).json()["trades"] == []
    gates = client.get("/api/gates").json()
    assert {g["gate"]: (g["rejections"], g["symbols"], g["latest_reason"]) for g in gates["by_gate"]} == {
        "max_positions": (2, 2, "3 of 3"), "cooldown": (1, 1, "5 min < 30")}
    assert {d["symbol"]: d["gate"] for d in gates["latest"]} == {"MSFT": "max_positions", "NVDA": "max_positions",
                                                                "INTC": "session"}
    msft = client.get("/api/gates", params={"symbol": "msft"}).json()["decisions"]
    assert [d["reason"] for d in msft] == ["4 of 4"]
    coord.record_event("WARNING", "reconcile", "one")
    first = client.get("/api/events").json()
    assert [e["message"] for e in first["events"]][-1] == "one"
    coord.record_event("ERROR", "restart", "two")
    newer = client.get("/api/events", params={"since": first["next_since"]}).json()
    assert [e["message"] for e in newer["events"]] == ["two"]
    page = client.get("/").text
    assert 'data-symbol="NIO"' in page and 'id="realized-pnl"' in page and "max_positions" in page


@pytest.mark.parametrize(("url", "name"), [
    ("/api/trades?date=2020-13-45", "'date'"),
    ("/api/gates?symbol=$$$", "'symbol'"),
    ("/api/gates?limit=0", "'limit'"),
    ("/api/events?since=-1", "'since'"),
    ("/api/events?level=LOUD", "'level'"),
    ("/?date=yesterday", "'date'"),
])
def test_bad_query_parameters_are_422_naming_the_parameter(world, url, name):
    settings, clock, _ = world
    res = _client(settings, clock).get(url)
    assert res.status_code == 422
    assert res.json()["message"].startswith(f"query parameter {name} = ")
    assert res.json()["detail"][0]["loc"][0] == "query"


def test_controls_403_without_token_401_wrong_token_and_freeze_with_it(world, caplog):
    settings, clock, coord = world
    caplog.set_level(logging.WARNING, logger="daytrading.dashboard")
    res = _client(settings, clock).post("/api/control/freeze", json={"reason": "lunch"})
    assert res.status_code == 403 and "dashboard.token" in res.json()["detail"]
    assert 'id="control-form"' not in _client(settings, clock).get("/").text
    client = _client(settings, clock, token=TOKEN)
    assert client.post("/api/control/freeze", json={}).status_code == 401
    res = client.post("/api/control/freeze", json={}, headers={"Authorization": "Bearer wrong"})
    assert res.status_code == 401 and res.headers["www-authenticate"] == "Bearer"
    assert client.post("/api/control/liquidate-all", json={"confirm": "LIQUIDATE"},
                       headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert not coord.is_frozen()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    res = client.post("/api/control/liquidate-all", json={"confirm": "yes"}, headers=auth)
    assert res.status_code == 422 and res.json()["message"].startswith("field 'confirm' = 'yes'")
    res = client.post("/api/control/freeze", json={"reason": "lunch"}, headers=auth)
    assert res.status_code == 200 and res.json()["frozen"]
    assert coord.is_frozen() and "lunch" in coord.freeze_info()["value"]
    assert _client(settings, clock, token=TOKEN).get("/health").status_code == 503  # a freeze is open CRITICAL
    res = client.post("/api/control/unfreeze", headers=auth)
    assert res.status_code == 200 and res.json()["was_frozen"] and not coord.is_frozen()
    assert 'id="control-form"' in client.get("/").text
    logged = [r for r in caplog.records if r.name == "daytrading.dashboard"]
    assert any(getattr(r, "client", "").startswith("testclient") for r in logged)
    assert {getattr(r, "action", None) for r in logged} >= {"freeze", "unfreeze", "liquidate-all"}
    assert TOKEN not in caplog.text


def test_metrics_are_prometheus_text(world):
    settings, clock, _ = world
    text = _client(settings, clock).get("/metrics").text
    assert 'daytrading_up{bot="exit-manager"} 1.0' in text
    assert 'daytrading_positions{status="OPEN"} 1.0' in text
    assert 'daytrading_gate_rejections{gate="max_positions"} 2.0' in text
    assert "daytrading_unrealized_pnl_dollars 40.0" in text
    assert 'daytrading_trades{result="win"} 1.0' in text and "daytrading_exit_latency_seconds_count 0.0" in text
    assert "daytrading_health_ok 1.0" in text


def test_exit_latency_is_read_from_the_exit_managers_log(world):
    settings, clock, _ = world
    log_dir = settings.paths.log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"msg": "exit sent", "latency_ms": v, "symbol": "X"}) for v in (10.0, 20.0, 30.0)]
    (log_dir / "exit_manager.jsonl").write_text("\n".join([*lines, '{"msg": "other"}', "not json", ""]))
    text = _client(settings, clock).get("/metrics").text
    assert "daytrading_exit_latency_seconds_count 3.0" in text
    assert "daytrading_exit_latency_seconds_sum 0.06" in text
    assert 'daytrading_exit_latency_seconds{quantile="0.5"} 0.02' in text


def test_bot_check_needs_the_supervised_process_and_critical_windows():
    now = datetime.now(tz=UTC)
    hb = {"state": "running", "pid": 11, "last_seen": now - timedelta(seconds=2)}
    assert views.bot_check("exit-manager", hb, None, now.timestamp(), 15)["ok"]
    assert not views.bot_check("exit-manager", hb, None, now.timestamp() + 20, 15)["ok"]
    # after a SIGKILL the supervisor runs a new pid; the old process's last heartbeat does not count
    restarted = {"state": "RUNNING", "pid": 12}
    assert not views.bot_check("exit-manager", hb, restarted, now.timestamp(), 15)["ok"]
    assert views.bot_check("exit-manager", {**hb, "pid": 12}, restarted, now.timestamp(), 15)["ok"]
    assert not views.bot_check("exit-manager", {**hb, "state": "stopped"}, None, now.timestamp(), 15)["ok"]
    events = [{"level": "CRITICAL", "kind": "outage", "ts": now - timedelta(minutes=10), "message": "m"},
              {"level": "CRITICAL", "kind": "freeze", "ts": now, "message": "set"},
              {"level": "ERROR", "kind": "restart", "ts": now, "message": "x"}]
    assert [c["kind"] for c in views.critical_open(events, None, {}, now, 30)] == ["outage"]
    assert views.critical_open(events, None, {}, now, 5) == []
    open_ = views.critical_open([], {"value": "x"}, {"day-trader": {"state": "CRASH_LOOP"}}, now, 30)
    assert [c["kind"] for c in open_] == ["freeze", "crash_loop"]


def test_equity_svg_draws_the_cumulative_pnl(world):
    _, _, coord = world
    svg = views.equity_svg(coord.get_trades_by_date(at(9, 0).date()))
    assert svg.startswith("<svg") and "+0.00 $" in svg and "10:20" in svg and "10:30" in svg
    assert "no trades yet" in views.equity_svg([])


def _frames(messages: list) -> dict[str, tuple[dict, str | None]]:
    """A tick's messages by kind: (data, SSE id)."""
    return {m[0]: (m[1], m[2] if len(m) > 2 else None) for m in messages}


def test_an_exit_recorded_after_a_cached_snapshot_is_streamed_with_its_trade_row(world):
    """The stream's exit message renders its trade rows from a snapshot read after the new
    rows: a snapshot cached by a page request just before the exit would leave the row out for
    good (the cursor has moved past it). Seen in a browser test under load. It carries only
    the new row, the session's count of trades and the summary cards, and its SSE id says
    which trades a page that got it holds."""
    from daytrading.config import with_overrides
    from daytrading.dashboard.app import Dashboard

    settings, clock, coord = world
    settings = with_overrides(settings, {"dashboard": {"poll_interval": 60}})  # the cache outlives the exit
    d = Dashboard(settings, clock)

    async def scenario() -> list:
        await d.poll()  # the stream's first tick: cursor at the newest rows
        await d.snapshot()  # a page request caches a snapshot without the exit below
        round_trip(coord, clock, "MSFT", 3, 200.0, 198.0, "liquidate_all", at(11, 5), at(11, 10), order_id=3)
        return await d.poll()

    exit_, event_id = _frames(_run(scenario()))["exit"]
    assert [t["symbol"] for t in exit_["trades"]] == ["MSFT"]
    assert exit_["trade_rows"].count("<tr ") == 1 and 'data-symbol="MSFT"' in exit_["trade_rows"]
    assert exit_["trades_total"] == 3 and set(exit_["html"]) == {"summary"}
    newest = max(r["id"] for r in exit_["trades"])
    assert event_id == f"2020-11-17:{newest}" and f'data-id="{newest}"' in exit_["trade_rows"]


def test_a_stream_starts_with_the_page_state_so_a_reconnect_misses_no_exit(world):
    """A browser whose stream broke (a restarted dashboard, a slow reader dropped for a full
    queue) reconnects by itself; exits recorded meanwhile were never streamed to it. The
    first message of every stream, ``sync``, is read after it subscribed: the whole trades
    table for a stream that says nothing, only the rows above its ``Last-Event-ID`` (or
    ``?after=``) for one that says what it holds, the whole table again for another session."""
    from daytrading.dashboard.app import Dashboard
    from daytrading.dashboard.stream import frame

    settings, clock, coord = world
    d = Dashboard(settings, clock)
    page = d.page(d.reader.snapshot(), None)
    held = page.split('data-held="', 1)[1].split('"', 1)[0]
    assert held.startswith("2020-11-17:")

    async def first_message(held: str | None) -> str:
        frames = await d.feed.subscribe(held)
        assert (await anext(frames)).startswith(b"retry:")
        out = (await anext(frames)).decode()
        await frames.aclose()
        return out

    async def scenario() -> list[str]:
        await d.snapshot()  # cached before the exit below
        round_trip(coord, clock, "MSFT", 3, 200.0, 198.0, "stop", at(11, 5), at(11, 10), order_id=3)
        out = [await first_message(h) for h in (None, held, "2020-11-16:" + held.split(":")[1], "garbage")]
        await d.feed.close()
        return out

    full, delta, other_day, garbage = _run(scenario())

    def parse(text: str) -> tuple[str, str, dict]:
        lines = text.split("\n")
        return lines[0], lines[1], json.loads(lines[2].removeprefix("data: "))

    event_id, kind, data = parse(full)
    assert kind == "event: sync" and frame("sync", "x").startswith("event: sync")
    assert set(data["html"]) == {"health", "summary", "positions", "trades", "gates", "events"}
    assert 'data-symbol="MSFT"' in data["html"]["trades"] and 'data-symbol="AAPL"' in data["html"]["trades"]
    assert data["trades_total"] == 3 and event_id.startswith("id: 2020-11-17:")
    event_id2, _, data = parse(delta)
    assert "trades" not in data["html"] and data["trades_total"] == 3 and event_id2 == event_id
    assert data["trade_rows"].count("<tr ") == 1 and 'data-symbol="MSFT"' in data["trade_rows"]
    for text in (other_day, garbage):
        assert 'data-symbol="AAPL"' in parse(text)[2]["html"]["trades"]


def test_an_exit_message_does_not_grow_with_the_sessions_trades(world):
    """With 500 trades in the session an exit message (one new trade) is as small as with 2:
    it never carries the table (which 50 clients would each be sent at every exit)."""
    import sqlite3

    from daytrading.config import with_overrides
    from daytrading.dashboard.app import Dashboard
    from daytrading.dashboard.stream import frame, to_json

    settings, clock, coord = world
    d = Dashboard(with_overrides(settings, {"dashboard": {"poll_interval": 0.01}}), clock)

    async def exit_bytes(symbol: str, order_id: int) -> int:
        await d.poll()
        round_trip(coord, clock, symbol, 3, 200.0, 198.0, "stop", at(11, 5), at(11, 10), order_id=order_id)
        data, event_id = _frames(await d.poll())["exit"]
        assert [t["symbol"] for t in data["trades"]] == [symbol]
        return len(frame("exit", to_json(data), event_id).encode())

    small = _run(exit_bytes("MSFT", 3))
    con = sqlite3.connect(settings.paths.database)
    cols = ", ".join(r[1] for r in con.execute("PRAGMA table_info(trades)") if r[1] != "id")
    with con:
        while con.execute("SELECT count(*) FROM trades").fetchone()[0] < 500:
            con.execute(f"INSERT INTO trades ({cols}) SELECT {cols} FROM trades")  # noqa: S608 - own columns
    con.close()
    large = _run(exit_bytes("NVDA", 5))
    table = len(d.fragments(d.reader.snapshot(), "trades")["trades"].encode())
    assert len(d.reader.snapshot()["trades"]) > 500 and table > 100_000
    assert large < 4096 and abs(large - small) < 64, (small, large, table)


def test_identical_gets_get_the_same_bytes_dated_by_the_data_not_the_request(world):
    """Within the poll interval a GET identical to one answered (path and query string) gets
    the stored bytes without routing or rendering; the stored answer is as old as the snapshot
    it shows (read before the request), so it expires with it; other query strings, bad
    parameters and expired answers go to the routes."""
    import time

    from starlette.responses import Response

    from daytrading.config import with_overrides
    from daytrading.dashboard.app import Answers

    settings, clock, coord = world
    settings = with_overrides(settings, {"dashboard": {"poll_interval": 60}})
    app = create_app(settings, clock)
    d = app.state.dashboard
    client = TestClient(app)
    first = client.get("/api/status")
    assert first.status_code == 200 and d.answers.hits == 0
    again = client.get("/api/status")
    assert d.answers.hits == 1 and again.content == first.content and again.headers == first.headers
    snap_started = d.cache._data[("snapshot", None)][0]
    assert d.answers._kept[("/api/status", b"")][0] == snap_started
    client.get("/api/status?date=2020-11-17")
    assert d.answers.hits == 1  # another query string: its own answer
    for _ in range(2):
        assert client.get("/api/gates?symbol=not a symbol").status_code == 422  # never stored
    assert d.answers.hits == 1
    page = client.get("/")
    assert client.get("/").content == page.content and d.answers.hits == 2

    answers = Answers(ttl=0.5)
    scope = {"type": "http", "method": "GET", "path": "/health", "query_string": b""}
    built = Response(first.content, media_type="application/json")
    answers.store(scope, time.monotonic() - 0.6, built)  # data read 0.6 s ago: already too old
    assert answers.lookup(scope) is None
    answers.store(scope, time.monotonic(), built)
    start, body = answers.lookup(scope)
    assert start["status"] == 200 and body["body"] == first.content
    assert answers.lookup({**scope, "method": "POST"}) is None


def test_every_stream_client_gets_the_same_encoded_bytes():
    """A message is encoded once and the same bytes object goes to every client."""
    from daytrading.dashboard.stream import RETRY, Feed

    async def scenario() -> list:
        ticks = asyncio.Queue()
        ticks.put_nowait([("exit", {"trades": [{"symbol": "NIO", "pnl": 7.2}]})])

        async def poll() -> list:
            return await ticks.get()

        feed = Feed(poll, 0.01, 10)
        a, b = await feed.subscribe(), await feed.subscribe()
        got = [await anext(a), await anext(b), await anext(a), await anext(b)]
        await feed.close()
        return got

    retry_a, retry_b, exit_a, exit_b = _run(scenario())
    assert retry_a is RETRY and retry_b is RETRY
    assert exit_a is exit_b and exit_a.startswith(b"event: exit\ndata: ") and b'"NIO"' in exit_a


def test_snapshots_reread_the_database_only_after_a_commit(world):
    """While no connection commits, a snapshot reuses the rows last read (one PRAGMA
    data_version) and still moves with the clocks; any commit, by this process or another,
    makes the next snapshot read everything again and show it."""
    import subprocess
    import sys

    from daytrading.dashboard.reader import Reader

    settings, clock, coord = world
    reader = Reader(settings, clock)
    first = reader.snapshot()
    assert reader.full_reads == 1
    clock.advance(90)
    second = reader.snapshot()
    assert reader.full_reads == 1 and second["market_time"] != first["market_time"]
    assert second["status"]["market_time"] == second["market_time"] and second["trades"] is first["trades"]
    round_trip(coord, clock, "MSFT", 3, 200.0, 198.0, "stop", at(11, 5), at(11, 10), order_id=3)
    third = reader.snapshot()
    assert reader.full_reads == 2 and "MSFT" in {t.symbol for t in third["trades"]}
    other = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
             "c.execute(\"UPDATE heartbeats SET state = 'stopped' WHERE bot = 'day-trader'\"); c.commit()")
    subprocess.run([sys.executable, "-c", other, str(settings.paths.database)], check=True, timeout=60)
    fourth = reader.snapshot()
    assert reader.full_reads == 3
    assert {b["bot"]: b["heartbeat_state"] for b in fourth["status"]["bots"]}["day-trader"] == "stopped"


def test_trades_are_read_incrementally_and_equal_the_coordinators(world):
    """A snapshot's trades are the coordinator's rows in its order; after the first read only
    the new rows are read (an exit recorded out of exit-time order still sorts in); a row that
    went away (a pruned or restored file) makes it read them all again."""
    import sqlite3

    from daytrading.dashboard.reader import Reader

    settings, clock, coord = world
    reader = Reader(settings, clock)
    day = at(9, 0).date()
    assert reader.trades_of(day) == coord.get_trades_by_date(day) and reader.trade_rows_read == 2
    round_trip(coord, clock, "MSFT", 3, 200.0, 198.0, "stop", at(9, 50), at(10, 5), order_id=3)  # exits before AAPL's
    got = reader.trades_of(day)
    assert got == coord.get_trades_by_date(day) and [t.symbol for t in got] == ["MSFT", "TSLA", "AAPL"]
    assert reader.trade_rows_read == 3 and reader.trades_of(day) == got and reader.trade_rows_read == 3
    con = sqlite3.connect(settings.paths.database)
    with con:
        con.execute("DELETE FROM trades WHERE symbol = 'TSLA'")
    con.close()
    round_trip(coord, clock, "NVDA", 2, 500.0, 505.0, "target", at(11, 20), at(11, 40), order_id=4)
    assert [t.symbol for t in reader.trades_of(day)] == ["MSFT", "AAPL", "NVDA"] == \
        [t.symbol for t in coord.get_trades_by_date(day)]


def test_the_trades_table_renders_each_trade_once_and_as_the_template_does(world):
    """The trades fragment is the ``_trades.html`` template's table, built from one cached
    row per trade: a new exit read incrementally renders one row, not the table."""
    import re

    from daytrading.dashboard.app import Dashboard

    settings, clock, coord = world
    d = Dashboard(settings, clock)
    snap = d.reader.snapshot()
    html = d.fragments(snap, "trades")["trades"]
    plain = d.env.get_template("_trades.html").render(snap=snap, controls=False)
    assert re.sub(r">\s+<", "><", html).strip() == re.sub(r">\s+<", "><", plain).strip()
    assert html.count("<tr data-symbol=") == 2
    rows = dict(d._rows._kept)
    round_trip(coord, clock, "MSFT", 3, 200.0, 198.0, "stop", at(11, 5), at(11, 10), order_id=3)
    html2 = d.fragments(d.reader.snapshot(), "trades")["trades"]
    assert 'data-symbol="MSFT"' in html2 and html2.count("<tr data-symbol=") == 3
    assert all(d._rows._kept[k][1] is rows[k][1] for k in rows)  # the old rows were not rendered again
    empty = d.env.get_template("_trades.html").render(snap={**snap, "trades": []}, controls=False)
    assert "no trades in" in empty


def test_the_stream_sends_state_again_only_when_more_than_its_clocks_moved(world):
    """Market time, ages and uptime move every tick; a ``status`` or ``positions`` message
    whose other content is unchanged waits ``STATE_REFRESH_S`` (50 clients would otherwise get
    both at every tick of an idle session); a real change goes out at the next tick. A tick
    after no commit runs no SQL at all."""
    from sqlalchemy import event

    from daytrading.config import with_overrides
    from daytrading.dashboard.app import Dashboard

    settings, clock, coord = world
    d = Dashboard(with_overrides(settings, {"dashboard": {"poll_interval": 1e-6}}), clock)

    async def kinds() -> set[str]:
        return {m[0] for m in await d.poll()}

    statements: list[str] = []
    event.listen(d.reader.coord.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    async def scenario() -> list[set[str]]:
        out = [await kinds()]
        clock.advance(30)
        statements.clear()
        out.append(await kinds())
        assert statements == []  # nothing committed: neither the new rows nor the snapshot are read again
        _beat(coord, "day-trader", "frozen", connected=True)
        out.append(await kinds())
        d.STATE_REFRESH_S = 0.0
        out.append(await kinds())
        return out

    first, clocks_only, changed, refreshed = _run(scenario())
    assert first == {"status", "positions"} and clocks_only == set()
    assert changed == {"status"} and refreshed == {"status", "positions"}


def test_a_freeze_file_set_or_cleared_without_a_commit_shows_in_the_next_snapshot(world):
    """The freeze file is not in the database, so a snapshot that reuses its rows (no commit
    since) still looks for it; a freeze flag in the database holds until the next commit."""
    from daytrading.coordination import freeze as side_files
    from daytrading.dashboard.reader import Reader

    settings, clock, coord = world
    reader = Reader(settings, clock)
    assert reader.snapshot()["status"]["freeze"] is None
    side_files.set_freeze(settings.paths.database, "gateway maintenance", "ops")
    frozen = reader.snapshot()["status"]["freeze"]
    assert frozen["source"] == "file" and frozen["value"] == "gateway maintenance" and reader.full_reads == 1
    side_files.clear_freeze(settings.paths.database)
    assert reader.snapshot()["status"]["freeze"] is None and reader.full_reads == 1


def test_the_trades_answer_is_the_models_json_with_each_trade_encoded_once(world):
    """``/api/trades`` is byte for byte the ``Trades`` model's JSON; each trade's part is
    encoded once and reused by the next read's answer."""
    from daytrading.dashboard.app import Trades

    settings, clock, coord = world
    app = create_app(settings, clock)
    d = app.state.dashboard
    snap = d.reader.snapshot()
    data = {"session_date": snap["session_date"], "trades": snap["trades"], "realized_pnl": snap["status"]["realized_pnl"]}
    body = d.trades_json(data)[0]
    assert body == Trades.model_validate(data).model_dump_json().encode() and body.count(b'"symbol"') == 2
    kept = dict(d._json._kept)
    round_trip(coord, clock, "MSFT", 3, 200.0, 198.0, "stop", at(11, 5), at(11, 10), order_id=3)
    res = TestClient(app).get("/api/trades")
    assert res.status_code == 200 and [t["symbol"] for t in res.json()["trades"]] == ["TSLA", "AAPL", "MSFT"]
    assert all(d._json._kept[k][1] is kept[k][1] for k in kept) and len(d._json._kept) == 3
