"""`[channels.telegram]`: the bot's token, how updates arrive, and the staff chats."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from channels.base import ChannelConfig


class TelegramConfig(ChannelConfig):
    _WEBHOOK_URL: ClassVar[re.Pattern[str]] = re.compile(r"https?://[^/\s?#]+(/\S*)?")
    _WEBHOOK_SECRET: ClassVar[re.Pattern[str]] = re.compile(r"[A-Za-z0-9_-]{1,256}")
    # A department's own staff chat (else its cards go to `staff_chat_id`).
    department_keys: ClassVar[dict[str, tuple[Any, Any]]] = {"telegram_chat_id": (int | None, None)}

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

    def secrets(self) -> list[str | None]:
        return [self.token, self.webhook_secret]
