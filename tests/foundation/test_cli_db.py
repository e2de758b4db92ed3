"""The ``daytrading`` command line, run as a real process, on a real database file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daytrading.db.backup import backup_database, integrity_check


def run(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DAYTRADING_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "daytrading", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=full_env)


def test_db_init_creates_wal_database_and_reports(tmp_path: Path) -> None:
    res = run(tmp_path, "db", "init", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["journal_mode"] == "wal" and info["synchronous"] == "NORMAL" and info["created"] is True
    assert info["revision"] == "0002_executions"
    assert (tmp_path / "trading_history.db").exists()
    again = run(tmp_path, "db", "upgrade", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["created"] is False


def test_db_queries_json(tmp_path: Path) -> None:
    assert run(tmp_path, "db", "init").returncode == 0
    for cmd in (["db", "positions"], ["db", "closed-today"], ["db", "trades", "--date", "2020-11-17"]):
        res = run(tmp_path, *cmd, "--json")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout) == []
    res = run(tmp_path, "db", "trades", "--date", "17/11/2020")
    assert res.returncode == 2 and "YYYY-MM-DD" in res.stderr


def test_integrity_exit_codes_and_corrupt_file_untouched(tmp_path: Path) -> None:
    assert run(tmp_path, "db", "init").returncode == 0
    assert run(tmp_path, "db", "integrity").returncode == 0
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"this is not a database" * 100)
    before = bad.read_bytes()
    res = run(tmp_path, "--db", "corrupt.db", "db", "integrity")
    assert res.returncode == 1 and "NOT OK" in res.stdout
    res = run(tmp_path, "--db", "corrupt.db", "db", "positions")
    assert res.returncode == 1 and "corrupt.db" in res.stderr and "Traceback" not in res.stderr
    assert bad.read_bytes() == before, "a corrupt database file is never overwritten"


def test_bad_config_is_a_clear_message_and_exit_2(tmp_path: Path) -> None:
    res = run(tmp_path, "config", "show", env={"DAYTRADING_ALLOCATION": "1.7"})
    assert res.returncode == 2
    assert "allocation" in res.stderr and "1.7" in res.stderr and "Traceback" not in res.stderr
    res = run(tmp_path, "--config", "nowhere.toml", "config", "show")
    assert res.returncode == 2 and "nowhere.toml" in res.stderr


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    res = run(tmp_path, "config", "show", "--json", env={"DAYTRADING_LLM__GEMINI_API_KEY": "AIza-secret-xyz"})
    assert res.returncode == 0
    assert "AIza-secret-xyz" not in res.stdout
    assert json.loads(res.stdout)["llm"]["gemini_api_key"] == "***"


def test_backup_keeps_the_configured_number(tmp_path: Path) -> None:
    assert run(tmp_path, "db", "init").returncode == 0
    db = tmp_path / "trading_history.db"
    made = [backup_database(db, tmp_path / "bk", keep=3, label="daily") for _ in range(5)]
    kept = sorted((tmp_path / "bk").glob("*.db"))
    assert len(kept) == 3 and kept == sorted(made[-3:])
    assert integrity_check(kept[-1]) == ["ok"]
    res = run(tmp_path, "db", "backup", "--json")
    assert res.returncode == 0 and Path(tmp_path / json.loads(res.stdout)["backup"]).exists()


@pytest.mark.parametrize("argv", [["--help"], ["db", "--help"]])
def test_help(tmp_path: Path, argv: list[str]) -> None:
    assert run(tmp_path, *argv).returncode == 0
