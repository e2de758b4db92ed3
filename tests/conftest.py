"""Shared pytest fixtures: where the recorded market data lives, temporary databases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def market_data_root() -> Path:
    """The recorded market data folder (``../shared/data/market`` beside the project).

    ``DAYTRADING_MARKET_DATA`` overrides it.
    """
    env = os.environ.get("DAYTRADING_MARKET_DATA")
    return Path(env) if env else (PROJECT_ROOT.parent / "shared" / "data" / "market").resolve()


@pytest.fixture(scope="session")
def market_data_dir() -> Path:
    """Path of ``shared/data/market``; the suite needs it (CI puts it beside the clone)."""
    root = market_data_root()
    if not root.is_dir():
        pytest.fail(f"recorded market data not found at {root} (set DAYTRADING_MARKET_DATA)")
    return root


@pytest.fixture(scope="session")
def minute_data_dir(market_data_dir: Path) -> Path:
    """The 39-symbol Alpha Vantage 1-minute folder (pre-market included)."""
    return market_data_dir / "alphavantage_1min"
