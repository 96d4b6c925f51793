"""The managers' monthly report, delivered once: on the policy's N-th working day of each month
(`[report] working_day`, from `[report] at`), the month before goes to the managers as the PDF with
a short summary (Telegram: a document with a caption; e-mail: an attachment; WeCom robot: the summary
and an overview picture). In the first month of a quarter the quarter before is graded too
(`core.reports.credit`: kept and acted on once) and its grades are summed up in the same message.

The outbox key names the month, so with several instances (or a sweep run twice) only the first
insert wins, as with the digest. A service that was down on the day sends it at its next sweep in
the same month: a late report is still the report.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.context import CoreContext
from core.delivery.outbox import enqueue
from core.reports.credit import QuarterGrades, quarter_grades
from core.reports.figures import month_figures
from core.reports.periods import Period, previous_month, previous_quarter
from core.reports.render import draw_documents
from core.reports.summary import summary_lines
from core.rules.calendar import BusinessCalendar
from core.storage.delivery_models import OutboxRow
from scheduler.duty import DutyReport


def nth_working_day(calendar: BusinessCalendar, year: int, month: int, n: int) -> date:
    day, seen = date(year, month, 1), 0
    while True:
        if calendar.is_workday(day):
            seen += 1
            if seen == n:
                return day
        day = date.fromordinal(day.toordinal() + 1)


def due_month(core: CoreContext, now: datetime) -> Period | None:
    """The month whose report is due at `now` (the month before), or None before the sending day."""
    policy = core.policy.report
    tz = core.calendar.tz
    local = now.astimezone(tz)
    day = nth_working_day(core.calendar, local.year, local.month, policy.working_day)
    if not policy.enabled or local < datetime.combine(day, policy.at, tzinfo=tz):
        return None
    return previous_month(now, tz)


def credit_lines(grades: QuarterGrades) -> list[str]:
    counted = Counter(g.grade for g in grades.grades if g.kind == "department")
    low = [f"{g.name} {g.grade}" for g in grades.grades if g.grade in ("C", "D")]
    repaired = [g.name for g in grades.grades if g.repaired]
    lines = [
        f"{grades.quarter} 信用等级 credit grades (部门 departments): "
        + ", ".join(f"{grade} {counted[grade]}" for grade in ("A", "B", "C", "D") if counted[grade])
    ]
    if low:
        lines.append("C/D: " + ", ".join(low))
    if repaired:
        lines.append("信用修复 repaired: " + ", ".join(repaired))
    return lines


async def run(core: CoreContext, now: datetime, dry_run: bool) -> DutyReport:
    report = DutyReport("report", dry_run=dry_run)
    period = due_month(core, now)
    if period is None:
        return report
    key = f"report:{period.name}"
    async with core.sessions() as session:
        if await session.scalar(select(OutboxRow.id).where(OutboxRow.key == key)) is not None:
            return report  # this month's went out already
    report.actions.append(f"report {period.name} to managers")
    if dry_run:
        return report
    async with core.sessions() as session:
        figures = await month_figures(session, core.policy, period, now)
    lines = summary_lines(figures)
    if period.start.month % 3 == 0:  # the month before closed a quarter: grade it (once)
        grades = await quarter_grades(core, previous_quarter(now, core.calendar.tz), now)
        lines += credit_lines(grades)
        report.actions.append(f"credit {grades.quarter}: {len(grades.grades)} grades")
    documents = await draw_documents(figures, now, overview=True)
    try:
        async with core.sessions() as session, session.begin():
            enqueue(
                session,
                core.vault,
                key=key,
                channel="staff",
                recipient="managers",
                kind="report",
                text="\n".join(lines),
                subject=f"投诉处理月报 Complaints report {period.name}",
                now=now,
                meta={"department": "managers"},
                documents=documents,
            )
    except IntegrityError:  # another instance queued this month's between our check and our insert
        report.actions.clear()
    return report
