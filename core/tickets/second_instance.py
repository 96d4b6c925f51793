"""The second instance (上级渠道): a learner unhappy with the result asks for a review, and the compliance
department gets a linked ticket that runs on the same clocks as a new complaint (POLICY.md §1, §5).

One per ticket: asking again answers with the number already given. It can be asked once the
department has reported a result (the ticket may have been reopened since).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.delivery.outbox import enqueue
from core.storage.models import Clock, Event, Staff, Ticket
from core.storage.numbering import allocate_number
from core.storage.privacy import redact
from core.tickets.cards import card_buttons, card_text
from core.tickets.followup import learner_address, result_reported
from core.tickets.reach import private_address
from core.tickets.workflow import LEARNER, ROUTED, Actor, NotAllowed, WorkflowError

log = logging.getLogger(__name__)

# Copied from the first instance: the same learner, complaint and details.
_SAME = (
    "category", "severity", "channel", "locale", "learner_id", "identity_id", "summary", "course",
    "expected_resolution", "contact_enc", "amount_yuan", "data_leak",
)  # fmt: skip


@dataclass(frozen=True)
class SecondInstance:
    ticket: Ticket  # the compliance department's ticket
    created: bool  # False: the learner had asked before; this is the ticket opened then
    reply: str  # what the learner is told (also queued to them)


async def open_second_instance(
    core: CoreContext,
    session: AsyncSession,
    ticket: Ticket,
    now: datetime,
    reason: str | None,
    *,
    actor: Actor,
    to: tuple[str, str] | None = None,
    key: str | None = None,
) -> SecondInstance:
    """Open (or find) the second-instance ticket of `ticket`, at the request of its own learner.

    The new ticket: routed to `[second_instance] department`, `parent_id` = the original, claim clock
    running, card in that department's chat. The learner is acknowledged with the new number (on `to`,
    else their written address); the original's owner and the managers are told; both tickets record it.
    """
    await session.refresh(ticket, with_for_update=True)  # two quick requests must not open two
    if actor.kind != LEARNER or actor.learner_id != ticket.learner_id:
        raise NotAllowed("only the learner who made the complaint may ask for the second instance")
    if ticket.parent_id is not None:
        raise WorkflowError(f"{ticket.number} is itself the second instance: its result is final")
    existing = await session.scalar(
        select(Ticket).where(Ticket.parent_id == ticket.id).order_by(Ticket.id).limit(1)
    )
    address = to or await learner_address(core, session, ticket)
    if existing is not None:
        reply = _learner_text(core, ticket, existing, None, again=True)
        if key is not None:  # a repeated request is answered where it was asked, once per request
            _tell_learner(core, session, existing, address, reply, key, now, kind="notice")
        return SecondInstance(existing, False, reply)
    if not await session.run_sync(lambda s: result_reported(s, ticket)):
        raise WorkflowError(
            f"{ticket.number} is still being handled ({ticket.status}): the second instance is open "
            "once the department has reported its result"
        )
    reason = redact(" ".join(reason.split()))[:500] if reason else None
    child = await _open_child(core, session, ticket, now)
    major = child.severity == "major"
    keeper = core.clocks
    for stage in ("entry", "route"):  # entered and routed by the bot as it is asked
        met = keeper.open(session, child, stage, now, major=major)
        met.met_at, met.next_check_at = now, None
    acknowledge = keeper.open(session, child, "acknowledge", now, major=major) if address else None
    claim = keeper.open(session, child, "claim", now, major=major)
    department = child.department
    session.add_all(
        [
            Event(
                ticket=child,
                at=now,
                actor=actor.label,
                action="received",
                detail=f"second instance of {ticket.number}",
            ),
            Event(ticket=child, at=now, actor="complaintbot", action="routed", detail=department),
            Event(
                ticket=ticket,
                at=now,
                actor=actor.label,
                action="appealed",
                detail=_detail(child.number, reason),
            ),
        ]
    )
    await session.flush()
    shown = core.vault.reveal(child.summary)
    meta = {"ticket_number": child.number, "department": department, "summary": shown[:60]}
    enqueue(
        session,
        core.vault,
        key=f"ticket:{child.id}:card",
        channel="staff",
        recipient=department,
        kind="card",
        text=await card_text(core, session, child),
        now=now,
        ticket=child,
        buttons=card_buttons(child.number, ROUTED),
        meta=meta,
    )
    facts = {
        "number": child.number,
        "parent": ticket.number,
        "parent_department": core.department_name(ticket.department),
        "department_name": core.department_name(department),
        "reason": reason,
        "result": ticket.result,
        "claim_due": core.local_text(claim.due_at),
    }
    for audience, (channel, recipient) in (await _staff_audience(core, session, ticket, department)).items():
        enqueue(
            session,
            core.vault,
            key=f"ticket:{child.id}:second-instance:{audience}",
            channel=channel,
            recipient=recipient,
            kind="notice-staff",
            text=core.templates.render(
                core.staff_locale, "second_instance_notice.txt", audience=audience, **facts
            ),
            now=now,
            ticket=ticket if audience == "owner" else child,
            meta={"ticket_number": child.number, **({"department": recipient} if channel == "staff" else {})},
        )
    reply = _learner_text(core, ticket, child, claim, again=False)
    _tell_learner(
        core, session, child, address, reply, key or f"ticket:{child.id}:ack", now, meets=acknowledge
    )
    log.info("ticket %s: second instance %s opened for %s", ticket.number, child.number, department)
    return SecondInstance(child, True, reply)


async def _open_child(core: CoreContext, session: AsyncSession, ticket: Ticket, now: datetime) -> Ticket:
    day = core.calendar.local_date(now)
    number = await session.run_sync(lambda s: allocate_number(s, core.prefix, day))
    values: dict[str, Any] = {column: getattr(ticket, column) for column in _SAME}
    department = core.policy.second_instance.department
    child = Ticket(
        **values,
        number=str(number),
        status=ROUTED,
        department=department,
        first_contact_department=department,  # the higher office receives it directly
        awaiting_field=None,  # the details were gathered in the first instance
        parent_id=ticket.id,
        created_at=now,
        updated_at=now,
    )
    session.add(child)
    await session.flush()
    return child


async def _staff_audience(
    core: CoreContext, session: AsyncSession, ticket: Ticket, department: str
) -> dict[str, tuple[str, str]]:
    """Who hears of the appeal: the reviewing department (why, and the first result), the original's
    owner (privately when a channel reaches them, else in their department's chat), the managers."""
    owner = await session.get(Staff, ticket.owner_staff_id) if ticket.owner_staff_id else None
    privately = private_address(core.channels, owner) if owner is not None and owner.active else None
    to_owner = privately or ("staff", ticket.department)
    return {"reviewer": ("staff", department), "owner": to_owner, "managers": ("staff", "managers")}


def _detail(number: str, reason: str | None) -> str:
    return f"second instance {number}" + (f": {reason}" if reason else "")


def _learner_text(
    core: CoreContext, ticket: Ticket, child: Ticket, claim: Clock | None, *, again: bool
) -> str:
    return core.templates.render(
        ticket.locale,
        "second_instance_ack.txt",
        number=child.number,
        parent=ticket.number,
        department_name=core.department_name(child.department),
        claim_due=core.local_text(claim.due_at) if claim is not None else None,
        again=again,
    )


def _tell_learner(
    core: CoreContext,
    session: AsyncSession,
    ticket: Ticket,
    address: tuple[str, str] | None,
    text: str,
    key: str,
    now: datetime,
    *,
    kind: str = "ack",
    meets: Clock | None = None,
) -> None:
    if address is None:
        return  # no written address: the compliance department calls (the card shows the ticket)
    enqueue(
        session,
        core.vault,
        key=key,
        channel=address[0],
        recipient=address[1],
        kind=kind,
        text=text,
        now=now,
        ticket=ticket,
        meets_clock=meets,
        meta={"ticket_number": ticket.number},
    )
