"""Quarterly credit grades A–D of departments and staff members (信用管理, POLICY.md §8).

A score out of 100 from four shares over the complaints received in the quarter (a staff member's:
those they own), weighted by the policy's `[credit]`: stage deadlines met, mean satisfaction,
follow-up completion, and complaints *not* upheld against them (upheld: the department had to
remedy it with a solution plan). A share with nothing to measure is left out and the remaining
weights scaled to 100, so a quiet quarter is neither rewarded nor punished for what did not happen.

Once a quarter is over its grades are kept (`CreditGrade`, with every input), and acted on exactly
once: C opens an improvement-plan task in the department's chat, D is reported to the managers, a
grade one step or more above last quarter's C or D is recorded as repaired (信用修复).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.delivery.outbox import enqueue
from core.reports.credit_scores import grade_of, score_of, subject_inputs, weights_of
from core.reports.periods import Period
from core.rules.policy import Policy
from core.storage.models import Staff, Ticket
from core.storage.record_models import CreditGrade

log = logging.getLogger(__name__)

GRADES = ("A", "B", "C", "D")
NOT_GRADED = "not_graded"
DEPARTMENT, STAFF = "department", "staff"


@dataclass(frozen=True)
class Grade:
    kind: str  # department | staff
    key: str  # department key | staff id
    department: str
    name: str
    grade: str
    score: float | None
    inputs: dict[str, Any]
    previous_grade: str | None = None
    repaired: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "department": self.department,
            "name": self.name,
            "grade": self.grade,
            "score": self.score,
            "previous_grade": self.previous_grade,
            "repaired": self.repaired,
            "inputs": self.inputs,
        }


def _grade(kind: str, key: str, department: str, name: str, inputs: dict[str, Any], policy: Policy) -> Grade:
    inputs = {**inputs, "weights": weights_of(policy), "min_closed": policy.credit.min_closed}
    score = score_of(inputs, policy)
    if score is None or inputs["closed"] < policy.credit.min_closed:
        return Grade(kind, key, department, name, NOT_GRADED, score, inputs)
    return Grade(kind, key, department, name, grade_of(score, policy), score, inputs)


async def compute_grades(
    core: CoreContext, session: AsyncSession, period: Period, as_of: datetime
) -> list[Grade]:
    """Every department's and staff member's grade of `period` as the database stands at `as_of`."""
    policy = core.policy
    grades = [
        _grade(DEPARTMENT, dept, dept, core.department_name(dept), inputs, policy)
        for dept, inputs in sorted(
            (await subject_inputs(session, policy, period, as_of, Ticket.department)).items()
        )
    ]
    owned = await subject_inputs(session, policy, period, as_of, Ticket.owner_staff_id)
    staff = {
        s.id: s for s in await session.scalars(select(Staff).where(Staff.id.in_([k for k in owned if k])))
    }
    for staff_id in sorted(k for k in owned if k is not None):
        member = staff[staff_id]
        grades.append(_grade(STAFF, str(staff_id), member.department, member.name, owned[staff_id], policy))
    previous = await _previous(session, period)
    return [_with_previous(g, previous.get((g.kind, g.key))) for g in grades]


def _with_previous(grade: Grade, previous: str | None) -> Grade:
    repaired = (
        previous in ("C", "D")
        and grade.grade in GRADES
        and GRADES.index(grade.grade) < GRADES.index(previous or "D")
    )
    return Grade(**{**grade.__dict__, "previous_grade": previous, "repaired": repaired})


def previous_quarter_name(name: str) -> str:
    year, quarter = int(name[:4]), int(name[5])
    return f"{year - 1}Q4" if quarter == 1 else f"{year}Q{quarter - 1}"


async def _previous(session: AsyncSession, period: Period) -> dict[tuple[str, str], str]:
    rows = await session.execute(
        select(CreditGrade.subject_kind, CreditGrade.subject_key, CreditGrade.grade).where(
            CreditGrade.quarter == previous_quarter_name(period.name)
        )
    )
    return {(kind, key): grade for kind, key, grade in rows}


def _from_row(row: CreditGrade) -> Grade:
    return Grade(
        row.subject_kind,
        row.subject_key,
        row.department,
        row.name,
        row.grade,
        None if row.score is None else float(row.score),
        row.inputs,
        row.previous_grade,
        row.repaired,
    )


async def kept_grades(session: AsyncSession, quarter: str) -> list[Grade]:
    rows = await session.scalars(
        select(CreditGrade).where(CreditGrade.quarter == quarter).order_by(CreditGrade.id)
    )
    return [_from_row(row) for row in rows]


@dataclass(frozen=True)
class QuarterGrades:
    quarter: str
    final: bool  # the quarter is over and these grades are kept
    grades: list[Grade]
    kept_now: bool = False  # this call wrote them (and queued the C/D actions)


async def quarter_grades(core: CoreContext, period: Period, now: datetime) -> QuarterGrades:
    """The quarter's grades: kept ones if the quarter was graded before; computed, kept and acted
    on once if it is over; computed and shown only (provisional) while it runs."""
    async with core.sessions() as session:
        kept = await kept_grades(session, period.name)
        if kept:
            return QuarterGrades(period.name, True, kept)
        grades = await compute_grades(core, session, period, now)
    if now < period.end:
        return QuarterGrades(period.name, False, grades)
    try:
        async with core.sessions() as session, session.begin():
            for grade in grades:
                session.add(
                    CreditGrade(
                        quarter=period.name,
                        subject_kind=grade.kind,
                        subject_key=grade.key,
                        department=grade.department,
                        name=grade.name,
                        grade=grade.grade,
                        score=grade.score,
                        inputs=grade.inputs,
                        previous_grade=grade.previous_grade,
                        repaired=grade.repaired,
                        computed_at=now,
                    )
                )
                _act(core, session, period.name, grade, now)
    except IntegrityError:  # another instance kept this quarter's grades first: theirs stand
        async with core.sessions() as session:
            return QuarterGrades(period.name, True, await kept_grades(session, period.name))
    log.info("credit %s: %d grades kept", period.name, len(grades))
    return QuarterGrades(period.name, True, grades, kept_now=True)


def _act(core: CoreContext, session: AsyncSession, quarter: str, grade: Grade, now: datetime) -> None:
    """C: an improvement-plan task in the department's chat; D: a report to managers; repaired: noted."""
    facts = {
        "quarter": quarter,
        "who": grade.name,
        "kind": grade.kind,
        "department_name": core.department_name(grade.department),
        "grade": grade.grade,
        "score": grade.score,
        "previous": grade.previous_grade,
        "inputs": grade.inputs,
    }
    audiences = []
    if grade.grade == "C":
        audiences.append(("plan", grade.department))
    elif grade.grade == "D":
        audiences.append(("report", "managers"))
    if grade.repaired:
        audiences.append(("repaired", "managers"))
    for action, recipient in audiences:
        enqueue(
            session,
            core.vault,
            key=f"credit:{quarter}:{grade.kind}:{grade.key}:{action}",
            channel="staff",
            recipient=recipient,
            kind="alert",
            text=core.templates.render(core.staff_locale, "credit_notice.txt", action=action, **facts),
            now=now,
            meta={"department": recipient},
        )
