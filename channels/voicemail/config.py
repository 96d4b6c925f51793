"""`[channels.voicemail]`: transcripts from a spool directory, a signed webhook, or Twilio's callback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from pydantic import field_validator

from channels.base import ChannelConfig


class VoicemailConfig(ChannelConfig):
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

    def secrets(self) -> list[str | None]:
        return [self.secret, self.twilio_auth_token]

    def file_roots(self) -> tuple[Path, ...]:
        return (self.recordings_dir,) if self.recordings_dir is not None else ()
