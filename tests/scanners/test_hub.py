"""ScannerHub: merge rule, cap, interval, and a refresh over watchlist + Polygon (+ a broken IB)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from daytrading.clock import NY, ManualClock
from daytrading.config import Settings
from daytrading.scanners.candidate import Candidate
from daytrading.scanners.hub import ScannerHub, merge_candidates
from tests.scanners.polygon_server import GAINERS_PATH, Route, gainers_body, polygon_stub, ticker_snapshot

START = datetime(2024, 3, 6, 10, 0, tzinfo=NY)


def make_settings(tmp_path: Path, base_url: str = "", key: str = "", **scanner: object) -> Settings:
    return Settings(
        paths={"watchlist": tmp_path / "day_trading_watchlist.json"},
        scanner={"polygon_api_key": SecretStr(key), "polygon_base_url": base_url, **scanner},
        intervals={"scanner_refresh": 900.0},
    )


def test_merge_keeps_best_rank_fills_gaps_and_remembers_sources() -> None:
    watch = [Candidate("TSLA", "watchlist", rank=3, extra={"note": "earnings"})]
    ib = [
        Candidate("TSLA", "ib:TOP_PERC_GAIN", rank=1, extra={"conId": 76792991}),
        Candidate("TSLA", "ib:MOST_ACTIVE", rank=0, extra={"conId": 76792991}),
        Candidate("AMD", "ib:MOST_ACTIVE", rank=1),
    ]
    poly = [Candidate("TSLA", "polygon", price=250.0, previous_close=230.0, momentum=0.9, rank=0),
            Candidate("NVDA", "polygon", price=900.0, rank=1)]
    merged = merge_candidates([watch, ib, poly])
    assert [c.symbol for c in merged] == ["TSLA", "AMD", "NVDA"]
    tsla = merged[0]
    assert tsla.rank == 0
    assert tsla.source == "ib:MOST_ACTIVE"  # rank 0 tie with polygon: IB preferred
    assert set(tsla.sources) == {"watchlist", "ib:TOP_PERC_GAIN", "ib:MOST_ACTIVE", "polygon"}
    assert tsla.price == 250.0 and tsla.previous_close == 230.0 and tsla.momentum == 0.9  # filled
    assert tsla.extra["note"] == "earnings" and tsla.extra["conId"] == 76792991
    assert tsla.extra["ranks"] == {"watchlist": 3, "ib:TOP_PERC_GAIN": 1, "ib:MOST_ACTIVE": 0, "polygon": 0}
    # AMD and NVDA both rank 1 with one source: IB before Polygon
    assert merged[1].sources == ("ib:MOST_ACTIVE",)


def test_due_follows_the_refresh_interval(tmp_path: Path) -> None:
    clock = ManualClock(START)
    hub = ScannerHub(make_settings(tmp_path), None, clock)
    assert hub.due(clock.now())
    asyncio.run(hub.refresh())
    assert hub.last_refresh == START
    assert not hub.due(START + timedelta(seconds=899))
    assert hub.due(START + timedelta(seconds=900))


def test_refresh_merges_watchlist_and_polygon_caps_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "day_trading_watchlist.json").write_text(
        json.dumps({"symbols": ["AAA", "WA", "WB", "WC", "WD"]}), encoding="utf-8"
    )
    gainers = [
        ticker_snapshot(sym, last=11.0, prev_close=10.0, day_low=10.0, day_high=11.0,
                        day_volume=5_000_000, prev_volume=1_000_000)
        for sym in ("AAA", "PA", "PB", "PC")
    ]
    clock = ManualClock(START)
    with polygon_stub() as stub:
        stub.routes[GAINERS_PATH] = Route(body=gainers_body(gainers))
        hub = ScannerHub(make_settings(tmp_path, stub.base_url, "k3y", max_symbols=6), None, clock)
        with caplog.at_level(logging.INFO, logger="daytrading.scanners.hub"):
            result = asyncio.run(hub.refresh())
    assert len(result) == 6
    symbols = [c.symbol for c in result]
    assert len(set(symbols)) == 6
    aaa = next(c for c in result if c.symbol == "AAA")
    assert set(aaa.sources) == {"watchlist", "polygon"} and aaa.price == pytest.approx(11.0)
    assert hub.last_counts == {"watchlist": 5, "ib": 0, "polygon": 4, "unique": 8, "kept": 6}
    assert hub.candidates == result
    lines = [r for r in caplog.records if r.getMessage().startswith("Scanner refresh")]
    assert len(lines) == 1
    assert lines[0].getMessage() == "Scanner refresh: watchlist=5 ib=0 polygon=4 unique=8 kept=6"
    assert lines[0].counts["polygon"] == 4


class BrokenIB:
    """Stands in for a connected IB whose scanner call blows up (the real one is tested in test_ib_scanner)."""

    def isConnected(self) -> bool:  # noqa: N802 - ib_async's name
        return True

    async def reqScannerDataAsync(self, *args: object, **kwargs: object) -> list:  # noqa: N802
        raise ConnectionError("socket closed")


def test_refresh_survives_a_failing_ib_and_a_broken_watchlist(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "day_trading_watchlist.json"
    path.write_text('["TSLA", "AMD"]', encoding="utf-8")
    clock = ManualClock(START)
    hub = ScannerHub(make_settings(tmp_path), BrokenIB(), clock)  # type: ignore[arg-type]
    assert [c.symbol for c in asyncio.run(hub.refresh())] == ["TSLA", "AMD"]
    path.write_text('["TSLA", "AMD", ', encoding="utf-8")
    clock.advance(900)
    with caplog.at_level(logging.ERROR):
        assert [c.symbol for c in asyncio.run(hub.refresh())] == ["TSLA", "AMD"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("socket closed" in m for m in messages)
    assert any("keeping the last good watchlist" in m for m in messages)
