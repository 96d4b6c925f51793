"""The voicemail call-back: whom to call, by when, and where a caller can be written to as well.

A voicemail opens (or adds to) a ticket with a `callback` clock on the hotline's own hours. Staff see
the task on the card with the number masked; the owner gets the number in full, privately. The
caller's number is the voicemail identity's address; a withheld number gives no call-back number and
staff close the task saying so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.capabilities import ChannelBook
from core.context import CoreContext
from core.delivery.outbox import outbox_values
from core.messages import InboundMessage, storage_key
from core.storage.contact_kinds import PHONE
from core.storage.models import Clock, Learner, LearnerIdentity, Message, Staff, Ticket
from core.storage.privacy import mask
from core.tickets.reach import private_address
from core.tickets.rows import NewRows

CALLBACK = "callback"
WITHHELD = "withheld:"  # the address of a caller who withheld their number (see channels.voicemail)


def reachable_identity(session: Session, channels: ChannelBook, learner_id: int) -> LearnerIdentity | None:
    """The learner's most recent address on a channel that writes back, or None (only a phone to call:
    a voicemail, a number staff logged)."""
    return session.scalar(
        select(LearnerIdentity)
        .where(
            LearnerIdentity.learner_id == learner_id,
            LearnerIdentity.channel.in_(channels.writing_back()),
        )
        .order_by(LearnerIdentity.id.desc())
        .limit(1)
    )


def has_open_callback(session: Session, ticket_id: int) -> bool:
    return session.scalar(_pending(ticket_id)) is not None


async def pending_callback(session: AsyncSession, ticket_id: int) -> Clock | None:
    clock: Clock | None = await session.scalar(_pending(ticket_id))
    return clock


def _pending(ticket_id: int) -> Select[Any]:
    return (
        select(Clock)
        .where(Clock.ticket_id == ticket_id, Clock.stage == CALLBACK, Clock.met_at.is_(None))
        .order_by(Clock.due_at)
        .limit(1)
    )


async def callback_number(core: CoreContext, session: AsyncSession, ticket: Ticket) -> str | None:
    """The number to call back, in full: the caller's own when the ticket came by a channel that calls
    back (voicemail), else the learner's latest number there, else the phone the learner gave; None
    when withheld."""
    vault = core.vault
    calling = core.channels.calling_back()
    identity = await session.get(LearnerIdentity, ticket.identity_id) if ticket.identity_id else None
    if identity is None or identity.channel not in calling:
        identity = await session.scalar(
            select(LearnerIdentity)
            .where(LearnerIdentity.learner_id == ticket.learner_id, LearnerIdentity.channel.in_(calling))
            .order_by(LearnerIdentity.id.desc())
            .limit(1)
        )
    if identity is not None:
        address = vault.decrypt(identity.address_enc)
        if not address.startswith(WITHHELD):
            return address
    learner = await session.get_one(Learner, ticket.learner_id)
    return vault.decrypt(learner.phone_enc) if learner.phone_enc else None


def callback_task(number: str | None, due: str) -> str:
    """The call-back line of a staff card, number masked."""
    shown = mask(PHONE, number) if number else "number withheld (close with /called)"
    return f"{shown} by {due}"


def wants_callback(session: Session, ticket_id: int, message: InboundMessage) -> bool:
    """Whether a voicemail joining this ticket asks for a call-back of its own: not when one is open,
    nor when it is the finished transcript of a call already on the ticket (called back or not)."""
    if has_open_callback(session, ticket_id):
        return False
    if message.reply_to is None:
        return True
    same_call = select(Message.id).where(
        Message.ticket_id == ticket_id,
        Message.channel == message.channel,
        Message.external_id == storage_key(message.reply_to),
    )
    return session.scalar(same_call) is None


def request_callback(
    core: CoreContext,
    session: Session,
    rows: NewRows,
    ticket: Ticket,
    message: InboundMessage,
    message_id: int,
    now: datetime,
) -> None:
    """A voicemail on a ticket that has one already: a call-back clock from the call itself, and the
    ticket's owner, if it has one, gets the number privately (audited), as a new owner does on claim."""
    received = min(message.received_at, now)
    due = core.clocks.due("callback", received, major=ticket.severity == "major")
    rows.clock("callback", received, due)
    rows.event(now, f"learner:{message.channel}", "callback", f"requested by {message.channel}")
    owner = session.get(Staff, ticket.owner_staff_id) if ticket.owner_staff_id else None
    privately = private_address(core.channels, owner) if owner is not None else None
    if owner is None or privately is None or not message.phone:
        return  # unclaimed: whoever claims it gets the number then; withheld: nothing to send
    rows.event(now, "complaintbot", "disclosed", f"call-back number, privately to {owner.name}")
    channel, recipient = privately
    rows.send(
        outbox_values(
            core.vault,
            key=f"in:{message_id}:callback-number",
            channel=channel,
            recipient=recipient,
            kind="notice-staff",
            text=f"📞 {ticket.number}: a new voicemail; call back {message.phone} by {core.local_text(due)}, "
            f"then /called {ticket.number} with what was said.",
            now=now,
            ticket_id=ticket.id,
            meta={"sensitive": True, "ticket_number": ticket.number},
        )
    )
