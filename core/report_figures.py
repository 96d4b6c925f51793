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

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.followup import SURVEY
from core.models import Clock, Event, Staff, Ticket
from core.policy import Policy
from core.workflow import AWAITING_CONFIRMATION, CLOSED, FOLLOW_UP, OPEN_STATES

SCHEMA_VERSION = 1
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")


class PeriodError(ValueError):
    """A month or quarter that cannot be read; the message says what is expected."""


@dataclass(frozen=True)
class Period:
    """A local calendar period [start, end) and its name ("2026-11", "2026Q4")."""

    name: str
    start: datetime
    end: datetime


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def month_period(text: str, tz: ZoneInfo) -> Period:
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise PeriodError(f"not a month: {text!r} (expected YYYY-MM, e.g. 2026-11)")
    year, month = int(match[1]), int(match[2])
    following = date(year + month // 12, month % 12 + 1, 1)
    return Period(
        f"{year:04d}-{month:02d}", _local_midnight(date(year, month, 1), tz), _local_midnight(following, tz)
    )


def quarter_period(text: str, tz: ZoneInfo) -> Period:
    match = _QUARTER.match(text.strip().upper())
    if not match:
        raise PeriodError(f"not a quarter: {text!r} (expected YYYYQn, e.g. 2026Q4)")
    year, quarter = int(match[1]), int(match[2])
    first = date(year, 3 * quarter - 2, 1)
    following = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return Period(f"{year:04d}Q{quarter}", _local_midnight(first, tz), _local_midnight(following, tz))


def previous_month(now: datetime, tz: ZoneInfo) -> Period:
    first = now.astimezone(tz).date().replace(day=1)
    last = first - timedelta(days=1)
    return month_period(f"{last.year:04d}-{last.month:02d}", tz)


def previous_quarter(now: datetime, tz: ZoneInfo) -> Period:
    local = now.astimezone(tz).date()
    quarter = (local.month - 1) // 3 + 1
    year, quarter = (local.year - 1, 4) if quarter == 1 else (local.year, quarter - 1)
    return quarter_period(f"{year}Q{quarter}", tz)


def seconds_between(session: AsyncSession, start: Any, end: Any) -> ColumnElement[Any]:
    """`end - start` in seconds, in the dialect's own date arithmetic."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return func.extract("epoch", end - start)


def cohort(period: Period, department: str | None) -> list[ColumnElement[bool]]:
    """The tickets received in `period`; a ticket merged into another is the same complaint, counted
    once through the one that carries on (its clocks were stopped, not met)."""
    where = [
        Ticket.created_at >= period.start,
        Ticket.created_at < period.end,
        Ticket.merged_into_id.is_(None),
    ]
    if department is not None:
        where.append(Ticket.department == department)
    return where


def counted_stages(policy: Policy) -> list[str]:
    """The stages whose deadlines are the school's: every clock but those waiting on the learner."""
    return [name for name, rule in policy.stages.items() if not rule.waits_on_learner]


def deadline_columns(as_of: datetime) -> tuple[ColumnElement[int], ColumnElement[int]]:
    """SUM columns of clocks met on time and breached (late, or open past due at `as_of`)."""
    met = func.sum(case((and_(Clock.met_at.is_not(None), Clock.met_at <= Clock.due_at), 1), else_=0))
    breached = func.sum(
        case(
            (Clock.met_at > Clock.due_at, 1),
            (and_(Clock.met_at.is_(None), Clock.paused.is_(False), Clock.due_at < as_of), 1),
            else_=0,
        )
    )
    return met, breached


def follow_up_columns(as_of: datetime) -> tuple[ColumnElement[int], ...]:
    """SUM columns over follow_up clocks: tasks due, completed, passing quality."""
    due = func.sum(case((or_(Clock.met_at.is_not(None), Clock.due_at <= as_of), 1), else_=0))
    done = func.sum(case((Clock.met_at.is_not(None), 1), else_=0))
    passed = func.sum(
        case(
            (
                and_(
                    Clock.met_at.is_not(None), Clock.met_at <= Clock.due_at, Ticket.satisfaction.is_not(None)
                ),
                1,
            ),
            else_=0,
        )
    )
    return due, done, passed


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) / 3600, 2)


def _weeks(period: Period) -> list[tuple[date, datetime, datetime]]:
    """Monday-based weeks cut to the period: (label day, start, end)."""
    tz = period.start.tzinfo
    assert isinstance(tz, ZoneInfo)
    day = period.start.date()
    weeks = []
    while _local_midnight(day, tz) < period.end:
        monday_next = day + timedelta(days=7 - day.weekday())
        end = min(_local_midnight(monday_next, tz), period.end)
        weeks.append((day, _local_midnight(day, tz), end))
        day = monday_next
    return weeks


async def _weekly_by_channel(session: AsyncSession, where: list[Any], period: Period) -> list[dict[str, Any]]:
    weeks = _weeks(period)
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


@dataclass(frozen=True)
class _ClockGroup:
    stage: str
    department: str
    owner: int | None
    met: int
    breached: int
    count: int
    level1: int
    level2: int
    due: int  # the follow-up columns, meaningful on follow_up clocks
    done: int
    passed: int


async def _clock_groups(session: AsyncSession, where: list[Any], as_of: datetime) -> list[_ClockGroup]:
    """One pass over the month's clocks, grouped by stage, department and owner: the deadlines, the
    escalations and the follow-ups are all sums of these groups (three passes would cost three times)."""
    met, breached = deadline_columns(as_of)
    due, done, passed = follow_up_columns(as_of)
    rows = await session.execute(
        select(
            Clock.stage,
            Ticket.department,
            Ticket.owner_staff_id,
            met,
            breached,
            func.count(),
            func.sum(case((Clock.escalation_level >= 1, 1), else_=0)),
            func.sum(case((Clock.escalation_level >= 2, 1), else_=0)),
            due,
            done,
            passed,
        )
        .select_from(Clock)
        .join(Ticket, Ticket.id == Clock.ticket_id)
        .where(*where)
        .group_by(Clock.stage, Ticket.department, Ticket.owner_staff_id)
    )
    return [
        _ClockGroup(stage, dept, owner, *(int(v or 0) for v in rest)) for stage, dept, owner, *rest in rows
    ]


def _stages(groups: list[_ClockGroup], policy: Policy) -> list[dict[str, Any]]:
    found: dict[str, list[int]] = {}
    for g in groups:
        sums = found.setdefault(g.stage, [0, 0, 0])
        sums[0], sums[1], sums[2] = sums[0] + g.met, sums[1] + g.breached, sums[2] + g.count
    return [
        {"stage": stage, "met": m, "breached": b, "pending": n - m - b}
        for stage in counted_stages(policy)
        if stage in found
        for m, b, n in [found[stage]]
    ]


def _escalations(groups: list[_ClockGroup], manual: dict[str, int]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def entry(department: str) -> dict[str, Any]:
        return out.setdefault(department, {"department": department, "level1": 0, "level2": 0, "manual": 0})

    for g in groups:
        if g.level1:
            entry(g.department)["level1"] += g.level1
            entry(g.department)["level2"] += g.level2
    for department, count in manual.items():
        entry(department)["manual"] = count
    return [out[key] for key in sorted(out)]


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


def _follow_up_entry(due: int, done: int, passed: int, warning_below: float) -> dict[str, Any]:
    completion, quality = rate(done, due), rate(passed, done)
    warning = (completion is not None and completion < warning_below) or (
        quality is not None and quality < warning_below
    )
    return {
        "due": due,
        "completed": done,
        "quality_passed": passed,
        "completion_rate": completion,
        "quality_rate": quality,
        "warning": warning,
    }


def _three(sums: list[int]) -> tuple[int, int, int]:
    return sums[0], sums[1], sums[2]


async def _follow_up(session: AsyncSession, groups: list[_ClockGroup], policy: Policy) -> dict[str, Any]:
    target = policy.follow_up
    teams: dict[str, list[int]] = {}
    staff: dict[tuple[str, int | None], list[int]] = {}
    for g in groups:
        if g.stage != FOLLOW_UP:
            continue
        for sums in (
            teams.setdefault(g.department, [0, 0, 0]),
            staff.setdefault((g.department, g.owner), [0, 0, 0]),
        ):
            sums[0], sums[1], sums[2] = sums[0] + g.due, sums[1] + g.done, sums[2] + g.passed
    ids = [owner for _, owner in staff if owner is not None]
    names = (
        dict((await session.execute(select(Staff.id, Staff.name).where(Staff.id.in_(ids)))).all())
        if ids
        else {}
    )
    return {
        "targets": {
            "completion": target.completion_target,
            "quality": target.quality_target,
            "warning_below": target.warning_below,
        },
        "teams": [
            {"department": dept, **_follow_up_entry(*_three(teams[dept]), target.warning_below)}
            for dept in sorted(teams)
        ],
        "staff": [
            {
                "staff_id": owner,
                "name": names.get(owner) if owner is not None else None,
                "department": dept,
                **_follow_up_entry(*_three(staff[(dept, owner)]), target.warning_below),
            }
            for dept, owner in sorted(staff, key=lambda key: (key[0], key[1] is None, key[1] or 0))
        ],
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
    groups = await _clock_groups(session, where, as_of)
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
        "stages": _stages(groups, policy),
        "handling_times": [
            {"department": dept, "claim": claim.get(dept, empty), "result": result.get(dept, empty)}
            for dept in sorted(set(claim) | set(result))
        ],
        "escalations": _escalations(groups, await _manual_escalations(session, where)),
        "satisfaction": await _satisfaction(session, where, policy),
        "follow_up": await _follow_up(session, groups, policy),
        "second_instance": await _second_instance(session, period, department),
        "top_courses": [{"course": course, "count": count} for course, count in courses],
    }
