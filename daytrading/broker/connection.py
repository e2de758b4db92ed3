"""The one way every process reaches the broker: an ib_async ``IB`` connection.

Nothing here knows whether the peer is IB Gateway, TWS or the sim-gateway; the
endpoint decides (sim mode → the embedded sim-gateway's port, otherwise ``ib.port``).

Account kind: IB paper accounts start with ``D`` (``DU…``, ``DF…``). ``paper`` mode
refuses a live account and ``live`` mode refuses a paper account, so a mistyped port
can never send real orders from a test run (architecture page, "One code path").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ib_async import IB, Contract, Stock

from daytrading.config import Settings
from daytrading.errors import ConfigError, TemporaryBrokerError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """Where the API socket listens: ``host`` and TCP ``port``."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def broker_endpoint(settings: Settings) -> Endpoint:
    """The endpoint for this run: ``127.0.0.1:sim.port`` in sim mode, else ``ib.host:ib.port``."""
    if settings.is_sim:
        return Endpoint("127.0.0.1", settings.sim.port)
    return Endpoint(settings.ib.host, settings.ib.port)


def is_paper_account(account: str) -> bool:
    """True for IB paper/demo account codes (they start with ``D``: ``DU1234567``)."""
    return account.upper().startswith("D")


def check_account_kind(settings: Settings, account: str) -> None:
    """Refuse a live account in paper/sim mode and a paper account in live mode.

    Raises:
        ConfigError: the account kind and ``mode`` disagree (names both).
    """
    paper = is_paper_account(account)
    if settings.mode == "live" and paper:
        raise ConfigError(f"mode = 'live' but the broker account {account!r} is a paper account; check ib.port")
    if settings.mode in ("paper", "sim") and not paper:
        raise ConfigError(
            f"mode = {settings.mode!r} but the broker account {account!r} is a LIVE account; refusing to trade. "
            "Point ib.port at a paper gateway (4002 / 7497) or set mode = 'live' with live_trading_acknowledged"
        )


async def connect(
    settings: Settings,
    client_id: int,
    *,
    timeout: float | None = None,
    readonly: bool = False,
    ib: IB | None = None,
) -> IB:
    """Connect ``client_id`` to the broker endpoint and finish ib_async's startup sync.

    Sets the market data type from ``ib.market_data_type`` (3 = delayed by default)
    and checks the account kind against ``mode``.

    Returns:
        The connected :class:`ib_async.IB` (``ib`` if given, so event handlers survive
        reconnects).

    Raises:
        TemporaryBrokerError: nothing listens at the endpoint, the handshake timed out,
            or the client id is already in use (the message says which and what to do).
        ConfigError: the account kind does not match ``mode``.
    """
    endpoint = broker_endpoint(settings)
    ib = ib or IB()
    # ib_async logs its own "API connection failed: …" traceback-like lines at ERROR; the
    # failure is reported once below as a TemporaryBrokerError that says what to do.
    quiet = [logging.getLogger(name) for name in ("ib_async.client", "ib_async.ib")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.CRITICAL)
    try:
        await ib.connectAsync(
            endpoint.host,
            endpoint.port,
            clientId=client_id,
            timeout=timeout or settings.ib.connect_timeout,
            readonly=readonly,
            account=settings.ib.account,
        )
    except ConnectionRefusedError as exc:
        ib.disconnect()
        raise TemporaryBrokerError(
            f"no IB Gateway/TWS accepting API connections at {endpoint} (connection refused); "
            "start IB Gateway with the API enabled on that port, or run in sim mode"
        ) from exc
    except TimeoutError as exc:
        ib.disconnect()
        raise TemporaryBrokerError(
            f"connected to {endpoint} but the API handshake for clientId {client_id} timed out; "
            "is that client id already in use, or is the API disabled in the gateway settings?"
        ) from exc
    except (ConnectionError, OSError) as exc:
        ib.disconnect()
        raise TemporaryBrokerError(f"cannot connect clientId {client_id} to {endpoint}: {exc}") from exc
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)
    accounts = ib.managedAccounts()
    account = settings.ib.account or (accounts[0] if accounts else "")
    if account:
        try:
            check_account_kind(settings, account)
        except ConfigError:
            ib.disconnect()
            raise
    ib.reqMarketDataType(settings.ib.market_data_type)
    log.info(
        "connected to broker",
        extra={"endpoint": str(endpoint), "client_id": client_id, "account": account,
               "server_version": ib.client.serverVersion()},
    )
    return ib


def stock(symbol: str) -> Stock:
    """A US stock contract routed SMART in USD (primary exchange filled by qualification)."""
    return Stock(symbol.upper(), "SMART", "USD")


async def qualify_stocks(ib: IB, symbols: list[str]) -> dict[str, Contract]:
    """Qualify US stocks; returns ``{symbol: contract}`` for those IB knows.

    Unknown symbols (IB error 200) are left out and logged, never raised.
    """
    contracts = [stock(s) for s in symbols]
    if not contracts:
        return {}
    result = await ib.qualifyContractsAsync(*contracts)
    out: dict[str, Contract] = {}
    for c in result:
        if c is not None and getattr(c, "conId", 0):
            out[c.symbol] = c
    missing = sorted(set(s.upper() for s in symbols) - set(out))
    if missing:
        log.warning("symbols not known to the broker", extra={"symbols": missing})
    return out
