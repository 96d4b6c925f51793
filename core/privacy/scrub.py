"""Replacing a ticket's personal content by placeholders, keeping what the statistics need.

Used by `core.privacy.erasure` (a learner's request) and the retention duty (`scheduler.retention`). A ticket
keeps its number, category, severity, department, channel, status, amount, times, clocks, satisfaction
and its audit events (who did what, when); it loses the summary, course, expected resolution, contact,
plan, result, every message's text, raw payload, attachments and platform id, and the text and
learner's address of every outbox row. Event details that staff typed (a note, a reply, a reason) may
quote the learner and are cleared; details the bot writes itself are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.delivery.outbox import DEAD, LEARNER_KINDS, WAITING
from core.messages import erased_key
from core.storage.delivery_models import OutboxRow
from core.storage.models import Base, Event, Message, Ticket
from core.storage.privacy import redact
from core.storage.record_models import ClassificationCorrection

log = logging.getLogger(__name__)

ERASED = "[erased]"
# An outbox row already anonymised has this key prefix: its old key could hold a chat id
# (e.g. "telegram:<chat>:<message>:status"), and the prefix lets a later run skip it.
ERASED_KEY = "erased:"
# Events whose detail the bot writes itself (a category, a department, a stage): no learner's words.
SYSTEM_DETAILS = frozenset(
    {
        "received",
        "classified",
        "routed",
        "alerted",
        "callback",
        "message",
        "details",
        "first_contact",
        "disclosed",
        "reminded",
        "escalated",
        "survey",
        "call-task",
        "erased",
        "anonymized",
    }
)
# Details that start with what the bot wrote ("finance: <why>", "<owner>: <why>", "4/5: <comment>",
# "second instance TS-…: <reason>", "general -> major: <why>"): that part is kept for the statistics, the
# words after it are not.
# Any action not named here or above loses its detail: unknown text is taken to be personal.
PREFIXED_DETAILS = frozenset({"transfer", "assign", "rated", "appealed", "severity"})
NOT_SENT = "not sent: the personal data it needed was erased"
# Outbox metadata that routes a message (which ticket, which chat, which card it edits); anything else
# may carry words of the complaint (a card's "summary", used for its forum topic's name) and goes.
ROUTING_META = frozenset(
    {"ticket_number", "department", "edits", "field", "sensitive", "unparsed_id", "thread_id"}
)


@dataclass
class Scrubbed:
    messages: int = 0
    outbox_rows: int = 0
    files_removed: list[str] = field(default_factory=list)
    files_left: list[str] = field(default_factory=list)  # could not be removed: the operator must


def ticketless_rows() -> Select[OutboxRow]:
    """Messages to learners that belong to no ticket and are not anonymised yet."""
    return select(OutboxRow).where(
        OutboxRow.ticket_id.is_(None),
        OutboxRow.kind.in_(LEARNER_KINDS),
        ~OutboxRow.key.startswith(ERASED_KEY),
    )


async def scrub_tickets(core: CoreContext, session: AsyncSession, ids: Sequence[int]) -> Scrubbed:
    """Replace the personal content of these tickets (already claimed by the caller) by placeholders."""
    scrubbed = Scrubbed()
    if not ids:
        return scrubbed
    ids = list(ids)
    token = core.vault.encrypt(ERASED)
    files = [
        path
        for attachments in await session.scalars(
            select(Message.attachments).where(Message.ticket_id.in_(ids))
        )
        for path in _local_files(attachments, core.file_roots)
    ]
    await session.execute(
        update(Ticket)
        .where(Ticket.id.in_(ids))
        .values(
            summary=ERASED, course=None, expected_resolution=None, contact_enc=None, plan=None, result=None
        )
        .execution_options(synchronize_session=False)
    )
    # A correction keeps its labels and keyword findings for the rules; the text goes with the ticket's.
    await session.execute(
        update(ClassificationCorrection)
        .where(ClassificationCorrection.ticket_id.in_(ids))
        .values(text=ERASED)
        .execution_options(synchronize_session=False)
    )
    messages = await session.execute(
        update(Message)
        .where(Message.ticket_id.in_(ids))
        .values(
            text_enc=token,
            raw_enc=None,
            attachments=[],
            sender_index=None,
        )
        .execution_options(synchronize_session=False)
    )
    scrubbed.messages = int(getattr(messages, "rowcount", 0) or 0)
    # A platform id can hold the learner's chat id ("<chat>:<message>"): replaced by a keyed hash, which
    # keeps it unique and lets intake still recognise a redelivery (an IMAP folder read again).
    ids_kept = await session.execute(
        select(Message.id, Message.channel, Message.external_id).where(
            Message.ticket_id.in_(ids),
            Message.external_id.is_not(None),
            Message.external_id.not_like(f"{ERASED_KEY}%"),
        )
    )
    renamed = [
        {"mid": mid, "erased": erased_key(core.vault.blind_index, channel, external_id)}
        for mid, channel, external_id in ids_kept.all()
        if external_id
    ]
    if renamed:
        table = Base.metadata.tables["messages"]
        await (await session.connection()).execute(
            update(table).where(table.c.id == bindparam("mid")).values(external_id=bindparam("erased")),
            renamed,
        )
    # Locked: a dispatcher finishing a send must not write the learner's platform reference back.
    rows = select(OutboxRow).where(OutboxRow.ticket_id.in_(ids)).with_for_update()
    for row in await session.scalars(rows):
        scrub_outbox_row(row, token, learner_bound=row.kind in LEARNER_KINDS)
        scrubbed.outbox_rows += 1
    await session.execute(
        update(Event)
        .where(
            Event.ticket_id.in_(ids),
            Event.action.not_in(SYSTEM_DETAILS | PREFIXED_DETAILS),
            Event.detail.is_not(None),
        )
        .values(detail=None)
        .execution_options(synchronize_session=False)
    )
    prefixed = select(Event).where(
        Event.ticket_id.in_(ids), Event.action.in_(PREFIXED_DETAILS), Event.detail.is_not(None)
    )
    for event in await session.scalars(prefixed):
        event.detail = (event.detail or "").split(": ", 1)[0]
    # Files last, once every row that names them is rewritten: if this transaction fails after
    # this point, the erasure is run again and the missing files change nothing.
    for path in files:
        try:
            path.unlink(missing_ok=True)
            scrubbed.files_removed.append(str(path))
        except OSError as exc:
            log.warning("erasure: cannot remove attachment %s: %s", path, exc)
            scrubbed.files_left.append(str(path))
    return scrubbed


def scrub_outbox_row(row: OutboxRow, token: str, *, learner_bound: bool) -> None:
    """Placeholders for the text; for a message to the learner, also for their address.

    Kind, status and times stay (delivery statistics). A message to the learner not yet sent is
    given up: its recipient is gone. Staff messages keep their recipient (a staff chat) and platform
    reference, which a pending card edit needs.
    """
    meta = {k: v for k, v in row.payload.get("meta", {}).items() if k in ROUTING_META}
    row.payload = {**row.payload, "text": ERASED, "subject": None, "meta": meta}
    if not learner_bound:
        return
    row.payload = {**row.payload, "reply_to": None}
    row.recipient_enc = token
    row.recipient_key = None  # a keyed hash of the address: it would link the rows to a new one
    row.external_ref = None
    if row.last_error:  # a server's refusal may quote the address it refused
        row.last_error = redact(row.last_error)
    if row.ticket_id is None:
        row.key = f"{ERASED_KEY}{row.id}"
    if row.status in WAITING:  # pending, being sent or parked: it can no longer go anywhere
        row.status, row.lease_until, row.last_error = DEAD, None, NOT_SENT


def _local_files(attachments: Any, roots: Sequence[Path]) -> list[Path]:
    """The attachments that are files on this machine (an absolute path or a file:// URL) inside one of
    the configured `roots`: a path comes from a payload, and a payload must never get any other file
    deleted ("/etc/…", "../", a link out of the directory).

    Platform file ids (Telegram) and http(s) URLs (Twilio recordings) are not ours to delete; a
    relative ref is taken for a platform id, never resolved against the working directory.
    """
    found = []
    inside = [root.resolve() for root in roots]
    for attachment in attachments or []:
        ref = attachment.get("ref") if isinstance(attachment, dict) else None
        if not isinstance(ref, str) or not ref:
            continue
        if ref.startswith("file://"):
            ref = unquote(urlsplit(ref).path)
        path = Path(ref)
        try:
            # Never through a link: only the file the message named, and only where it may be.
            if not (path.is_absolute() and path.is_file() and not path.is_symlink()):
                continue
            real = path.resolve()
        except (OSError, ValueError):  # a NUL or an unreadable directory: not a file we can remove
            continue
        if any(real.is_relative_to(root) for root in inside):
            found.append(path)
        else:
            log.warning("erasure: %s is outside the recordings directory; left alone", path)
    return found
