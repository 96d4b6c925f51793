"""Stage clocks: when each one is due, opening them and closing them on the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.rules.calendar import BusinessCalendar
from core.rules.policy import Policy
from core.storage.models import Clock, Ticket


class ClockKeeper:
    """Computes deadlines from the policy and the business calendar; holds no state of its own."""

    def __init__(self, policy: Policy, calendar: BusinessCalendar) -> None:
        self.policy = policy
        self.calendar = calendar

    def due(self, stage: str, started_at: datetime, *, major: bool = False) -> datetime:
        rule = self.policy.stage(stage)
        if stage == "callback":
            return self._hotline_hours(started_at, rule.hours if rule.hours is not None else 1.0)
        if rule.working_days is not None:
            days = (
                rule.major_working_days
                if major and rule.major_working_days is not None
                else rule.working_days
            )
            return self.calendar.add_working_days(started_at, days)
        assert rule.hours is not None  # the policy model guarantees one of the two
        hours = rule.major_hours if major and rule.major_hours is not None else rule.hours
        if rule.round_the_clock:
            return self.calendar.add_hours(started_at, hours)
        return self.calendar.add_working_hours(started_at, hours)

    def checkpoints(self, stage: str, started_at: datetime, due_at: datetime) -> tuple[datetime, datetime]:
        """When the owner is reminded and when level 2 is due, counted like the deadline itself: a
        share of the stage's working (or hotline, or real) time, not of the wall-clock span. A claim
        clock started at 17:30 on a Friday is reminded Monday at 09:15, not on Sunday."""
        escalation = self.policy.escalation
        rule = self.policy.stage(stage)
        if stage == "callback":
            hours = rule.hours if rule.hours is not None else 1.0
            return (
                self._hotline_hours(started_at, hours * escalation.reminder_at),
                self._hotline_hours(due_at, hours * escalation.level2_after),
            )
        if rule.round_the_clock:
            span = max(due_at - started_at, timedelta(0))
            return started_at + span * escalation.reminder_at, due_at + span * escalation.level2_after
        worked = self.calendar.working_hours_between(started_at, due_at)
        return (
            self.calendar.add_working_hours(started_at, worked * escalation.reminder_at),
            self.calendar.add_working_hours(due_at, worked * escalation.level2_after),
        )

    def first_check(
        self, stage: str, started_at: datetime, due_at: datetime, *, paused: bool, met: bool
    ) -> datetime | None:
        """When the sweep first looks at a new clock: at the owner's reminder, at the deadline for a
        clock waiting on the learner, never for one met already."""
        if met:
            return None
        if paused:
            return due_at
        return self.checkpoints(stage, started_at, due_at)[0]

    def _hotline_hours(self, start: datetime, hours: float) -> datetime:
        """`hours` of the hotline's own opening hours after `start` (it keeps its own days and times)."""
        hotline, tz = self.policy.hotline, self.calendar.tz
        remaining, moment = timedelta(hours=hours), start
        while True:
            opening = self.calendar.next_opening(
                moment, hotline.open, hotline.close, working_days_only=hotline.follow_working_days
            ).astimezone(tz)
            closing = datetime.combine(opening.date(), hotline.close, tzinfo=tz)
            if opening + remaining <= closing:
                return (opening + remaining).astimezone(UTC)
            remaining -= closing - opening
            moment = closing

    def duration(self, clock: Clock) -> timedelta:
        return clock.due_at - clock.started_at

    def open(self, session: AsyncSession, ticket: Ticket, stage: str, now: datetime, *, major: bool) -> Clock:
        rule = self.policy.stage(stage)
        clock = Clock(
            ticket=ticket,
            stage=stage,
            started_at=now,
            due_at=self.due(stage, now, major=major),
            paused=rule.waits_on_learner,
            escalation_level=0,
        )
        clock.next_check_at = self.first_check(
            stage, now, clock.due_at, paused=rule.waits_on_learner, met=False
        )
        session.add(clock)
        return clock


async def close_clocks(session: AsyncSession, ticket_id: int, stages: tuple[str, ...], now: datetime) -> int:
    """Mark the ticket's open clocks of these stages met; returns how many were open."""
    if not stages:
        return 0
    result = await session.execute(
        update(Clock)
        .where(Clock.ticket_id == ticket_id, Clock.stage.in_(stages), Clock.met_at.is_(None))
        .values(met_at=now, next_check_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def open_clocks(session: AsyncSession, ticket_id: int) -> list[Clock]:
    rows = await session.scalars(
        select(Clock).where(Clock.ticket_id == ticket_id, Clock.met_at.is_(None)).order_by(Clock.id)
    )
    return list(rows)


async def current_due(session: AsyncSession, ticket_id: int) -> Clock | None:
    """The earliest open staff clock: what the ticket is racing against now."""
    return await session.scalar(
        select(Clock)
        .where(Clock.ticket_id == ticket_id, Clock.met_at.is_(None), Clock.paused.is_(False))
        .order_by(Clock.due_at)
        .limit(1)
    )
