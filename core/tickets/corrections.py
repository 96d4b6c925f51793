"""Staff corrections of a ticket's category (by `/transfer`) and severity (by `/severity`).

Every correction is recorded with what the classifier finds in the ticket's (masked) summary, so that
`complaintbot classify export` can hand the school labelled examples to fold into its rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.classification.classify import GENERAL, MAJOR, classify
from core.context import CoreContext
from core.delivery.outbox import enqueue
from core.rules.clocks import open_clocks
from core.storage.models import Event, Ticket
from core.storage.privacy import Vault
from core.storage.record_models import ClassificationCorrection
from core.tickets.workflow import Actor, WorkflowError

__all__ = ["SEVERITIES", "category_for", "correct_category", "correct_severity", "export_rows"]

SEVERITIES = (GENERAL, MAJOR)
_WHY_LIMIT = 300


def category_for(core: CoreContext, department: str) -> str | None:
    """The one category the policy routes to `department`, or None (none, or several)."""
    categories = core.policy.classification.get("categories", {})
    names = [name for name in categories if core.policy.department_for(name) == department]
    return names[0] if len(names) == 1 else None


def correct_category(
    core: CoreContext, session: AsyncSession, ticket: Ticket, actor: Actor, now: datetime
) -> None:
    """After a transfer: the category follows its new department (when one category goes there)."""
    new = category_for(core, ticket.department)
    ticket.category_unsure = False  # staff have looked at it
    if new is None or new == ticket.category:
        return
    _record(core, session, ticket, "category", ticket.category, new, actor, now)
    ticket.classified_why = _corrected(ticket, f"category {ticket.category} -> {new} by {actor.name}")
    ticket.category = new


async def correct_severity(
    core: CoreContext, session: AsyncSession, ticket: Ticket, severity: str, actor: Actor, now: datetime
) -> str:
    """Set the severity staff chose; raised to major, it alerts the managers as a major complaint does at
    entry. The running clocks are re-dated from their start as if the ticket had come in with this
    severity (a major complaint's tighter clocks, or a general one's). Returns the audit event's detail."""
    if severity not in SEVERITIES:
        raise WorkflowError(f"severity must be general or major, not {severity!r}")
    old = ticket.severity
    if severity == old:
        raise WorkflowError(f"{ticket.number} is already {severity}")
    _record(core, session, ticket, "severity", old, severity, actor, now)
    ticket.classified_why = _corrected(ticket, f"severity {old} -> {severity} by {actor.name}")
    ticket.severity = severity
    redated = await _redate(core, session, ticket, severity == MAJOR, now)
    if severity == MAJOR and core.policy.escalation.major_alerts_managers:
        alert = core.templates.render(
            core.staff_locale,
            "alert_major.txt",
            number=ticket.number,
            category=ticket.category,
            severity=severity,
            department_name=core.department_name(ticket.department),
            summary=core.vault.reveal(ticket.summary),
            reasons=(f"raised to major by {actor.label}",),
        )
        enqueue(
            session,
            core.vault,
            key=f"ticket:{ticket.id}:alert:major:{now.isoformat()}",
            channel="staff",
            recipient="managers",
            kind="alert",
            text=alert,
            now=now,
            ticket=ticket,
            meta={"ticket_number": ticket.number, "department": ticket.department},
        )
        session.add(
            Event(ticket=ticket, at=now, actor="complaintbot", action="alerted", detail="managers: major")
        )
    moved = "".join(f"; {stage} due {core.local_text(due)}" for stage, due in redated)
    return f"{old} -> {severity}{moved}"


async def _redate(
    core: CoreContext, session: AsyncSession, ticket: Ticket, major: bool, now: datetime
) -> list[tuple[str, datetime]]:
    """Each running staff clock due again by the policy for this severity; the next sweep then works
    out what has come by its new deadline. A deadline already past stays as it is (a correction does not
    undo a breach), and a tighter one is never before the correction (it does not make one either)."""
    moved = []
    for clock in await open_clocks(session, ticket.id):
        if clock.paused or clock.due_at <= now:  # waiting on the learner, or breached already
            continue
        due = max(core.clocks.due(clock.stage, clock.started_at, major=major), now)
        if due != clock.due_at:
            clock.due_at, clock.next_check_at = due, now
            moved.append((clock.stage, due))
    return moved


async def export_rows(session: AsyncSession, vault: Vault) -> list[dict[str, Any]]:
    """Every correction as a labelled example, oldest first."""
    query = (
        select(ClassificationCorrection, Ticket.number)
        .join(Ticket, Ticket.id == ClassificationCorrection.ticket_id)
        .order_by(ClassificationCorrection.id)
    )
    return [
        {
            "ticket": number,
            "at": row.at.isoformat(),
            "actor": row.actor,
            "field": row.field,
            "classified": row.old_value,
            "corrected": row.new_value,
            "text": vault.reveal(row.text),
            "features": row.features,
        }
        for row, number in (await session.execute(query)).all()
    ]


def _record(
    core: CoreContext,
    session: AsyncSession,
    ticket: Ticket,
    field: str,
    old: str,
    new: str,
    actor: Actor,
    now: datetime,
) -> None:
    found = classify(core.vault.reveal(ticket.summary), core.rules)
    features = {
        "language": found.language,
        "classified_as": f"{found.category}/{found.severity}",
        "confident": found.confident,
        "amount_yuan": None if found.amount_yuan is None else str(found.amount_yuan),
        "reasons": list(found.reasons),
    }
    session.add(
        ClassificationCorrection(
            ticket_id=ticket.id,
            at=now,
            actor=actor.label,
            field=field,
            old_value=old,
            new_value=new,
            text=ticket.summary,  # encrypted, as on the ticket
            features=features,
        )
    )


def _corrected(ticket: Ticket, what: str) -> str:
    line = f"{what}; was: {ticket.classified_why}" if ticket.classified_why else what
    return line if len(line) <= _WHY_LIMIT else line[: _WHY_LIMIT - 1] + "…"
