"""Merging two tickets of one complaint (a WeChat message, then an e-mail, then a call), and undoing it.

The merged ticket's messages (with their attachments) and events join the kept one; the merged one
is closed as merged, its clocks stopped, its number leading to the kept one (`merged_into_id`). The
kept ticket's clocks stay, except that the earliest entry time and the tighter deadline of a stage
both have open win. The learner is told once on each channel they wrote on which number to keep.
Everything changed is written down on the merge (`TicketMerge.undo`), so `unmerge` puts it back
exactly, as long as nothing new has happened to either ticket since.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from core.classification.classify import MAJOR
from core.context import CoreContext
from core.delivery.outbox import SENT
from core.storage.delivery_models import OutboxRow
from core.storage.models import Clock, Event, Message, Staff, Ticket
from core.storage.record_models import TicketMerge
from core.tickets.cards import refresh_card
from core.tickets.merge_notice import tell_learner
from core.tickets.moves import staff_actor
from core.tickets.workflow import CLOSED, MANAGER, NotAllowed, WorkflowError, check

# Details the kept ticket takes from the merged one when it has none of its own.
FILLED = ("course", "expected_resolution", "contact_enc", "amount_yuan")
# Open clocks of the merged ticket that the kept one has none of and that do not belong to the workflow's
# stages: they move to the kept ticket instead of stopping (the voicemail's call-back promise).
CARRIED_STAGES = frozenset({"callback"})
MAX_HOPS = 5  # a kept ticket merged in turn: its number leads on, this many times at most


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


async def carried_on(session: AsyncSession, ticket: Ticket) -> Ticket:
    """The ticket that carries on a merged one (itself when it was not merged)."""
    for _ in range(MAX_HOPS):
        if ticket.merged_into_id is None:
            break
        ticket = await session.get_one(Ticket, ticket.merged_into_id)
    return ticket


async def _lock(session: AsyncSession, *tickets: Ticket) -> None:
    for ticket in sorted(tickets, key=lambda t: t.id):  # one order: two merges never deadlock
        await session.refresh(ticket, with_for_update=True)


def _allowed(staff: Staff, kept: Ticket, merged: Ticket, action: str) -> bool:
    """Staff of both tickets' department, or managers; two learners' tickets need a manager."""
    actor = staff_actor(staff)
    for ticket in (kept, merged):
        check(action, ticket.status, ticket.department, actor)
    other_learner = kept.learner_id != merged.learner_id
    if other_learner and staff.role != MANAGER:
        raise NotAllowed(
            f"{kept.number} and {merged.number} are complaints of two different learners: "
            "only a manager may merge them"
        )
    return other_learner


async def _first_contact(session: AsyncSession, ticket: Ticket) -> str:
    staff = await session.get(Staff, ticket.first_contact_staff_id) if ticket.first_contact_staff_id else None
    who = f"{staff.name}, {ticket.first_contact_department}" if staff else ticket.first_contact_department
    return f"first contact {who}, received {_iso(ticket.created_at)} via {ticket.channel}"


async def merge(
    core: CoreContext, session: AsyncSession, kept: Ticket, merged: Ticket, staff: Staff, now: datetime
) -> TicketMerge:
    """Merge `merged` into `kept`, in the caller's transaction; refused with a reason, changing nothing."""
    if kept.id == merged.id:
        raise WorkflowError(f"{kept.number} cannot be merged into itself")
    await _lock(session, kept, merged)
    for ticket in (kept, merged):
        if ticket.merged_into_id is not None:
            into = await carried_on(session, ticket)
            raise WorkflowError(f"{ticket.number} was merged into {into.number} already")
        if ticket.status == CLOSED:
            raise WorkflowError(f"{ticket.number} is closed: only open tickets are merged")
    other_learner = _allowed(staff, kept, merged, "merge")
    actor = staff_actor(staff).label
    undo: dict[str, Any] = {
        "messages": list(await session.scalars(select(Message.id).where(Message.ticket_id == merged.id))),
        "events": list(await session.scalars(select(Event.id).where(Event.ticket_id == merged.id))),
        "status": merged.status,
        "awaiting_field": merged.awaiting_field,
        "card_held_at": _iso(merged.card_held_at),  # not yet announced: it will be, if unmerged
        "kept_created_at": _iso(kept.created_at),
        "filled": [],
        "stopped": {},
        "tightened": {},
    }
    first_contact = await _first_contact(session, merged)
    await session.execute(update(Message).where(Message.ticket_id == merged.id).values(ticket_id=kept.id))
    await session.execute(update(Event).where(Event.ticket_id == merged.id).values(ticket_id=kept.id))
    await _merge_clocks(core, session, kept, merged, now, undo)
    # Another learner's contact, course or amount would be read as this learner's: not taken over.
    for name in () if other_learner else FILLED:
        if getattr(kept, name) is None and getattr(merged, name) is not None:
            setattr(kept, name, getattr(merged, name))
            undo["filled"].append(name)
    if merged.severity == MAJOR and kept.severity != MAJOR:
        # One complaint: what made either part major makes it major (its clocks took the tighter already).
        undo["severity"] = kept.severity
        kept.severity = MAJOR
    if merged.created_at < kept.created_at:
        kept.created_at = merged.created_at  # the earliest entry time wins
    merged.status, merged.closed_at, merged.merged_into_id = CLOSED, now, kept.id
    merged.awaiting_field, merged.card_held_at = None, None
    kept.updated_at = merged.updated_at = now
    why = "; tickets of two different learners, merged by a manager" if other_learner else ""
    kept_event = Event(
        ticket=kept, at=now, actor=actor, action="merged", detail=f"{merged.number} ({first_contact}){why}"
    )
    merged_event = Event(ticket=merged, at=now, actor=actor, action="merged_into", detail=kept.number)
    session.add_all([kept_event, merged_event])
    record = TicketMerge(kept_id=kept.id, merged_id=merged.id, at=now, actor=actor, undo=undo)
    session.add(record)
    await session.flush()
    await tell_learner(core, session, kept, merged, f"merge:{record.id}", "merged.txt", now)
    await refresh_card(core, session, merged, "merge", merged_event.id, now)
    await refresh_card(core, session, kept, "merge", kept_event.id, now)
    await session.flush()
    # What "nothing new since" means for `unmerge`: no message or event after these.
    undo["last_message"], undo["last_event"] = await _watermarks(session, kept, merged)
    record.undo = undo
    flag_modified(record, "undo")  # changed in place after the insert: JSON is not tracked by itself
    return record


async def _merge_clocks(
    core: CoreContext,
    session: AsyncSession,
    kept: Ticket,
    merged: Ticket,
    now: datetime,
    undo: dict[str, Any],
) -> None:
    clocks = list(
        await session.scalars(
            select(Clock).where(Clock.ticket_id.in_((kept.id, merged.id))).order_by(Clock.id)
        )
    )
    ours = {c.stage: c for c in clocks if c.ticket_id == kept.id and (c.met_at is None or c.stage == "entry")}
    for clock in (c for c in clocks if c.ticket_id == merged.id):
        mine = ours.get(clock.stage)
        tighter = mine is not None and (
            clock.started_at < mine.started_at if clock.stage == "entry" else
            clock.met_at is None and clock.due_at < mine.due_at
        )  # fmt: skip
        if mine is not None and tighter:
            undo["tightened"].setdefault(
                str(mine.id),
                [
                    _iso(mine.started_at),
                    _iso(mine.due_at),
                    _iso(mine.next_check_at),
                    mine.escalation_level,
                    _iso(mine.reminded_at),
                ],
            )
            mine.started_at = min(mine.started_at, clock.started_at)
            mine.due_at = min(mine.due_at, clock.due_at)
            # The breach the merged clock was alerted about is the same breach: not alerted again.
            mine.escalation_level = max(mine.escalation_level, clock.escalation_level)
            reminded = [at for at in (mine.reminded_at, clock.reminded_at) if at is not None]
            mine.reminded_at = min(reminded) if reminded else None
            if mine.met_at is None:
                mine.next_check_at = core.clocks.first_check(
                    mine.stage, mine.started_at, mine.due_at, paused=mine.paused, met=False
                )
        if mine is None and clock.met_at is None and clock.stage in CARRIED_STAGES:
            # A promise beside the workflow (call the learner back) moves with the complaint.
            undo.setdefault("moved", []).append(clock.id)
            clock.ticket_id = kept.id
            continue
        if clock.met_at is None:  # the merged ticket's clocks stop
            undo["stopped"][str(clock.id)] = _iso(clock.next_check_at)
            clock.met_at, clock.next_check_at = now, None


async def _watermarks(session: AsyncSession, *tickets: Ticket) -> tuple[int, int]:
    ids = [t.id for t in tickets]
    message = await session.scalar(select(func.max(Message.id)).where(Message.ticket_id.in_(ids)))
    event = await session.scalar(select(func.max(Event.id)).where(Event.ticket_id.in_(ids)))
    return int(message or 0), int(event or 0)


async def last_merge(session: AsyncSession, ticket: Ticket) -> TicketMerge | None:
    """The merge still in force that `ticket` was merged by, or (for a kept ticket) the latest into it."""
    for column in (TicketMerge.merged_id, TicketMerge.kept_id):
        record = await session.scalar(
            select(TicketMerge)
            .where(column == ticket.id, TicketMerge.undone_at.is_(None))
            .order_by(TicketMerge.id.desc())
            .limit(1)
        )
        if record is not None:
            return record
    return None


async def unmerge(
    core: CoreContext, session: AsyncSession, ticket: Ticket, staff: Staff, now: datetime
) -> TicketMerge:
    """Undo the merge `ticket` took part in, while nothing new has happened to either ticket."""
    record = await last_merge(session, ticket)
    if record is None:
        raise WorkflowError(f"{ticket.number} has no merge to undo")
    kept = await session.get_one(Ticket, record.kept_id)
    merged = await session.get_one(Ticket, record.merged_id)
    await _lock(session, kept, merged)
    _allowed(staff, kept, merged, "unmerge")
    undo = record.undo
    if await _watermarks(session, kept, merged) != (undo["last_message"], undo["last_event"]):
        raise WorkflowError(
            f"{kept.number} has changed since {merged.number} was merged into it (a message or a move): "
            "the merge can no longer be undone"
        )
    if undo["messages"]:
        await session.execute(
            update(Message).where(Message.id.in_(undo["messages"])).values(ticket_id=merged.id)
        )
    if undo["events"]:
        await session.execute(update(Event).where(Event.id.in_(undo["events"])).values(ticket_id=merged.id))
    for clock_id, next_check in undo["stopped"].items():
        clock = await session.get_one(Clock, int(clock_id))
        # An acknowledgement delivered meanwhile met its clock for good.
        delivered = await session.scalar(
            select(func.min(OutboxRow.sent_at)).where(
                OutboxRow.meets_clock_id == clock.id, OutboxRow.status == SENT
            )
        )
        clock.met_at, clock.next_check_at = (delivered, None) if delivered else (None, _at(next_check))
    for clock_id, saved in undo["tightened"].items():
        clock = await session.get_one(Clock, int(clock_id))
        started, due, next_check = saved[:3]
        clock.started_at, clock.due_at = _at(started) or clock.started_at, _at(due) or clock.due_at
        clock.next_check_at = _at(next_check)
        if len(saved) == 5:  # merges recorded before escalation levels were carried have three
            clock.escalation_level, clock.reminded_at = int(saved[3]), _at(saved[4])
    for clock_id in undo.get("moved", []):
        (await session.get_one(Clock, int(clock_id))).ticket_id = merged.id
    for name in undo["filled"]:
        setattr(kept, name, None)
    kept.severity = undo.get("severity", kept.severity)
    kept.created_at = _at(undo["kept_created_at"]) or kept.created_at
    merged.status, merged.closed_at, merged.merged_into_id = undo["status"], None, None
    merged.awaiting_field, merged.card_held_at = undo["awaiting_field"], _at(undo.get("card_held_at"))
    kept.updated_at = merged.updated_at = now
    record.undone_at = now
    actor = staff_actor(staff).label
    events = [
        Event(ticket=t, at=now, actor=actor, action="unmerged", detail=f"{merged.number} from {kept.number}")
        for t in (kept, merged)
    ]
    session.add_all(events)
    await session.flush()
    await tell_learner(core, session, kept, merged, f"unmerge:{record.id}", "unmerged.txt", now)
    await refresh_card(core, session, merged, "unmerge", events[1].id, now)
    await refresh_card(core, session, kept, "unmerge", events[0].id, now)
    return record
