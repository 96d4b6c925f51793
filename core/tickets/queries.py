"""Finding and listing tickets: by number, by status filter, by owner or deadline, per department, and
the lookups other modules need (a staff card's thread, the opening and latest inbound messages)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.storage.delivery_models import OutboxRow
from core.storage.models import Clock, Message, Ticket
from core.storage.numbers import TicketNumber
from core.tickets.workflow import CLOSED, OPEN_STATES

LIST_FILTERS = ("open", "overdue", "closed", "all")


class TicketNotFound(LookupError):
    pass


async def get_ticket(session: AsyncSession, number: str, prefix: str = "TS") -> Ticket:
    """The ticket with this number; a mistyped number is refused before any lookup."""
    canonical = str(TicketNumber.parse(number, prefix))  # raises InvalidTicketNumber
    ticket = await session.scalar(select(Ticket).where(Ticket.number == canonical))
    if ticket is None:
        raise TicketNotFound(f"no ticket {canonical}")
    return ticket


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


async def latest_inbound_ref(session: AsyncSession, ticket_id: int, channel: str) -> str | None:
    """The platform id of the learner's latest message on `channel` (to thread an answer under it)."""
    ref: str | None = await session.scalar(
        select(Message.external_id)
        .where(Message.ticket_id == ticket_id, Message.channel == channel, Message.direction == "in")
        .order_by(Message.id.desc())
        .limit(1)
    )
    return ref if ref and not ref.startswith("sha256:") else None
