"""A staff member's answer to our own staff mail (a card, an alert), sent from their address into the
complaint mailbox: a note on the ticket it answers, not a complaint of its own.

The sender is recognised by the staff directory (`staff add --email`, active members only). The ticket
is the one the answered mail belongs to (In-Reply-To, then References, newest first: our card's or
alert's Message-ID on its outbox row, or an e-mail of the ticket), else a ticket number in the subject
or text. A From header proves nothing, so unless our mail server vouched for the sender, only an answer
to a mail of ours counts (our Message-IDs are keyed with a secret: naming one proves having received it);
a forged staff address naming a learner's mail or a ticket number is read as any mail. The note goes
through the workflow like `/note` does (its audit event, the card's update), and a mail read again
after a crash finds its note there and adds nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.messages import InboundMessage, storage_key
from core.storage.delivery_models import OutboxRow
from core.storage.models import Event, Message, Staff, Ticket
from core.storage.numbers import find_ticket_numbers
from core.tickets.moves import apply_move, staff_actor

NOTE = "note"
_ANSWERED_CHANNELS = ("staff", "email")  # our staff mail (cards, alerts, notices), our mail to learners


async def staff_addresses(core: CoreContext) -> frozenset[str]:
    """The addresses of active staff members, read once per pass: asking the database for every mail
    would queue each one behind intake's writer (SQLite has one connection) for what is nearly always no."""
    async with core.sessions() as session:
        rows = await session.scalars(
            select(func.lower(Staff.email)).where(Staff.active.is_(True), Staff.email.is_not(None))
        )
        return frozenset(rows)


async def record_staff_mail(
    core: CoreContext, message: InboundMessage, now: datetime
) -> tuple[str, bool] | None:
    """The number of the ticket the note went on and whether it was there already, or None when the
    sender is not in the staff directory or the mail answers no ticket (then it is read as any mail)."""
    async with core.sessions() as session, session.begin():
        staff = await session.scalar(
            select(Staff).where(func.lower(Staff.email) == message.sender_id, Staff.active.is_(True)).limit(1)
        )
        if staff is None:
            return None
        ticket = await _answered_ticket(session, message, core.prefix)
        if ticket is None:
            return None
        actor = staff_actor(staff)
        detail = _note_text(message)
        repeated = await session.scalar(
            select(Event.id).where(
                Event.ticket_id == ticket.id,
                Event.action == NOTE,
                Event.actor == actor.label,
                Event.detail == detail,
            )
        )
        if repeated is None:
            await apply_move(core, session, ticket, NOTE, actor, now, detail=detail)
        return ticket.number, repeated is not None


async def _answered_ticket(session: AsyncSession, message: InboundMessage, prefix: str) -> Ticket | None:
    for ref in dict.fromkeys(r for r in (message.reply_to, *reversed(message.references)) if r):
        ticket_id = await session.scalar(
            select(OutboxRow.ticket_id)
            .where(
                OutboxRow.channel.in_(_ANSWERED_CHANNELS),
                OutboxRow.external_ref == ref,
                OutboxRow.ticket_id.is_not(None),
            )
            .limit(1)
        )
        if ticket_id is None and message.sender_verified:
            ticket_id = await session.scalar(
                select(Message.ticket_id).where(
                    Message.channel == "email", Message.external_id == storage_key(ref)
                )
            )
        if ticket_id is not None:
            return await session.get(Ticket, ticket_id)
    if not message.sender_verified:
        return None
    numbers = [str(n) for n in find_ticket_numbers(f"{message.subject or ''}\n{message.text}", prefix)]
    if not numbers:
        return None
    return await session.scalar(select(Ticket).where(Ticket.number.in_(numbers)).limit(1))


def _note_text(message: InboundMessage) -> str:
    """The staff member's words (the quoted card below them is trimmed by the parser), and the names
    of files they attached, which stay in the raw mail."""
    text = message.text.strip() or (message.subject or "").strip()
    names = [attachment.name for attachment in message.attachments if attachment.name]
    if names:
        text += f"\n[e-mail attachments: {', '.join(names)}]"
    return text
