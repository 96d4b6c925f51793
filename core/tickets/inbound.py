"""What intake keeps of an incoming message: its row (text and raw payload encrypted), the summary staff
see (phone numbers and addresses masked), and the contact it vouches for."""

from __future__ import annotations

import json
import unicodedata
from datetime import datetime
from typing import Any

from core.context import CoreContext
from core.messages import InboundMessage, storage_key
from core.storage.privacy import Vault, redact


def inbound_values(vault: Vault, message: InboundMessage, sender_index: str, now: datetime) -> dict[str, Any]:
    """The message's row, but for its ticket: worked out (and encrypted) before intake's transaction."""
    return {
        "direction": "in",
        "channel": message.channel,
        "external_id": storage_key(message.external_id),
        "sender_index": sender_index,
        "text_enc": vault.encrypt(message.text),
        "attachments": [
            {"kind": a.kind, "ref": a.ref, "name": a.name, "mime": a.mime, "size": a.size}
            for a in message.attachments
        ],
        "raw_enc": vault.encrypt(json.dumps(dict(message.raw), ensure_ascii=False, default=str)),
        "outbox_id": None,
        # A platform clock ahead of ours must not put the message in the future.
        "at": min(message.received_at, now),
    }


def summary(message: InboundMessage, limit: int = 200) -> str:
    """The start of the message for staff screens, with phone numbers and addresses masked."""
    text = redact(" ".join(printable(message.text).split()))
    if not text and message.attachments:
        text = ", ".join(a.kind for a in message.attachments)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def seal_summary(vault: Vault, text: str) -> str:
    """The summary as stored: encrypted, since even masked it quotes the learner; empty stays empty
    (a voicemail not yet transcribed), which is how "nothing said yet" is found."""
    return vault.encrypt(text) if text else ""


def printable(text: str | None) -> str:
    """Text without control characters (a NUL would make PostgreSQL refuse the whole complaint)."""
    return "".join(ch for ch in text or "" if ch in "\n\t" or unicodedata.category(ch) != "Cc")


def known_contact(core: CoreContext, message: InboundMessage) -> str | None:
    """The contact the message gives, encrypted: its phone or e-mail, else its sender's mailbox."""
    mailbox = message.sender_id if core.channels.of(message.channel).address == "mailbox" else None
    contact = message.phone or message.email or mailbox
    return core.vault.encrypt(contact) if contact else None
