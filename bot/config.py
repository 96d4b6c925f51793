"""Configuration: one TOML file, every key overridable by `COMPLAINTBOT_<SECTION>__<KEY>`.

The file is `--config PATH`, else `$COMPLAINTBOT_CONFIG`, else `./complaintbot.toml`; no file at
all is valid and runs on the defaults. Settings are validated once, at start-up, and a wrong key
or value becomes one clear line.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url

from bot.channel_list import SECTIONS
from channels.base import ChannelConfig

DEFAULT_CONFIG = Path("complaintbot.toml")
DEFAULT_DEPARTMENTS = {
    "service": "学员服务部",
    "teaching": "教学部",
    "finance": "财务部",
    "academic": "教务管理部",
    "compliance": "合规审核部",
}


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseConfig(_Section):
    url: str | None = None  # default: SQLite under [service] var_dir


class ServiceConfig(_Section):
    var_dir: Path = Path("var")


class WebConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


_Model = TypeVar("_Model", bound=ChannelConfig)


class ChannelsConfig(_Section):
    """`[channels.<name>]`: each channel's own model (`channels/<name>/config.py`), one field per channel
    listed in `bot.channel_list` (the fields are made from that list: a new channel adds no line here)."""

    def section(self, name: str) -> ChannelConfig:
        section = getattr(self, name)
        assert isinstance(section, ChannelConfig)
        return section

    def sections(self) -> list[ChannelConfig]:
        return [self.section(name) for name in type(self).model_fields]

    def of(self, model: type[_Model]) -> _Model:
        """The section whose model is `model` (typed, for code that knows which channel it reads)."""
        for section in self.sections():
            if isinstance(section, model):
                return section
        raise LookupError(f"no channel is configured by {model.__name__}")


if TYPE_CHECKING:
    _Channels = ChannelsConfig
else:
    # The real section model: one field per listed channel, its default that channel's defaults.
    _Channels = create_model(
        "ChannelSections",
        __base__=ChannelsConfig,
        __module__=__name__,
        **{name: (model, Field(default_factory=model)) for name, model in SECTIONS.items()},
    )


class PolicyConfig(_Section):
    file: Path | None = None


class PrivacyConfig(_Section):
    # One or more Fernet keys, comma-separated: the first encrypts, all decrypt (key rotation).
    key: str | None = None

    def keys(self) -> list[str]:
        return [k.strip() for k in (self.key or "").split(",") if k.strip()]


class DepartmentConfig(_Section):
    """`[departments.<key>]`: the department's name, and its address on each channel that has one (the
    keys come from the channels' config models, `ChannelConfig.department_keys`)."""

    name: str | None = None

    def secrets(self) -> list[str | None]:
        return [getattr(self, key) for model in SECTIONS.values() for key in model.department_secrets]


def _department_keys() -> dict[str, Any]:
    """Every channel's department keys, each declared once: two channels claiming one key (or "name")
    would read each other's values, a secret not declared would never be hidden."""
    keys: dict[str, Any] = {}
    for channel, model in SECTIONS.items():
        undeclared = set(model.department_secrets) - set(model.department_keys)
        if undeclared:
            raise TypeError(f"channel {channel}: secrets {sorted(undeclared)} are not department_keys")
        for key, field in model.department_keys.items():
            if key in keys or key in DepartmentConfig.model_fields:
                raise TypeError(f"channel {channel}: the department key {key!r} is taken")
            keys[key] = field
    return keys


if TYPE_CHECKING:
    _Department = DepartmentConfig
else:
    # Named apart from the static class above, so that the two are never mistaken for one another.
    _Department = create_model(
        "DepartmentSection", __base__=DepartmentConfig, __module__=__name__, **_department_keys()
    )


class TicketsConfig(_Section):
    prefix: str = Field("TS", pattern=r"^[A-Za-z]{1,8}$")


class TemplatesConfig(_Section):
    dir: Path | None = None  # an operator's templates, <dir>/<locale>/<name>.j2, override the packaged ones


class LoggingConfig(_Section):
    # `info`: a line per ticket event that matters (opened, acknowledged, claimed, escalated...) and what
    # went wrong; `warning`: only what went wrong; `debug`: everything, the libraries' chatter included.
    level: Literal["debug", "info", "warning", "error"] = "info"


class StaffConfig(_Section):
    locale: Literal["zh", "en"] = "zh"  # language of cards and alerts in staff chats


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COMPLAINTBOT_",
        env_nested_delimiter="__",
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    service: ServiceConfig = ServiceConfig()
    database: DatabaseConfig = DatabaseConfig()
    web: WebConfig = WebConfig()
    channels: _Channels = Field(default_factory=_Channels)
    policy: PolicyConfig = PolicyConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    departments: dict[str, _Department] = Field(default_factory=dict)
    tickets: TicketsConfig = TicketsConfig()
    templates: TemplatesConfig = TemplatesConfig()
    staff: StaffConfig = StaffConfig()
    logging: LoggingConfig = LoggingConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's content arrives as init arguments; the environment wins over it (secrets live there).
        return (env_settings, init_settings)

    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{self.service.var_dir / 'complaintbot.db'}"

    def database_shown(self) -> str:
        """The database URL fit for logs and terminals: any password hidden."""
        return make_url(self.database_url()).render_as_string(hide_password=True)

    def secrets(self) -> list[str]:
        """Every configured value that must never reach a log line or a stored error."""
        values = [
            *(value for section in self.channels.sections() for value in section.secrets()),
            make_url(self.database_url()).password,
            *self.privacy.keys(),
            *(value for department in self.departments.values() for value in department.secrets()),
        ]
        return [str(value) for value in values if value]

    def department_names(self) -> dict[str, str]:
        names = dict(DEFAULT_DEPARTMENTS)
        for key, department in self.departments.items():
            names[key] = department.name or names.get(key, key)
        return names


def config_path(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    env = os.environ.get("COMPLAINTBOT_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG


def load_settings(explicit: Path | None = None) -> Settings:
    """Read and validate the configuration; a missing default file means the defaults."""
    path = config_path(explicit)
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    elif explicit is not None or os.environ.get("COMPLAINTBOT_CONFIG"):
        raise ConfigError(f"config file {path} does not exist (run `complaintbot init` to write one)")
    try:
        return Settings(**data)
    except SettingsError as exc:  # e.g. COMPLAINTBOT_WEB set to something that is not JSON
        raise ConfigError(f"COMPLAINTBOT_* environment: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        # Name the environment variable when the bad value came from there, not a file that may not exist.
        variable = "COMPLAINTBOT_" + "__".join(str(part) for part in first["loc"]).upper()
        source = variable if variable in {name.upper() for name in os.environ} else str(path)
        raise ConfigError(f"{source}: {where}: {first['msg']}") from None
