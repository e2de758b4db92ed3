"""Polygon (massive) scanner: today's top gainers filtered by relative volume and momentum.

Data: the ``massive`` client (the renamed ``polygon-api-client``), endpoint "Top Market
Movers" ``GET /v2/snapshot/locale/us/markets/stocks/gainers`` (top 20 US gainers, each a
ticker snapshot with ``day``, ``min``, ``prevDay``, ``lastTrade`` and
``todaysChangePerc`` in **percent**), and "Previous Day Bar"
``GET /v2/aggs/ticker/{ticker}/prev`` when a snapshot lacks the previous day.
Both are blocking HTTP calls; they run in a worker thread.

Per gainer (all prices in US dollars, volumes in shares):

* ``price`` = last trade price (``lastTrade.p``; else the last minute's close; else the day's close).
* ``previous_close`` = ``prevDay.c`` (else the previous-day-bar endpoint), for gaps.
* ``change_pct`` = ``todaysChangePerc / 100`` (a fraction), else ``price / previous_close − 1``.
* ``volume`` = today's volume so far: ``max(day.v, min.av)`` (before the open Polygon's
  day bar may still be empty while the minute bar's accumulated volume counts the pre-market).
* ``relative_volume`` (*pace-adjusted*) = ``volume / (prevDay.v × f)`` where ``f`` is the
  elapsed fraction of today's regular session (09:30–16:00 New York, early closes from
  the XNYS calendar) clipped to [0.1, 1]; before 09:39 and in the pre-market ``f`` = 0.1.
  Without a clock ``f`` = 1 (plain today-vs-yesterday). One previous day stands in for
  "the average" because it is what the snapshot carries (no extra request per ticker).
* ``momentum`` in [0, 1] = ``0.4·C + 0.4·P + 0.2·V`` with

  - ``C = clip(change_pct / 0.10, 0, 1)`` — the day's gain, saturating at +10 %,
  - ``P = clip((price − day low) / (day high − day low), 0, 1)`` — where the price sits
    in the day's range (Chaikin's close location value rescaled to [0, 1]; 0.5 when the
    range is empty),
  - ``V = clip(relative_volume / 5, 0, 1)`` — relative volume, saturating at 5×.

  The saturation points follow the common momentum day-trading screen "up ≥ 10 % on the
  day with ≥ 5× relative volume" (Warrior Trading's stock-selection criteria). A stock up
  10 % trading at its high with 5× volume scores 1.0; up 6 % at its high with 3× volume
  scores 0.76.

Kept: ``relative_volume > scanner.min_relative_volume``, ``momentum ≥ scanner.min_momentum``,
``scanner.min_price ≤ price ≤ scanner.max_price`` and ``volume ≥ scanner.min_volume``;
ranked by momentum (rank 0 = highest). Tickers that are not plain US stock symbols
(e.g. warrants with digits) are skipped.

Failure policy: an empty ``scanner.polygon_api_key`` turns this scanner off (one INFO
line at construction). HTTP errors (after the client's retries), timeouts and malformed
JSON are logged and give an empty result; nothing raises to the caller except
``asyncio.CancelledError``. The API key never appears in a log line (messages are
redacted before logging).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daytrading.clock import NY, calendar
from daytrading.scanners.candidate import SOURCE_POLYGON, Candidate
from daytrading.scanners.watchlist import normalize_symbol

if TYPE_CHECKING:
    from massive import RESTClient

    from daytrading.clock import Clock
    from daytrading.config import ScannerSettings

log = logging.getLogger(__name__)

#: Weights and saturation points of the momentum score (see the module docstring).
W_CHANGE, W_RANGE, W_VOLUME = 0.4, 0.4, 0.2
CHANGE_FULL = 0.10
RELVOL_FULL = 5.0
#: Floor of the elapsed-session fraction used to pace the relative volume.
PACE_FLOOR = 0.1


def _clip01(x: float) -> float:
    return 0.0 if x != x else min(1.0, max(0.0, x))  # NaN → 0


def momentum_score(
    change_pct: float | None,
    price: float | None,
    day_low: float | None,
    day_high: float | None,
    relative_volume: float | None,
) -> float:
    """Momentum score in [0, 1]: ``0.4·C + 0.4·P + 0.2·V`` (module docstring for C, P, V).

    ``change_pct`` is a fraction; prices in dollars. Unknown parts count 0, except an
    unknown or empty day range, which counts 0.5 (neutral).
    """
    c = _clip01((change_pct or 0.0) / CHANGE_FULL)
    if price is not None and day_low is not None and day_high is not None and day_high > day_low > 0:
        p = _clip01((price - day_low) / (day_high - day_low))
    else:
        p = 0.5
    v = _clip01((relative_volume or 0.0) / RELVOL_FULL)
    return W_CHANGE * c + W_RANGE * p + W_VOLUME * v


def session_fraction(now: datetime) -> float:
    """Elapsed fraction of ``now``'s regular session, clipped to [``PACE_FLOOR``, 1].

    ``now`` is tz-aware; session open/close (early closes included) come from the XNYS
    calendar. Days without a session count as a full session (1.0).
    """
    cal = calendar()
    day = now.astimezone(NY).date()
    if not cal.is_session(day):
        return 1.0
    session = cal.session(day)
    total = (session.close - session.open).total_seconds()
    elapsed = (now - session.open).total_seconds()
    return min(1.0, max(PACE_FLOOR, elapsed / total if total > 0 else 1.0))


def to_polygon_ticker(symbol: str) -> str:
    """IB symbol → Polygon ticker (``"BRK B"`` → ``"BRK.B"``)."""
    return symbol.replace(" ", ".")


def _positive(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


class PolygonScanner:
    """Top gainers from Polygon (massive), filtered and scored (module docstring).

    Args:
        settings: ``settings.scanner`` (API key, base URL, filters, thresholds).
        clock: market clock for the pace-adjusted relative volume; ``None`` = unpaced.
        client: a ready ``massive.RESTClient`` (tests); ``None`` = build one from settings.
        retries: HTTP retries on 413/429/5xx inside the client (``Retry-After`` is not
            honoured, so a rate limit cannot stall a refresh).
        timeout: seconds for each HTTP connect and read, and for each whole call.
        max_lookups: previous-day-bar requests at most per scan (for snapshots missing
            ``prevDay``).

    Attributes:
        enabled: False when the API key is empty (the scanner returns ``[]``).
    """

    def __init__(
        self,
        settings: ScannerSettings,
        clock: Clock | None = None,
        *,
        client: RESTClient | None = None,
        retries: int = 2,
        timeout: float = 10.0,
        max_lookups: int = 5,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.timeout = timeout
        self.max_lookups = max_lookups
        self._secret = settings.polygon_api_key.get_secret_value()
        self.enabled = bool(self._secret.strip())
        self._client: RESTClient | None = None
        if not self.enabled:
            log.info("Polygon scanner off: scanner.polygon_api_key is empty")
            return
        self._client = client or self._build_client(retries, timeout)

    def _build_client(self, retries: int, timeout: float) -> RESTClient:
        from massive import RESTClient
        from urllib3.util.retry import Retry

        kwargs: dict[str, Any] = {}
        if self.settings.polygon_base_url:
            kwargs["base"] = self.settings.polygon_base_url.rstrip("/")
        retry = Retry(
            total=retries,
            status_forcelist=[413, 429, 499, 500, 502, 503, 504],
            backoff_factor=0.1,
            respect_retry_after_header=False,
        )
        return RESTClient(
            api_key=self._secret,
            connect_timeout=timeout,
            read_timeout=timeout,
            retries=retries,
            connection_pool_kw={"retries": retry},
            **kwargs,
        )

    # ------------------------------------------------------------------ public

    async def scan(self) -> list[Candidate]:
        """Today's gainers that pass the filters, best momentum first (``[]`` when off or on error)."""
        if not self.enabled or self._client is None:
            return []
        payload = await self._call_json("gainers snapshot", self._client.get_snapshot_direction,
                                        "stocks", "gainers", raw=True)
        if payload is None:
            return []
        tickers = payload.get("tickers") if isinstance(payload, dict) else None
        if not isinstance(tickers, list):
            log.error("Polygon gainers snapshot: no 'tickers' list in the response")
            return []
        rows = [row for row in (self._row(item) for item in tickers) if row is not None]
        await self._fill_previous_days(rows)
        pace = session_fraction(self.clock.now()) if self.clock is not None else 1.0
        kept = [c for c in (self._candidate(row, pace) for row in rows) if c is not None]
        kept.sort(key=lambda c: (-(c.momentum or 0.0), c.symbol))
        result = [c.with_updates(rank=i) for i, c in enumerate(kept)]
        log.info(
            "Polygon scanner: %d gainers, %d kept", len(tickers), len(result),
            extra={"gainers": len(tickers), "kept": [c.symbol for c in result]},
        )
        return result

    async def previous_close(self, symbol: str) -> float | None:
        """Previous session's close of ``symbol`` (IB spelling) in dollars, or ``None``.

        Never raises except ``asyncio.CancelledError``; errors are logged.
        """
        bar = await self._previous_day(symbol)
        return None if bar is None else bar.get("close")

    # ------------------------------------------------------------------ internals

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    async def _call_json(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking client call with ``raw=True``, decode its JSON; ``None`` on any error."""
        try:
            async with asyncio.timeout(self.timeout * 2):
                response = await asyncio.to_thread(fn, *args, **kwargs)
        except TimeoutError:
            log.error("Polygon %s: no answer within %.0f s", what, self.timeout * 2)
            return None
        except Exception as exc:  # HTTP errors after retries, connection refused, …
            log.error("Polygon %s failed: %s: %s", what, type(exc).__name__,
                      self._redact(str(exc))[:300])
            return None
        try:
            return json.loads(response.data.decode("utf-8"))
        except (ValueError, AttributeError) as exc:
            log.error("Polygon %s: malformed JSON response (%s)", what, self._redact(str(exc))[:200])
            return None

    def _row(self, item: Any) -> dict[str, Any] | None:
        from massive.rest.models import TickerSnapshot

        try:
            snap = TickerSnapshot.from_dict(item)
            symbol = normalize_symbol(str(snap.ticker or ""))
        except (ValueError, TypeError, AttributeError) as exc:
            log.debug("Polygon gainers: entry skipped (%s)", self._redact(str(exc))[:200])
            return None
        day, minute, prev, trade = snap.day, snap.min, snap.prev_day, snap.last_trade
        price = (
            _positive(trade.price if trade else None)
            or _positive(minute.close if minute else None)
            or _positive(day.close if day else None)
        )
        volume = max(
            _positive(day.volume if day else None) or 0.0,
            _positive(minute.accumulated_volume if minute else None) or 0.0,
        )
        change = snap.todays_change_percent
        return {
            "symbol": symbol,
            "ticker": snap.ticker,
            "price": price,
            "volume": volume,
            "change_pct": float(change) / 100.0 if isinstance(change, int | float) else None,
            "day_high": _positive(day.high if day else None),
            "day_low": _positive(day.low if day else None),
            "day_open": _positive(day.open if day else None),
            "vwap": _positive(day.vwap if day else None),
            "prev_close": _positive(prev.close if prev else None),
            "prev_volume": _positive(prev.volume if prev else None),
        }

    async def _fill_previous_days(self, rows: list[dict[str, Any]]) -> None:
        missing = [r for r in rows if r["prev_close"] is None or r["prev_volume"] is None]
        if not missing:
            return
        todo = missing[: self.max_lookups]
        bars = await asyncio.gather(*(self._previous_day(r["symbol"]) for r in todo))
        for row, bar in zip(todo, bars, strict=True):
            if bar:
                row["prev_close"] = row["prev_close"] or bar.get("close")
                row["prev_volume"] = row["prev_volume"] or bar.get("volume")

    async def _previous_day(self, symbol: str) -> dict[str, float | None] | None:
        if not self.enabled or self._client is None:
            return None
        ticker = to_polygon_ticker(symbol)
        payload = await self._call_json(f"previous close of {symbol}",
                                        self._client.get_previous_close_agg, ticker, raw=True)
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list) or not results or not isinstance(results[0], dict):
            if payload is not None:
                log.warning("Polygon previous close of %s: no results", symbol)
            return None
        from massive.rest.models import PreviousCloseAgg

        bar = PreviousCloseAgg.from_dict(results[0])
        return {"close": _positive(bar.close), "volume": _positive(bar.volume)}

    def _candidate(self, row: dict[str, Any], pace: float) -> Candidate | None:
        s = self.settings
        price, prev_close, prev_volume = row["price"], row["prev_close"], row["prev_volume"]
        if price is None:
            return None
        change = row["change_pct"]
        if change is None and prev_close:
            change = price / prev_close - 1.0
        rel_vol = row["volume"] / (prev_volume * pace) if prev_volume else None
        momentum = momentum_score(change, price, row["day_low"], row["day_high"], rel_vol)
        if rel_vol is None or not rel_vol > s.min_relative_volume:
            return None
        if momentum < s.min_momentum:
            return None
        if not (s.min_price <= price <= s.max_price) or row["volume"] < s.min_volume:
            return None
        return Candidate(
            symbol=row["symbol"],
            source=SOURCE_POLYGON,
            price=price,
            change_pct=change,
            volume=row["volume"],
            relative_volume=rel_vol,
            momentum=momentum,
            previous_close=prev_close,
            extra={
                "polygon_ticker": row["ticker"],
                "day_high": row["day_high"],
                "day_low": row["day_low"],
                "day_open": row["day_open"],
                "vwap": row["vwap"],
                "prev_volume": prev_volume,
                "pace": pace,
            },
        )
