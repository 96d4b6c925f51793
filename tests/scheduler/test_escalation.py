"""Reminders and escalation on schedule (POLICY.md §5): once each, to the right people, batched, on the
ticket's record; nothing for clocks met or waiting on the learner; a dry run changes nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import func, select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import PermanentSendError, payload_text
from core.intake.intake import Intake
from core.storage.delivery_models import OutboxRow
from core.storage.models import Clock, Event, Staff
from core.tickets.moves import apply_move, staff_actor
from core.tickets.queries import get_ticket, list_tickets
from core.tickets.staff import add_staff
from scheduler import escalation
from tests.conftest import at

TEACHING = "老师上课总是迟到，讲课照本宣科，教学质量很差"
HEAD_TELEGRAM = "9002"


async def _setup(core: CoreContext) -> None:
    async with core.sessions() as session, session.begin():
        await add_staff(
            session,
            name="张主任",
            department="teaching",
            role="head",
            now=at("2026-11-01 09:00"),
            telegram_id=HEAD_TELEGRAM,
        )
        await add_staff(
            session,
            name="王老师",
            department="teaching",
            role="staff",
            now=at("2026-11-01 09:00"),
            telegram_id="9001",
        )


async def _complain(intake: Intake, when: datetime, n: int = 1) -> list[str]:
    """`n` learners complain; their acknowledgements are delivered (that meets the acknowledge clock)."""
    channel = FakeChannel("telegram")
    numbers = []
    for i in range(n):
        result = await intake.receive(channel.message(f"70{i:02d}", TEACHING, when), when)
        numbers.append(result.ticket_number)
    dispatcher = Dispatcher(intake.core.sessions, intake.core.vault, {"telegram": channel}, batch=50)
    await dispatcher.drain(when)
    return numbers


async def _alerts(core: CoreContext) -> list[OutboxRow]:
    async with core.sessions() as session:
        return list(
            await session.scalars(select(OutboxRow).where(OutboxRow.kind == "alert").order_by(OutboxRow.id))
        )


async def _events(core: CoreContext, number: str) -> list[str]:
    async with core.sessions() as session:
        ticket = await get_ticket(session, number)
        rows = await session.scalars(
            select(Event)
            .where(Event.ticket_id == ticket.id, Event.action.in_(("reminded", "escalated")))
            .order_by(Event.id)
        )
        return [f"{e.action}: {e.detail}" for e in rows]


async def test_reminder_then_level_1_then_level_2_each_once(core: CoreContext, intake: Intake) -> None:
    await _setup(core)
    [number] = await _complain(intake, at("2026-11-23 10:00"))  # Monday; claim due 11:00 (1 working hour)
    assert (await escalation.run(core, at("2026-11-23 10:40"), False)).actions == []
    reminder = await escalation.run(core, at("2026-11-23 10:46"), False)  # 75 % of the hour has passed
    assert reminder.actions == [f"{number} claim: reminder to 教学部 chat"]
    assert (await escalation.run(core, at("2026-11-23 10:50"), False)).actions == []  # once
    level1 = await escalation.run(core, at("2026-11-23 11:01"), False)
    assert level1.actions == [f"{number} claim: level 1 to 张主任 (teaching head)"]
    level2 = await escalation.run(core, at("2026-11-23 11:31"), False)  # a further half of the hour
    assert level2.actions == [f"{number} claim: level 2 to managers"]
    assert (await escalation.run(core, at("2026-11-24 11:31"), False)).actions == []
    alerts = await _alerts(core)
    recipients = [(a.channel, core.vault.decrypt(a.recipient_enc)) for a in alerts]
    assert recipients == [("staff", "teaching"), ("telegram", HEAD_TELEGRAM), ("staff", "managers")]
    level1 = payload_text(core.vault, alerts[1].payload)
    assert number in level1 and "一级" in level1
    events = await _events(core, number)
    assert [e.split(":")[0] for e in events] == ["reminded", "escalated", "escalated"]
    async with core.sessions() as session:
        clock = await session.scalar(select(Clock).where(Clock.stage == "claim"))
        assert clock is not None and clock.escalation_level == 2 and clock.next_check_at is None


async def _set_severity(core: CoreContext, number: str, severity: str, when: str) -> None:
    """The teaching head corrects the ticket's severity (`/severity`)."""
    async with core.sessions() as session, session.begin():
        ticket = await get_ticket(session, number)
        head = await session.scalar(select(Staff).where(Staff.role == "head"))
        assert head is not None
        await apply_move(core, session, ticket, "severity", staff_actor(head), at(when), severity=severity)


async def test_raised_to_major_the_running_clock_is_due_sooner_and_escalates_by_then(
    core: CoreContext, intake: Intake
) -> None:
    await _setup(core)
    [number] = await _complain(intake, at("2026-11-23 10:00"))  # claim due 11:00 as a general complaint
    await _set_severity(core, number, "major", "2026-11-23 10:10")
    async with core.sessions() as session:
        clock = await session.scalar(select(Clock).where(Clock.stage == "claim"))
        assert clock is not None and core.local_text(clock.due_at).endswith("10:30")  # major: half an hour
        detail = await session.scalar(select(Event.detail).where(Event.action == "severity"))
        assert detail is not None and detail.startswith("general -> major; claim due") and "10:30" in detail
    # By the general clock nothing would be due before 11:00; by the major one, level 1 is.
    level1 = await escalation.run(core, at("2026-11-23 10:40"), False)
    assert f"{number} claim: level 1 to 张主任 (teaching head)" in level1.actions

    # Lowered again after the breach, the breach stands: the deadline is not moved past it.
    await _set_severity(core, number, "general", "2026-11-23 10:45")
    async with core.sessions() as session:
        clock = await session.scalar(select(Clock).where(Clock.stage == "claim"))
        assert clock is not None and core.local_text(clock.due_at).endswith("10:30")


async def test_lowered_before_its_deadline_a_clock_gets_the_general_time_again(
    core: CoreContext, intake: Intake
) -> None:
    await _setup(core)
    [number] = await _complain(intake, at("2026-11-23 10:00"))
    await _set_severity(core, number, "major", "2026-11-23 10:10")  # claim due 10:30
    await _set_severity(core, number, "general", "2026-11-23 10:20")  # before it: due 11:00 again
    async with core.sessions() as session:
        clock = await session.scalar(select(Clock).where(Clock.stage == "claim"))
        assert clock is not None and core.local_text(clock.due_at).endswith("11:00")
    assert (await escalation.run(core, at("2026-11-23 10:40"), False)).actions == []
    # Raised once more at 10:50, when the major deadline (10:30) has gone by: due now, not before.
    await _set_severity(core, number, "major", "2026-11-23 10:50")
    async with core.sessions() as session:
        clock = await session.scalar(select(Clock).where(Clock.stage == "claim"))
        assert clock is not None and core.local_text(clock.due_at).endswith("10:50")


async def test_a_claimed_ticket_is_not_escalated_and_its_owner_gets_the_next_reminder(
    core: CoreContext, intake: Intake
) -> None:
    await _setup(core)
    [number] = await _complain(intake, at("2026-11-23 10:00"))
    async with core.sessions() as session, session.begin():
        ticket = await get_ticket(session, number)
        teacher = await session.scalar(select(Staff).where(Staff.telegram_id == "9001"))
        assert teacher is not None
        await apply_move(core, session, ticket, "claim", staff_actor(teacher), at("2026-11-23 10:30"))
    assert (await escalation.run(core, at("2026-11-23 11:30"), False)).actions == []
    # The investigation (3 working days: due Thursday 18:00) reminds its owner privately on Thursday.
    report = await escalation.run(core, at("2026-11-26 12:00"), False)
    assert report.actions == [f"{number} investigate: reminder to 王老师 (owner)"]
    [alert] = await _alerts(core)
    assert (alert.channel, core.vault.decrypt(alert.recipient_enc)) == ("telegram", "9001")


async def test_a_late_sweep_fires_both_levels_in_one_message_per_person_for_many_tickets(
    core: CoreContext, intake: Intake
) -> None:
    await _setup(core)
    numbers = await _complain(intake, at("2026-11-23 10:00"), n=30)
    report = await escalation.run(core, at("2026-11-23 15:00"), False)
    assert len(report.actions) == 60  # level 1 and level 2 for each; the stale reminder is skipped
    alerts = await _alerts(core)
    assert len(alerts) == 2  # one to the head, one to the managers: not sixty
    for alert in alerts:
        text = payload_text(core.vault, alert.payload)
        assert all(n in text for n in numbers)


async def test_a_dry_run_says_the_same_and_changes_nothing(core: CoreContext, intake: Intake) -> None:
    await _setup(core)
    await _complain(intake, at("2026-11-23 10:00"), n=3)
    when = at("2026-11-23 11:05")
    dry = await escalation.run(core, when, True)
    assert dry.dry_run and len(dry.actions) == 3 and await _alerts(core) == []
    async with core.sessions() as session:
        assert (
            await session.scalar(select(func.count()).select_from(Event).where(Event.action == "escalated"))
            == 0
        )
    real = await escalation.run(core, when, False)
    assert real.actions == dry.actions


async def test_two_sweeps_at_once_send_each_alert_once(core: CoreContext, intake: Intake) -> None:
    await _setup(core)
    await _complain(intake, at("2026-11-23 10:00"), n=20)
    first, second = await asyncio.gather(
        escalation.run(core, at("2026-11-23 11:05"), False),
        escalation.run(core, at("2026-11-23 11:05"), False),
    )
    assert len(first.actions) + len(second.actions) == 20
    async with core.sessions() as session:
        escalated = await session.scalar(
            select(func.count()).select_from(Event).where(Event.action == "escalated")
        )
    assert escalated == 20


async def test_nothing_for_a_clock_waiting_on_the_learner_and_overdue_agrees(
    core: CoreContext, intake: Intake
) -> None:
    await _setup(core)
    [late, waiting] = await _complain(intake, at("2026-11-23 10:00"), n=2)
    async with core.sessions() as session, session.begin():
        ticket = await get_ticket(session, waiting)
        # The ticket's result went to the learner: its only open clock waits on them.
        for clock in await session.scalars(select(Clock).where(Clock.ticket_id == ticket.id)):
            if clock.met_at is None:
                clock.paused = True
    report = await escalation.run(core, at("2026-11-23 11:05"), False)
    assert [a.split()[0] for a in report.actions] == [late]
    async with core.sessions() as session:
        overdue = [t.number for t in await list_tickets(session, "overdue", at("2026-11-23 11:05"))]
    assert overdue == [late]


async def test_reminders_and_level_2_count_working_time_like_the_deadline(
    core: CoreContext, intake: Intake
) -> None:
    await _setup(core)
    [number] = await _complain(intake, at("2026-11-27 17:30"))  # Friday; claim due Monday 09:30
    async with core.sessions() as session:
        clock = await session.scalar(select(Clock).where(Clock.stage == "claim"))
        assert clock is not None and clock.due_at == at("2026-11-30 09:30")
    assert core.clocks.checkpoints("claim", clock.started_at, clock.due_at) == (
        at("2026-11-30 09:15"),  # 45 working minutes in: Monday morning, not Sunday evening
        at("2026-11-30 10:00"),  # a further half of the working hour after the deadline
    )
    assert (await escalation.run(core, at("2026-11-29 20:00"), False)).actions == []  # nothing on Sunday
    assert (await escalation.run(core, at("2026-11-30 09:16"), False)).actions == [
        f"{number} claim: reminder to 教学部 chat"
    ]
    # A call-back's shares are hotline time: a 22:14 call is reminded at 09:45, not at 07:00.
    assert core.clocks.checkpoints("callback", at("2026-11-24 22:14"), at("2026-11-25 10:00")) == (
        at("2026-11-25 09:45"),
        at("2026-11-25 10:30"),
    )


async def test_an_alert_nobody_can_receive_privately_goes_to_the_department_chat(
    core: CoreContext, intake: Intake
) -> None:
    await _setup(core)
    [number] = await _complain(intake, at("2026-11-23 10:00"))
    await escalation.run(core, at("2026-11-23 11:05"), False)  # level 1 to the head, privately
    telegram, staff = FakeChannel("telegram"), FakeChannel("staff")
    # The head never opened a private chat with the bot: Telegram refuses for good.
    telegram.fail_next.append(PermanentSendError("Forbidden: bot can't initiate conversation with a user"))
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": telegram, "staff": staff})
    await dispatcher.drain(at("2026-11-23 11:06"))
    [alert] = [m for m in staff.sent if m.kind == "alert"]
    assert alert.recipient == "teaching" and number in alert.text
    assert telegram.sent == []
