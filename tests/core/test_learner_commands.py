"""A learner's commands (their complaints' progress, a separate complaint, help) on every channel that
can answer, in slash form or in plain words, answered on their own channel through the outbox."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.intake.intake import Intake, IntakeResult
from core.intake.learner_commands import NEW, START, STATUS, LearnerCommand, parse_command
from core.intake.receive import receive_or_keep
from core.messages import Attachment
from core.storage.models import Message, Ticket
from tests.conftest import at

NOW = at("2026-11-23 10:00")
TEACHING = "王老师上课总是迟到，已经三次了，希望调换老师。"
FEES = "退费申请三个月了还没到账"


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("/status", LearnerCommand(STATUS)),
        ("／STATUS@school_bot", LearnerCommand(STATUS)),
        ("查询进度", LearnerCommand(STATUS)),
        ("查进度。", LearnerCommand(STATUS)),
        (" 我的投诉？", LearnerCommand(STATUS)),
        ("Status", LearnerCommand(STATUS)),
        ("my complaints", LearnerCommand(STATUS)),
        ("/new", LearnerCommand(NEW)),
        ("/new 食堂卫生很差", LearnerCommand(NEW, "食堂卫生很差")),
        ("新投诉", LearnerCommand(NEW)),
        ("新投诉：食堂卫生很差", LearnerCommand(NEW, "食堂卫生很差")),
        ("New complaint: the canteen is dirty", LearnerCommand(NEW, "the canteen is dirty")),
        ("/start", LearnerCommand(START)),
        ("/help", LearnerCommand(START)),
        ("帮助", LearnerCommand(START)),
        ("help", LearnerCommand(START)),
    ],
)
def test_commands_in_slash_form_and_plain_words(text: str, command: LearnerCommand) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize(
    "text",
    [
        "老师上课总是迟到，我想查询进度但是一直没人回复",  # the words inside a complaint are no command
        "status of my refund is unclear",
        "/confirm",  # an act on a ticket: intake's
        "/rate 5",
        "/statusx",
    ],
)
def test_anything_else_is_no_command(text: str) -> None:
    assert parse_command(text) is None


async def tickets(core: CoreContext) -> int:
    async with core.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Ticket)) or 0


@pytest.fixture(params=["wechat", "email"])
def learner(request: pytest.FixtureRequest) -> FakeChannel:
    return FakeChannel(str(request.param))


@pytest.fixture
def outbound(core: CoreContext, learner: FakeChannel) -> tuple[Dispatcher, FakeChannel]:
    sent = FakeChannel(learner.name)
    return Dispatcher(core.sessions, core.vault, {learner.name: sent, "staff": FakeChannel("staff")}), sent


async def test_status_lists_the_learners_complaints_on_their_own_channel(
    intake: Intake,
    core: CoreContext,
    learner: FakeChannel,
    outbound: tuple[Dispatcher, FakeChannel],
) -> None:
    dispatcher, sent = outbound
    opened = await receive_or_keep(intake, learner.message("li@163.com", TEACHING, NOW), NOW)
    assert isinstance(opened, IntakeResult)
    asked = learner.message("li@163.com", "查询进度", NOW)
    result = await receive_or_keep(intake, asked, NOW)
    assert isinstance(result, IntakeResult) and not result.created
    assert opened.ticket_number in result.replies[0] and "您的投诉" in result.replies[0]
    again = await receive_or_keep(intake, asked, NOW)  # the platform delivers it twice: answered once
    assert isinstance(again, IntakeResult) and again.duplicate and again.reply_keys == result.reply_keys
    assert await tickets(core) == 1  # asking is no complaint
    await dispatcher.drain(NOW)
    answers = [m for m in sent.sent if m.kind == "notice"]
    assert [(m.recipient, m.text) for m in answers] == [("li@163.com", result.replies[0])]
    assert answers[0].reply_to == asked.external_id  # an e-mail answer joins the learner's thread


async def test_status_without_complaints_says_how_to_make_one(intake: Intake, learner: FakeChannel) -> None:
    result = await receive_or_keep(intake, learner.message("new@163.com", "status", NOW), NOW)
    assert isinstance(result, IntakeResult)
    assert result.replies == ("You have no complaints with us. Just send a message to make one.",)


async def test_new_alone_makes_the_next_message_a_separate_complaint(
    intake: Intake, core: CoreContext, learner: FakeChannel
) -> None:
    first = await receive_or_keep(intake, learner.message("li@163.com", TEACHING, NOW), NOW)
    said = await receive_or_keep(intake, learner.message("li@163.com", "新投诉", NOW), NOW)
    assert isinstance(said, IntakeResult) and "单独编号" in said.replies[0]
    second = await receive_or_keep(intake, learner.message("li@163.com", FEES, NOW), NOW)
    third = await receive_or_keep(intake, learner.message("li@163.com", "已经打了很多次电话", NOW), NOW)
    assert isinstance(first, IntakeResult) and isinstance(second, IntakeResult)
    assert isinstance(third, IntakeResult)
    assert second.created and second.ticket_number != first.ticket_number
    assert not third.created and third.ticket_number == second.ticket_number  # only the one after /new
    assert await tickets(core) == 2


async def test_new_with_the_complaint_opens_it_at_once(
    intake: Intake, core: CoreContext, learner: FakeChannel
) -> None:
    first = await receive_or_keep(intake, learner.message("li@163.com", TEACHING, NOW), NOW)
    second = await receive_or_keep(intake, learner.message("li@163.com", f"新投诉：{FEES}", NOW), NOW)
    assert isinstance(first, IntakeResult) and isinstance(second, IntakeResult)
    assert second.created and second.ticket_number != first.ticket_number
    async with core.sessions() as session:
        ticket = (await session.scalars(select(Ticket).where(Ticket.number == second.ticket_number))).one()
    assert ticket.category == "fees"  # classified on the complaint itself


async def test_help_answers_with_what_the_desk_does(intake: Intake, learner: FakeChannel) -> None:
    result = await receive_or_keep(intake, learner.message("li@163.com", "帮助", NOW), NOW)
    assert isinstance(result, IntakeResult) and "隐私说明" in result.replies[0]


async def test_a_message_that_may_not_be_answered_is_no_command(
    intake: Intake, core: CoreContext, learner: FakeChannel
) -> None:
    flood = replace(learner.message("li@163.com", "查询进度", NOW), unanswered="rate limit")
    result = await receive_or_keep(intake, flood, NOW)
    assert isinstance(result, IntakeResult) and result.replies == ()  # recorded, not answered
    voicemail = FakeChannel("voicemail").message("+8613800000000", "查询进度", NOW)
    result = await receive_or_keep(intake, voicemail, NOW)
    assert isinstance(result, IntakeResult) and result.ticket_number  # a call is what the caller said


async def test_a_photo_captioned_with_a_command_is_kept_as_a_message(
    intake: Intake, core: CoreContext, learner: FakeChannel
) -> None:
    photo = replace(
        learner.message("li@163.com", "新投诉", NOW), attachments=(Attachment("photo", "file-id-1"),)
    )
    result = await receive_or_keep(intake, photo, NOW)
    assert isinstance(result, IntakeResult) and result.created  # a complaint with its photo, not a command
    async with core.sessions() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
    assert stored == 1


async def test_a_redelivered_new_does_not_open_another_complaint(
    intake: Intake, core: CoreContext, learner: FakeChannel
) -> None:
    await receive_or_keep(intake, learner.message("li@163.com", TEACHING, NOW), NOW)
    new = learner.message("li@163.com", "新投诉", NOW)
    await receive_or_keep(intake, new, NOW)
    second = await receive_or_keep(intake, learner.message("li@163.com", FEES, NOW), NOW)
    again = await receive_or_keep(intake, new, NOW)  # the platform delivers `/new` once more
    assert isinstance(again, IntakeResult) and again.duplicate
    third = await receive_or_keep(intake, learner.message("li@163.com", "已经打了很多次电话", NOW), NOW)
    assert isinstance(second, IntakeResult) and isinstance(third, IntakeResult)
    assert third.ticket_number == second.ticket_number and not third.created
    assert await tickets(core) == 2


async def test_of_two_messages_at_once_after_new_only_one_opens_a_complaint(
    intake: Intake, core: CoreContext, learner: FakeChannel
) -> None:
    await receive_or_keep(intake, learner.message("li@163.com", TEACHING, NOW), NOW)
    await receive_or_keep(intake, learner.message("li@163.com", "新投诉", NOW), NOW)
    both = await asyncio.gather(
        receive_or_keep(intake, learner.message("li@163.com", FEES, NOW), NOW),
        receive_or_keep(intake, learner.message("li@163.com", "已经打了很多次电话", NOW), NOW),
    )
    assert [isinstance(r, IntakeResult) and r.created for r in both].count(True) == 1
    assert await tickets(core) == 2
