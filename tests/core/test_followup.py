"""The satisfaction follow-up (POLICY.md §6) and the learner's confirm / object acts, on every channel.

A learner confirms the result (or the time to confirm runs out) -> the survey goes out on their channel;
a score closes the ticket or, when low, reopens it and offers the second instance; no score in two
working days -> one call task for staff, however many sweeps run.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import ColumnElement, func, select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.intake.intake import Intake, IntakeResult
from core.intake.learner_acts import parse
from core.storage.delivery_models import OutboxRow
from core.storage.models import Base, Event, Ticket
from core.tickets.moves import apply_move, staff_actor
from core.tickets.queries import get_ticket
from core.tickets.staff import add_staff
from core.tickets.views import ticket_view
from scheduler import followup
from tests.conftest import at

TEACHING = "老师上课总是迟到，讲课照本宣科，教学质量很差"
LEARNER = "chat-1"


async def complain(intake: Intake, channel: FakeChannel, now: datetime, chat: str = LEARNER) -> str:
    return (await intake.receive(channel.message(chat, TEACHING, now), now)).ticket_number


async def staff_moves(core: CoreContext, number: str, now: datetime, *moves: tuple[str, str | None]) -> None:
    async with core.sessions() as session, session.begin():
        teacher = await add_staff(
            session, name=f"王老师{now:%H%M}", department="teaching", role="staff", now=now
        )
        ticket = await get_ticket(session, number)
        for action, detail in moves:
            await apply_move(core, session, ticket, action, staff_actor(teacher), now, detail=detail)


async def resolved(core: CoreContext, intake: Intake, channel: FakeChannel, now: datetime) -> str:
    """A complaint whose result the department has reported: waiting for the learner's confirmation."""
    number = await complain(intake, channel, now)
    await staff_moves(core, number, now, ("claim", None), ("resolve", "已更换任课老师，并补课两次"))
    return number


async def say(
    intake: Intake, channel: FakeChannel, text: str, now: datetime, chat: str = LEARNER
) -> IntakeResult:
    return await intake.receive(channel.message(chat, text, now), now)


async def view(core: CoreContext, number: str, now: datetime) -> dict[str, Any]:
    async with core.sessions() as session:
        return await ticket_view(core, session, await get_ticket(session, number), now)


async def count(core: CoreContext, model: type[Base], *where: ColumnElement[bool]) -> int:
    async with core.sessions() as session:
        total: int | None = await session.scalar(select(func.count()).select_from(model).where(*where))
        return total or 0


def test_learner_acts_are_read_in_both_languages() -> None:
    def kind(text: str) -> str | None:
        act = parse(text)
        return act.kind if act is not None else None

    assert kind("确认，谢谢") == "confirm"
    assert kind("不满意，问题没解决") == "object"
    assert kind("没有异议") == "confirm"
    assert kind("I disagree with the plan") == "object"
    assert kind("我要上级投诉") == "appeal"
    rate = parse("4 老师后来很负责")
    assert rate is not None and (rate.kind, rate.score, rate.text) == ("rate", 4, "老师后来很负责")
    command = parse("/rate TS-261123-00016 5 thanks")
    assert command is not None and (command.kind, command.score, command.text) == ("rate", 5, "thanks")
    assert kind("3000元还没退") is None  # an amount is no score
    assert kind("the objective of the course was unclear") is None
    assert kind("/status") is None


async def test_learner_confirms_by_text_and_gets_the_survey(
    core: CoreContext, intake: Intake, dispatcher: Dispatcher, learner_channel: FakeChannel
) -> None:
    number = await resolved(core, intake, learner_channel, at("2026-11-23 10:00"))  # a Monday
    now = at("2026-11-23 11:00")
    result = await say(intake, learner_channel, "确认，谢谢", now)

    assert result.ticket_number == number and result.act == "confirm"
    await dispatcher.drain(now)
    survey = learner_channel.sent[-1]
    assert survey.recipient == LEARNER and number in survey.text and "满意度" in survey.text
    assert [b.label for b in survey.buttons] == ["1", "2", "3", "4", "5"]
    assert survey.buttons[4].action == f"rate:{number}:5"
    shown = await view(core, number, now)
    assert shown["status"] == "follow_up"
    clocks = {c["stage"]: c for c in shown["clocks"]}
    # Two working days to answer, then staff call; the staff's own follow-up clock runs 3 working days.
    assert clocks["survey"]["due_at"] == "2026-11-25T18:00:00+08:00" and clocks["survey"]["waits_on_learner"]
    assert clocks["follow_up"]["due_at"] == "2026-11-26T18:00:00+08:00"
    assert clocks["confirm"]["met_at"] is not None
    # The message is the learner's confirmation, not the answer to "which course?" still pending.
    assert (await get_course(core, number)) is None


async def get_course(core: CoreContext, number: str) -> str | None:
    async with core.sessions() as session:
        return (await get_ticket(session, number)).course


async def test_confirmation_runs_out_the_system_confirms_and_sends_the_survey(
    core: CoreContext, intake: Intake, dispatcher: Dispatcher, learner_channel: FakeChannel
) -> None:
    number = await resolved(core, intake, learner_channel, at("2026-11-23 10:00"))
    await dispatcher.drain(at("2026-11-23 10:00"))
    queued = await count(core, OutboxRow)

    assert (await followup.run(core, at("2026-11-25 17:59"), False)).actions == []
    dry = await followup.run(core, at("2026-11-25 18:00"), True)
    assert dry.dry_run and dry.actions == [
        f"{number} confirm: no answer by 2026-11-25 18:00: confirmed, survey sent"
    ]
    assert (await view(core, number, at("2026-11-25 18:00")))["status"] == "awaiting_confirmation"
    assert await count(core, OutboxRow) == queued  # a dry run queues nothing

    report = await followup.run(core, at("2026-11-25 18:00"), False)
    assert report.actions == dry.actions
    shown = await view(core, number, at("2026-11-25 18:00"))
    assert shown["status"] == "follow_up"
    assert ("complaintbot", "confirm") in [(e["actor"], e["action"]) for e in shown["events"]]
    await dispatcher.drain(at("2026-11-25 18:00"))
    survey = learner_channel.texts_to(LEARNER)[-1]
    assert "视为确认" in survey and number in survey
    assert (await followup.run(core, at("2026-11-25 18:05"), False)).actions == []  # once


async def test_score_five_closes_with_satisfaction(
    core: CoreContext,
    intake: Intake,
    dispatcher: Dispatcher,
    learner_channel: FakeChannel,
    staff_channel: FakeChannel,
) -> None:
    number = await resolved(core, intake, learner_channel, at("2026-11-23 10:00"))
    await say(intake, learner_channel, "确认", at("2026-11-23 11:00"))
    result = await say(intake, learner_channel, "5 新老师讲得很好", at("2026-11-24 09:30"))

    assert result.act == "rate"
    shown = await view(core, number, at("2026-11-24 09:30"))
    assert (shown["status"], shown["satisfaction"]) == ("closed", 5)
    assert all(c["met_at"] is not None for c in shown["clocks"] if c["stage"] in ("survey", "follow_up"))
    await dispatcher.drain(at("2026-11-24 09:30"))
    assert (
        "5/5" in learner_channel.texts_to(LEARNER)[-1] and "已办结" in learner_channel.texts_to(LEARNER)[-1]
    )
    assert any("新老师讲得很好" in m.text for m in staff_channel.sent if m.recipient == "teaching")
    # Answered: no call task later.
    assert (await followup.run(core, at("2026-11-30 09:00"), False)).actions == []


async def test_score_two_reopens_and_offers_the_second_instance(
    core: CoreContext,
    intake: Intake,
    dispatcher: Dispatcher,
    learner_channel: FakeChannel,
    staff_channel: FakeChannel,
) -> None:
    number = await resolved(core, intake, learner_channel, at("2026-11-23 10:00"))
    await say(intake, learner_channel, "确认", at("2026-11-23 11:00"))
    result = await say(intake, learner_channel, "2", at("2026-11-23 15:00"))

    assert result.act == "rate"
    shown = await view(core, number, at("2026-11-23 15:00"))
    assert (shown["status"], shown["satisfaction"]) == ("investigating", 2)
    await dispatcher.drain(at("2026-11-23 15:00"))
    offer = learner_channel.texts_to(LEARNER)[-1]
    assert "重新打开" in offer and "上级投诉" in offer
    assert any(
        "重新打开" in m.text and number in m.text for m in staff_channel.sent if m.recipient == "teaching"
    )


async def test_no_answer_in_two_working_days_is_one_call_task_however_many_sweeps(
    core: CoreContext,
    intake: Intake,
    dispatcher: Dispatcher,
    learner_channel: FakeChannel,
    staff_channel: FakeChannel,
) -> None:
    number = await resolved(core, intake, learner_channel, at("2026-11-23 10:00"))
    await say(intake, learner_channel, "确认", at("2026-11-23 11:00"))

    assert (await followup.run(core, at("2026-11-25 17:00"), False)).actions == []
    due = at("2026-11-25 18:00")
    first, second = await asyncio.gather(followup.run(core, due, False), followup.run(core, due, False))
    assert first.actions + second.actions == [
        f"{number} survey: no score in 2 working days: call task to teaching"
    ]
    assert (await followup.run(core, at("2026-11-26 09:00"), False)).actions == []
    await dispatcher.drain(at("2026-11-26 09:00"))
    tasks = [m for m in staff_channel.sent if "回访任务" in m.text]
    assert len(tasks) == 1 and tasks[0].recipient == "teaching" and number in tasks[0].text
    assert await count(core, Event, Event.action == "call-task") == 1
    # Staff may still record what the learner said on the phone (a late answer by text counts too).
    assert (await say(intake, learner_channel, "4", at("2026-11-26 10:00"))).act == "rate"
    assert (await view(core, number, at("2026-11-26 10:00")))["satisfaction"] == 4


async def test_learner_objects_to_the_plan_and_then_agrees(
    core: CoreContext,
    intake: Intake,
    dispatcher: Dispatcher,
    learner_channel: FakeChannel,
    staff_channel: FakeChannel,
) -> None:
    now = at("2026-11-23 10:00")
    number = await complain(intake, learner_channel, now)
    await staff_moves(core, number, now, ("claim", None), ("plan", "补课一次"))

    result = await say(intake, learner_channel, "不同意，至少要补课三次", at("2026-11-23 11:00"))
    assert result.act == "object"
    shown = await view(core, number, at("2026-11-23 11:00"))
    assert shown["status"] == "planning"
    assert ("object", "不同意，至少要补课三次") in [(e["action"], e["detail"]) for e in shown["events"]]
    assert {c["stage"]: c["met_at"] for c in shown["clocks"]}["revise"] is None
    await dispatcher.drain(at("2026-11-23 11:00"))
    assert "异议" in learner_channel.texts_to(LEARNER)[-1]
    assert any("至少要补课三次" in m.text for m in staff_channel.sent if m.recipient == "teaching")

    await staff_moves(core, number, at("2026-11-23 14:00"), ("plan", "补课三次"))
    assert (await say(intake, learner_channel, "同意", at("2026-11-23 15:00"))).act == "agree"
    assert (await view(core, number, at("2026-11-23 15:00")))["status"] == "executing"


async def test_a_stranger_naming_the_number_can_neither_confirm_nor_appeal(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await resolved(core, intake, learner_channel, at("2026-11-23 10:00"))
    now = at("2026-11-23 11:00")
    confirm = await say(intake, learner_channel, f"{number} 确认", now, chat="chat-stranger")
    appeal = await say(intake, learner_channel, f"/appeal {number}", now, chat="chat-stranger")
    rate = await say(intake, learner_channel, f"/rate {number} 1", now, chat="chat-stranger")

    assert {confirm.act, appeal.act, rate.act} == {None}
    assert number not in {confirm.ticket_number, appeal.ticket_number, rate.ticket_number}
    assert (await view(core, number, now))["status"] == "awaiting_confirmation"
    assert await count(core, Ticket, Ticket.parent_id.is_not(None)) == 0


async def test_a_long_new_complaint_does_not_act_on_the_waiting_ticket(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await resolved(core, intake, learner_channel, at("2026-11-23 10:00"))
    now = at("2026-11-23 11:00")
    for _ in range(3):  # course, expected resolution, contact: nothing left to ask
        await say(intake, learner_channel, "跳过", now)
    result = await say(
        intake, learner_channel, "另外前台工作人员态度恶劣，我非常不满意，上周去咨询时对我爱答不理", now
    )

    assert result.created and result.act is None and result.ticket_number != number
    assert (await view(core, number, now))["status"] == "awaiting_confirmation"
    # A lone digit with no survey waiting is an ordinary message, not a score.
    assert (await say(intake, learner_channel, f"{number} 3", now)).act is None


async def test_redelivered_confirmation_changes_nothing(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await resolved(core, intake, learner_channel, at("2026-11-23 10:00"))
    now = at("2026-11-23 11:00")
    message = learner_channel.message(LEARNER, "/confirm", now, external_id="upd-confirm")
    first = await intake.receive(message, now)
    again = await intake.receive(message, now)

    assert first.act == "confirm" and again.duplicate and again.replies == first.replies
    assert await count(core, Event, Event.action == "survey") == 1
    assert (await view(core, number, now))["status"] == "follow_up"


async def test_a_learner_with_no_written_address_gets_a_call_at_once(
    core: CoreContext, intake: Intake, dispatcher: Dispatcher, staff_channel: FakeChannel
) -> None:
    voicemail = FakeChannel("voicemail")
    now = at("2026-11-23 10:00")
    caller = voicemail.message("13800138000", TEACHING, now, phone="13800138000")
    number = (await intake.receive(caller, now)).ticket_number
    await staff_moves(core, number, now, ("claim", None), ("resolve", "已回电说明"))

    report = await followup.run(core, at("2026-11-25 18:00"), False)
    assert report.actions == [f"{number} confirm: no answer by 2026-11-25 18:00: confirmed, survey sent"]
    await dispatcher.drain(at("2026-11-25 18:00"))
    [task] = [m for m in staff_channel.sent if "回访任务" in m.text]
    assert task.recipient == "teaching" and "138****8000" in task.text and "13800138000" not in task.text
    shown = await view(core, number, at("2026-11-25 18:00"))
    assert shown["status"] == "follow_up" and "survey" not in [c["stage"] for c in shown["clocks"]]


@pytest.mark.parametrize(
    "text",
    [
        "3 weeks and still no refund of my 5000 yuan course fee, this is unacceptable",
        "2个月了还没退款，你们到底管不管",
        "1 more thing: the teacher was late again",
        "3分钟就挂了我的电话",
        "我想确认一下退费什么时候到账",
        "请问能接受分期吗",
        "Can I confirm the refund date?",
    ],
)
def test_a_new_complaint_or_a_question_is_no_score_and_no_confirmation(text: str) -> None:
    # Taken as an act, these would close, reopen or confirm an older ticket and never become a complaint.
    assert parse(text) is None


@pytest.mark.parametrize(
    ("text", "score"),
    [("4", 4), ("5分", 5), ("3/5", 3), ("2 老师还是迟到", 2), ("4 the new teacher is good", 4)],
)
def test_a_score_is_a_digit_alone_or_with_a_short_comment(text: str, score: int) -> None:
    act = parse(text)
    assert act is not None and act.kind == "rate" and act.score == score


async def test_a_command_no_ticket_of_the_sender_takes_is_answered_and_opens_nothing(
    core: CoreContext, intake: Intake
) -> None:
    telegram = FakeChannel("telegram")
    now = at("2026-11-23 10:00")
    mine = await intake.receive(telegram.message("8001", "老师上课总是迟到", now), now)
    stranger = telegram.message("8002", f"/confirm {mine.ticket_number}", now)
    answer = await intake.receive(stranger, now)
    assert answer.ticket_number == "" and not answer.created
    assert "None of your complaints has the number " + mine.ticket_number in answer.replies[0]
    again = await intake.receive(stranger, now)
    assert again.duplicate and again.replies == answer.replies
    # Its owner's own command, while the ticket waits for "which course?", is no answer to that question.
    await intake.receive(telegram.message("8001", "/rate 5", now), now)
    async with core.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 1
        ticket = await get_ticket(session, mine.ticket_number)
        assert ticket.course is None and ticket.awaiting_field == "course"
        kept = await session.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.key.like("act:%"))
        )
    assert kept == 1  # the stranger's answer; the owner's /rate was refused on their own ticket
