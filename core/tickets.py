"""Ticket services: carrying out workflow moves on the database, finding, listing and showing tickets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clocks import close_clocks
from core.context import CoreContext
from core.models import Clock, Event, LearnerIdentity, Message, OutboxRow, Staff, Ticket
from core.numbers import InvalidTicketNumber, TicketNumber
from core.privacy import redact
from core.workflow import CLOSED, OPEN_STATES, Actor, WorkflowError, check

LIST_FILTERS = ("open", "overdue", "closed", "all")


class TicketNotFound(LookupError):
    pass


def staff_actor(staff: Staff) -> Actor:
    return Actor(
        kind="staff", name=staff.name, role=staff.role, department=staff.department, staff_id=staff.id
    )


async def get_ticket(session: AsyncSession, number: str, prefix: str = "TS") -> Ticket:
    """The ticket with this number; a mistyped number is refused before any lookup."""
    canonical = str(TicketNumber.parse(number, prefix))  # raises InvalidTicketNumber
    ticket = await session.scalar(select(Ticket).where(Ticket.number == canonical))
    if ticket is None:
        raise TicketNotFound(f"no ticket {canonical}")
    return ticket


async def apply_move(
    core: CoreContext,
    session: AsyncSession,
    ticket: Ticket,
    action: str,
    actor: Actor,
    now: datetime,
    *,
    detail: str | None = None,
    department: str | None = None,
    owner: Staff | None = None,
) -> Event:
    """Check and carry out one move: state, clocks, owner or department, and the audit event."""
    # Lock the row and re-read it: two staff clicking "claim" at once must not both succeed.
    await session.refresh(ticket, with_for_update=True)
    move = check(action, ticket.status, ticket.department, actor, owner_learner_id=ticket.learner_id)
    if action == "transfer":
        if not department or department == ticket.department:
            raise WorkflowError("transfer needs another department")
        if core.department_names and department not in core.department_names:
            known = ", ".join(sorted(core.department_names))
            raise WorkflowError(f"unknown department {department!r}; known: {known}")
        ticket.department, ticket.owner_staff_id = department, None
        detail = f"{department}: {detail}" if detail else department
    if action == "assign":
        if owner is None:
            raise WorkflowError("assign needs a staff member")
        ticket.owner_staff_id = owner.id
        detail = f"{owner.name}: {detail}" if detail else owner.name
    if action == "claim" and actor.staff_id is not None:
        ticket.owner_staff_id = actor.staff_id
    await close_clocks(session, ticket.id, move.closes, now)
    major = ticket.severity == "major"
    for stage in move.opens:
        core.clocks.open(session, ticket, stage, now, major=major)
    if move.target is not None:
        ticket.status = move.target
    if action == "plan" and detail:
        ticket.plan = detail
    if action in ("done", "resolve") and detail:
        ticket.result = detail
    ticket.closed_at = now if ticket.status == CLOSED else None
    ticket.updated_at = now
    event = Event(ticket=ticket, at=now, actor=actor.label, action=action, detail=detail)
    session.add(event)
    return event


def record_disclosure(session: AsyncSession, ticket: Ticket, actor: str, now: datetime, what: str) -> None:
    """Every read of personal data by staff is written to the audit trail (POLICY.md §7)."""
    session.add(Event(ticket=ticket, at=now, actor=actor, action="disclosed", detail=what))


def _overdue(now: datetime) -> Any:
    return exists().where(
        Clock.ticket_id == Ticket.id, Clock.met_at.is_(None), Clock.paused.is_(False), Clock.due_at < now
    )


async def list_tickets(session: AsyncSession, status: str, now: datetime, limit: int = 500) -> list[Ticket]:
    if status not in LIST_FILTERS:
        raise ValueError(f"unknown status filter {status!r}: use {', '.join(LIST_FILTERS)}")
    query = select(Ticket).order_by(Ticket.id.desc()).limit(limit)
    if status == "open":
        query = query.where(Ticket.status.in_(OPEN_STATES))
    elif status == "closed":
        query = query.where(Ticket.status == CLOSED)
    elif status == "overdue":
        query = query.where(Ticket.status.in_(OPEN_STATES), _overdue(now))
    return list(await session.scalars(query))


def _iso(core: CoreContext, at: datetime | None) -> str | None:
    return at.astimezone(core.calendar.tz).isoformat() if at is not None else None


async def _staff_name(session: AsyncSession, staff_id: int | None) -> str | None:
    if staff_id is None:
        return None
    staff = await session.get(Staff, staff_id)
    return staff.name if staff is not None else None


async def current_due(session: AsyncSession, ticket_id: int) -> Clock | None:
    """The earliest open staff clock: what the ticket is racing against now."""
    return await session.scalar(
        select(Clock)
        .where(Clock.ticket_id == ticket_id, Clock.met_at.is_(None), Clock.paused.is_(False))
        .order_by(Clock.due_at)
        .limit(1)
    )


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
        "summary": ticket.summary,
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


__all__ = [
    "LIST_FILTERS",
    "InvalidTicketNumber",
    "TicketNotFound",
    "apply_move",
    "get_ticket",
    "list_tickets",
    "staff_actor",
    "summary_view",
    "ticket_view",
]


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
        rows.append(
            {
                "number": ticket.number,
                "status": ticket.status,
                "due": core.local_text(due.due_at) if due else None,
            }
        )
    return rows
