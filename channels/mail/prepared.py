"""One message as read from a mailbox, parsed before anything is written (on the event loop, or in a
thread when it is large), and what one pass of a mail source did."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from channels.mail.parse import MailError, message_key, parse_mail
from core.messages import InboundMessage

log = logging.getLogger(__name__)

_INLINE_BYTES = 256 * 1024  # mail parsed on the event loop; larger, in a thread


@dataclass(frozen=True)
class Mail:
    """One message as read from the mailbox, parsed before anything is written."""

    ref: str  # the source's handle on it: an IMAP UID, a Maildir file name
    raw: bytes
    message: InboundMessage | None
    problem: str | None = None  # why it could not be parsed (then `message` is None)

    @property
    def key(self) -> str:
        return self.message.external_id if self.message is not None else message_key(self.raw, None)

    @property
    def lane(self) -> str:
        return self.message.sender_id if self.message is not None else self.key


def prepare(ref: str, raw: bytes, received_at: datetime) -> Mail:
    """Parse one raw message; never raises, an unusable one carries its reason."""
    try:
        return Mail(ref, raw, parse_mail(raw, received_at))
    except MailError as exc:
        return Mail(ref, raw, None, str(exc))
    except Exception as exc:  # a parser bug would repeat on every pass: staff see the message instead
        log.exception("e-mail %s: parsing failed unexpectedly", ref)
        return Mail(ref, raw, None, f"could not be parsed: {exc!r}")


async def prepare_off_loop(ref: str, raw: bytes, received_at: datetime) -> Mail:
    """`prepare`, in a thread for a large mail: parsing megabytes of MIME must not hold up the event
    loop (webhooks, the outbox) meanwhile."""
    if len(raw) <= _INLINE_BYTES:
        return prepare(ref, raw, received_at)
    return await asyncio.to_thread(prepare, ref, raw, received_at)


@dataclass
class MailReport:
    """What one pass did."""

    taken: int = 0  # committed as a new message (a new ticket or one continued)
    duplicates: int = 0  # already received (a repeat after a crash, another instance, a new UIDVALIDITY)
    kept: int = 0  # unusable, kept raw for staff
    left: int = 0  # left waiting after an error (database down); not marked done
    done: list[str] = field(default_factory=list)  # refs the source may now mark done, in input order

    def add(self, other: MailReport) -> None:
        self.taken += other.taken
        self.duplicates += other.duplicates
        self.kept += other.kept
        self.left += other.left
        self.done += other.done
