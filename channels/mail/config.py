"""`[channels.email]`: the complaint mailbox (IMAP or a Maildir) and the SMTP server answers go through."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from channels.base import ChannelConfig


class EmailConfig(ChannelConfig):
    # A department's mailbox (one address or several, comma-separated), where its cards go.
    department_keys: ClassVar[dict[str, tuple[Any, Any]]] = {"email": (str | None, None)}

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

    def secrets(self) -> list[str | None]:
        return [self.imap_password, self.smtp_password]
