"""The report's clock figures: deadlines met and breached, escalations and follow-up tasks, all sums of
one pass over the period's clocks (definitions in `core.reports.figures`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.rules.policy import Policy
from core.storage.models import Clock, Staff, Ticket
from core.tickets.workflow import FOLLOW_UP


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


@dataclass(frozen=True)
class ClockGroup:
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


async def clock_groups(session: AsyncSession, where: list[Any], as_of: datetime) -> list[ClockGroup]:
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
        ClockGroup(stage, dept, owner, *(int(v or 0) for v in rest)) for stage, dept, owner, *rest in rows
    ]


def stage_figures(groups: list[ClockGroup], policy: Policy) -> list[dict[str, Any]]:
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


def escalation_figures(groups: list[ClockGroup], manual: dict[str, int]) -> list[dict[str, Any]]:
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


def follow_up_entry(due: int, done: int, passed: int, warning_below: float) -> dict[str, Any]:
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


async def follow_up_figures(
    session: AsyncSession, groups: list[ClockGroup], policy: Policy
) -> dict[str, Any]:
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
            {"department": dept, **follow_up_entry(*_three(teams[dept]), target.warning_below)}
            for dept in sorted(teams)
        ],
        "staff": [
            {
                "staff_id": owner,
                "name": names.get(owner) if owner is not None else None,
                "department": dept,
                **follow_up_entry(*_three(staff[(dept, owner)]), target.warning_below),
            }
            for dept, owner in sorted(staff, key=lambda key: (key[0], key[1] is None, key[1] or 0))
        ],
    }
