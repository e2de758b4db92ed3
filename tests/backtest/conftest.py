"""A short recorded window replayed once per test session, shared by the backtest tests."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from daytrading.clock import NY

DAY = date(2020, 11, 17)


def at(h: int, m: int) -> datetime:
    """2020-11-17 at ``h:m`` New York."""
    return datetime(DAY.year, DAY.month, DAY.day, h, m, tzinfo=NY)


@pytest.fixture(scope="session")
def nio_window(minute_data_dir):
    """NIO, 09:20-10:05 of 2020-11-17 (NIO enters at 09:44 and stops out at 09:52), run twice
    with the default settings and seed 3."""
    from daytrading.backtest import run_session
    from daytrading.config import load_settings

    settings = load_settings(env_file=None)
    return [run_session(minute_data_dir, DAY, settings, seed=3, symbols=["NIO"], start=at(9, 20), end=at(10, 5))
            for _ in range(2)]
