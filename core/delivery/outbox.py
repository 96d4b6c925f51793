"""The outbox: every outbound message is a row written with the change that caused it, then sent.

This module writes the rows and defines what a channel's sender may answer; `core.delivery.dispatch`
sends them.
A row is `pending` until a dispatcher takes it (`sending`, under a lease), then `sent` or `dead`; a row
for a destination nobody has configured waits `parked` until the configuration changes.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.messages import Button, Document, OutboundMessage, SendResult
from core.storage.delivery_models import OutboxRow
from core.storage.models import Clock, Message, Ticket
from core.storage.privacy import Vault
from core.storage.wakeup import written

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, DEAD, PARKED = "pending", "sending", "sent", "dead", "parked"
# Not finished with: a later message to the same recipient waits behind these.
WAITING = (PENDING, SENDING, PARKED)
# Kinds that go to the learner and so belong in the ticket's conversation.
LEARNER_KINDS = frozenset({"ack", "ask", "reply", "notice"})


class Sender(Protocol):
    """A channel's way out. Raise `TemporarySendError` to retry later, `PermanentSendError` to give up,
    `NotConfiguredError` when nothing is configured to reach this recipient.

    A sender may also carry `limits` (a `LaneLimits`): how many messages its lane sends at once; and
    `text_limit` (a `core.text_limits.TextLimit`): how long one message may be, past which the
    dispatcher sends a text in parts (`core.delivery.parts`)."""

    async def send(self, message: OutboundMessage) -> SendResult: ...


@dataclass(frozen=True)
class LaneLimits:
    """A lane's own pace: rows claimed per pass and sends in flight at once."""

    batch: int = 64
    concurrency: int = 8


class TemporarySendError(Exception):
    """Worth trying again later (network down, rate limit, 5xx)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PacedError(TemporarySendError):
    """Not a failure: the platform's rate for this destination is used up for now (Telegram's 20
    messages a minute in a group, a WeCom robot's 20 a minute). The row is due again after
    `retry_after` seconds, with no attempt used and no error recorded."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason, retry_after)


class PermanentSendError(Exception):
    """Trying again cannot help (blocked by the user, bad address, window closed)."""


class NotConfiguredError(Exception):
    """Nothing is configured to reach this recipient (no staff chat for a department, no desk address).

    The row is parked, with this reason shown to the operator, without using an attempt; parked rows
    are tried again when the dispatcher starts with a new configuration (and now and then)."""


def recipient_key(vault: Vault, channel: str, recipient: str) -> str | None:
    """What orders a recipient's messages: a keyed hash, since the recipient itself is stored encrypted."""
    if not recipient.strip():
        return None
    return vault.blind_index("outbox-recipient", f"{channel}|{recipient.strip().lower()}")[:32]


def outbox_values(
    vault: Vault,
    *,
    key: str,
    channel: str,
    recipient: str,
    kind: str,
    text: str,
    now: datetime,
    ticket_id: int | None = None,
    subject: str | None = None,
    reply_to: str | None = None,
    buttons: tuple[Button, ...] = (),
    meta: Mapping[str, Any] | None = None,
    meets_clock_id: int | None = None,
    documents: Sequence[Document] = (),
) -> dict[str, Any]:
    """The column values of one outbox row. The recipient, the text, the subject and a card's summary
    are encrypted: a message quotes the complaint or names the learner (`payload_text` reads it)."""
    meta = dict(meta or {})
    if meta.get("summary"):
        meta["summary"] = vault.encrypt(str(meta["summary"]))
    return {
        "key": key,
        "ticket_id": ticket_id,
        "channel": channel,
        "recipient_enc": vault.encrypt(recipient),
        "recipient_key": recipient_key(vault, channel, recipient),
        "kind": kind,
        "payload": {
            "text": vault.encrypt(text),
            "subject": vault.encrypt_opt(subject),
            "reply_to": reply_to,
            "buttons": [[b.label, b.action] for b in buttons],
            "meta": meta,
            **({"documents": [_document_json(d) for d in documents]} if documents else {}),
        },
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "meets_clock_id": meets_clock_id,
    }


def enqueue(
    session: AsyncSession,
    vault: Vault,
    *,
    ticket: Ticket | None = None,
    meets_clock: Clock | None = None,
    **fields: Any,
) -> OutboxRow:
    """Add a message to the outbox in the caller's transaction (it is sent only if that commits).

    `fields` are those of `outbox_values`; a message to the learner also joins the conversation.
    """
    row = OutboxRow(**outbox_values(vault, **fields), ticket=ticket, meets_clock=meets_clock)
    session.add(row)
    written(session)
    if ticket is not None and row.kind in LEARNER_KINDS:
        session.add(
            Message(
                ticket=ticket,
                direction="out",
                channel=row.channel,
                text_enc=vault.encrypt(fields["text"]),
                attachments=[],
                at=row.created_at,
                outbox=row,
            )
        )
    return row


def notify_department(
    session: AsyncSession, vault: Vault, ticket: Ticket, *, key: str, text: str, now: datetime
) -> OutboxRow:
    """A notice about `ticket` to its department's staff chat (whatever sink serves `staff`)."""
    return enqueue(
        session,
        vault,
        key=key,
        channel="staff",
        recipient=ticket.department,
        kind="notice-staff",
        text=text,
        now=now,
        ticket=ticket,
        meta={"ticket_number": ticket.number, "department": ticket.department},
    )


def payload_text(vault: Vault, payload: Mapping[str, Any], field: str = "text") -> str:
    """A text of an outbox row's payload, in clear ("" when there is none)."""
    value = payload.get(field)
    return vault.reveal(str(value)) if value else ""


def to_message(row: OutboxRow, vault: Vault, context: Mapping[str, Any] | None = None) -> OutboundMessage:
    payload = row.payload
    meta = {**payload.get("meta", {}), **(context or {})}
    if meta.get("summary"):
        meta["summary"] = vault.reveal(str(meta["summary"]))
    return OutboundMessage(
        key=row.key,
        channel=row.channel,
        recipient=vault.decrypt(row.recipient_enc),
        kind=row.kind,
        text=payload_text(vault, payload),
        ticket_number=payload.get("meta", {}).get("ticket_number"),
        subject=payload_text(vault, payload, "subject") or None,
        reply_to=payload.get("reply_to"),
        buttons=tuple(Button(label, action) for label, action in payload.get("buttons", [])),
        meta=meta,
        documents=tuple(
            Document(d["filename"], d["mime"], base64.b64decode(d["base64"]))
            for d in payload.get("documents", [])
        ),
    )


def _document_json(document: Document) -> dict[str, str]:
    return {
        "filename": document.filename,
        "mime": document.mime,
        "base64": base64.b64encode(document.content).decode("ascii"),
    }


async def send_once(sessions: async_sessionmaker[AsyncSession], vault: Vault, **fields: Any) -> bool:
    """Queue one message outside any other change (a greeting, a command's answer), once per key.

    A redelivered command finds its key already queued and queues nothing: False.
    """
    async with sessions() as session, session.begin():
        if await session.scalar(select(OutboxRow.id).where(OutboxRow.key == fields["key"])) is not None:
            return False
        enqueue(session, vault, **fields)
        return True


def fall_back(session: AsyncSession, row: OutboxRow, vault: Vault, now: datetime) -> None:
    """A message that names a fallback (`meta.fallback = {channel, recipient}`) goes there when it cannot
    be delivered: a reminder for someone who never opened a private chat with the bot reaches their
    department's chat instead of being lost."""
    meta = dict(row.payload.get("meta") or {})
    fallback = meta.pop("fallback", None)
    if not isinstance(fallback, dict) or not fallback.get("channel") or not fallback.get("recipient"):
        return
    enqueue(
        session,
        vault,
        key=f"{row.key}:fallback"[:255],
        channel=str(fallback["channel"]),
        recipient=str(fallback["recipient"]),
        kind=row.kind,
        text=payload_text(vault, row.payload),
        now=now,
        meta={**meta, "summary": vault.reveal(str(meta["summary"]))} if meta.get("summary") else meta,
    )
