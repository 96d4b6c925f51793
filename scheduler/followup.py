"""The follow-up duty (POLICY.md §4, §6): the clocks that wait on the learner, when their time is up.

- `confirm` ran out (the learner never confirmed the result): the system confirms, and the
  satisfaction survey goes to the learner (the confirm move opens the staff's `follow_up` clock).
- `survey` ran out (no score in `[follow_up] call_task_after_working_days`): a call task goes to the
  department's staff chat, once.

Only clocks whose `next_check_at` has come are read (an index range), so a pass costs what is due.
Each clock is claimed with an update conditioned on the `next_check_at` it was read with, in the same
transaction as what it sends: with several instances, or two passes at once, exactly one acts. A
dry run reads and reports, and writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.storage.db import transaction
from core.storage.models import Clock, Ticket
from core.tickets.followup import SURVEY, send_call_task, send_survey
from core.tickets.moves import apply_move
from core.tickets.workflow import AWAITING_CONFIRMATION, FOLLOW_UP, SYSTEM_ACTOR
from scheduler.duty import DutyReport

log = logging.getLogger(__name__)

BATCH = 200  # clocks read per page
CONFIRM = "confirm"
# The learner-wait clocks this duty keeps, and the ticket state in which each still means something.
WAITING = {CONFIRM: AWAITING_CONFIRMATION, SURVEY: FOLLOW_UP}


@dataclass(frozen=True)
class DueClock:
    """What a page read of a clock keeps: plain values, so no session stays open across the work."""

    id: int
    stage: str
    seen: datetime  # the next_check_at it was read with: the claim's condition
    due_at: datetime
    ticket_id: int
    number: str
    status: str
    department: str
    erased: bool = False  # the learner's data was erased (learner forget)


async def run(core: CoreContext, now: datetime, dry_run: bool) -> DutyReport:
    report = DutyReport("follow-up", dry_run=dry_run)
    after: tuple[datetime, int] | None = None
    while True:
        async with core.sessions() as session:
            page = await _due(session, now, after)
        for clock in page:
            try:
                await _handle(core, clock, now, dry_run, report)
            except Exception:  # one ticket's failure must not stop the others; it is retried next pass
                log.exception("follow-up of %s (%s clock %d) failed", clock.number, clock.stage, clock.id)
        if len(page) < BATCH:
            return report
        after = (page[-1].seen, page[-1].id)


async def _due(session: AsyncSession, now: datetime, after: tuple[datetime, int] | None) -> list[DueClock]:
    query = (
        select(Clock, Ticket.number, Ticket.status, Ticket.department, Ticket.anonymized_at)
        .join(Ticket, Ticket.id == Clock.ticket_id)
        .where(
            Clock.next_check_at <= now,
            Clock.met_at.is_(None),
            Clock.paused.is_(True),
            Clock.stage.in_(tuple(WAITING)),
        )
        .order_by(Clock.next_check_at, Clock.id)
        .limit(BATCH)
    )
    if after is not None:  # keyset paging: a dry run moves nothing, so it must not re-read a page
        query = query.where(
            (Clock.next_check_at > after[0]) | and_(Clock.next_check_at == after[0], Clock.id > after[1])
        )
    rows = (await session.execute(query)).all()
    return [
        # An erased learner is asked nothing more, and nobody is told to call them: treated as moved on.
        DueClock(c.id, c.stage, c.next_check_at, c.due_at, c.ticket_id, number, status, department, erased)
        for c, number, status, department, erased_at in rows
        for erased in [erased_at is not None]
        if c.next_check_at is not None
    ]


async def _handle(
    core: CoreContext, clock: DueClock, now: datetime, dry_run: bool, report: DutyReport
) -> None:
    stale = clock.status != WAITING[clock.stage] or clock.erased
    if dry_run:
        if not stale:
            report.actions.append(_describe(core, clock))
        return
    async with transaction(core.sessions) as session:
        if not await _claim(session, clock):
            return  # another instance (or a learner's answer) got there first
        if stale:
            return  # its ticket moved on without closing it: nothing to do, and never again
        ticket = await session.get_one(Ticket, clock.ticket_id)
        if clock.stage == CONFIRM:
            due = core.local_text(clock.due_at)
            await apply_move(
                core,
                session,
                ticket,
                "confirm",
                SYSTEM_ACTOR,
                now,
                detail=f"no answer from the learner by {due}",
            )
            await send_survey(core, session, ticket, now, key=f"clock:{clock.id}:survey", timed_out=True)
        else:
            await send_call_task(
                core, session, ticket, now, why="no_answer", key=f"clock:{clock.id}:call-task"
            )
        report.actions.append(_describe(core, clock))


async def _claim(session: AsyncSession, clock: DueClock) -> bool:
    """Take the clock off the due range, only if nobody did since it was read; True when we did."""
    result = await session.execute(
        update(Clock)
        .where(Clock.id == clock.id, Clock.next_check_at == clock.seen, Clock.met_at.is_(None))
        .values(next_check_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def _describe(core: CoreContext, clock: DueClock) -> str:
    if clock.stage == CONFIRM:
        return f"{clock.number} confirm: no answer by {core.local_text(clock.due_at)}: confirmed, survey sent"
    days = core.policy.follow_up.call_task_after_working_days
    return f"{clock.number} survey: no score in {days} working days: call task to {clock.department}"
