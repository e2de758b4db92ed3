"""The sim-gateway's trading engine: the replayed market (:mod:`.market`), matching and IB's fees
(:mod:`.fills`), the order book (:mod:`.book`), the account (:mod:`.account`), injected faults and
latency settings (:mod:`.faults`), market-data computations on the replay (:mod:`.marketdata`),
the typed requests it accepts (:mod:`.requests`) and the small context it runs in (:mod:`.context`).

The engine knows no wire format: it never imports :mod:`daytrading.sim_gateway.protocol` or the
server, nor any module that sees a connection (session, handlers, the fault runner, the delay
line; import-linter contracts in pyproject.toml), and never sees bytes, fields or connections.
It reads market time and writes its event log through an :class:`~.context.EngineContext`, and
reports what happened as events (:mod:`.context`; fault effects are returned by
:meth:`.faults.FaultState.apply`) that the server turns into messages or actions for the
connections concerned.
"""
