"""Telling the learner of a merge (or its undoing) which ticket number to keep: once on each channel
they wrote on, at their latest address there, where the channel writes back (`core.tickets.reach`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.delivery.outbox import enqueue
from core.storage.models import LearnerIdentity, Message, Ticket
from core.tickets.queries import latest_inbound_ref
from core.tickets.reach import written_address


async def tell_learner(
    core: CoreContext,
    session: AsyncSession,
    kept: Ticket,
    merged: Ticket,
    key: str,
    template: str,
    now: datetime,
) -> int:
    """Once on each channel the merged ticket's learner wrote on, in either ticket (their latest address
    there): which number to keep."""
    senders = await session.execute(
        select(LearnerIdentity, func.max(Message.id))
        .join(
            Message,
            (Message.channel == LearnerIdentity.channel)
            & (Message.sender_index == LearnerIdentity.address_index),
        )
        .where(
            Message.ticket_id.in_((kept.id, merged.id)),
            Message.direction == "in",
            # The merged ticket's learner: the one whose number changes (another learner's stays).
            LearnerIdentity.learner_id == merged.learner_id,
        )
        .group_by(LearnerIdentity.id)
        .order_by(func.max(Message.id).desc())
    )
    told: set[str] = set()
    for identity, _ in senders.all():
        written = written_address(core.channels, identity.channel, core.vault.decrypt(identity.address_enc))
        if written is None or written[0] in told:
            continue
        channel, address = written
        told.add(channel)
        threads = core.channels.of(channel).subjects
        locale = merged.locale
        enqueue(
            session,
            core.vault,
            key=f"{key}:{channel}",
            channel=channel,
            recipient=address,
            kind="notice",
            text=core.templates.render(locale, template, kept=kept.number, merged=merged.number),
            now=now,
            ticket=kept,
            # In the learner's thread where the channel threads (mail): under their latest message.
            reply_to=await latest_inbound_ref(session, kept.id, channel) if threads else None,
            meta={"ticket_number": kept.number},
        )
    return len(told)
