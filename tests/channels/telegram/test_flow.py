"""Telegram end to end: the real client against the Bot API stand-in, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.staff_commands import StaffCommands
from channels.telegram.poller import OFFSET_KEY, TelegramPoller
from channels.telegram.sender import TelegramBot, TelegramSender, TelegramStaffSink, make_bot
from channels.telegram.updates import TelegramUpdates
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.intake.intake import Intake
from core.storage.delivery_models import OutboxRow, Unparsed
from core.storage.models import Message, Ticket
from core.storage.numbers import find_ticket_numbers
from core.storage.state import set_state
from core.tickets.queries import get_ticket
from core.tickets.staff import add_staff
from core.tickets.staff_requests import StaffRooms
from standins.botapi import BotApiServer
from tests.conftest import at

LEARNER, TEACHER, STRANGER = 5001, 9001, 9999
TEACHING_CHAT, STAFF_CHAT, MANAGERS_CHAT = -1001, -1000, -1009


@dataclass
class Rig:
    core: CoreContext
    botapi: BotApiServer
    bot: TelegramBot
    poller: TelegramPoller
    dispatcher: Dispatcher
    now: datetime

    async def round(self) -> None:
        """Telegram delivers what is queued; the outbox sends what that caused."""
        await self.poller.poll_once()
        await self.dispatcher.drain(self.now)


def _poller(core: CoreContext, bot: TelegramBot, rig_now: list[datetime], holder: str) -> TelegramPoller:
    chats = StaffRooms.on("telegram", {"teaching": TEACHING_CHAT}, default=STAFF_CHAT, managers=MANAGERS_CHAT)

    async def answer(callback_id: str, text: str) -> None:
        await bot.answer_callback_query(callback_id, text)

    staff = StaffCommands(core, chats, answer)
    updates = TelegramUpdates(
        core, Intake(core), staff, clock=lambda: rig_now[0], bot_username="complaint_test_bot"
    )
    return TelegramPoller(
        bot, core.sessions, updates, holder=holder, clock=lambda: rig_now[0], poll_timeout=0
    )


@pytest.fixture
async def rig(core: CoreContext, botapi: BotApiServer) -> AsyncIterator[Rig]:
    now = at("2026-11-23 10:00")
    async with core.sessions() as session, session.begin():
        await add_staff(
            session, name="王老师", department="teaching", role="staff", now=now, telegram_id=str(TEACHER)
        )
    bot = make_bot(botapi.token, botapi.base_url)
    await bot.initialize()
    staff_chats = {
        "teaching": TEACHING_CHAT,
        "service": STAFF_CHAT,
        "finance": STAFF_CHAT,
        "academic": STAFF_CHAT,
        "compliance": STAFF_CHAT,
        "managers": MANAGERS_CHAT,
    }
    senders = {"telegram": TelegramSender(bot), "staff": TelegramStaffSink(bot, staff_chats)}
    clock = [now]
    rig = Rig(
        core,
        botapi,
        bot,
        _poller(core, bot, clock, "instance-1"),
        Dispatcher(core.sessions, core.vault, senders),
        now,
    )
    yield rig
    await bot.shutdown()


async def _tickets(core: CoreContext) -> int:
    async with core.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Ticket)) or 0


async def test_complaint_to_resolution_through_telegram(rig: Rig) -> None:
    api = rig.botapi
    api.learner_message(
        LEARNER, "老师上课总是迟到，讲课照本宣科，教学质量很差", first_name="明", last_name="李"
    )
    await rig.round()

    ack = api.texts_to(LEARNER)[0]
    numbers = find_ticket_numbers(ack)
    assert numbers, ack
    number = str(numbers[0])
    assert "隐私" in ack and "课程" in api.texts_to(LEARNER)[1]
    card = api.texts_to(TEACHING_CHAT)[0]
    assert number in card and "教学质量类" in card and "李明" not in card
    assert api.messages_to(TEACHING_CHAT)[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == (
        f"claim:{number}"
    )

    api.group_message(TEACHING_CHAT, STRANGER, f"/claim {number}")
    await rig.round()
    assert "Not registered as staff" in api.texts_to(TEACHING_CHAT)[-1]

    api.group_message(TEACHING_CHAT, TEACHER, f"/claim {number}")
    api.group_message(TEACHING_CHAT, TEACHER, f"/reply {number} 您好，我们已安排下周补课两次。")
    await rig.round()
    assert api.texts_to(LEARNER)[-1] == f"【{number}】您好，我们已安排下周补课两次。"

    card_id = api.messages_to(TEACHING_CHAT)[0]["message_id"]
    api.group_message(TEACHING_CHAT, TEACHER, "/resolve 已补课，老师已调整", reply_to_message_id=card_id)
    await rig.round()
    async with rig.core.sessions() as session:
        ticket = await get_ticket(session, number)
    assert ticket.status == "awaiting_confirmation" and ticket.result == "已补课，老师已调整"
    answers = api.texts_to(TEACHING_CHAT)
    assert any("claim by 王老师" in t for t in answers) and any("resolve by 王老师" in t for t in answers)


async def test_a_button_press_claims_and_is_answered(rig: Rig) -> None:
    api = rig.botapi
    api.learner_message(LEARNER, "老师讲课太快，根本听不懂")
    await rig.round()
    card = api.messages_to(TEACHING_CHAT)[0]
    data = card["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    api.callback(TEACHING_CHAT, TEACHER, card["message_id"], data)
    await rig.round()
    assert api.calls_of("answerCallbackQuery")
    async with rig.core.sessions() as session:
        ticket = await get_ticket(session, data.partition(":")[2])
    assert ticket.status == "investigating"


async def test_restart_and_redelivery_process_nothing_twice(rig: Rig) -> None:
    api = rig.botapi
    update = api.learner_message(LEARNER, "退费申请三个月了还没到账")
    await rig.round()
    sent_before, tickets_before = len(api.calls_of("sendMessage")), await _tickets(rig.core)

    # The process died after the update's commit but before its offset was written: the stored
    # offset still points at it, and Telegram (not yet told) delivers it again to the restarted bot.
    await set_state(rig.core.sessions, OFFSET_KEY, str(update["update_id"]), rig.now)
    restarted = _poller(rig.core, rig.bot, [rig.now], "instance-1")
    assert await restarted.poll_once() == 1
    await rig.dispatcher.drain(rig.now)
    assert (len(api.calls_of("sendMessage")), await _tickets(rig.core)) == (sent_before, tickets_before)
    # And a normal restart re-reads nothing at all.
    again = _poller(rig.core, rig.bot, [rig.now], "instance-1")
    assert await again.poll_once() == 0
    assert api.confirmed_update_id >= update["update_id"]


async def test_a_429_storm_delays_but_loses_nothing(rig: Rig) -> None:
    api = rig.botapi
    api.fail_next("sendMessage", times=4, retry_after=7)
    for user in (6001, 6002):
        api.learner_message(user, "前台工作人员态度恶劣，问什么都推给别人")
    await rig.poller.poll_once()
    when = rig.now
    for _ in range(10):
        await rig.dispatcher.drain(when)
        when += timedelta(seconds=8)
    async with rig.core.sessions() as session:
        rows = (await session.scalars(select(OutboxRow))).all()
    assert rows and all(r.status == "sent" for r in rows), [(r.kind, r.status, r.last_error) for r in rows]
    assert all(any(find_ticket_numbers(t) for t in api.texts_to(user)) for user in (6001, 6002))
    assert len(api.texts_to(STAFF_CHAT)) == 2  # both cards, once each


async def test_photos_voice_notes_and_documents_are_kept_as_attachments(rig: Rig) -> None:
    api = rig.botapi
    api.learner_message(LEARNER, "收据在这里，多收了800元", photo=True)
    api.learner_message(LEARNER, "", voice=True)
    api.learner_message(LEARNER, "合同", document={"file_name": "合同.pdf", "mime_type": "application/pdf"})
    await rig.round()
    async with rig.core.sessions() as session:
        messages = (
            await session.scalars(select(Message).where(Message.direction == "in").order_by(Message.id))
        ).all()
    kept = [a for m in messages for a in m.attachments]
    assert [a["kind"] for a in kept] == ["photo", "voice", "document"]
    assert all(a["ref"] and a["size"] for a in kept)
    assert kept[2]["name"] == "合同.pdf" and kept[2]["mime"] == "application/pdf"
    assert len({m.ticket_id for m in messages}) == 1  # the later ones continue the first complaint


async def test_an_update_that_always_fails_is_kept_for_staff_and_does_not_block_the_rest(rig: Rig) -> None:
    api = rig.botapi
    handler = rig.poller.handle
    poison = api.learner_message(LEARNER, "这条消息总是处理失败")

    async def flaky(update: Mapping[str, Any]) -> None:
        if update.get("update_id") == poison["update_id"]:
            raise RuntimeError("a bug this input triggers")
        await handler(update)

    rig.poller.handle = flaky
    rig.poller.give_up = TelegramUpdates(rig.core, Intake(rig.core), _never, clock=lambda: rig.now).give_up
    api.learner_message(6001, "前台工作人员态度恶劣")
    for _ in range(rig.poller.max_failures - 1):
        with pytest.raises(RuntimeError):
            await rig.poller.poll_once()
    await rig.round()  # the last try: kept, and the offset moves on to the next update
    async with rig.core.sessions() as session:
        kept = (await session.scalars(select(Unparsed))).all()
    assert [k.external_id for k in kept] == [f"update:{poison['update_id']}"]
    assert "a bug this input triggers" in kept[0].reason
    assert any(find_ticket_numbers(t) for t in api.texts_to(6001))  # the next learner was served


async def _never(event: object, now: datetime) -> None:
    raise AssertionError("no staff event expected")
