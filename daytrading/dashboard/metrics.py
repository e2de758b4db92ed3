"""``GET /metrics``: the snapshot in Prometheus text format (prometheus-client).

Every scrape builds the families from one snapshot (no state kept between scrapes apart
from the exit-latency log tail). Names and units:

* ``daytrading_up{bot}`` 1 when the bot's heartbeat check passes (see ``/health``);
* ``daytrading_heartbeat_age_seconds{bot}`` wall seconds since the bot's last heartbeat;
* ``daytrading_restarts_total{bot}`` restarts by the supervisor (while it runs);
* ``daytrading_positions{status}`` active rows by status;
* ``daytrading_realized_pnl_dollars`` / ``daytrading_unrealized_pnl_dollars`` of the session shown;
* ``daytrading_trades{result}`` trades of the session (``win``, ``loss``, ``flat``);
* ``daytrading_gate_rejections{gate}`` rejections of the session by gate;
* ``daytrading_exit_latency_seconds`` summary (``quantile`` 0.5 / 0.99 over the last
  1000 exits, ``_count``, ``_sum``): the exit-manager's ticker event → SELL placed;
* ``daytrading_health_ok``, ``daytrading_frozen``, ``daytrading_database_readable``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daytrading.dashboard.views import BOTS


class _SnapshotCollector(Collector):
    def __init__(self, snap: dict[str, Any]) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:  # noqa: C901 - one family after the other
        snap = self.snap
        status = snap.get("status") or {}
        checks = {c["name"]: c for c in snap["health"]["checks"]}
        up = GaugeMetricFamily("daytrading_up", "1 when the bot's heartbeat check passes", labels=["bot"])
        age = GaugeMetricFamily("daytrading_heartbeat_age_seconds", "wall seconds since the bot's last heartbeat",
                                labels=["bot"])
        restarts = CounterMetricFamily("daytrading_restarts", "restarts of the bot by the supervisor", labels=["bot"])
        bots = {b["bot"]: b for b in status.get("bots") or []}
        for name in BOTS:
            check = checks.get(f"{name} heartbeat") or {"ok": False, "value": {}}
            up.add_metric([name], 1.0 if check["ok"] else 0.0)
            if check["value"].get("age_s") is not None:
                age.add_metric([name], float(check["value"]["age_s"]))
            if (bots.get(name) or {}).get("restarts") is not None:
                restarts.add_metric([name], float(bots[name]["restarts"]))
        yield from (up, age, restarts)
        positions = GaugeMetricFamily("daytrading_positions", "active positions by status", labels=["status"])
        counts: dict[str, int] = {"PENDING_ENTRY": 0, "OPEN": 0, "EXITING": 0}
        for p in snap.get("positions") or []:
            counts[p["status"]] = counts.get(p["status"], 0) + 1
        for st, n in counts.items():
            positions.add_metric([st], float(n))
        yield positions
        yield GaugeMetricFamily("daytrading_realized_pnl_dollars", "realised P&L of the session shown, dollars",
                                value=float(status.get("realized_pnl") or 0.0))
        yield GaugeMetricFamily("daytrading_unrealized_pnl_dollars", "unrealised P&L of the open positions, dollars",
                                value=float(snap.get("unrealized_pnl") or 0.0))
        trades = GaugeMetricFamily("daytrading_trades", "trades of the session shown by result", labels=["result"])
        n_trades = int(status.get("trades") or 0)
        wins, losses = int(status.get("wins") or 0), int(status.get("losses") or 0)
        for result, n in (("win", wins), ("loss", losses), ("flat", n_trades - wins - losses)):
            trades.add_metric([result], float(n))
        yield trades
        gates = GaugeMetricFamily("daytrading_gate_rejections", "gate rejections of the session shown", labels=["gate"])
        for gate, n in (status.get("gate_rejections") or {}).items():
            gates.add_metric([gate], float(n))
        yield gates
        lat = snap.get("latency") or {}
        summary = Metric("daytrading_exit_latency_seconds",
                         "exit-manager: ticker event to SELL placed (quantiles over the last 1000 exits)", "summary")
        for q, key in (("0.5", "p50_ms"), ("0.99", "p99_ms")):
            if lat.get(key) is not None:
                summary.add_sample("daytrading_exit_latency_seconds", {"quantile": q}, lat[key] / 1000.0)
        summary.add_sample("daytrading_exit_latency_seconds_count", {}, float(lat.get("count") or 0))
        summary.add_sample("daytrading_exit_latency_seconds_sum", {}, float(lat.get("sum_ms") or 0.0) / 1000.0)
        yield summary
        yield GaugeMetricFamily("daytrading_health_ok", "1 when /health answers 200",
                                value=1.0 if snap["health"]["ok"] else 0.0)
        yield GaugeMetricFamily("daytrading_frozen", "1 while the global freeze is set",
                                value=1.0 if status.get("freeze") else 0.0)
        yield GaugeMetricFamily("daytrading_database_readable", "1 when the database could be read",
                                value=0.0 if snap.get("db_error") else 1.0)


def metrics_text(snap: dict[str, Any]) -> bytes:
    """The Prometheus exposition of ``snap`` (a :meth:`Reader.snapshot`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap))
    return generate_latest(registry)
