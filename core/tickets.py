"""Ticket services: carrying out workflow moves on the database, finding, listing and showing tickets."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.callback import pending_callback
from core.cards import refresh_card
from core.clocks import close_clocks, current_due
from core.context import CoreContext
from core.corrections import correct_category, correct_severity
from core.inbound import seal_summary
from core.models import Clock, Event, LearnerIdentity, Message, Staff, Ticket
from core.models_delivery import OutboxRow
from core.numbers import InvalidTicketNumber, TicketNumber
from core.privacy import redact
from core.workflow import CLOSED, OPEN_STATES, Actor, WorkflowError, check

LIST_FILTERS = ("open", "overdue", "closed", "all")

log = logging.getLogger(__name__)


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
    severity: str | None = None,
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
        correct_category(core, session, ticket, actor, now)
    if action == "severity":
        changed = await correct_severity(core, session, ticket, severity or "", actor, now)
        detail = f"{changed}: {detail}" if detail else changed
    if action == "assign":
        if owner is None:
            raise WorkflowError("assign needs a staff member")
        ticket.owner_staff_id = owner.id
        detail = f"{owner.name}: {detail}" if detail else owner.name
    if action == "claim" and actor.staff_id is not None:
        ticket.owner_staff_id = actor.staff_id
    if action == "called":
        if await pending_callback(session, ticket.id) is None:
            raise WorkflowError(f"{ticket.number} has no call-back waiting")
        if detail and not ticket.summary:
            # An empty voicemail: what the caller said on the call-back is the complaint.
            ticket.summary = seal_summary(core.vault, redact(" ".join(detail.split()))[:200])
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
    await session.flush()  # the event's id names the card edit it causes
    log.info("ticket %s: %s by %s, now %s", ticket.number, action, actor.label, ticket.status)
    await refresh_card(core, session, ticket, action, event.id, now)
    return event


def record_disclosure(session: AsyncSession, ticket: Ticket, actor: str, now: datetime, what: str) -> None:
    """Every read of personal data by staff is written to the audit trail (POLICY.md §7)."""
    session.add(Event(ticket=ticket, at=now, actor=actor, action="disclosed", detail=what))


def overdue(now: datetime) -> Any:
    """The condition "the ticket is past an open deadline", for queries of tickets."""
    return _overdue(now)


def _overdue(now: datetime) -> Any:
    return exists().where(
        Clock.ticket_id == Ticket.id, Clock.met_at.is_(None), Clock.paused.is_(False), Clock.due_at < now
    )


def _listed(status: str, now: datetime) -> list[Any]:
    """The conditions of a `tickets list --status` filter."""
    if status not in LIST_FILTERS:
        raise ValueError(f"unknown status filter {status!r}: use {', '.join(LIST_FILTERS)}")
    if status == "open":
        return [Ticket.status.in_(OPEN_STATES)]
    if status == "closed":
        return [Ticket.status == CLOSED]
    if status == "overdue":
        return [Ticket.status.in_(OPEN_STATES), _overdue(now)]
    return []


async def list_tickets(
    session: AsyncSession, status: str, now: datetime, limit: int = 500, offset: int = 0
) -> list[Ticket]:
    """A page of the tickets `status` selects, newest first; `count_tickets` says how many there are."""
    query = select(Ticket).where(*_listed(status, now)).order_by(Ticket.id.desc())
    return list(await session.scalars(query.limit(limit).offset(offset)))


async def count_tickets(session: AsyncSession, status: str, now: datetime) -> int:
    query = select(func.count()).select_from(Ticket).where(*_listed(status, now))
    return int(await session.scalar(query) or 0)


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


__all__ = [
    "LIST_FILTERS",
    "InvalidTicketNumber",
    "TicketNotFound",
    "apply_move",
    "count_tickets",
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


def _next_due() -> Any:
    """The ticket's earliest open staff deadline, for ordering lists by urgency."""
    return (
        select(func.min(Clock.due_at))
        .where(Clock.ticket_id == Ticket.id, Clock.met_at.is_(None), Clock.paused.is_(False))
        .correlate(Ticket)
        .scalar_subquery()
    )


async def _urgent_first(session: AsyncSession, where: list[Any], limit: int) -> tuple[list[Ticket], int]:
    """Up to `limit` matching tickets, the most urgent deadline first, and how many match in all."""
    total = await session.scalar(select(func.count()).select_from(Ticket).where(*where)) or 0
    query = select(Ticket).where(*where).order_by(_next_due().asc().nulls_last(), Ticket.id).limit(limit)
    return list(await session.scalars(query)), total


async def staff_open_tickets(
    session: AsyncSession, staff_id: int, limit: int = 25
) -> tuple[list[Ticket], int]:
    """Open tickets a staff member owns or is first contact of (POLICY.md §2): what `/mine` lists."""
    mine = or_(Ticket.owner_staff_id == staff_id, Ticket.first_contact_staff_id == staff_id)
    return await _urgent_first(session, [Ticket.status.in_(OPEN_STATES), mine], limit)


async def overdue_tickets(
    session: AsyncSession, now: datetime, department: str | None = None, limit: int = 25
) -> tuple[list[Ticket], int]:
    """Open tickets past a deadline, of one department or (None) of all."""
    where = [Ticket.status.in_(OPEN_STATES), _overdue(now)]
    if department is not None:
        where.append(Ticket.department == department)
    return await _urgent_first(session, where, limit)


async def ticket_counts(
    session: AsyncSession, now: datetime, department: str | None = None
) -> dict[str, dict[str, int]]:
    """Per department: how many tickets are in each status, and how many open ones are "overdue"."""
    by_status = select(Ticket.department, Ticket.status, func.count()).group_by(
        Ticket.department, Ticket.status
    )
    late = (
        select(Ticket.department, func.count())
        .where(Ticket.status.in_(OPEN_STATES), _overdue(now))
        .group_by(Ticket.department)
    )
    if department is not None:
        by_status = by_status.where(Ticket.department == department)
        late = late.where(Ticket.department == department)
    counts: dict[str, dict[str, int]] = {}
    for dept, status, count in await session.execute(by_status):
        counts.setdefault(dept, {})[status] = count
    for dept, count in await session.execute(late):
        counts.setdefault(dept, {})["overdue"] = count
    return counts


async def open_counts(session: AsyncSession, now: datetime) -> dict[str, tuple[int, int]]:
    """Per department: (open, overdue) tickets. Reads open tickets only (the status index), so its cost
    follows what is open, not the years of closed history (the daily digest)."""
    late = case((_overdue(now), 1), else_=0)
    rows = await session.execute(
        select(Ticket.department, func.count(), func.sum(late))
        .where(Ticket.status.in_(OPEN_STATES))
        .group_by(Ticket.department)
    )
    return {department: (count, int(overdue or 0)) for department, count, overdue in rows}


async def ticket_for_thread(session: AsyncSession, thread_ref: str) -> Ticket | None:
    """The ticket whose staff card was posted in this thread ("chat:thread", e.g. a forum topic)."""
    ticket_id = await session.scalar(
        select(OutboxRow.ticket_id)
        .where(
            OutboxRow.channel == "staff",
            OutboxRow.kind == "card",
            OutboxRow.external_thread == thread_ref,
            OutboxRow.ticket_id.is_not(None),
        )
        .order_by(OutboxRow.id.desc())
        .limit(1)
    )
    return await session.get(Ticket, ticket_id) if ticket_id is not None else None


async def opening_message_id(session: AsyncSession, ticket_id: int) -> int | None:
    """The id of the inbound message that opened the ticket."""
    return await session.scalar(
        select(func.min(Message.id)).where(Message.ticket_id == ticket_id, Message.direction == "in")
    )


async def set_first_contact(
    session: AsyncSession, ticket_id: int, staff: Staff, now: datetime, detail: str | None = None
) -> bool:
    """Make `staff` the ticket's first-contact owner (首接责任人, POLICY.md §2), with an audit event.

    The first contact is the first one: a ticket that already has a staff first contact keeps it
    (False is returned and nothing changes).
    """
    ticket = await session.get_one(Ticket, ticket_id, with_for_update=True)
    if ticket.first_contact_staff_id is not None:
        return False
    ticket.first_contact_staff_id = staff.id
    ticket.first_contact_department = staff.department
    ticket.updated_at = now
    actor = staff_actor(staff).label
    session.add(
        Event(ticket=ticket, at=now, actor=actor, action="first_contact", detail=detail or staff.name)
    )
    return True


async def latest_inbound_ref(session: AsyncSession, ticket_id: int, channel: str) -> str | None:
    """The platform id of the learner's latest message on `channel` (to thread an answer under it)."""
    ref: str | None = await session.scalar(
        select(Message.external_id)
        .where(Message.ticket_id == ticket_id, Message.channel == channel, Message.direction == "in")
        .order_by(Message.id.desc())
        .limit(1)
    )
    return ref if ref and not ref.startswith("sha256:") else None
