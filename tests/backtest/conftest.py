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
def tsla_window(minute_data_dir):
    """TSLA, 09:20-09:40 of 2020-11-17 (TSLA enters at the open and stops out at 09:31 with the
    default settings), run twice with seed 3."""
    from daytrading.backtest import run_session
    from daytrading.config import load_settings

    settings = load_settings(env_file=None)
    return [run_session(minute_data_dir, DAY, settings, seed=3, symbols=["TSLA"], start=at(9, 20), end=at(9, 40))
            for _ in range(2)]
