"""What is shown of tickets: the summary and the full view (`tickets show --json`, INTERFACES.md), and
the learner's own list of tickets (`/status`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.rules.clocks import current_due
from core.storage.delivery_models import OutboxRow
from core.storage.models import Clock, Event, LearnerIdentity, Message, Staff, Ticket
from core.storage.privacy import redact
from core.tickets.workflow import CLOSED


def _iso(core: CoreContext, at: datetime | None) -> str | None:
    return at.astimezone(core.calendar.tz).isoformat() if at is not None else None


async def _staff_name(session: AsyncSession, staff_id: int | None) -> str | None:
    if staff_id is None:
        return None
    staff = await session.get(Staff, staff_id)
    return staff.name if staff is not None else None


async def summary_view(
    core: CoreContext, session: AsyncSession, ticket: Ticket, now: datetime
) -> dict[str, Any]:
    due = await current_due(session, ticket.id)
    return {
        "number": ticket.number,
        "status": ticket.status,
        "category": ticket.category,
        "severity": ticket.severity,
        "department": ticket.department,
        "channel": ticket.channel,
        "created_at": _iso(core, ticket.created_at),
        "owner": await _staff_name(session, ticket.owner_staff_id),
        "due_stage": due.stage if due else None,
        "due_at": _iso(core, due.due_at) if due else None,
        "overdue": bool(due and due.due_at < now),
        "summary": core.vault.reveal(ticket.summary),
    }


def _shown(core: CoreContext, token: str, full: bool) -> str:
    text = core.vault.decrypt(token)
    return text if full else redact(text)


async def ticket_view(
    core: CoreContext, session: AsyncSession, ticket: Ticket, now: datetime, *, full: bool = False
) -> dict[str, Any]:
    """Everything `tickets show --json` promises (INTERFACES.md), times ISO-8601 with offset.

    Phone numbers and e-mail addresses in messages are masked unless `full` (the caller records
    that read of personal data in the audit trail: `record_disclosure`).
    """
    clocks = await session.scalars(select(Clock).where(Clock.ticket_id == ticket.id).order_by(Clock.id))
    messages = await session.scalars(
        select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id)
    )
    events = await session.scalars(select(Event).where(Event.ticket_id == ticket.id).order_by(Event.id))
    outbox = await session.scalars(
        select(OutboxRow).where(OutboxRow.ticket_id == ticket.id).order_by(OutboxRow.id)
    )
    first_contact = (
        await _staff_name(session, ticket.first_contact_staff_id) or ticket.first_contact_department
    )
    view = await summary_view(core, session, ticket, now)
    view.update(
        {
            "first_contact": first_contact,
            "course": ticket.course,
            "expected_resolution": ticket.expected_resolution,
            "awaiting": ticket.awaiting_field,
            "plan": ticket.plan,
            "result": ticket.result,
            "closed_at": _iso(core, ticket.closed_at),
            "satisfaction": ticket.satisfaction,
            # The second instance (上级渠道): the ticket this one reviews, and the reviews of this one.
            "parent": await session.scalar(select(Ticket.number).where(Ticket.id == ticket.parent_id))
            if ticket.parent_id is not None
            else None,
            # A merged ticket leads to the one that carries it on; that one lists what joined it.
            "merged_into": await session.scalar(
                select(Ticket.number).where(Ticket.id == ticket.merged_into_id)
            )
            if ticket.merged_into_id is not None
            else None,
            "merged": list(
                await session.scalars(
                    select(Ticket.number).where(Ticket.merged_into_id == ticket.id).order_by(Ticket.id)
                )
            ),
            "second_instances": list(
                await session.scalars(
                    select(Ticket.number).where(Ticket.parent_id == ticket.id).order_by(Ticket.id)
                )
            ),
            "clocks": [
                {
                    "stage": c.stage,
                    "started_at": _iso(core, c.started_at),
                    "due_at": _iso(core, c.due_at),
                    "met_at": _iso(core, c.met_at),
                    "escalation_level": c.escalation_level,
                    "waits_on_learner": c.paused,
                }
                for c in clocks
            ],
            "messages": [
                {
                    "direction": m.direction,
                    "channel": m.channel,
                    "text": _shown(core, m.text_enc, full),
                    "at": _iso(core, m.at),
                    "attachments": m.attachments,
                }
                for m in messages
            ],
            "events": [
                {"at": _iso(core, e.at), "actor": e.actor, "action": e.action, "detail": e.detail}
                for e in events
            ],
            "outbox": [
                {
                    "kind": o.kind,
                    "channel": o.channel,
                    "status": o.status,
                    "attempts": o.attempts,
                    "last_error": o.last_error,
                    "sent_at": _iso(core, o.sent_at),
                }
                for o in outbox
            ],
        }
    )
    return view


async def learner_tickets(
    core: CoreContext, session: AsyncSession, channel: str, address: str, now: datetime, limit: int = 10
) -> list[dict[str, Any]]:
    """The tickets of the learner behind this address, newest first: what `/status` shows them."""
    index = core.vault.blind_index(channel, address)
    learner_id = await session.scalar(
        select(LearnerIdentity.learner_id).where(
            LearnerIdentity.channel == channel, LearnerIdentity.address_index == index
        )
    )
    if learner_id is None:
        return []
    tickets = await session.scalars(
        select(Ticket).where(Ticket.learner_id == learner_id).order_by(Ticket.id.desc()).limit(limit)
    )
    rows = []
    for ticket in tickets:
        due = await current_due(session, ticket.id) if ticket.status != CLOSED else None
        merged_into = (
            await session.scalar(select(Ticket.number).where(Ticket.id == ticket.merged_into_id))
            if ticket.merged_into_id is not None
            else None
        )
        rows.append(
            {
                "number": ticket.number,
                "status": ticket.status,
                "due": core.local_text(due.due_at) if due else None,
                "merged_into": merged_into,  # its number still works: it leads to that one
            }
        )
    return rows
