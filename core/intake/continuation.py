"""Which ticket an incoming message continues, if any."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.delivery.outbox import recipient_key
from core.messages import InboundMessage, storage_key
from core.storage.delivery_models import OutboxRow
from core.storage.models import Learner, LearnerIdentity, Message, Ticket
from core.storage.numbers import find_ticket_numbers
from core.storage.privacy import Vault
from core.tickets.workflow import OPEN_STATES


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
        ticket = ticket or _carried_on(
            session, select(Ticket.id).where(Ticket.learner_id == learner.id, Ticket.number.in_(numbers))
        )
        if ticket is not None:
            return ticket
    ticket_id = replied_ticket_id(session, message)
    if ticket_id is not None:
        ticket = session.scalar(select(Ticket).where(mine, Ticket.id == ticket_id).with_for_update())
        ticket = ticket or _carried_on(
            session, select(Ticket.id).where(Ticket.learner_id == learner.id, Ticket.id == ticket_id)
        )
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


def _carried_on(session: Session, own: Any) -> Ticket | None:
    """The open ticket a merged ticket of the learner's (`own`: its id) was merged into: the merged
    number keeps leading the learner's messages there (`core.tickets.merge`)."""
    ticket_id = session.scalar(own.where(Ticket.merged_into_id.is_not(None)).limit(1))
    for _ in range(5):  # a kept ticket merged in turn
        ticket = session.get(Ticket, ticket_id) if ticket_id is not None else None
        if ticket is None or ticket.merged_into_id is None:
            break
        ticket_id = ticket.merged_into_id
    if ticket_id is None:
        return None
    return session.scalar(
        select(Ticket).where(Ticket.id == ticket_id, Ticket.status.in_(OPEN_STATES)).with_for_update()
    )


def replied_ticket_id(session: Session, message: InboundMessage) -> int | None:
    """The ticket of the message this one replies to (theirs or ours), whoever's it is: callers check.

    The direct parent first (`reply_to`), then the thread's earlier messages newest first (e-mail
    `References`: a reply to a reply to our acknowledgement still finds its ticket)."""
    for ref in dict.fromkeys(r for r in (message.reply_to, *reversed(message.references)) if r):
        ticket_id = session.scalar(
            select(Message.ticket_id).where(
                Message.channel == message.channel, Message.external_id == storage_key(ref)
            )
        )
        if ticket_id is None:
            ticket_id = session.scalar(
                select(OutboxRow.ticket_id).where(
                    OutboxRow.channel == message.channel, OutboxRow.external_ref == ref
                )
            )
        if ticket_id is not None:
            return int(ticket_id)
    return None


def referenced_ticket(session: Session, message: InboundMessage) -> Ticket | None:
    """The ticket a machine-written reply is about (a bounce of our acknowledgement), whoever sent it:
    it only ever adds a record to that ticket, it is never answered."""
    ticket_id = replied_ticket_id(session, message)
    return session.get(Ticket, ticket_id, with_for_update=True) if ticket_id is not None else None


def foreign_reference(session: Session, message: InboundMessage, learner_id: int) -> str | None:
    """The number of another learner's ticket this message replies to (a forwarded thread, a shared
    mailbox): it opens a ticket of its own, and staff see which one it answered."""
    ticket_id = replied_ticket_id(session, message)
    if ticket_id is None:
        return None
    ticket = session.get(Ticket, ticket_id)
    return ticket.number if ticket is not None and ticket.learner_id != learner_id else None


def answers_our_mail(session: Session, vault: Vault, message: InboundMessage) -> bool:
    """Whether the message replies to one we sent to its sender's address: In-Reply-To or References
    name the id of a message of ours to that very recipient. Our e-mail Message-IDs are keyed with a
    server secret, so naming one is proof of having received it, which a forged From is not."""
    refs = [ref for ref in dict.fromkeys((message.reply_to, *message.references)) if ref]
    key = recipient_key(vault, message.channel, message.sender_id)
    if not refs or key is None:
        return False
    found = session.scalar(
        select(OutboxRow.id)
        .where(
            OutboxRow.channel == message.channel,
            OutboxRow.external_ref.in_(refs[-50:]),
            OutboxRow.recipient_key == key,
        )
        .limit(1)
    )
    return found is not None


def named_foreign_tickets(
    session: Session, message: InboundMessage, learner_id: int, prefix: str
) -> list[str]:
    """Numbers of other learners' tickets the message names (a caller quoting "their" number): never
    joined, since a number is no proof of whose it is, but staff see it on the new ticket."""
    numbers = {str(n) for n in find_ticket_numbers(f"{message.text or ''} {message.subject or ''}", prefix)}
    if not numbers:
        return []
    found = session.scalars(
        select(Ticket.number).where(Ticket.number.in_(numbers), Ticket.learner_id != learner_id)
    )
    return sorted(found)
