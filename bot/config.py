"""Configuration: one TOML file, every key overridable by `COMPLAINTBOT_<SECTION>__<KEY>`.

The file is `--config PATH`, else `$COMPLAINTBOT_CONFIG`, else `./complaintbot.toml`; no file at
all is valid and runs on the defaults. Settings are validated once, at start-up, and a wrong key
or value becomes one clear line.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url

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


class TelegramConfig(_Section):
    _WEBHOOK_URL: ClassVar[re.Pattern[str]] = re.compile(r"https?://[^/\s?#]+(/\S*)?")
    _WEBHOOK_SECRET: ClassVar[re.Pattern[str]] = re.compile(r"[A-Za-z0-9_-]{1,256}")

    token: str | None = None
    base_url: str | None = None
    mode: Literal["polling", "webhook"] = "polling"
    # Webhook mode: the public URL Telegram POSTs updates to (served by our `POST /telegram`, usually
    # behind a TLS proxy), and the secret Telegram sends back in `X-Telegram-Bot-Api-Secret-Token`.
    webhook_url: str | None = None
    webhook_secret: str | None = None
    staff_chat_id: int | None = None
    manager_chat_id: int | None = None

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if value and not cls._WEBHOOK_URL.fullmatch(value):
            raise ValueError("must be the full URL Telegram calls, e.g. https://bot.example.com/telegram")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: str | None) -> str | None:
        if value and not cls._WEBHOOK_SECRET.fullmatch(value):
            raise ValueError(
                "must be 1 to 256 characters, each A-Z, a-z, 0-9, _ or - (Telegram's rule for secret_token)"
            )
        return value

    def missing(self) -> str | None:
        if not self.token:
            return "no [channels.telegram] token"
        if self.mode == "webhook":
            absent = [key for key in ("webhook_url", "webhook_secret") if not getattr(self, key)]
            if absent:
                return f"webhook mode needs [channels.telegram] {' and '.join(absent)}"
        return None


class WechatConfig(_Section):
    token: str | None = None
    app_id: str | None = None
    app_secret: str | None = None
    encoding_aes_key: str | None = None
    api_base_url: str | None = None
    # A template message (first, keyword1 = ticket number, keyword2 = kind, remark = text) sent when a
    # reply can no longer go as a customer-service message (48-hour window closed, 45047 quota).
    template_id: str | None = None
    # WeCom group robots as the staff sink: the managers' robot, and the webhook URL (for tests, a proxy).
    wecom_managers_key: str | None = None
    wecom_robot_url: str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"

    def missing(self) -> str | None:
        absent = [k for k in ("token", "app_id", "app_secret") if not getattr(self, k)]
        return f"no [channels.wechat] {', '.join(absent)}" if absent else None


class EmailConfig(_Section):
    imap_host: str | None = None
    imap_port: int = 993
    imap_user: str | None = None
    imap_password: str | None = None
    imap_folder: str = "INBOX"
    imap_tls: bool = True
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    from_address: str | None = None
    from_name: str | None = None  # the display name of From (default: the first-contact department's)
    maildir: Path | None = None
    # Where taken messages go instead of being flagged \Seen (created if missing; none: stay, flagged).
    imap_done_folder: str | None = None
    # Between passes when the server has no IDLE (with IDLE a new message is read at once), and how
    # often a Maildir is looked at.
    imap_poll_seconds: float = Field(default=60.0, gt=0)
    # Past this many e-mails from one address within an hour, mail is recorded but not answered (0: off).
    ack_per_sender_per_hour: int = Field(default=20, ge=0)
    # The authserv-id of our own receiving mail server's Authentication-Results header (RFC 8601), e.g.
    # "mx.school.edu.cn": its verdict is trusted (an aligned dmarc=pass vouches for the sender; a DMARC
    # or SPF failure is not answered). Unset: no such header is believed, whoever claims to write it.
    authserv_id: str | None = None
    # Senders' mail taken in at once: PostgreSQL gains from a few; SQLite writes one at a time anyway.
    intake_workers: int = Field(default=32, ge=1, le=64)

    def missing(self) -> str | None:
        if not (self.imap_host or self.maildir):
            return "no [channels.email] imap_host or maildir"
        if not (self.smtp_host and self.from_address):
            return "no [channels.email] smtp_host and from_address"
        return None


class VoicemailConfig(_Section):
    _PUBLIC_URL: ClassVar[re.Pattern[str]] = re.compile(r"https?://[^/\s?#]+(/\S*)?")

    spool_dir: Path | None = None
    # Where the telephony system keeps recordings: erasure deletes a recording a transcript names by
    # path or file:// URL only inside it (a payload naming any other file is never obeyed).
    recordings_dir: Path | None = None
    secret: str | None = None  # HMAC secret of POST /voicemail (X-Voicemail-Signature)
    # Twilio's transcription callback: signed with the account's auth token over the URL Twilio called,
    # which behind a proxy is not the URL we see (default: the request's own URL).
    twilio_auth_token: str | None = None
    # Watch the spool by polling instead of inotify (network file systems, some containers).
    polling: bool = False
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value and not cls._PUBLIC_URL.fullmatch(value):
            raise ValueError("must be the full URL Twilio calls, e.g. https://bot.example.com/voicemail")
        return value

    def missing(self) -> str | None:
        if self.spool_dir or self.secret or self.twilio_auth_token:
            return None
        return "no [channels.voicemail] spool_dir, secret or twilio_auth_token"


class ChannelsConfig(_Section):
    telegram: TelegramConfig = TelegramConfig()
    wechat: WechatConfig = WechatConfig()
    email: EmailConfig = EmailConfig()
    voicemail: VoicemailConfig = VoicemailConfig()


class PolicyConfig(_Section):
    file: Path | None = None


class PrivacyConfig(_Section):
    # One or more Fernet keys, comma-separated: the first encrypts, all decrypt (key rotation).
    key: str | None = None

    def keys(self) -> list[str]:
        return [k.strip() for k in (self.key or "").split(",") if k.strip()]


class DepartmentConfig(_Section):
    name: str | None = None
    telegram_chat_id: int | None = None
    email: str | None = None
    wecom_robot_key: str | None = None


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
    channels: ChannelsConfig = ChannelsConfig()
    policy: PolicyConfig = PolicyConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    departments: dict[str, DepartmentConfig] = Field(default_factory=dict)
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
        channels = self.channels
        values = [
            channels.telegram.token,
            channels.telegram.webhook_secret,
            channels.wechat.token,
            channels.wechat.app_secret,
            channels.wechat.encoding_aes_key,
            channels.wechat.wecom_managers_key,
            channels.email.imap_password,
            channels.email.smtp_password,
            channels.voicemail.secret,
            channels.voicemail.twilio_auth_token,
            make_url(self.database_url()).password,
            *self.privacy.keys(),
            *(department.wecom_robot_key for department in self.departments.values()),
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
