"""The managers' daily digest: new, open and overdue tickets per department, and the day's breaches.

Due once per local day, in the two hours after the policy's `[digest] at`; the outbox key names the
day, so with several instances (or a sweep run twice) only the first insert of the day wins.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.context import CoreContext
from core.delivery.outbox import enqueue
from core.storage.delivery_models import OutboxRow
from core.storage.models import Event, Ticket
from core.tickets.queries import open_counts
from scheduler.duty import DutyReport

DIGEST_WINDOW = timedelta(hours=2)


async def run(core: CoreContext, now: datetime, dry_run: bool) -> DutyReport:
    report = DutyReport("digest", dry_run=dry_run)
    policy = core.policy.digest
    tz = core.calendar.tz
    local = now.astimezone(tz)
    opens = datetime.combine(local.date(), policy.at, tzinfo=tz)
    # Late by more than the window (the service was down, or first started in the evening), the day's
    # digest is stale news: skip to tomorrow's rather than send it at 21:30.
    if not policy.enabled or not opens <= local < opens + DIGEST_WINDOW:
        return report
    key = f"digest:{local.date().isoformat()}"
    async with core.sessions() as session:
        if await session.scalar(select(OutboxRow.id).where(OutboxRow.key == key)) is not None:
            return report  # today's went out already
        counts = await open_counts(session, now)
        new = dict(
            (
                await session.execute(
                    select(Ticket.department, func.count())
                    .where(Ticket.created_at >= now - timedelta(days=1), Ticket.created_at <= now)
                    .group_by(Ticket.department)
                )
            ).all()
        )
        breaches = await session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.action == "escalated", Event.at >= now - timedelta(days=1), Event.at <= now)
        )
    rows = []
    for department in sorted(set(counts) | set(new)):
        open_count, overdue = counts.get(department, (0, 0))
        rows.append(
            {
                "name": core.department_name(department),
                "new": new.get(department, 0),
                "open": open_count,
                "overdue": overdue,
            }
        )
    text = core.templates.render(
        core.staff_locale, "digest.txt", day=local.date().isoformat(), rows=rows, breaches=breaches or 0
    )
    report.actions.append(f"digest {local.date().isoformat()} to managers ({len(rows)} departments)")
    if dry_run:
        return report
    try:
        async with core.sessions() as session, session.begin():
            enqueue(
                session,
                core.vault,
                key=key,
                channel="staff",
                recipient="managers",
                kind="alert",
                text=text,
                now=now,
                meta={"department": "managers"},
            )
    except IntegrityError:  # another instance sent today's between our check and our insert
        report.actions.clear()
    return report
