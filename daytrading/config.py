"""Typed, frozen, strict settings (pydantic-settings).

Precedence, highest first:

1. command-line options (passed to :func:`load_settings` as ``overrides``),
2. environment variables with the prefix ``DAYTRADING_`` (nested with ``__``, e.g.
   ``DAYTRADING_IB__PORT=4001``),
3. the ``.env`` file in the working directory (same names),
4. the TOML file (``daytrading.toml`` by default, ``--config PATH``),
5. the defaults below (also written out, commented, in ``daytrading.example.toml``).

Units: every percentage-like setting is a **fraction** (0.018 = 1.8 %); money is
US dollars; durations are seconds unless the name says minutes.

Validation happens once at start; an invalid value raises
:class:`daytrading.errors.ConfigError` whose message names the setting, the value
and the source file. Secrets are :class:`pydantic.SecretStr` and never printed.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from daytrading.errors import ConfigError

DEFAULT_CONFIG_FILE = "daytrading.toml"
ENV_PREFIX = "DAYTRADING_"

Mode = Literal["sim", "paper", "live"]

_STRICT = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class IBSettings(BaseModel):
    """Connection to IB Gateway / TWS / the sim-gateway (the port decides which)."""

    model_config = _STRICT

    host: str = "127.0.0.1"
    port: int = Field(4002, ge=1, le=65535, description="4002 IB Gateway paper, 4001 live, 7497/7496 TWS")
    exit_manager_client_id: int = Field(10, ge=0)
    day_trader_client_id: int = Field(2, ge=0)
    tools_client_id: int = Field(99, ge=0, description="spare id for liquidate-all, test-connection, monitor")
    account: str = Field("", description="account code; empty = the single managed account")
    connect_timeout: float = Field(10.0, gt=0, description="seconds for connect and startup sync")
    market_data_type: int = Field(3, ge=1, le=4, description="1 live, 2 frozen, 3 delayed, 4 delayed-frozen")

    @model_validator(mode="after")
    def _distinct_ids(self) -> IBSettings:
        ids = [self.exit_manager_client_id, self.day_trader_client_id, self.tools_client_id]
        if len(set(ids)) != 3:
            raise ValueError(
                "ib.exit_manager_client_id, ib.day_trader_client_id and ib.tools_client_id must differ, "
                f"got {ids}"
            )
        return self


class EntrySettings(BaseModel):
    """Entry rules (fractions, not percent)."""

    model_config = _STRICT

    rsi_max: float = Field(60.0, gt=0, lt=100, description="enter only when RSI(14) < this")
    atr_min: float = Field(0.003, ge=0, lt=1, description="ATR(14) / price must be at least this (0.003 = 0.3 %)")
    gap_min: float = Field(0.05, gt=0, lt=10, description="gap-and-go: pre-market gap over previous close (0.05 = 5 %)")
    rsi_period: int = Field(14, ge=2)
    atr_period: int = Field(14, ge=2)
    bar_seconds: int = Field(30, ge=5, description="bar size the rules are computed on")
    limit_offset: float = Field(0.001, ge=0, lt=0.05, description="marketable limit = last × (1 + this)")
    order_timeout: float = Field(30.0, gt=0, description="seconds to wait for an entry fill before cancelling")


class IntervalSettings(BaseModel):
    """Loop periods and timeouts, in seconds of market time unless noted."""

    model_config = _STRICT

    scanner_refresh: float = Field(900.0, gt=0)
    exit_poll: float = Field(10.0, gt=0, description="exit-manager safety sweep over the portfolio")
    health_check: float = Field(60.0, gt=0, description="heartbeat older than this = hung bot (wall seconds)")
    status: float = Field(300.0, gt=0, description="supervisor status table period")
    heartbeat: float = Field(3.0, gt=0, description="bots write their heartbeat this often (wall seconds)")
    reconnect: float = Field(30.0, gt=0, description="seconds between reconnect attempts")
    outage_critical: float = Field(300.0, gt=0, description="outage longer than this raises a critical event")
    exit_fill_timeout: float = Field(10.0, gt=0, description="wait this long for a stop SELL MKT before re-checking")
    cycle: float = Field(30.0, gt=0, description="day-trader evaluation cycle")


class PathSettings(BaseModel):
    """Files and folders (relative paths are relative to the working directory)."""

    model_config = _STRICT

    database: Path = Path("trading_history.db")
    log_dir: Path = Path("logs")
    backup_dir: Path = Path("backups")
    backup_keep: int = Field(7, ge=1, description="number of daily backups kept")
    watchlist: Path = Path("day_trading_watchlist.json")
    report_dir: Path = Path("reports")


class ScannerSettings(BaseModel):
    """Candidate sources: IB scanner, Polygon (massive) and the watchlist file."""

    model_config = _STRICT

    max_symbols: int = Field(30, ge=1)
    ib_scan_codes: tuple[str, ...] = ("TOP_PERC_GAIN", "MOST_ACTIVE", "HOT_BY_VOLUME")
    min_price: float = Field(2.0, ge=0)
    max_price: float = Field(1000.0, gt=0)
    min_volume: float = Field(100_000, ge=0)
    polygon_api_key: SecretStr = SecretStr("")
    polygon_base_url: str = Field("", description="empty = the massive client's default")
    min_relative_volume: float = Field(2.0, ge=0)
    min_momentum: float = Field(0.7, ge=0, le=1)


class LLMSettings(BaseModel):
    """Optional LLM review of candidates (DeepSeek first, Gemini fallback, heuristics without keys)."""

    model_config = _STRICT

    enabled: bool = True
    deepseek_api_key: SecretStr = SecretStr("")
    gemini_api_key: SecretStr = SecretStr("")
    deepseek_model: str = "deepseek-chat"
    gemini_model: str = "gemini-2.0-flash"
    temperature: float = Field(0.1, ge=0, le=2)
    timeout: float = Field(20.0, gt=0)
    max_parallel: int = Field(6, ge=1)
    on_failure: Literal["reject", "pass"] = "reject"
    min_confidence: float = Field(0.5, ge=0, le=1)


class SimSettings(BaseModel):
    """The embedded sim-gateway and the shared replay clock (mode = "sim")."""

    model_config = _STRICT

    data: Path = Path("../shared/data/market/alphavantage_1min")
    session_date: date | None = Field(None, description="replay session date; empty = a recorded gap day")
    speed: float = Field(390.0, gt=0, description="market seconds per wall second")
    start: datetime | None = Field(None, description="market time at the replay epoch (New York if naive)")
    epoch: float | None = Field(None, description="wall POSIX seconds at which the replay starts")
    port: int = Field(4012, ge=1, le=65535)
    admin_port: int = Field(0, ge=0, le=65535, description="0 = port + 1")
    account: str = "DU0000001"
    cash: float = Field(100_000.0, gt=0)
    seed: int = 7
    symbols: tuple[str, ...] = ()
    order_latency_ms: float = Field(50.0, ge=0, le=60_000, description=(
        "backtest: market ms between an order/cancel and its effect at the simulated exchange"))
    path_step_s: float = Field(1.0, gt=0, le=60, description=(
        "backtest: market seconds between trades of the intrabar path (15 = four points per minute bar)"))


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class DashboardSettings(BaseModel):
    """The local web dashboard and health API (``daytrading dashboard``; started by the supervisor)."""

    model_config = _STRICT

    enabled: bool = Field(True, description="the supervisor starts the dashboard beside the bots")
    host: str = Field("127.0.0.1", description="bind address; anything but loopback needs dashboard.token")
    port: int = Field(8787, ge=1, le=65535)
    token: SecretStr = Field(SecretStr(""), description="bearer token of the controls (freeze, unfreeze, "
                             "liquidate-all); empty = controls disabled. Put it in .env, never in a shared file")
    stale_after: float = Field(15.0, gt=0, description="a bot heartbeat older than this (wall s) is unhealthy")
    poll_interval: float = Field(0.5, gt=0, le=60, description="wall seconds between the live stream's database reads")
    critical_window_minutes: float = Field(
        30.0, ge=0, description="a CRITICAL event stays open this many market minutes (a freeze or crash loop until cleared)")
    max_stream_clients: int = Field(100, ge=1, description="concurrent live-stream (SSE) clients; more get 503")
    priority: Literal["idle", "below_normal", "normal"] = Field(
        "idle", description="CPU priority of the dashboard process: idle = Linux SCHED_IDLE (a woken bot always "
        "preempts it; nice 19 on other POSIX), below_normal = nice 10; Windows uses BELOW_NORMAL for both")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``127.x.x.x``, ``::1``, ``localhost``)."""
    import ipaddress

    if host.strip().lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def dashboard_url(dash: DashboardSettings) -> str:
    """The page's address, ``http://HOST:PORT/`` (an IPv6 host in brackets)."""
    return f"http://{'[' + dash.host + ']' if ':' in dash.host else dash.host}:{dash.port}/"


def dashboard_bind_error(dash: DashboardSettings) -> str | None:
    """Why the dashboard must not start with these settings, or ``None`` when it may.

    A non-loopback bind (``0.0.0.0``, a LAN address) without ``dashboard.token`` would offer
    the system to the network with nobody able to use the controls safely: refused.
    """
    if is_loopback(dash.host) or dash.token.get_secret_value():
        return None
    return (f"dashboard.host = {dash.host!r} is reachable from other machines but dashboard.token is not set; "
            "set dashboard.token (DAYTRADING_DASHBOARD__TOKEN in .env or the environment) or bind 127.0.0.1")


class Settings(BaseSettings):
    """Every setting of the system; frozen after load.

    Build it with :func:`load_settings`, which applies the documented precedence and
    turns validation errors into one :class:`ConfigError` naming the setting.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    mode: Mode = Field("sim", description="sim (embedded sim-gateway), paper, live")
    live_trading_acknowledged: bool = Field(
        False, description="must be true to run in live mode (real money)"
    )
    allocation: float = Field(0.25, description="fraction of net liquidation the day-trader may use, in (0, 1]")
    profit_target: float = Field(0.018, gt=0, lt=1, description="fraction above entry (0.018 = +1.8 %)")
    stop_loss: float = Field(0.009, gt=0, lt=1, description="fraction below entry (0.009 = −0.9 %)")
    max_concurrent_positions: int = Field(4, ge=1)
    max_new_entries_per_cycle: int = Field(2, ge=1)
    cooldown_minutes: float = Field(30.0, ge=0, description="per symbol, after a close or failed entry")
    min_notional: float = Field(500.0, ge=0, description="dollars; smaller entries are refused")
    daily_loss_limit: float = Field(
        0.02, gt=0, lt=1, description="stop entering when realised + unrealised P&L < −this × net liquidation"
    )
    eod_flatten_minutes: float = Field(15.0, ge=0, description="flatten this many minutes before the close")
    entry_cutoff_minutes: float = Field(15.0, ge=0, description="no new entries this close to the flatten time")
    exit_max_retries: int = Field(5, ge=1, description="failed SELLs per symbol before a critical event")
    disaster_stop_enabled: bool = Field(
        True, description="rest a broker-side STP SELL (OCA with the target) under every position"
    )
    disaster_stop: float | None = Field(
        None, gt=0, lt=1, description="fraction below entry of the broker-side stop (default 2 × stop_loss)"
    )
    stop_on_delayed_data: bool = Field(
        False, description="paper/live: allow the bot-monitored stop to run on delayed (15–20 min old) prices"
    )
    max_price_age: float = Field(
        60.0, gt=0, description="market seconds; an older price is not used for a stop decision"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    ib: IBSettings = IBSettings()
    entry: EntrySettings = EntrySettings()
    intervals: IntervalSettings = IntervalSettings()
    paths: PathSettings = PathSettings()
    scanner: ScannerSettings = ScannerSettings()
    llm: LLMSettings = LLMSettings()
    sim: SimSettings = SimSettings()
    dashboard: DashboardSettings = DashboardSettings()

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not (0 < self.allocation <= 1):
            raise ValueError(f"allocation must be in (0, 1], got {self.allocation!r}")
        if self.stop_loss >= self.profit_target:
            raise ValueError(
                f"stop_loss ({self.stop_loss!r}) must be smaller than profit_target ({self.profit_target!r})"
            )
        if self.disaster_stop is not None and self.disaster_stop <= self.stop_loss:
            raise ValueError(
                f"disaster_stop ({self.disaster_stop!r}) must be larger than stop_loss ({self.stop_loss!r}):"
                " it is the net under the bot-monitored stop"
            )
        if self.mode == "live" and not self.live_trading_acknowledged:
            raise ValueError(
                "mode 'live' trades real money and is refused unless live_trading_acknowledged = true"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """CLI (init) > environment > .env > TOML file."""
        return (init_settings, env_settings, dotenv_settings, _TomlSource(settings_cls))

    # Convenience views -------------------------------------------------

    @property
    def is_sim(self) -> bool:
        """True in sim mode (embedded sim-gateway, replay clock)."""
        return self.mode == "sim"

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data with every secret masked (``'***'`` or ``''``)."""
        data = self.model_dump(mode="json")

        def mask(model: BaseModel, out: dict[str, Any]) -> None:
            for name in type(model).model_fields:
                value = getattr(model, name)
                if isinstance(value, SecretStr):
                    out[name] = "***" if value.get_secret_value() else ""
                elif isinstance(value, BaseModel):
                    mask(value, out[name])

        mask(self, data)
        return data


_toml_data: ContextVar[dict[str, Any] | None] = ContextVar("_toml_data", default=None)


class _TomlSource(PydanticBaseSettingsSource):
    """The TOML file's data, already read by :func:`load_settings` (lowest precedence)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return (_toml_data.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_toml_data.get() or {})


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML settings file.

    Raises:
        ConfigError: the file cannot be read or is not valid TOML (names the file).
    """
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} not found") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        value = err.get("input")
        if err.get("type") == "extra_forbidden":
            lines.append(f"unknown setting '{loc}' (value {value!r}) in {source}")
            continue
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        if loc:
            shown = "***" if "key" in loc or "token" in loc else repr(value)
            lines.append(f"setting '{loc}' = {shown}: {msg}")
        else:
            lines.append(msg)
    return "invalid configuration: " + "; ".join(lines)


def load_settings(
    config_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    env_file: str | Path | None = ".env",
) -> Settings:
    """Load, merge and validate the settings.

    Args:
        config_path: TOML file; ``None`` = ``daytrading.toml`` in the working directory
            if present (``$DAYTRADING_CONFIG`` names another), else defaults only. An
            explicitly given path must exist.
        overrides: command-line values, nested dicts (``{"ib": {"port": 4001}}``); ``None``
            values are ignored.
        env_file: the dotenv file (``None`` to skip it).

    Returns:
        The frozen :class:`Settings`.

    Raises:
        ConfigError: unreadable/invalid TOML, unknown key, or invalid value; the message
            names the setting, the value and the file.
    """
    explicit = config_path is not None or bool(os.environ.get("DAYTRADING_CONFIG"))
    path = Path(config_path or os.environ.get("DAYTRADING_CONFIG") or DEFAULT_CONFIG_FILE)
    file_data: dict[str, Any] = {}
    if explicit or path.exists():
        file_data = read_toml(path)
    source = (
        f"{path}, the DAYTRADING_* environment, .env or the command line"
        if file_data
        else "the DAYTRADING_* environment, .env or the command line"
    )
    return _build(_drop_none(overrides or {}), file_data, env_file, source)


def _build(data: dict[str, Any], toml: dict[str, Any], env_file: str | Path | None, source: str) -> Settings:
    """``Settings(**data)`` over the TOML data ``toml``; a validation error becomes one ConfigError."""
    token = _toml_data.set(toml)
    try:
        return Settings(_env_file=env_file, **data)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None
    finally:
        _toml_data.reset(token)


def with_overrides(settings: Settings, overrides: dict[str, Any], source: str = "the command line") -> Settings:
    """A copy of ``settings`` with nested ``overrides`` applied and **validated** again.

    Unlike ``model_copy(update=...)`` every rule runs (ranges, distinct client ids…), so
    a bad command-line value (``--client-id -1``) is refused here instead of reaching IB.

    Raises:
        ConfigError: an override is invalid (names the setting, the value and ``source``).
    """

    def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in extra.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    return _build(merge(settings.model_dump(), _drop_none(overrides)), {}, None, source)


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            nested = _drop_none(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out
