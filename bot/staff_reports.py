"""The managers' `/report [YYYY-MM]` and `/credit [YYYYQn]`, and each staff member's own month in `/stats`.

They read in the command's own session (on SQLite the pool has one connection: a second session
inside the command would wait for it). `/credit` shows a finished quarter's kept grades; one not yet
kept is computed and shown, and kept with the next monthly report or `complaintbot credit`, which
also carry out the C/D actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot import staff_queries
from bot.staff_queries import BadCommand, Refused
from core.context import CoreContext
from core.messages import Document
from core.reports.credit import compute_grades, kept_grades
from core.reports.credit_scores import subject_inputs
from core.reports.figures import month_figures
from core.reports.periods import (
    PeriodError,
    month_period,
    previous_month,
    previous_quarter,
    quarter_period,
)
from core.reports.render import draw_documents
from core.reports.summary import summary_lines
from core.storage.models import Staff, Ticket
from core.tickets.workflow import MANAGER


@dataclass(frozen=True)
class Reply:
    """An answer that carries documents (its text is their caption)."""

    text: str
    documents: tuple[Document, ...] = ()


def _managers_only(staff: Staff, command: str) -> None:
    if staff.role != MANAGER:
        raise Refused(f"/{command} is for managers.")


async def report(core: CoreContext, session: AsyncSession, staff: Staff, args: str, now: datetime) -> Reply:
    _managers_only(staff, "report")
    tz = core.calendar.tz
    try:
        period = month_period(args, tz) if args.strip() else previous_month(now, tz)
    except PeriodError as exc:
        raise BadCommand(str(exc)) from None
    figures = await month_figures(session, core.policy, period, now)
    documents = await draw_documents(figures, now, overview=False)
    return Reply("\n".join(summary_lines(figures)), documents)


async def credit(core: CoreContext, session: AsyncSession, staff: Staff, args: str, now: datetime) -> str:
    _managers_only(staff, "credit")
    tz = core.calendar.tz
    try:
        period = quarter_period(args, tz) if args.strip() else previous_quarter(now, tz)
    except PeriodError as exc:
        raise BadCommand(str(exc)) from None
    grades = await kept_grades(session, period.name)
    state = "kept"
    if not grades:
        grades = await compute_grades(core, session, period, now)
        state = "provisional: the quarter is not over" if now < period.end else "computed, not yet kept"
    if not grades:
        return f"Credit {period.name}: no complaints in the quarter."
    lines = [f"Credit {period.name} ({state})"]
    for grade in grades:
        score = "-" if grade.score is None else f"{grade.score:.1f}"
        mark = " ✅ repaired" if grade.repaired else ""
        who = grade.name if grade.kind == "department" else f"{grade.name} ({grade.department})"
        lines.append(f"{grade.grade:<10} {score:>5}  {who}{mark}")
    return "\n".join(lines)


async def stats(core: CoreContext, session: AsyncSession, staff: Staff, now: datetime) -> str:
    """`/stats`: the department's (a manager's: every department's) counts, then the asker's own month."""
    counts = await staff_queries.stats(core, session, staff, now)
    own = await own_month(core, session, staff, now)
    return counts if own is None else f"{counts}\n{own}"


async def own_month(core: CoreContext, session: AsyncSession, staff: Staff, now: datetime) -> str | None:
    """The staff member's own figures of this month so far: what they own and how it went."""
    tz = core.calendar.tz
    local = now.astimezone(tz)
    period = month_period(f"{local.year:04d}-{local.month:02d}", tz)
    mine = (await subject_inputs(session, core.policy, period, now, Ticket.owner_staff_id)).get(staff.id)
    if mine is None:
        return None

    def share(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.0f}%"

    mean = "-" if mine["mean_satisfaction"] is None else f"{mine['mean_satisfaction']:.1f}"
    return (
        f"You, {period.name}: {mine['received']} owned, {mine['closed']} closed · deadlines met "
        f"{share(mine['deadlines_met_share'])} ({mine['deadlines_met']}/"
        f"{mine['deadlines_met'] + mine['deadlines_breached']}) · follow-ups done "
        f"{share(mine['follow_up_completion'])} ({mine['follow_ups_done']}/{mine['follow_ups_due']}) · "
        f"mean satisfaction {mean}"
    )
