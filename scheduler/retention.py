"""The retention duty (POLICY.md §7): personal data no longer needed is anonymised, statistics kept.

A complaint closed more than `[retention] days_after_close` days ago has its content anonymised
(`core.privacy.scrub.scrub_tickets`: summary, messages, attachments, outbox texts, staff's free-text event
details) and gets an "anonymized" event by complaintbot. The learner's own data (name, phone, e-mail,
channel addresses) goes only when none of their tickets still needs it: none open, none closed within
the retention period. So a learner who complained again last month keeps their contact data for the new
complaint, while the words of their complaint from three years ago are anonymised on time.

Messages to learners that belong to no ticket (answers to /start, /status: the recipient, and a
Telegram chat id in the key) are anonymised once older than the same number of days.

Tickets are read in pages of BATCH through the index on `closed_at`, one transaction per page, and
claimed with an update conditioned on `anonymized_at IS NULL` (PostgreSQL also skips rows another
instance has locked), so with several instances each ticket is anonymised and audited once. A dry
run reads the same pages and writes nothing.

Not covered: input kept as unparsed (`core.intake.unparsed`) is linked to no learner and no ticket and stays
as it is; so do learners without any ticket.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.privacy.erasure import claim_tickets, erase_learner_data, lock_conflict
from core.privacy.scrub import ERASED, scrub_outbox_row, scrub_tickets, ticketless_rows
from core.storage.db import transaction
from core.storage.delivery_models import OutboxRow
from core.storage.models import Event, Learner, Ticket
from core.tickets.workflow import CLOSED
from scheduler.duty import DutyReport

BATCH = 500  # tickets per transaction: bounded locks and memory, however many fall due at once
RETRIES = 5
ACTOR = "complaintbot"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Due:
    id: int
    number: str
    learner_id: int
    closed_at: datetime


async def run(core: CoreContext, now: datetime, dry_run: bool) -> DutyReport:
    report = DutyReport("retention", dry_run=dry_run)
    days = core.policy.retention.days_after_close
    cutoff = now - timedelta(days=days)
    after: tuple[datetime, int] | None = None
    while True:
        rows = await _page(core, cutoff, after, days, now, dry_run, report)
        if not rows:
            break
        after = (rows[-1].closed_at, rows[-1].id)
        if len(rows) < BATCH:
            break
    await _ticketless(core, cutoff, dry_run, report)
    return report


async def _page(
    core: CoreContext,
    cutoff: datetime,
    after: tuple[datetime, int] | None,
    days: int,
    now: datetime,
    dry_run: bool,
    report: DutyReport,
) -> list[Due]:
    """One page in one transaction; a page that lost a deadlock is rolled back and run again."""
    attempt = 1
    while True:
        lines: list[str] = []
        try:
            async with transaction(core.sessions) as session:
                rows = await _due(session, cutoff, after, lock=not dry_run)
                await _handle(core, session, rows, cutoff, days, now, dry_run, lines)
        except DBAPIError as exc:
            if attempt == RETRIES or not lock_conflict(exc):
                raise
            log.info("retention: page after %s lost a lock conflict, try %d again", after, attempt)
            attempt += 1
            continue
        report.actions += lines  # only what was committed is reported
        return rows


async def _due(
    session: AsyncSession, cutoff: datetime, after: tuple[datetime, int] | None, *, lock: bool
) -> list[Due]:
    query = (
        select(Ticket.id, Ticket.number, Ticket.learner_id, Ticket.closed_at)
        # The partial index's own predicate (`ix_tickets_retention_due`), so the planner uses it.
        .where(
            Ticket.anonymized_at.is_(None),
            Ticket.closed_at.is_not(None),
            Ticket.closed_at < cutoff,
            Ticket.status == CLOSED,
        )
        .order_by(Ticket.closed_at, Ticket.id)
        .limit(BATCH)
    )
    if after is not None:  # keyset paging: a dry run changes nothing, so it must not re-read a page
        query = query.where(
            (Ticket.closed_at > after[0]) | and_(Ticket.closed_at == after[0], Ticket.id > after[1])
        )
    if lock:
        # Another instance's page is skipped, not waited for: it anonymises those, we take the next.
        query = query.with_for_update(skip_locked=True)
    return [
        Due(id_, number, learner_id, closed_at)
        for id_, number, learner_id, closed_at in await session.execute(query)
        if closed_at is not None
    ]


async def _handle(
    core: CoreContext,
    session: AsyncSession,
    rows: list[Due],
    cutoff: datetime,
    days: int,
    now: datetime,
    dry_run: bool,
    lines: list[str],
) -> None:
    if not rows:
        return
    claimed = (
        {r.id for r in rows} if dry_run else set(await claim_tickets(session, [r.id for r in rows], now))
    )
    erased: set[int] = set()
    for learner_id in sorted({r.learner_id for r in rows if r.id in claimed}):
        if not await _no_longer_needed(session, learner_id, cutoff):
            continue
        # The conditional update inside decides between two instances: only one erases and says so.
        if dry_run or await erase_learner_data(core, session, learner_id, now, ticketless=False):
            erased.add(learner_id)
    if not dry_run:
        await scrub_tickets(core, session, sorted(claimed))
    for row in rows:
        if row.id not in claimed:
            continue  # another instance (or `learner forget`) got there first, and audits it
        note = "; the learner's contact data erased" if row.learner_id in erased else ""
        closed = core.local_text(row.closed_at)[:10]
        lines.append(f"{row.number}: anonymized (closed {closed}){note}")
        if not dry_run:
            detail = f"retention: closed more than {days} days ago{note}"
            session.add(Event(ticket_id=row.id, at=now, actor=ACTOR, action="anonymized", detail=detail))


async def _no_longer_needed(session: AsyncSession, learner_id: int, cutoff: datetime) -> bool:
    """The learner is not erased yet and has no ticket that still needs their contact data.

    Tickets past retention count as done even before their own page is anonymised (in a later
    page, or by another instance): they no longer need the learner either.
    """
    if await session.scalar(select(Learner.erased_at).where(Learner.id == learner_id)) is not None:
        return False
    needed = await session.scalar(
        select(Ticket.id)
        .where(
            Ticket.learner_id == learner_id,
            Ticket.anonymized_at.is_(None),
            or_(Ticket.status != CLOSED, Ticket.closed_at.is_(None), Ticket.closed_at >= cutoff),
        )
        .limit(1)
    )
    return needed is None


async def _ticketless(core: CoreContext, cutoff: datetime, dry_run: bool, report: DutyReport) -> None:
    """Messages to learners outside any ticket, older than the cutoff (one still pending after that
    long is given up: its recipient is gone)."""
    token = core.vault.encrypt(ERASED)
    count, after = 0, 0
    while True:
        async with transaction(core.sessions) as session:
            query = (
                ticketless_rows()
                .where(OutboxRow.created_at < cutoff, OutboxRow.id > after)
                .order_by(OutboxRow.id)
                .limit(BATCH)
            )
            if not dry_run:
                query = query.with_for_update(skip_locked=True)
            rows = list(await session.scalars(query))
            if rows:
                after = rows[-1].id
            for row in rows if not dry_run else ():
                scrub_outbox_row(row, token, learner_bound=True)
            count += len(rows)
        if len(rows) < BATCH:
            break
    if count:
        report.actions.append(f"{count} message(s) to learners outside any ticket: anonymized")
