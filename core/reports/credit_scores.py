"""How a credit grade is scored (POLICY.md §8): the counts and shares behind it per department or staff
member, measured by the database over the quarter's cohort, and the weighted score and its grade."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.reports.clocks import counted_stages, deadline_columns, follow_up_columns
from core.reports.periods import Period, cohort
from core.rules.policy import Policy
from core.storage.models import Clock, Event, Ticket
from core.tickets.workflow import CLOSED, FOLLOW_UP


def grade_of(score: float, policy: Policy) -> str:
    credit = policy.credit
    if score >= credit.grade_a:
        return "A"
    if score >= credit.grade_b:
        return "B"
    return "C" if score >= credit.grade_c else "D"


def score_of(inputs: dict[str, Any], policy: Policy) -> float | None:
    """The weighted score out of 100; None when no share can be measured at all."""
    credit = policy.credit
    parts = (
        (credit.weight_deadlines, inputs["deadlines_met_share"]),
        (credit.weight_satisfaction, inputs["satisfaction_share"]),
        (credit.weight_follow_up, inputs["follow_up_completion"]),
        (credit.weight_upheld, None if inputs["upheld_share"] is None else 1 - inputs["upheld_share"]),
    )
    weights = sum(weight for weight, share in parts if share is not None)
    if not weights:
        return None
    total: float = sum(weight * share for weight, share in parts if share is not None)
    return round(100 * total / weights, 2)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def subject_inputs(
    session: AsyncSession, policy: Policy, period: Period, as_of: datetime, key: Any
) -> dict[Any, dict[str, Any]]:
    """Per value of `key` (the department, or the owner): the counts and shares behind a score."""
    where = cohort(period, None)
    found: dict[Any, dict[str, int]] = {}

    def add(rows: Any, names: tuple[str, ...]) -> None:
        for row in rows:
            entry = found.setdefault(row[0], {})
            for name, value in zip(names, row[1:], strict=True):
                entry[name] = int(value or 0)

    add(
        await session.execute(
            select(
                key,
                func.count(),
                func.sum(case((Ticket.status == CLOSED, 1), else_=0)),
                func.sum(Ticket.satisfaction),
                func.count(Ticket.satisfaction),
            )
            .where(*where)
            .group_by(key)
        ),
        ("received", "closed", "satisfaction_sum", "satisfaction_count"),
    )
    met, breached = deadline_columns(as_of)
    add(
        await session.execute(
            select(key, met, breached)
            .select_from(Clock)
            .join(Ticket, Ticket.id == Clock.ticket_id)
            .where(*where, Clock.stage.in_(counted_stages(policy)))
            .group_by(key)
        ),
        ("deadlines_met", "deadlines_breached"),
    )
    due, done, _ = follow_up_columns(as_of)
    add(
        await session.execute(
            select(key, due, done)
            .select_from(Clock)
            .join(Ticket, Ticket.id == Clock.ticket_id)
            .where(*where, Clock.stage == FOLLOW_UP)
            .group_by(key)
        ),
        ("follow_ups_due", "follow_ups_done"),
    )
    add(
        await session.execute(
            select(key, func.count(func.distinct(Event.ticket_id)))
            .select_from(Event)
            .join(Ticket, Ticket.id == Event.ticket_id)
            .where(*where, Event.action == "plan")
            .group_by(key)
        ),
        ("upheld",),
    )
    top = policy.follow_up.score_max
    out: dict[Any, dict[str, Any]] = {}
    for subject, counts in found.items():
        full = {
            name: counts.get(name, 0)
            for name in (
                "received",
                "closed",
                "satisfaction_sum",
                "satisfaction_count",
                "deadlines_met",
                "deadlines_breached",
                "follow_ups_due",
                "follow_ups_done",
                "upheld",
            )
        }
        mean = full["satisfaction_sum"] / full["satisfaction_count"] if full["satisfaction_count"] else None
        out[subject] = {
            **full,
            "deadlines_met_share": _share(
                full["deadlines_met"], full["deadlines_met"] + full["deadlines_breached"]
            ),
            "mean_satisfaction": None if mean is None else round(mean, 2),
            "satisfaction_share": None if mean is None else round(mean / top, 4),
            "follow_up_completion": _share(full["follow_ups_done"], full["follow_ups_due"]),
            "upheld_share": _share(full["upheld"], full["received"]),
        }
    return out


def weights_of(policy: Policy) -> dict[str, float]:
    credit = policy.credit
    return {
        "deadlines": credit.weight_deadlines,
        "satisfaction": credit.weight_satisfaction,
        "follow_up": credit.weight_follow_up,
        "upheld": credit.weight_upheld,
    }
