"""Which sessions a data folder holds, and settings with ``--set KEY=VALUE`` overrides."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from daytrading.config import Settings, with_overrides
from daytrading.errors import ConfigError


def settings_with(settings: Settings, overrides: Mapping[str, str]) -> Settings:
    """``settings`` with ``overrides`` applied and validated like the config file.

    Args:
        settings: the base settings.
        overrides: ``{"profit_target": "0.02", "entry.rsi_max": "55"}``: dotted keys into the
            settings tree, values as text (pydantic converts them as it does the TOML/env
            sources; a tuple setting takes comma-separated text, e.g. ``sim.symbols=AAPL,NIO``).

    Returns:
        New frozen :class:`Settings` (``settings`` is unchanged).

    Raises:
        ConfigError: an unknown key (the message names the key and lists the known keys of
            its section) or an invalid value (names the key and the value).
    """
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = [p.strip() for p in str(key).split(".")]
        if not all(parts):
            raise ConfigError(f"setting '{key}' = {value!r}: empty part in the dotted key")
        _check_key(settings, parts, key, value)
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _convert(settings, parts, value)
    return with_overrides(settings, nested, source=f"--set {', '.join(f'{k}={v}' for k, v in overrides.items())}")


def _check_key(settings: Settings, parts: list[str], key: str, value: Any) -> None:
    from pydantic import BaseModel

    model: Any = settings
    for i, part in enumerate(parts):
        fields = type(model).model_fields
        if part not in fields:
            section = ".".join(parts[:i]) or "the top level"
            raise ConfigError(f"unknown setting '{key}' (value {value!r}): no '{part}' in {section}; "
                              f"known there: {', '.join(sorted(fields))}")
        model = getattr(model, part)
        if i < len(parts) - 1 and not isinstance(model, BaseModel):
            raise ConfigError(f"unknown setting '{key}' (value {value!r}): '{part}' is a value, not a section")
    if isinstance(model, BaseModel):
        raise ConfigError(f"setting '{key}' (value {value!r}) is a section; name one of its keys: "
                          f"{', '.join(sorted(type(model).model_fields))}")


def _convert(settings: Settings, parts: list[str], value: Any) -> Any:
    """Comma text for tuple settings; everything else is left to pydantic."""
    current: Any = settings
    for part in parts:
        current = getattr(current, part)
    if isinstance(current, tuple) and isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if current is None and isinstance(value, str) and value.strip().lower() in ("", "none", "null"):
        return None
    return value


def list_sessions(data: str | Path, start: date | None = None, end: date | None = None) -> list[date]:
    """XNYS sessions with recorded bars in ``data``, ascending, within ``[start, end]`` (inclusive).

    Unusable files are skipped here (they are reported by the session's run); weekends and
    holidays with stray bars are not sessions.

    Raises:
        DataError: ``data`` does not exist or holds no bar files.
    """
    from daytrading.clock import calendar
    from daytrading.marketdata.loader import available_dates

    cal = calendar()
    days = [d for d in available_dates(data) if cal.is_session(d)]
    return [d for d in days if (start is None or d >= start) and (end is None or d <= end)]
