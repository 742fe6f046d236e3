"""Settings: defaults, cdp.toml, CDP_* variables (which win), clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdp._exceptions import ConfigurationError
from cdp.settings import load_settings


def test_defaults_use_an_embedded_data_directory(tmp_path: Path) -> None:
    settings = load_settings(env={}, config_file=tmp_path / "missing.toml")
    assert settings.data_dir == Path(".cdp")
    assert settings.database_url == "sqlite:///.cdp/cdp.sqlite"
    assert settings.keys_dir == Path(".cdp/keys") and settings.is_sqlite


def test_file_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "cdp.toml"
    config.write_text(
        '[cdp]\ndata_dir = "/srv/cdp"\nmatch_threshold = 0.8\nwrite_keys = ["k1", "k2"]\n', encoding="utf-8"
    )
    settings = load_settings(
        env={"CDP_MATCH_THRESHOLD": "0.95", "CDP_DATABASE_URL": "postgresql+psycopg://db/cdp"}, config_file=config
    )
    assert settings.data_dir == Path("/srv/cdp") and settings.match_threshold == 0.95
    assert settings.database_url == "postgresql+psycopg://db/cdp" and not settings.is_sqlite
    assert settings.write_keys == ("k1", "k2")


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        ("[cdp]\nshoe_size = 3\n", {}, "unknown setting 'shoe_size'"),
        ("[cdp\n", {}, "not valid TOML"),
        ("", {"CDP_BATCH_SIZE": "many"}, "CDP_BATCH_SIZE: batch_size must be a int"),
        ("", {"CDP_MATCH_THRESHOLD": "2"}, "match_threshold must be between 0 and 1"),
        ("", {"CDP_MATCH_ON_ARRIVAL": "sometimes"}, "match_on_arrival must be true or false"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, content: str, env: dict[str, str], message: str) -> None:
    config = tmp_path / "cdp.toml"
    config.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        load_settings(env=env, config_file=config)


@pytest.mark.parametrize(
    ("raw", "expected"), [("false", False), ("0", False), ("off", False), ("true", True), ("1", True)]
)
def test_switches_read_words_not_truthiness(tmp_path: Path, raw: str, expected: bool) -> None:
    settings = load_settings(env={"CDP_MATCH_ON_ARRIVAL": raw}, config_file=tmp_path / "missing.toml")
    assert settings.match_on_arrival is expected
    config = tmp_path / "cdp.toml"
    config.write_text(f"[cdp]\nmatch_on_arrival = {str(expected).lower()}\n", encoding="utf-8")
    assert load_settings(env={}, config_file=config).match_on_arrival is expected
