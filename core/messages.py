"""What crosses the boundary between a channel adapter and the core.

Adapters turn a platform's raw input into an `InboundMessage` and each `OutboundMessage` into a
platform call. Both are frozen and keep what the platform sent (`raw`) so nothing is lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The channel of complaints staff log on a learner's behalf (/log): no platform, so no capabilities
# (`ChannelBook.of` answers it can do nothing); its identities hold the phone or e-mail staff noted.
STAFF_LOGGED = "staff"
_KEY_LIMIT = 255  # the width of the database columns that hold platform ids


def storage_key(external_id: str) -> str:
    """A platform id as the database keeps it: ids too long for the column, or holding characters
    a database refuses (NUL), are replaced by their SHA-256, so that they still dedupe."""
    if len(external_id) <= _KEY_LIMIT and "\x00" not in external_id:
        return external_id
    return "sha256:" + hashlib.sha256(external_id.encode("utf-8", errors="surrogatepass")).hexdigest()


def erased_key(index: Callable[[str, str], str], channel: str, external_id: str) -> str:
    """What an erased message keeps of its platform id: a keyed hash (`Vault.blind_index`), so a
    redelivery of the same message is still recognised, and nothing of the id (a chat id) is left."""
    return "erased:" + index("platform-id", f"{channel}|{storage_key(external_id)}")[:48]


@dataclass(frozen=True)
class Attachment:
    kind: str  # photo | voice | document | image | file | audio
    ref: str  # the platform's file id, media id or a storage path
    name: str | None = None
    mime: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class InboundMessage:
    """One message from a learner, as the core sees it.

    `external_id` is the platform's idempotency key and must be unique within the channel (WeChat
    MsgId, Telegram `chat_id:message_id` since message ids count per chat, e-mail Message-ID,
    voicemail id): a redelivery with the same `(channel, external_id)` changes nothing.
    `sender_id` is the learner's address on that channel (chat id, OpenID, e-mail address, phone).
    `reply_to` is the platform id of the message this one answers, if the platform says so;
    `references` the earlier ones of its thread (e-mail `References`), newest last.
    `auto_reply` says why the message was written by a machine (an out-of-office reply, a bounce, a
    mailing list): it is recorded, but never acknowledged or asked anything, so two robots cannot
    answer each other forever.
    """

    channel: str
    external_id: str
    sender_id: str
    text: str
    received_at: datetime
    sender_name: str | None = None
    phone: str | None = None
    email: str | None = None
    reply_to: str | None = None
    subject: str | None = None
    attachments: tuple[Attachment, ...] = ()
    new_ticket: bool = False  # the learner asked for a separate complaint (/new)
    raw: Mapping[str, Any] = field(default_factory=dict)
    references: tuple[str, ...] = ()
    auto_reply: str | None = None
    # Why nothing may be sent back although it is a learner's message (a flood from one address):
    # it opens or continues a ticket as usual, unacknowledged.
    unanswered: str | None = None
    # Until when the platform's response to this very message can carry the first reply (WeChat's
    # passive reply): that reply is not sent otherwise before then.
    reply_inline_until: datetime | None = None
    # Whether the platform vouches that `sender_id` (and the phone or e-mail it carries) is really the
    # sender's: a bot account or a signed webhook does; a caller ID or an e-mail From alone does not.
    # Unverified, a message acts on nothing, answers no question and links no identities.
    sender_verified: bool = True

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            raise ValueError("InboundMessage.received_at must be timezone-aware")
        if not self.external_id:
            raise ValueError("InboundMessage.external_id is required: it is the idempotency key")


@dataclass(frozen=True)
class Button:
    label: str
    action: str  # e.g. "claim:TS-261122-00071"


@dataclass(frozen=True)
class Document:
    """A file a message carries to staff (the monthly report's PDF, a chart): its bytes travel in the
    outbox row, so whichever instance sends it has it."""

    filename: str
    mime: str
    content: bytes


@dataclass(frozen=True)
class OutboundMessage:
    """One message the outbox hands to a channel's sender.

    `key` is the idempotency key of the row: a retry after a crash carries the same key, so a
    platform that deduplicates (or our own sender) can refuse the second copy.
    """

    key: str
    channel: str
    recipient: str
    kind: str  # ack | ask | card | reply | alert | notice
    text: str
    ticket_number: str | None = None
    subject: str | None = None
    reply_to: str | None = None
    buttons: tuple[Button, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    documents: tuple[Document, ...] = ()  # the text is their caption or the mail's body


@dataclass(frozen=True)
class SendResult:
    """What a channel reports after a send: the platform's id for the message, if any, and the
    thread it went into (a forum topic created for a ticket's card), so later messages can follow."""

    external_ref: str | None = None
    thread_ref: str | None = None
    # The platform took this message in a form that stands for the whole text (WeChat's template
    # message, when the learner's window is closed): the parts still to go are not sent.
    whole: bool = False
