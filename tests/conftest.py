"""Shared pytest fixtures: where the recorded market data lives, temporary databases."""

from __future__ import annotations

import logging
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


# --- file order for ``pytest -n 2 --dist loadfile`` ------------------------------------------
# xdist gives each worker whole files, by default in order of test count (most tests first), so
# the one-test whole-session files (a supervisor replay of minutes) came last and one worker ran
# them alone while the other sat idle. Longest first balances the workers: the files with a test
# marked ``slow`` go first (most tests first among them), then the others as xdist orders them.


@pytest.fixture(autouse=True)
def _restore_logger_levels():
    """A command run in-process (``daytrading.cli.main``) quiets the bots' loggers for the rest
    of its process, as a real CLI run should; here that would silence every later test's logs
    in the same worker, so each test gets the loggers' levels and propagation back."""
    names = ("daytrading", "ib_async")
    saved = [(logging.getLogger(n), logging.getLogger(n).level, logging.getLogger(n).propagate) for n in names]
    yield
    for logger, level, propagate in saved:
        logger.setLevel(level)
        logger.propagate = propagate


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, keep the collection order below (xdist would re-sort files by test count)."""
    if getattr(config.option, "dist", "no") == "loadfile":
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with a ``slow`` test first, then by number of tests (most first); order kept within a file."""
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    slow = {f for f, its in files.items() if any(it.get_closest_marker("slow") for it in its)}
    ranked = sorted(files, key=lambda f: (f not in slow, -len(files[f])))  # stable: ties keep collection order
    items[:] = [item for f in ranked for item in files[f]]
