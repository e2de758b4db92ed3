"""sim-gateway: a local IB Gateway speaking the TWS API (server version 178) over loopback.

Unmodified ib_async clients connect to it exactly as to IB Gateway; it replays recorded
bars on a shared replay clock, fills orders against them, keeps the account, and injects
faults. Entry points: :class:`~daytrading.broker.sim_gateway.server.SimGateway`,
``daytrading sim-gateway`` (:mod:`.cli`), test helpers in :mod:`.testing`.
Modules are imported lazily (import the submodule you need) so that loading the package
stays cheap for the CLI.
"""
