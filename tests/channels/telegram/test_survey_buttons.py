"""The learner's side of the follow-up on Telegram, through the real client and the Bot API stand-in:
/confirm brings the survey with buttons 1–5, a press records the score and answers the button, and
/appeal opens the second instance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from bot.staff_commands import StaffCommands
from channels.telegram.poller import TelegramPoller
from channels.telegram.sender import TelegramBot, TelegramSender, TelegramStaffSink, make_bot
from channels.telegram.updates import TelegramUpdates
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import Sender
from core.intake.intake import Intake
from core.storage.numbers import find_ticket_numbers
from core.tickets.queries import get_ticket
from core.tickets.staff import add_staff
from core.tickets.staff_requests import StaffRooms
from core.tickets.views import ticket_view
from standins.botapi import BotApiServer
from tests.conftest import at

LEARNER, OTHER_LEARNER, TEACHER = 5001, 5002, 9001
TEACHING_CHAT, STAFF_CHAT, MANAGERS_CHAT = -1001, -1000, -1009
TEACHING = "老师上课总是迟到，讲课照本宣科，教学质量很差"


@dataclass
class Rig:
    core: CoreContext
    botapi: BotApiServer
    poller: TelegramPoller
    dispatcher: Dispatcher
    clock: list[datetime]

    async def round(self) -> None:
        await self.poller.poll_once()
        await self.dispatcher.drain(self.clock[0])

    async def learner(self, user_id: int, text: str) -> str:
        """The learner writes; the bot's last message to them."""
        self.botapi.learner_message(user_id, text)
        await self.round()
        return self.botapi.texts_to(user_id)[-1]

    async def staff(self, text: str) -> None:
        self.botapi.group_message(TEACHING_CHAT, TEACHER, text)
        await self.round()

    async def view(self, number: str) -> dict[str, Any]:
        async with self.core.sessions() as session:
            return await ticket_view(self.core, session, await get_ticket(session, number), self.clock[0])


@pytest.fixture
async def rig(core: CoreContext, botapi: BotApiServer) -> AsyncIterator[Rig]:
    now = at("2026-11-23 10:00")  # a Monday
    async with core.sessions() as session, session.begin():
        await add_staff(
            session, name="王老师", department="teaching", role="staff", now=now, telegram_id=str(TEACHER)
        )
    bot: TelegramBot = make_bot(botapi.token, botapi.base_url)
    await bot.initialize()
    chats = {key: STAFF_CHAT for key in ("service", "finance", "academic", "compliance")}
    chats |= {"teaching": TEACHING_CHAT, "managers": MANAGERS_CHAT}
    senders: dict[str, Sender] = {"telegram": TelegramSender(bot), "staff": TelegramStaffSink(bot, chats)}
    clock = [now]

    async def answer(callback_id: str, text: str) -> None:
        await bot.answer_callback_query(callback_id, text)

    intake = Intake(core)
    staff_chats = StaffRooms.on(
        "telegram", departments={"teaching": TEACHING_CHAT}, default=STAFF_CHAT, managers=MANAGERS_CHAT
    )
    updates = TelegramUpdates(
        core,
        intake,
        StaffCommands(core, staff_chats, answer, intake),
        clock=lambda: clock[0],
        answer_callback=answer,
    )
    poller = TelegramPoller(
        bot, core.sessions, updates, holder="test", clock=lambda: clock[0], poll_timeout=0
    )
    yield Rig(core, botapi, poller, Dispatcher(core.sessions, core.vault, senders), clock)
    await bot.shutdown()


async def resolved(rig: Rig) -> str:
    rig.botapi.learner_message(LEARNER, TEACHING)
    await rig.round()
    number = str(find_ticket_numbers(rig.botapi.texts_to(LEARNER)[0])[0])
    await rig.staff(f"/claim {number}")
    await rig.staff(f"/resolve {number} 已更换任课老师")
    return number


async def test_confirm_then_a_button_press_records_the_score(rig: Rig) -> None:
    number = await resolved(rig)
    rig.clock[0] = at("2026-11-23 14:00")
    survey_text = await rig.learner(LEARNER, "/confirm")
    assert number in survey_text and "满意度" in survey_text
    survey = rig.botapi.messages_to(LEARNER)[-1]
    keyboard = survey["reply_markup"]["inline_keyboard"]
    assert [b["text"] for row in keyboard for b in row] == ["1", "2", "3", "4", "5"]

    rig.botapi.callback(LEARNER, LEARNER, survey["message_id"], f"rate:{number}:4")
    await rig.round()
    shown = await rig.view(number)
    assert (shown["status"], shown["satisfaction"]) == ("closed", 4)
    [toast] = rig.botapi.calls_of("answerCallbackQuery", ok_only=True)
    assert "4/5" in toast.params["text"]
    assert "4/5" in rig.botapi.texts_to(LEARNER)[-1]

    # A second press changes nothing and says why.
    rig.botapi.callback(LEARNER, LEARNER, survey["message_id"], f"rate:{number}:1")
    await rig.round()
    assert (await rig.view(number))["satisfaction"] == 4
    assert "已经记录" in rig.botapi.calls_of("answerCallbackQuery", ok_only=True)[-1].params["text"]


async def test_a_low_score_button_reopens_and_appeal_opens_the_second_instance(rig: Rig) -> None:
    number = await resolved(rig)
    await rig.learner(LEARNER, "/confirm")
    survey = rig.botapi.messages_to(LEARNER)[-1]
    rig.botapi.callback(LEARNER, LEARNER, survey["message_id"], f"rate:{number}:1")
    await rig.round()
    assert (await rig.view(number))["status"] == "investigating"
    assert "/appeal" in rig.botapi.texts_to(LEARNER)[-1]

    ack = await rig.learner(LEARNER, "/appeal 换了老师还是一样")
    [review] = (await rig.view(number))["second_instances"]
    assert review in ack and number in ack
    assert any(review in text for text in rig.botapi.texts_to(STAFF_CHAT))  # compliance's card
    assert any(review in text for text in rig.botapi.texts_to(TEACHER))  # the owner, privately
    assert any(review in text for text in rig.botapi.texts_to(MANAGERS_CHAT))


async def test_another_learner_cannot_press_or_command_on_the_ticket(rig: Rig) -> None:
    number = await resolved(rig)
    await rig.learner(LEARNER, "/confirm")
    await rig.learner(OTHER_LEARNER, f"/rate {number} 1")
    await rig.learner(OTHER_LEARNER, f"/appeal {number}")
    shown = await rig.view(number)
    assert (shown["status"], shown["satisfaction"], shown["second_instances"]) == ("follow_up", None, [])


async def test_staff_record_the_score_of_a_follow_up_call(rig: Rig) -> None:
    number = await resolved(rig)
    await rig.learner(LEARNER, "/confirm")
    rig.clock[0] = at("2026-11-26 10:00")  # the survey went unanswered

    rig.botapi.group_message(TEACHING_CHAT, TEACHER, f"/rate {number} 3 电话回访：基本满意")
    await rig.round()
    assert f"{number}: satisfaction 3 recorded by 王老师 (closed)" in rig.botapi.texts_to(TEACHING_CHAT)[-1]
    shown = await rig.view(number)
    assert (shown["status"], shown["satisfaction"]) == ("closed", 3)
    rated = [e for e in shown["events"] if e["action"] == "rated"]
    assert len(rated) == 1 and rated[0]["actor"].startswith("王老师") and "基本满意" in rated[0]["detail"]
