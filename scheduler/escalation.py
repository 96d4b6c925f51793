"""Reminders and escalation (POLICY.md §5): each fires exactly once per clock, recorded on the ticket.

For every open staff clock: a reminder to the owner when `reminder_at` of the stage's time has passed,
level 1 to the department's head on breach, level 2 to the managers once a further `level2_after` of
the stage's time has passed. Shares are counted like the deadline itself (`ClockKeeper.checkpoints`):
working time for working-hour and working-day stages, the hotline's hours for a call-back, real time
for round-the-clock ones — a claim started at 17:30 on a Friday is reminded on Monday morning.

The sweep reads only clocks whose `next_check_at` has come (an index range), so it costs what is due,
not what is stored. Each clock is claimed with an update conditioned on the `next_check_at` it was read
with; only the instance whose update matched sends, in the same transaction, so with several
instances every alert goes out once. A sweep that runs late fires every level that has come, together.
Alerts to one person in one sweep are one message listing the tickets, not fifty.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.delivery.outbox import enqueue
from core.storage.db import transaction
from core.storage.models import Base, Clock, Event, Staff, Ticket
from core.tickets.reach import private_address
from core.tickets.workflow import HEAD, OPEN_STATES
from scheduler.duty import DutyReport

LEARNER_TIMERS = frozenset({"confirm", "survey"})  # kept by scheduler.followup
BATCH = 500  # clocks per transaction: bounded locks and memory, whatever falls due at once
log = logging.getLogger(__name__)
REMINDER, LEVEL1, LEVEL2 = "reminder", "level 1", "level 2"


@dataclass(frozen=True)
class Plan:
    """What one clock is due for now, and when to look at it next."""

    steps: tuple[str, ...]
    escalation_level: int
    reminded: bool
    next_check_at: datetime | None


def plan(clock: Clock, now: datetime, remind_at: datetime, level2_at: datetime) -> Plan:
    """The steps that have come for `clock` by `now`, given its reminder and level-2 times (pure)."""
    level, reminded = clock.escalation_level, clock.reminded_at is not None
    steps: list[str] = []
    if now >= clock.due_at:
        if level < 1:
            steps.append(LEVEL1)
            level = 1
        if now >= level2_at and level < 2:
            steps.append(LEVEL2)
            level = 2
        # Past the deadline a reminder is news to nobody: the breach alert says more.
    elif now >= remind_at and not reminded:
        steps.append(REMINDER)
        reminded = True
    if level >= 2:
        following = None
    elif level == 1:
        following = level2_at
    elif reminded or now >= remind_at:
        following = clock.due_at
    else:
        following = remind_at
    return Plan(tuple(steps), level, reminded or bool(steps), following)


@dataclass(frozen=True)
class Alert:
    number: str
    stage: str
    step: str
    due: str
    clock_id: int


async def run(core: CoreContext, now: datetime, dry_run: bool) -> DutyReport:
    report = DutyReport("escalation", dry_run=dry_run)
    after: tuple[datetime, int] | None = None
    while True:
        async with transaction(core.sessions) as session:
            rows = await _due(session, now, after)
            if not rows:
                break
            after = (rows[-1][0].next_check_at or now, rows[-1][0].id)
            await _handle(core, session, rows, now, dry_run, report)
        if len(rows) < BATCH:
            break
    return report


async def _due(
    session: AsyncSession, now: datetime, after: tuple[datetime, int] | None
) -> list[tuple[Clock, Ticket]]:
    query = (
        select(Clock, Ticket)
        .join(Ticket, Ticket.id == Clock.ticket_id)
        .where(Clock.next_check_at <= now)
        .order_by(Clock.next_check_at, Clock.id)
        .limit(BATCH)
        # Locked as read: another instance's sweep skips these rows (and takes the next ones) instead
        # of planning the same alerts. SQLite has one writer at a time (BEGIN IMMEDIATE) anyway.
        .with_for_update(of=Clock, skip_locked=True)
    )
    if after is not None:  # keyset paging: a dry run changes nothing, so it must not re-read a page
        query = query.where(
            (Clock.next_check_at > after[0]) | and_(Clock.next_check_at == after[0], Clock.id > after[1])
        )
    return [(clock, ticket) for clock, ticket in (await session.execute(query)).all()]


async def _handle(
    core: CoreContext,
    session: AsyncSession,
    rows: list[tuple[Clock, Ticket]],
    now: datetime,
    dry_run: bool,
    report: DutyReport,
) -> None:
    heads = await _heads(session)
    owners = await _staff(session, {t.owner_staff_id for _, t in rows if t.owner_staff_id is not None})
    # (channel, recipient, department chat to fall back on when a private message cannot be delivered)
    batches: dict[tuple[str, str, str], list[Alert]] = defaultdict(list)
    claims: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    said: list[str] = []  # a log line per alert, once it is written

    def claim(clock: Clock, following: datetime | None, level: int, reminded_at: datetime | None) -> None:
        claims.append(
            {"cid": clock.id, "seen": clock.next_check_at, "nxt": following, "lvl": level, "rem": reminded_at}
        )

    for clock, ticket in rows:
        if clock.met_at is not None or ticket.status not in OPEN_STATES:
            # Met, or its ticket moved on: nothing more will ever be due; leave the index range.
            claim(clock, None, clock.escalation_level, clock.reminded_at)
            continue
        if clock.paused:
            # Waiting on the learner: the follow-up duty keeps the timers it knows; any other paused
            # clock would only be re-read by every sweep, so it leaves the due range.
            if clock.stage not in LEARNER_TIMERS:
                claim(clock, None, clock.escalation_level, clock.reminded_at)
            continue
        step_plan = plan(clock, now, *core.clocks.checkpoints(clock.stage, clock.started_at, clock.due_at))
        if not step_plan.steps:
            if step_plan.next_check_at != clock.next_check_at:
                claim(clock, step_plan.next_check_at, clock.escalation_level, clock.reminded_at)
            continue
        reminded_at = now if REMINDER in step_plan.steps else clock.reminded_at
        claim(clock, step_plan.next_check_at, step_plan.escalation_level, reminded_at)
        due = core.local_text(clock.due_at)
        for step in step_plan.steps:
            channel, recipient, who = _recipient(core, step, ticket, owners, heads)
            # A private message that cannot be delivered goes to the department's chat instead.
            fallback = ticket.department if channel != "staff" else ""
            batches[(channel, recipient, fallback)].append(
                Alert(ticket.number, clock.stage, step, due, clock.id)
            )
            report.actions.append(f"{ticket.number} {clock.stage}: {step} to {who}")
            said.append(report.actions[-1])
            events.append(
                {
                    "ticket_id": ticket.id,
                    "at": now,
                    "actor": "complaintbot",
                    "action": "reminded" if step == REMINDER else "escalated",
                    "detail": f"{clock.stage} (due {due}): {step} to {who}",
                }
            )
    if dry_run:  # everything above only planned; nothing is written
        return
    # One statement per table for the whole page: the clocks were read locked (`_due`), so every claim
    # here is this sweep's alone; the condition on `next_check_at` is a second guard, not the first.
    connection = await session.connection()  # Core executemany: one round trip per table
    if claims:
        await connection.execute(_CLAIM, claims)
    if events:
        await connection.execute(insert(Event), events)
    for (channel, recipient, fallback), alerts in batches.items():
        _send(core, session, channel, recipient, alerts, now, fallback)
    for line in said:
        log.info("ticket %s", line)


_CLOCKS = Base.metadata.tables["clocks"].c
_CLAIM = (
    update(Base.metadata.tables["clocks"])
    .where(_CLOCKS.id == bindparam("cid"), _CLOCKS.next_check_at == bindparam("seen"))
    .values(next_check_at=bindparam("nxt"), escalation_level=bindparam("lvl"), reminded_at=bindparam("rem"))
)


async def _heads(session: AsyncSession) -> dict[str, list[Staff]]:
    found: dict[str, list[Staff]] = defaultdict(list)
    for staff in await session.scalars(
        select(Staff).where(Staff.role == HEAD, Staff.active.is_(True)).order_by(Staff.id)
    ):
        found[staff.department].append(staff)
    return found


async def _staff(session: AsyncSession, ids: set[int]) -> dict[int, Staff]:
    if not ids:
        return {}
    return {s.id: s for s in await session.scalars(select(Staff).where(Staff.id.in_(ids)))}


def _recipient(
    core: CoreContext, step: str, ticket: Ticket, owners: dict[int, Staff], heads: dict[str, list[Staff]]
) -> tuple[str, str, str]:
    """(channel, recipient, label): a person privately when a channel reaches them (`core.tickets.reach`),
    else the department's staff chat; level 2 always goes to the managers' chat."""
    department = ticket.department
    if step == LEVEL2:
        return "staff", "managers", "managers"
    person: Staff | None = None
    if step == REMINDER:
        owner = owners.get(ticket.owner_staff_id) if ticket.owner_staff_id else None
        person, role = (owner if owner is not None and owner.active else None), "owner"
    else:
        people = heads.get(department, [])
        person, role = (people[0] if people else None), f"{department} head"
    privately = private_address(core.channels, person) if person is not None else None
    if person is not None and privately is not None:
        return *privately, f"{person.name} ({role})"
    label = f"{core.department_name(department)} chat" + (f" ({role} {person.name})" if person else "")
    return "staff", department, label


def _send(
    core: CoreContext,
    session: AsyncSession,
    channel: str,
    recipient: str,
    alerts: list[Alert],
    now: datetime,
    fallback: str = "",
) -> None:
    # The key names exactly the (clock, step) pairs this transaction won, so it is unique, and a
    # retried transaction after a crash would carry the same one.
    won = ",".join(f"{a.clock_id}:{a.step}" for a in sorted(alerts, key=lambda a: (a.clock_id, a.step)))
    digest = hashlib.sha256(f"{channel}|{recipient}|{fallback}|{won}".encode()).hexdigest()[:40]
    text = core.templates.render(
        core.staff_locale, "sweep_alerts.txt", alerts=alerts, count=len(alerts), at=core.local_text(now)
    )
    enqueue(
        session,
        core.vault,
        key=f"alert:{digest}",
        channel=channel,
        recipient=recipient,
        kind="alert",
        text=text,
        now=now,
        # A person who never opened a private chat with the bot cannot be written to: the alert then
        # goes to their department's chat (core.delivery.outbox falls back when the send fails for good).
        meta=(
            {"department": recipient}
            if channel == "staff"
            else {"fallback": {"channel": "staff", "recipient": fallback}}
            if fallback
            else {}
        ),
    )
