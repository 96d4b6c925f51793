"""Which ticket an incoming message continues, if any."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.messages import InboundMessage, storage_key
from core.models import Learner, LearnerIdentity, Message, OutboxRow, Ticket
from core.numbers import find_ticket_numbers
from core.workflow import OPEN_STATES


def continued_ticket(
    session: Session, message: InboundMessage, learner: Learner, identity: LearnerIdentity, prefix: str
) -> Ticket | None:
    """The learner's open ticket this message continues, by the rules of intake, or None.

    In order: a ticket number in the text or subject, then a reply to a message of a ticket, then
    the ticket still waiting for details from this very address. Only the learner's own tickets
    ever match. The ticket is locked (PostgreSQL) so two quick messages are handled one by one.
    """
    if learner.id is None:  # a learner created just now has no tickets yet
        return None
    mine = (Ticket.learner_id == learner.id) & Ticket.status.in_(OPEN_STATES)
    # A ticket number alone never reveals a complaint: only the learner's own tickets match.
    numbers = [str(n) for n in find_ticket_numbers(message.text or "", prefix)]
    if message.subject:
        numbers += [str(n) for n in find_ticket_numbers(message.subject, prefix)]
    if numbers:
        ticket = session.scalar(
            select(Ticket).where(mine, Ticket.number.in_(numbers)).limit(1).with_for_update()
        )
        if ticket is not None:
            return ticket
    if message.reply_to:
        reference = storage_key(message.reply_to)
        ticket_id = session.scalar(
            select(Message.ticket_id).where(
                Message.channel == message.channel, Message.external_id == reference
            )
        )
        if ticket_id is None:
            ticket_id = session.scalar(
                select(OutboxRow.ticket_id).where(
                    OutboxRow.channel == message.channel, OutboxRow.external_ref == message.reply_to
                )
            )
        if ticket_id is not None:
            ticket = session.scalar(select(Ticket).where(mine, Ticket.id == ticket_id).with_for_update())
            if ticket is not None:
                return ticket
    if identity.id is None:
        return None
    # An answer to "which course?" counts only from the address the question went to: a phone
    # number shared between learners must not let one answer another's question.
    return session.scalar(
        select(Ticket)
        .where(mine, Ticket.identity_id == identity.id, Ticket.awaiting_field.is_not(None))
        .order_by(Ticket.id.desc())
        .limit(1)
        .with_for_update()
    )
