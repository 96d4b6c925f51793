"""`[logging] level` in the config (and its environment variable), checked like every other key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings


def test_the_log_level_is_read_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "complaintbot.toml"
    config.write_text('[logging]\nlevel = "warning"\n', encoding="utf-8")
    assert load_settings(config).logging.level == "warning"


def test_an_unknown_log_level_is_one_line_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "complaintbot.toml"
    config.write_text('[logging]\nlevel = "loud"\n', encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"logging\.level: Input should be 'debug', 'info', 'warning' or 'error'"
    ):
        load_settings(config)
