"""Settings: precedence, and every validation error names the setting and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from daytrading.config import load_settings
from daytrading.errors import ConfigError


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key in list(__import__("os").environ):
        if key.startswith("DAYTRADING_"):
            monkeypatch.delenv(key)


def test_defaults_match_the_design() -> None:
    s = load_settings()
    assert (s.ib.exit_manager_client_id, s.ib.day_trader_client_id) == (10, 2)
    assert (s.profit_target, s.stop_loss, s.allocation) == (0.018, 0.009, 0.25)
    assert (s.entry.rsi_max, s.entry.atr_min, s.entry.gap_min) == (60.0, 0.003, 0.05)
    assert s.eod_flatten_minutes == 15
    assert (s.intervals.scanner_refresh, s.intervals.exit_poll) == (900, 10)
    assert (s.intervals.health_check, s.intervals.status) == (60, 300)
    assert s.paths.database == Path("trading_history.db")
    assert s.mode == "sim"


def test_precedence_cli_over_env_over_dotenv_over_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "daytrading.toml").write_text("allocation = 0.5\nmax_concurrent_positions = 3\n[ib]\nport = 4001\n")
    (tmp_path / ".env").write_text("DAYTRADING_MAX_CONCURRENT_POSITIONS=5\nDAYTRADING_IB__PORT=4100\n")
    s = load_settings()
    assert (s.allocation, s.max_concurrent_positions, s.ib.port) == (0.5, 5, 4100)
    monkeypatch.setenv("DAYTRADING_IB__PORT", "4200")
    assert load_settings().ib.port == 4200
    s = load_settings(overrides={"ib": {"port": 4300, "host": None}})
    assert s.ib.port == 4300 and s.ib.host == "127.0.0.1"


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(Exception):
        s.allocation = 0.9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"allocation": 1.5}, ["allocation", "1.5"]),
        ({"allocation": 0}, ["allocation", "0"]),
        ({"stop_loss": 0.02}, ["stop_loss", "0.02", "profit_target"]),
        ({"intervals": {"exit_poll": -1}}, ["intervals.exit_poll", "-1"]),
        ({"intervals": {"health_check": -5}}, ["intervals.health_check", "-5"]),
        ({"mode": "live"}, ["live", "live_trading_acknowledged"]),
        ({"ib": {"day_trader_client_id": 10}}, ["client_id", "10"]),
        ({"mode": "real"}, ["mode", "real"]),
    ],
)
def test_invalid_values_name_the_setting(overrides: dict, names: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(overrides=overrides)
    for name in names:
        assert name in str(err.value)


def test_live_mode_with_acknowledgement_is_accepted() -> None:
    s = load_settings(overrides={"mode": "live", "live_trading_acknowledged": True})
    assert s.mode == "live"


def test_unknown_key_in_toml_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "custom.toml"
    cfg.write_text("[ib]\nprot = 4001\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert "ib.prot" in str(err.value) and "custom.toml" in str(err.value)


def test_unreadable_and_invalid_toml_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.toml"):
        load_settings(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("allocation = [\n")
    with pytest.raises(ConfigError, match="broken.toml.*not valid TOML"):
        load_settings(broken)
    folder = tmp_path / "adir.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="adir.toml"):
        load_settings(folder)


def test_env_value_of_wrong_type_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAYTRADING_MAX_CONCURRENT_POSITIONS", "many")
    with pytest.raises(ConfigError, match="max_concurrent_positions.*many"):
        load_settings()


def test_secrets_are_masked_and_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAYTRADING_LLM__DEEPSEEK_API_KEY", "sk-very-secret-123")
    monkeypatch.setenv("DAYTRADING_SCANNER__POLYGON_API_KEY", "pk-very-secret-456")
    s = load_settings()
    assert s.llm.deepseek_api_key.get_secret_value() == "sk-very-secret-123"
    text = repr(s) + str(s.masked())
    assert "sk-very-secret-123" not in text and "pk-very-secret-456" not in text
    assert s.masked()["llm"]["deepseek_api_key"] == "***"
    assert s.masked()["llm"]["gemini_api_key"] == ""


def test_example_toml_is_complete_and_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "daytrading.example.toml"
    s = load_settings(example)
    defaults = load_settings()
    assert s.model_dump() == defaults.model_dump()
    text = example.read_text()
    for section, model in defaults:
        if hasattr(model, "model_fields"):
            for name in type(model).model_fields:
                assert f"{name} =" in text, f"{section}.{name} missing from daytrading.example.toml"
        else:
            assert f"{section} =" in text, f"{section} missing from daytrading.example.toml"
