"""The managers' monthly figures (POLICY.md §4-§6), computed by the database as aggregates.

Every figure is about one cohort: the tickets *received* in the period (local calendar month or
quarter), optionally of one department, as the database stands at `as_of`. Each section is one or
two GROUP BY statements over indexed ranges, so a month of 100,000 tickets costs a few statements,
not 100,000 rows in Python. The JSON shape (`schema_version`) is stable: new keys may be added,
none renamed or removed.

Definitions (the report's legend says the same):
- a stage's deadline is *met* when its clock closed at or before `due_at`; *breached* when it closed
  late or is still open past `due_at` at `as_of`; clocks waiting on the learner are not counted;
- time to claim / to result: elapsed hours from entry to the first `claim` / `resolve` event;
  median and 90th percentile by nearest rank (the value at rank ceil(p × n));
- a follow-up task is a `follow_up` clock that is done or due by `as_of`; it is *completed* when
  done, and *passes quality* when done on time with a satisfaction score on record. The task
  belongs to the ticket's department (the team) and its owner (the staff member).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.reports.clocks import clock_groups, escalation_figures, follow_up_figures, stage_figures
from core.reports.periods import Period, cohort, period_weeks
from core.rules.policy import Policy
from core.storage.models import Event, Ticket
from core.tickets.followup import SURVEY
from core.tickets.workflow import AWAITING_CONFIRMATION, CLOSED, FOLLOW_UP, OPEN_STATES

SCHEMA_VERSION = 1


def seconds_between(session: AsyncSession, start: Any, end: Any) -> ColumnElement[Any]:
    """`end - start` in seconds, in the dialect's own date arithmetic."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return func.extract("epoch", end - start)


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) / 3600, 2)


async def _weekly_by_channel(session: AsyncSession, where: list[Any], period: Period) -> list[dict[str, Any]]:
    weeks = period_weeks(period)
    week = case(
        *((Ticket.created_at < end, index) for index, (_, _, end) in enumerate(weeks)), else_=len(weeks)
    )
    rows = await session.execute(
        select(week.label("week"), Ticket.channel, func.count()).where(*where).group_by(week, Ticket.channel)
    )
    out: list[dict[str, Any]] = [
        {"week": day.isoformat(), "by_channel": {}, "total": 0} for day, _, _ in weeks
    ]
    for index, channel, count in rows:
        out[index]["by_channel"][channel] = count
        out[index]["total"] += count
    for entry in out:
        entry["by_channel"] = dict(sorted(entry["by_channel"].items()))
    return out


async def _handling_times(session: AsyncSession, where: list[Any], action: str) -> dict[str, dict[str, Any]]:
    """Per department: count, median and 90th percentile hours from entry to the first `action`."""
    first = (
        select(Event.ticket_id, func.min(Event.at).label("at"))
        .join(Ticket, Ticket.id == Event.ticket_id)
        .where(*where, Event.action == action)
        .group_by(Event.ticket_id)
        .subquery()
    )
    durations = (
        select(
            Ticket.department.label("department"),
            seconds_between(session, Ticket.created_at, first.c.at).label("s"),
        )
        .join(first, first.c.ticket_id == Ticket.id)
        .subquery()
    )
    ranked = select(
        durations.c.department,
        durations.c.s,
        func.row_number().over(partition_by=durations.c.department, order_by=durations.c.s).label("rn"),
        func.count().over(partition_by=durations.c.department).label("n"),
    ).subquery()

    def at_rank(percent: int) -> ColumnElement[Any]:
        # ceil(p × n) in integer arithmetic, the same on SQLite and PostgreSQL.
        rank = (percent * ranked.c.n + 99) // 100
        return func.max(case((ranked.c.rn == rank, ranked.c.s)))

    rows = await session.execute(
        select(ranked.c.department, func.max(ranked.c.n), at_rank(50), at_rank(90)).group_by(
            ranked.c.department
        )
    )
    return {
        department: {"count": n, "median_hours": _hours(median), "p90_hours": _hours(p90)}
        for department, n, median, p90 in rows
    }


async def _manual_escalations(session: AsyncSession, where: list[Any]) -> dict[str, int]:
    rows = await session.execute(
        select(Ticket.department, func.count())
        .select_from(Event)
        .join(Ticket, Ticket.id == Event.ticket_id)
        .where(*where, Event.action == "escalate")
        .group_by(Ticket.department)
    )
    return {department: count for department, count in rows}


async def _satisfaction(session: AsyncSession, where: list[Any], policy: Policy) -> dict[str, Any]:
    surveyed = await session.scalar(
        select(func.count(func.distinct(Event.ticket_id)))
        .select_from(Event)
        .join(Ticket, Ticket.id == Event.ticket_id)
        .where(*where, Event.action == SURVEY)
    )
    rows = await session.execute(
        select(Ticket.satisfaction, func.count())
        .where(*where, Ticket.satisfaction.is_not(None))
        .group_by(Ticket.satisfaction)
    )
    follow = policy.follow_up
    scores = {str(score): 0 for score in range(follow.score_min, follow.score_max + 1)}
    for score, count in rows:
        scores[str(score)] = count
    answered = sum(scores.values())
    total = sum(int(score) * count for score, count in scores.items())
    return {
        "surveyed": surveyed or 0,
        "answered": answered,
        "mean": round(total / answered, 2) if answered else None,
        "scores": scores,
    }


async def _second_instance(session: AsyncSession, period: Period, department: str | None) -> dict[str, Any]:
    parent = aliased(Ticket)
    outcome = case(
        (Ticket.status == CLOSED, literal("closed")),
        (Ticket.status.in_((AWAITING_CONFIRMATION, FOLLOW_UP)), literal("result_reported")),
        else_=literal("in_progress"),
    )
    where = [*cohort(period, None), Ticket.parent_id.is_not(None)]
    if department is not None:  # the cases against this department's results
        where.append(parent.department == department)
    rows = (
        await session.execute(
            select(parent.department, outcome, func.count())
            .join(parent, parent.id == Ticket.parent_id)
            .where(*where)
            .group_by(parent.department, outcome)
        )
    ).all()
    by_outcome = {"in_progress": 0, "result_reported": 0, "closed": 0}
    by_department: dict[str, int] = {}
    for dept, result, count in rows:
        by_outcome[result] += count
        by_department[dept] = by_department.get(dept, 0) + count
    return {
        "total": sum(by_outcome.values()),
        "by_outcome": by_outcome,
        "by_department": [{"department": k, "count": v} for k, v in sorted(by_department.items())],
    }


async def month_figures(
    session: AsyncSession,
    policy: Policy,
    period: Period,
    as_of: datetime,
    *,
    department: str | None = None,
    top_courses: int = 10,
) -> dict[str, Any]:
    """The report's figures for `period` (and `department`), as the database stands at `as_of`."""
    where = cohort(period, department)
    totals = (
        await session.execute(
            select(
                func.count(),
                func.sum(case((Ticket.severity == "major", 1), else_=0)),
                func.sum(case((Ticket.status == CLOSED, 1), else_=0)),
                func.sum(case((Ticket.status.in_(OPEN_STATES), 1), else_=0)),
            ).where(*where)
        )
    ).one()
    categories = await session.execute(
        select(Ticket.category, Ticket.department, func.count())
        .where(*where)
        .group_by(Ticket.category, Ticket.department)
        .order_by(Ticket.category, Ticket.department)
    )
    groups = await clock_groups(session, where, as_of)
    claim = await _handling_times(session, where, "claim")
    result = await _handling_times(session, where, "resolve")
    empty = {"count": 0, "median_hours": None, "p90_hours": None}
    courses = await session.execute(
        select(Ticket.course, func.count().label("n"))
        .where(*where, Ticket.course.is_not(None), Ticket.course != "")
        .group_by(Ticket.course)
        .order_by(func.count().desc(), Ticket.course)
        .limit(top_courses)
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "month": period.name,
        "department": department,
        "timezone": str(period.start.tzinfo),
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "as_of": as_of.astimezone(period.start.tzinfo).isoformat(),
        "totals": {
            "received": totals[0],
            "major": int(totals[1] or 0),
            "closed": int(totals[2] or 0),
            "open": int(totals[3] or 0),
        },
        "weekly_by_channel": await _weekly_by_channel(session, where, period),
        "by_category_department": [
            {"category": category, "department": dept, "count": count} for category, dept, count in categories
        ],
        "stages": stage_figures(groups, policy),
        "handling_times": [
            {"department": dept, "claim": claim.get(dept, empty), "result": result.get(dept, empty)}
            for dept in sorted(set(claim) | set(result))
        ],
        "escalations": escalation_figures(groups, await _manual_escalations(session, where)),
        "satisfaction": await _satisfaction(session, where, policy),
        "follow_up": await follow_up_figures(session, groups, policy),
        "second_instance": await _second_instance(session, period, department),
        "top_courses": [{"course": course, "count": count} for course, count in courses],
    }
