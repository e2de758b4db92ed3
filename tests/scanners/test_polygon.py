"""Polygon (massive) scanner against a local HTTP server speaking Polygon's JSON."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime

import pytest
from pydantic import SecretStr

from daytrading.clock import NY, ManualClock
from daytrading.config import ScannerSettings
from daytrading.scanners.polygon import PolygonScanner, momentum_score, session_fraction
from tests.scanners.polygon_server import (
    GAINERS_PATH,
    Route,
    gainers_body,
    polygon_stub,
    prev_body,
    prev_path,
    ticker_snapshot,
)

API_KEY = "PK_test_s3cr3t_Zq9xW"


def settings_for(base_url: str, key: str = API_KEY, **kw: object) -> ScannerSettings:
    return ScannerSettings(polygon_api_key=SecretStr(key), polygon_base_url=base_url, **kw)


def assert_key_not_logged(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    out = capsys.readouterr()
    assert API_KEY not in out.out and API_KEY not in out.err
    for record in caplog.records:
        assert API_KEY not in record.getMessage()
        assert API_KEY not in repr(record.__dict__)
    assert API_KEY not in caplog.text


def standard_gainers() -> list[dict]:
    return [
        # strong: +12 %, at the high, 3M vs 1M shares → kept
        ticker_snapshot("AAA", last=11.2, prev_close=10.0, day_low=10.1, day_high=11.2,
                        day_volume=3_000_000, prev_volume=1_000_000),
        # big gain but relative volume 1.5 → dropped
        ticker_snapshot("BBB", last=23.0, prev_close=20.0, day_low=20.5, day_high=23.0,
                        day_volume=1_500_000, prev_volume=1_000_000),
        # +4 % near the day's low → momentum too low
        ticker_snapshot("CCC", last=52.2, prev_close=50.2, day_low=52.0, day_high=54.0,
                        day_volume=3_000_000, prev_volume=1_000_000),
        # share class spelled the Polygon way → IB spelling; +10 %, at high, 2.5× → kept
        ticker_snapshot("BRK.B", last=440.0, prev_close=400.0, day_low=401.0, day_high=440.0,
                        day_volume=2_500_000, prev_volume=1_000_000),
        # great but under min_price (2 $) → dropped
        ticker_snapshot("PENY", last=1.5, prev_close=1.2, day_low=1.2, day_high=1.5,
                        day_volume=9_000_000, prev_volume=1_000_000),
        # no prevDay in the snapshot → previous-day bar looked up → kept
        ticker_snapshot("FFF", last=11.5, prev_close=None, day_low=10.2, day_high=11.5,
                        day_volume=2_000_000, prev_volume=None, change_perc=15.0),
        # not a stock symbol we trade → skipped
        ticker_snapshot("ABCD1W", last=5.0, prev_close=4.0, day_low=4.0, day_high=5.0,
                        day_volume=5_000_000, prev_volume=1_000_000),
    ]


def test_momentum_formula_values() -> None:
    # +10 % at the high with 5× volume → 1.0
    assert momentum_score(0.10, 11.0, 10.0, 11.0, 5.0) == pytest.approx(1.0)
    # +6 % at the high, 3× → 0.4·0.6 + 0.4·1 + 0.2·0.6 = 0.76
    assert momentum_score(0.06, 11.0, 10.0, 11.0, 3.0) == pytest.approx(0.76)
    # mid-range, +5 %, 2.5× → 0.2 + 0.2 + 0.1
    assert momentum_score(0.05, 10.5, 10.0, 11.0, 2.5) == pytest.approx(0.5)
    # losers and nonsense clip to [0, 1]; empty range is neutral 0.5
    assert momentum_score(-0.2, 9.0, 10.0, 11.0, 0.0) == pytest.approx(0.0)
    assert momentum_score(0.5, 12.0, 10.0, 10.0, 50.0) == pytest.approx(0.4 + 0.2 + 0.2)
    assert momentum_score(None, None, None, None, None) == pytest.approx(0.2)
    assert 0.0 <= momentum_score(float("nan"), 1.0, 1.0, 2.0, float("inf")) <= 1.0


def test_session_fraction_uses_the_exchange_calendar() -> None:
    assert session_fraction(datetime(2024, 3, 6, 12, 45, tzinfo=NY)) == pytest.approx(0.5)
    assert session_fraction(datetime(2024, 3, 6, 8, 0, tzinfo=NY)) == pytest.approx(0.1)
    assert session_fraction(datetime(2024, 3, 6, 17, 0, tzinfo=NY)) == pytest.approx(1.0)
    # day after Thanksgiving closes at 13:00: 11:15 is half-way
    assert session_fraction(datetime(2024, 11, 29, 11, 15, tzinfo=NY)) == pytest.approx(0.5)
    assert session_fraction(datetime(2024, 3, 9, 12, 0, tzinfo=NY)) == 1.0  # Saturday


def test_gainers_filtered_scored_and_ranked(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    with polygon_stub() as stub:
        stub.routes[GAINERS_PATH] = Route(body=gainers_body(standard_gainers()))
        stub.routes[prev_path("FFF")] = Route(body=prev_body("FFF", 10.0, 500_000))
        scanner = PolygonScanner(settings_for(stub.base_url))
        result = asyncio.run(scanner.scan())
        auth = {h.get("Authorization") for _, h in stub.requests}

    by_symbol = {c.symbol: c for c in result}
    assert set(by_symbol) == {"AAA", "BRK B", "FFF"}
    aaa = by_symbol["AAA"]
    assert aaa.source == "polygon"
    assert aaa.price == pytest.approx(11.2)
    assert aaa.change_pct == pytest.approx(0.12)
    assert aaa.previous_close == pytest.approx(10.0)
    assert aaa.volume == pytest.approx(3_000_000)
    assert aaa.relative_volume == pytest.approx(3.0)
    assert aaa.momentum == pytest.approx(0.4 + 0.4 + 0.2 * 0.6)
    assert aaa.gap_pct == pytest.approx(0.12)
    fff = by_symbol["FFF"]
    assert fff.previous_close == pytest.approx(10.0)  # from the previous-day bar
    assert fff.relative_volume == pytest.approx(4.0)
    assert fff.change_pct == pytest.approx(0.15)
    assert by_symbol["BRK B"].extra["polygon_ticker"] == "BRK.B"
    # ranked by momentum, best first, ranks 0..n-1
    assert [c.rank for c in result] == [0, 1, 2]
    assert [c.momentum for c in result] == sorted((c.momentum for c in result), reverse=True)
    assert all(c.momentum >= 0.7 and c.relative_volume > 2.0 for c in result)
    assert auth == {f"Bearer {API_KEY}"}  # the key reached the server …
    assert_key_not_logged(caplog, capsys)  # … and never a log line


def test_thresholds_come_from_settings() -> None:
    with polygon_stub() as stub:
        stub.routes[GAINERS_PATH] = Route(body=gainers_body(standard_gainers()))
        stub.routes[prev_path("FFF")] = Route(body=prev_body("FFF", 10.0, 500_000))
        loose = PolygonScanner(settings_for(stub.base_url, min_relative_volume=1.0, min_momentum=0.0,
                                            min_price=1.0))
        strict = PolygonScanner(settings_for(stub.base_url, min_relative_volume=3.5))
        loose_syms = {c.symbol for c in asyncio.run(loose.scan())}
        strict_syms = {c.symbol for c in asyncio.run(strict.scan())}
    assert loose_syms == {"AAA", "BBB", "CCC", "BRK B", "PENY", "FFF"}
    assert strict_syms == {"FFF"}


def test_relative_volume_is_paced_by_the_session_clock() -> None:
    clock = ManualClock(datetime(2024, 3, 6, 12, 45, tzinfo=NY))  # half the session gone
    with polygon_stub() as stub:
        stub.routes[GAINERS_PATH] = Route(body=gainers_body([
            ticker_snapshot("AAA", last=11.2, prev_close=10.0, day_low=10.1, day_high=11.2,
                            day_volume=1_200_000, prev_volume=1_000_000),
        ]))
        unpaced = asyncio.run(PolygonScanner(settings_for(stub.base_url)).scan())
        paced = asyncio.run(PolygonScanner(settings_for(stub.base_url), clock).scan())
    assert unpaced == []  # 1.2× of yesterday's full day
    assert len(paced) == 1 and paced[0].relative_volume == pytest.approx(2.4)
    assert paced[0].extra["pace"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("route", "fragment"),
    [
        (Route(500, {"status": "ERROR", "error": "internal"}), "failed"),
        (Route(429, {"status": "ERROR", "error": "rate limited"}, {"Retry-After": "120"}), "failed"),
        (Route(200, "<html>definitely not json"), "malformed JSON"),
        (Route(200, {"status": "OK"}), "no 'tickers' list"),
        (Route(200, {"status": "OK", "tickers": [{"ticker": "AAA", "day": "garbage"}, 7]}), "0 kept"),
        (Route(403, {"status": "ERROR", "error": f"bad key {API_KEY}"}), "***"),
    ],
    ids=["500", "429", "garbage", "no-tickers", "bad-items", "403-echoing-key"],
)
def test_http_errors_give_an_empty_result_and_a_log_line(
    route: Route, fragment: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with polygon_stub() as stub:
        stub.routes[GAINERS_PATH] = route
        scanner = PolygonScanner(settings_for(stub.base_url), retries=2)
        assert asyncio.run(scanner.scan()) == []
        hits = stub.hits(GAINERS_PATH)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("daytrading")]
    assert any(fragment in m for m in messages), messages
    if route.status in (429, 500):
        assert hits == 3  # one request + the client's two retries, Retry-After not honoured
    assert_key_not_logged(caplog, capsys)


def test_unreachable_server_and_slow_server(caplog: pytest.LogCaptureFixture) -> None:
    with polygon_stub() as stub:
        dead_url = stub.base_url
    caplog.set_level(logging.ERROR)
    assert asyncio.run(PolygonScanner(settings_for(dead_url), retries=0).scan()) == []
    assert any("failed" in r.getMessage() for r in caplog.records)

    caplog.clear()
    with polygon_stub() as stub:
        stub.routes[GAINERS_PATH] = Route(body=gainers_body([]), block=threading.Event())
        scanner = PolygonScanner(settings_for(stub.base_url), retries=0, timeout=0.3)
        assert asyncio.run(scanner.scan()) == []
    assert any("Polygon gainers snapshot" in r.getMessage() for r in caplog.records)


def test_missing_key_turns_the_scanner_off_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    with polygon_stub() as stub, caplog.at_level(logging.INFO, logger="daytrading.scanners.polygon"):
        scanner = PolygonScanner(settings_for(stub.base_url, key=""))
        assert not scanner.enabled
        assert asyncio.run(scanner.scan()) == []
        assert asyncio.run(scanner.previous_close("AAA")) is None
        assert stub.requests == []
    assert [r.getMessage() for r in caplog.records] == ["Polygon scanner off: scanner.polygon_api_key is empty"]


def test_previous_close_lookup(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    with polygon_stub() as stub:
        stub.routes[prev_path("BRK.B")] = Route(body=prev_body("BRK.B", 412.5, 3_000_000))
        stub.routes[prev_path("BAD")] = Route(200, "{{{")
        scanner = PolygonScanner(settings_for(stub.base_url))
        assert asyncio.run(scanner.previous_close("BRK B")) == pytest.approx(412.5)
        assert asyncio.run(scanner.previous_close("BAD")) is None
        assert asyncio.run(scanner.previous_close("NONE")) is None  # 404
    assert_key_not_logged(caplog, capsys)
