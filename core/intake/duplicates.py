"""Possible duplicates: the same complaint made again on another channel, pointed out on the new card.

A hint for staff, who decide (`/merge`): so the phone or e-mail address a message merely carries is
enough to point it out, though it links no identities (`core.tickets.learners`), and nothing is merged here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.capabilities import ChannelBook
from core.messages import InboundMessage
from core.storage.contact_kinds import EMAIL, PHONE
from core.storage.models import Learner, Ticket
from core.storage.privacy import Vault, normalize
from core.tickets.workflow import OPEN_STATES


def _index(vault: Vault, kind: str, value: str | None) -> str | None:
    return vault.blind_index(kind, value) if value and normalize(kind, value) else None


def possible_duplicate(
    session: Session,
    vault: Vault,
    channels: ChannelBook,
    learner: Learner,
    message: InboundMessage,
    category: str,
    now: datetime,
    window_hours: float,
) -> tuple[int, str] | None:
    """The id and number of the newest open ticket in `category`, opened within the window, of this
    learner or of one with the phone number or e-mail address the message (or the learner) carries."""
    if window_hours <= 0:
        return None
    # A sender id that is itself a mailbox or a phone number (an e-mail's From, a caller) counts too.
    address = channels.of(message.channel).address
    email = message.email or (message.sender_id if address == "mailbox" else None)
    phone = message.phone or (message.sender_id if address == "phone" else None)
    indexes = {
        Learner.phone_index: {_index(vault, PHONE, phone), learner.phone_index},
        Learner.email_index: {_index(vault, EMAIL, email), learner.email_index},
    }
    same_contact = [column.in_(values - {None}) for column, values in indexes.items() if values - {None}]
    whose = [Ticket.learner_id == learner.id] if learner.id is not None else []
    if same_contact:
        whose.append(Ticket.learner_id.in_(select(Learner.id).where(or_(*same_contact))))
    if not whose:
        return None
    found = session.execute(
        select(Ticket.id, Ticket.number)
        .where(
            or_(*whose),
            Ticket.category == category,
            Ticket.status.in_(OPEN_STATES),
            Ticket.created_at >= now - timedelta(hours=window_hours),
        )
        .order_by(Ticket.id.desc())
        .limit(1)
    ).first()
    return (found.id, found.number) if found is not None else None
