"""The dashboard in a real browser (headless Chromium from the system packages, driven by
Playwright with that executable) during one short sim replay run by the real supervisor:
sim-gateway, exit-manager, day-trader and the dashboard as real processes.

The tests share the one replay and run in file order: a position bought by hand appears on
the open page through the live stream; ``/health`` follows a SIGKILLed exit-manager down and
back up; the controls freeze (the day-trader stands down), unfreeze and liquidate-all from
the page; the page's P&L then equals ``daytrading status --json``'s.

``DAYTRADING_SCREENSHOT=path.png`` also saves a screenshot of the page (the README's).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from daytrading.sim_gateway.testing import free_port
from tests.ops._util import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
TOKEN = "browser-test-token"


def chromium() -> str:
    """The system Chromium (Debian package ``chromium``; ``run_tests.sh`` installs it)."""
    windows = [r"C:\Program Files\Google\Chrome\Application\chrome.exe",
               r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe"]
    path = (os.environ.get("DAYTRADING_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
            or next((p for p in windows if os.path.exists(p)), None))
    if not path:
        pytest.fail("headless Chromium not found: run ./run_tests.sh (it installs the Debian package 'chromium') "
                    "or set DAYTRADING_CHROMIUM to its path")
    return path


def _env(tmp: Path, sim_port: int, dash_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYTRADING_")}
    env.update({
        "PYTHONPATH": str(ROOT), "DAYTRADING_MODE": "sim",
        "DAYTRADING_PATHS__DATABASE": str(tmp / "trading_history.db"), "DAYTRADING_PATHS__LOG_DIR": str(tmp / "logs"),
        "DAYTRADING_PATHS__BACKUP_DIR": str(tmp / "backups"), "DAYTRADING_PATHS__REPORT_DIR": str(tmp / "reports"),
        "DAYTRADING_PATHS__WATCHLIST": str(tmp / "watchlist.json"), "DAYTRADING_SIM__PORT": str(sim_port),
        "DAYTRADING_SIM__SYMBOLS": '["AAPL", "MSFT", "TSLA"]', "DAYTRADING_SCANNER__IB_SCAN_CODES": '["TOP_PERC_GAIN"]',
        "DAYTRADING_SIM__START": "2020-11-17T09:35:00-05:00", "DAYTRADING_DASHBOARD__PORT": str(dash_port),
        "DAYTRADING_DASHBOARD__TOKEN": TOKEN, "DAYTRADING_DASHBOARD__POLL_INTERVAL": "0.2",
        # nice 10, not SCHED_IDLE: under CI's other worker an idle-policy page would be starved (priority: test_server)
        "DAYTRADING_DASHBOARD__PRIORITY": "below_normal",
        "DAYTRADING_LLM__ENABLED": "false",  # the default 60-s health check: no start-up kill under load
    })
    return env


def _wait(pred, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = pred()
        except (sqlite3.OperationalError, httpx.TransportError, KeyError, TypeError):
            value = None
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Run:
    """The supervisor's replay: its folder, ports, environment and database."""

    def __init__(self, tmp: Path, sim_port: int, dash_port: int, proc: subprocess.Popen[str]) -> None:
        self.tmp, self.sim_port, self.proc = tmp, sim_port, proc
        self.url = f"http://127.0.0.1:{dash_port}"
        self.env = _env(tmp, sim_port, dash_port)

    def db(self) -> sqlite3.Connection:
        con = sqlite3.connect(f"file:{self.tmp / 'trading_history.db'}?mode=ro", uri=True, timeout=10)
        con.row_factory = sqlite3.Row
        return con

    def bots(self) -> dict:
        row = self.db().execute("SELECT detail FROM heartbeats WHERE bot='supervisor'").fetchone()
        return json.loads(row["detail"])["bots"]

    def heartbeat_state(self, bot: str) -> str | None:
        row = self.db().execute("SELECT state FROM heartbeats WHERE bot=?", (bot,)).fetchone()
        return row["state"] if row else None

    def health(self) -> httpx.Response:
        return httpx.get(self.url + "/health", timeout=10)


@pytest.fixture(scope="module")
def run(tmp_path_factory, market_data_dir):
    tmp = tmp_path_factory.mktemp("replay")
    (tmp / "watchlist.json").write_text(json.dumps({"symbols": ["MSFT"]}), encoding="utf-8")
    sim_port, dash_port = free_port(), free_port()
    argv = [sys.executable, "-m", "daytrading", "supervisor", "--sim", "--data", str(market_data_dir / "alphavantage_1min"),
            "--date", "2020-11-17", "--speed", "30", "--no-end"]
    proc = subprocess.Popen(argv, env=_env(tmp, sim_port, dash_port), cwd=tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    r = Run(tmp, sim_port, dash_port, proc)
    try:
        _wait(lambda: proc.poll() is None and r.health().status_code == 200, 180, "/health 200 (bots up)", step=0.2)
        yield r
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def page(run):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        pg = browser.new_page(viewport={"width": 1100, "height": 900})
        pg.set_default_timeout(60_000)
        pg.goto(run.url + "/")
        yield pg
        browser.close()


def test_page_shows_a_position_opened_during_the_replay_without_reload(run, page):
    from tests.bots._harness import buy_at_market

    page.wait_for_selector("#live.on")  # the live stream is connected
    page.evaluate("window.__notReloaded = 42")
    assert page.locator('#positions tr[data-symbol="AAPL"]').count() == 0
    # bought by hand, as in TWS: the exit-manager adopts it (own thread: Playwright's loop runs in this one)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, buy_at_market(run.sim_port, "AAPL", 10, client_id=5)).result(60)
    row = page.wait_for_selector('#positions tr[data-symbol="AAPL"]')
    assert page.evaluate("window.__notReloaded") == 42  # the stream changed the table; no reload
    assert int(page.evaluate("document.body.dataset.updates")) > 0
    page.wait_for_function("""() => { const r = document.querySelector('#positions tr[data-symbol="AAPL"]');
                                      return r && r.children[4].textContent.trim() !== '-'; }""")  # a last price
    assert "AAPL" in row.inner_text()
    page.reload()
    assert page.locator('#positions tr[data-symbol="AAPL"]').count() == 1  # server-rendered too
    page.wait_for_selector("#live.on")
    shot = os.environ.get("DAYTRADING_SCREENSHOT")
    if shot:
        page.screenshot(path=shot, full_page=True)


def test_health_503_when_the_exit_manager_is_killed_and_200_after_the_restart(run):
    pid = run.bots()["exit-manager"]["pid"]
    os.kill(pid, signal.SIGKILL)
    down = _wait(lambda: (lambda r: r if r.status_code == 503 else None)(run.health()), 30, "/health 503", step=0.02)
    failed = {c["name"] for c in down.json()["checks"] if not c["ok"]}
    assert failed & {"exit-manager heartbeat", "exit-manager connected"}, failed
    _wait(lambda: run.health().status_code == 200, 120, "/health 200 after the restart", step=0.1)
    assert run.bots()["exit-manager"]["pid"] != pid and run.bots()["exit-manager"]["restarts"] >= 1


def test_a_killed_dashboard_is_restarted_and_the_bots_are_untouched(run, page):
    bots = run.bots()
    os.kill(bots["dashboard"]["pid"], signal.SIGKILL)
    _wait(lambda: run.bots()["dashboard"]["pid"] not in (None, bots["dashboard"]["pid"]), 120, "a new dashboard")
    _wait(lambda: run.health().status_code == 200, 120, "the new dashboard to serve")
    seen = int(page.evaluate("document.body.dataset.updates"))  # the old stream died with its process
    page.wait_for_function(f"Number(document.body.dataset.updates) > {seen}")  # the page reconnected by itself
    page.wait_for_selector("#live.on")
    after = run.bots()
    assert after["dashboard"]["restarts"] == 1
    for name in ("exit-manager", "day-trader"):
        assert after[name]["pid"] == bots[name]["pid"] and after[name]["restarts"] == bots[name]["restarts"]


def test_controls_need_the_token_and_freeze_makes_the_day_trader_stand_down(run, page):
    assert httpx.post(run.url + "/api/control/freeze", json={}).status_code == 401
    assert httpx.post(run.url + "/api/control/freeze", json={},
                      headers={"Authorization": "Bearer nope"}).status_code == 401
    page.fill("#token", TOKEN)
    page.fill("#reason", "browser test")
    page.click('button[data-action="freeze"]')
    page.wait_for_selector('#control-result[data-status="200"]')
    page.wait_for_selector("#frozen")  # the health strip shows the freeze through the stream
    _wait(lambda: run.heartbeat_state("day-trader") == "frozen", 60, "the day-trader to stand down")
    _wait(lambda: run.heartbeat_state("exit-manager") == "frozen", 60, "the exit-manager to stand down")
    con = run.db()
    set_at = con.execute("SELECT set_at FROM flags WHERE name='freeze'").fetchone()["set_at"]
    page.evaluate("document.getElementById('control-result').dataset.status = ''")
    page.click('button[data-action="unfreeze"]')
    page.wait_for_selector('#control-result[data-status="200"]')
    _wait(lambda: run.heartbeat_state("day-trader") == "running", 60, "the day-trader to resume")
    assert not con.execute("SELECT 1 FROM orders WHERE side='BUY' AND purpose='entry' AND created_at > ? "
                           "AND created_at < (SELECT MAX(ts) FROM events WHERE kind='unfreeze')", (set_at,)).fetchone()


def test_liquidate_all_from_the_page_and_the_pnl_matches_status_json(run, page):
    page.fill("#confirm", "no")
    page.evaluate("document.getElementById('control-result').dataset.status = ''")
    page.click('button[data-action="liquidate-all"]')
    page.wait_for_selector('#control-result[data-status="422"]')
    assert "confirm" in page.inner_text("#control-result")
    page.fill("#confirm", "LIQUIDATE")
    page.click('button[data-action="liquidate-all"]')
    page.wait_for_selector('#control-result[data-status="200"]', timeout=120_000)
    result = json.loads(page.inner_text("#control-result").split(": ", 1)[1])
    sold = sorted(a["symbol"] for a in result["actions"] if a["filled"])
    assert result["broker_ok"] and sold, result  # the positions open now (AAPL of the first test unless it exited)
    for symbol in sold:
        try:
            page.wait_for_selector(f'#trades tr[data-symbol="{symbol}"]')  # the exit arrives through the stream
        except Exception as exc:  # say what the database and the page hold, not only "timeout"
            trades = [dict(r) for r in run.db().execute("SELECT symbol, exit_reason, exit_time FROM trades")]
            raise AssertionError(f"no {symbol} trade on the page; liquidation: {result}; trades in the "
                                 f"database: {trades}; page trades: {page.inner_text('#trades')[:1000]}") from exc
    page.wait_for_selector('#positions tr.empty')
    res = subprocess.run([sys.executable, "-m", "daytrading", "status", "--json"], env=run.env, cwd=run.tmp,
                         capture_output=True, text=True, timeout=60)
    status = json.loads(res.stdout)
    shown = float(page.get_attribute("#realized-pnl", "data-value"))
    assert status["trades"] >= 1 and shown == pytest.approx(status["realized_pnl"], abs=0.005)
    assert page.inner_text("#realized-pnl").replace(",", "") == f"{status['realized_pnl']:+.2f}"
    # the equity curve the page drew from its rows (exits arrive as rows, never as the curve) ends there too
    curve = page.get_attribute("#equity svg", "aria-label").replace(",", "")
    assert curve == f"equity curve {status['realized_pnl']:+.2f} $", curve
