"""`bot.config.load_settings`: the file, `$COMPLAINTBOT_CONFIG`, and environment overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.app import channel_report
from bot.config import ConfigError, load_settings
from channels.telegram.config import TelegramConfig


@pytest.fixture(autouse=True)
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with no COMPLAINTBOT_* variable in the environment."""
    for name in [n for n in os.environ if n.upper().startswith("COMPLAINTBOT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_at_all_runs_on_the_defaults() -> None:
    settings = load_settings()
    assert (settings.web.host, settings.web.port) == ("127.0.0.1", 8080)
    assert settings.database_url() == "sqlite+aiosqlite:///var/complaintbot.db"
    assert all(reason for _, reason in channel_report(settings))  # nothing configured, every channel skipped


def test_nested_environment_variable_overrides_one_key(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(site / "complaintbot.toml", '[channels.telegram]\ntoken = "from-file"\nstaff_chat_id = -100123\n')
    monkeypatch.setenv("COMPLAINTBOT_CHANNELS__TELEGRAM__TOKEN", "123:from-env")
    telegram = load_settings().channels.of(TelegramConfig)
    assert telegram.token == "123:from-env"
    assert telegram.staff_chat_id == -100123  # the rest of the table still comes from the file
    assert dict(channel_report(load_settings()))["telegram"] is None  # configured now


def test_unrelated_complaintbot_variables_do_not_break_loading(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(site / "complaintbot.toml", "[web]\nport = 9001\n")
    monkeypatch.setenv("COMPLAINTBOT_CONFIG", str(site / "complaintbot.toml"))
    monkeypatch.setenv("COMPLAINTBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
    monkeypatch.setenv("COMPLAINTBOT_LOG_LEVEL", "debug")
    assert load_settings().web.port == 9001


def test_complaintbot_config_selects_the_file(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(site / "complaintbot.toml", "[web]\nport = 1111\n")
    other = write(site / "other.toml", "[web]\nport = 2222\n")
    assert load_settings().web.port == 1111
    monkeypatch.setenv("COMPLAINTBOT_CONFIG", str(other))
    assert load_settings().web.port == 2222
    explicit = write(site / "explicit.toml", "[web]\nport = 3333\n")
    assert load_settings(explicit).web.port == 3333  # --config wins over the variable


def test_complaintbot_config_naming_a_missing_file_is_refused(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPLAINTBOT_CONFIG", str(site / "typo.toml"))
    with pytest.raises(ConfigError, match=r"typo\.toml"):
        load_settings()  # not a silent fall-back to the defaults


def test_environment_wins_over_the_file(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(site / "complaintbot.toml", '[web]\nport = 1111\nhost = "10.0.0.1"\n')
    monkeypatch.setenv("COMPLAINTBOT_WEB__PORT", "2222")
    web = load_settings().web
    assert (web.host, web.port) == ("10.0.0.1", 2222)


def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPLAINTBOT_WEB__PORT", "notaport")
    with pytest.raises(ConfigError, match="COMPLAINTBOT_WEB__PORT"):
        load_settings()


def test_a_section_variable_that_is_not_json_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPLAINTBOT_WEB", "port=9000")
    with pytest.raises(ConfigError, match="web"):
        load_settings()


def test_each_channel_brings_its_department_keys(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`[departments.<key>]` takes the keys the channels declare, and keeps their secrets out of logs."""
    write(
        site / "complaintbot.toml",
        '[departments.finance]\nname = "财务"\ntelegram_chat_id = -1001\nemail = "fin@school.cn"\n'
        'wecom_robot_key = "robot-secret"\n',
    )
    monkeypatch.setenv("COMPLAINTBOT_DEPARTMENTS__FINANCE__TELEGRAM_CHAT_ID", "-1002")
    settings = load_settings()
    finance = settings.departments["finance"].model_dump()
    assert finance == {
        "name": "财务",
        "telegram_chat_id": -1002,
        "email": "fin@school.cn",
        "wecom_robot_key": "robot-secret",
    }
    assert "robot-secret" in settings.secrets() and "fin@school.cn" not in settings.secrets()


def test_a_department_key_no_channel_declares_is_refused_in_one_line(site: Path) -> None:
    write(site / "complaintbot.toml", '[departments.finance]\nemial = "fin@school.cn"\n')
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "departments.finance.emial" in str(refused.value) and "\n" not in str(refused.value)
