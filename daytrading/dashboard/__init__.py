"""The local web dashboard and health API (``daytrading dashboard``; the supervisor starts it).

* :mod:`~daytrading.dashboard.readonly` — read-only SQLite connections (``mode=ro``): the
  dashboard can never take a write lock that a bot waits on, never migrates, never needs
  an IB client id; it knows the broker only through what the bots record.
* :mod:`~daytrading.dashboard.views` — pure functions: health checks, positions with
  distances to target and stop, the equity curve, gate summaries.
* :mod:`~daytrading.dashboard.reader` — one snapshot of everything, read through the
  Coordinator's read methods and a few aggregate queries, cached for a poll interval.
* :mod:`~daytrading.dashboard.stream` — the Server-Sent Events feed (one poller, many clients).
* :mod:`~daytrading.dashboard.app` — FastAPI routes: ``/``, ``/health``, ``/metrics``,
  ``/api/*``, ``/api/stream``, the token-guarded controls.
* :mod:`~daytrading.dashboard.server` — the command: bind checks, uvicorn.
"""
