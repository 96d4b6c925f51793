"""Workflow moves carried out on the database: a checked move with its clocks and audit event, the
first-contact owner, and the audit record of staff reading personal data."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.rules.clocks import close_clocks
from core.storage.models import Event, Staff, Ticket
from core.storage.privacy import redact
from core.tickets.callback import pending_callback
from core.tickets.cards import refresh_card
from core.tickets.corrections import correct_category, correct_severity
from core.tickets.inbound import seal_summary
from core.tickets.workflow import CLOSED, Actor, WorkflowError, check

log = logging.getLogger(__name__)


def staff_actor(staff: Staff) -> Actor:
    return Actor(
        kind="staff", name=staff.name, role=staff.role, department=staff.department, staff_id=staff.id
    )


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
