"""The sim-gateway's trading engine: the replayed market (:mod:`.market`), matching and IB's fees
(:mod:`.fills`), and the small context it runs in (:mod:`.context`).

The engine knows no wire format: it never imports :mod:`daytrading.sim_gateway.protocol` or the
server, never sees bytes, fields or connections. It reads market time and writes its event log
through an :class:`~.context.EngineContext`, and reports what happened as events
(:mod:`.context`) that the server turns into messages for the connections concerned.
"""
