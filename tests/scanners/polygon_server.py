"""A local HTTP server on 127.0.0.1 that answers like Polygon's (massive's) REST API.

Response bodies follow the documented JSON of "Top Market Movers"
(``GET /v2/snapshot/locale/us/markets/stocks/{direction}``) and "Previous Day Bar"
(``GET /v2/aggs/ticker/{ticker}/prev``); tests point the massive client's base URL here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GAINERS_PATH = "/v2/snapshot/locale/us/markets/stocks/gainers"


def prev_path(ticker: str) -> str:
    return f"/v2/aggs/ticker/{ticker}/prev"


def agg(o: float, h: float, low: float, c: float, v: float, vw: float) -> dict[str, float]:
    return {"o": o, "h": h, "l": low, "c": c, "v": v, "vw": vw}


def ticker_snapshot(
    ticker: str,
    *,
    last: float,
    prev_close: float | None,
    day_low: float,
    day_high: float,
    day_volume: float,
    prev_volume: float | None,
    change_perc: float | None = None,
    include_prev: bool = True,
) -> dict[str, Any]:
    """One ``tickers[]`` item as Polygon documents it (todaysChangePerc in percent)."""
    item: dict[str, Any] = {
        "ticker": ticker,
        "day": agg(day_low, day_high, day_low, last, day_volume, (day_low + day_high) / 2),
        "lastQuote": {"P": last + 0.01, "S": 2, "p": last - 0.01, "s": 3, "t": 1605195918507251700},
        "lastTrade": {"c": [14, 41], "i": "4046", "p": last, "s": 100, "t": 1605195918306274000, "x": 10},
        "min": {"av": day_volume, "c": last, "h": last, "l": last - 0.05, "n": 12, "o": last - 0.02,
                "t": 1684428600000, "v": 5000, "vw": last - 0.01},
        "updated": 1605195918306274000,
    }
    if include_prev and prev_close is not None:
        item["prevDay"] = agg(prev_close, prev_close, prev_close, prev_close, prev_volume or 0, prev_close)
    if change_perc is None and prev_close:
        change_perc = (last / prev_close - 1) * 100
    if change_perc is not None:
        item["todaysChangePerc"] = change_perc
        item["todaysChange"] = (prev_close or 0) * change_perc / 100
    return item


def gainers_body(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"status": "OK", "tickers": items}


def prev_body(ticker: str, close: float, volume: float) -> dict[str, Any]:
    return {
        "adjusted": True,
        "queryCount": 1,
        "request_id": "6a7e466379af0a71039d60cc78e72282",
        "results": [{"T": ticker, "c": close, "h": close * 1.02, "l": close * 0.98, "o": close,
                     "t": 1672434000000, "v": volume, "vw": close}],
        "resultsCount": 1,
        "status": "OK",
        "ticker": ticker,
    }


@dataclass
class Route:
    status: int = 200
    body: Any = None  # dict/list → JSON; str/bytes → raw
    headers: dict[str, str] = field(default_factory=dict)
    block: threading.Event | None = None  # wait on this before answering


@dataclass
class PolygonStub:
    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p.split("?")[0] == path)


@contextmanager
def polygon_stub() -> Iterator[PolygonStub]:
    stub = PolygonStub()
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?")[0]
            stub.requests.append((self.path, dict(self.headers.items())))
            route = stub.routes.get(path)
            if route is None:
                route = Route(404, {"status": "NOT_FOUND", "message": f"no route {path}"})
            if route.block is not None:
                route.block.wait(30)
            body = route.body
            if isinstance(body, dict | list):
                data = json.dumps(body).encode()
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = body or b""
            try:
                self.send_response(route.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in route.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:  # silence stderr
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        release.set()
        for route in stub.routes.values():
            if route.block is not None:
                route.block.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
