"""The core asks a channel what it can do, never its name: a channel it has never heard of, stated
only by its `Capabilities`, gets the survey, the call-back and the private alert its answers call for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import select

from bot.channel_list import CAPABILITIES
from channels.fake import FakeChannel
from core.capabilities import Capabilities, ChannelBook
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.record import RetryPolicy
from core.intake.intake import Intake
from core.rules.templates import Templates
from core.storage.delivery_models import OutboxRow
from core.tickets.staff import add_staff
from scheduler import escalation
from tests.conftest import DEPARTMENTS, at
from tests.core.test_followup import resolved, say, view

# Made-up channels: none of them is a platform the core could know by name.
SMS = Capabilities(name="sms")  # written back to; no buttons, no subjects
CHAT = Capabilities(name="chatapp", buttons=True, subjects=True)
HOTLINE = Capabilities(name="hotline", writes_back=False, address="phone", calls_back=True)
PAGER = Capabilities(name="pager", staff_address="wecom_id")  # reaches staff by their WeCom id
TEACHING = "老师上课总是迟到，讲课照本宣科，教学质量很差"


@asynccontextmanager
async def composed(core: CoreContext, *channels: Capabilities) -> AsyncIterator[CoreContext]:
    """The same database and policy, with only `channels` composed."""
    context = CoreContext(
        sessions=core.sessions,
        policy=core.policy,
        vault=core.vault,
        templates=Templates(),
        channels=ChannelBook(channels),
        department_names=DEPARTMENTS,
    )
    try:
        yield context
    finally:
        await context.close()


def test_a_name_not_composed_can_do_nothing_and_the_book_answers_by_capability() -> None:
    book = ChannelBook(CAPABILITIES)
    staff_logged = book.of("staff")
    assert not staff_logged.writes_back and staff_logged.address == "id" and not staff_logged.calls_back
    assert book.writing_back() == ("telegram", "wechat", "email")
    assert book.writing_to("mailbox") == "email" and book.writing_to("phone") is None
    assert book.calling_back() == ("voicemail",)
    assert [c.name for c in book.reaching_staff()] == ["telegram"]
    with pytest.raises(ValueError, match="listed twice"):
        ChannelBook((SMS, SMS))


async def test_a_channel_naming_a_staff_field_the_directory_lacks_is_refused(core: CoreContext) -> None:
    with pytest.raises(ValueError, match="pager_number"):
        CoreContext(
            sessions=core.sessions,
            policy=core.policy,
            vault=core.vault,
            templates=Templates(),
            channels=ChannelBook((Capabilities(name="pager", staff_address="pager_number"),)),
        )


@pytest.mark.parametrize(
    ("capabilities", "buttons", "subject"),
    [(SMS, [], False), (CHAT, ["1", "2", "3", "4", "5"], True)],
    ids=["no-buttons", "buttons-and-subjects"],
)
async def test_the_survey_has_buttons_and_a_subject_only_where_the_channel_has_them(
    core: CoreContext, capabilities: Capabilities, buttons: list[str], subject: bool
) -> None:
    async with composed(core, capabilities) as here:
        intake = Intake(here)
        channel, staff = FakeChannel(capabilities.name), FakeChannel("staff")
        dispatcher = Dispatcher(
            here.sessions, here.vault, {capabilities.name: channel, "staff": staff}, retry=RetryPolicy()
        )
        number = await resolved(here, intake, channel, at("2026-11-23 10:00"))
        now = at("2026-11-23 11:00")
        assert (await say(intake, channel, "确认，谢谢", now)).act == "confirm"
        await dispatcher.drain(now)

    survey = channel.sent[-1]
    assert survey.recipient == "chat-1" and "满意度" in survey.text
    assert [b.label for b in survey.buttons] == buttons
    # Without buttons the learner is asked to reply with a digit instead.
    assert ("请直接回复一个数字" in survey.text) == (not buttons)
    assert survey.subject == (f"[{number}]" if subject else None)


async def test_a_channel_that_calls_back_gets_a_call_back_clock_and_no_written_reply(
    core: CoreContext,
) -> None:
    async with composed(core, SMS, HOTLINE) as here:
        caller = FakeChannel("hotline")
        now = at("2026-11-23 10:00")
        result = await Intake(here).receive(caller.message("13800138000", TEACHING, now), now)
        shown = await view(here, result.ticket_number, now)

    assert result.created and result.replies == ()  # nothing can be written to a call
    stages = [c["stage"] for c in shown["clocks"]]
    assert "callback" in stages and "acknowledge" not in stages


async def _alert_recipients(core: CoreContext) -> list[tuple[str, str]]:
    async with core.sessions() as session:
        rows = await session.scalars(
            select(OutboxRow).where(OutboxRow.kind == "alert").order_by(OutboxRow.id)
        )
        return [(row.channel, core.vault.decrypt(row.recipient_enc)) for row in rows]


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        ((SMS, PAGER), ("pager", "zhang-wecom")),
        ((SMS,), ("staff", "teaching")),  # no channel reaches staff: the department's chat
    ],
    ids=["reached-by-pager", "reached-by-no-channel"],
)
async def test_a_head_is_escalated_to_privately_on_the_channel_that_reaches_them(
    core: CoreContext, channels: tuple[Capabilities, ...], expected: tuple[str, str]
) -> None:
    async with composed(core, *channels) as here:
        async with here.sessions() as session, session.begin():
            # Known on Telegram too, which is not composed here: it is never used.
            await add_staff(
                session,
                name="张主任",
                department="teaching",
                role="head",
                now=at("2026-11-01 09:00"),
                telegram_id="9002",
                wecom_id="zhang-wecom",
            )
        sms = FakeChannel("sms")
        now = at("2026-11-23 10:00")  # a Monday: the claim is due at 11:00
        number = (await Intake(here).receive(sms.message("chat-7", TEACHING, now), now)).ticket_number
        report = await escalation.run(here, at("2026-11-23 11:01"), False)
        recipients = await _alert_recipients(here)

    label = "张主任 (teaching head)" if expected[0] != "staff" else "教学部 chat (teaching head 张主任)"
    assert f"{number} claim: level 1 to {label}" in report.actions
    assert expected in recipients and ("telegram", "9002") not in recipients
