"""Staff commands from a channel other than Telegram: the staff-command layer acts on neutral requests
(who, where, what, which message), so a made-up chat channel where staff have WeCom ids can claim a
ticket, answer the learner and press a card's button, with no Telegram type anywhere."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select

from bot.staff_commands import StaffCommands
from channels.fake import FakeChannel
from core.capabilities import Capabilities, ChannelBook
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.intake.intake import Intake
from core.messages import OutboundMessage, SendResult
from core.storage.delivery_models import OutboxRow
from core.storage.numbers import find_ticket_numbers
from core.tickets.queries import get_ticket
from core.tickets.staff import add_staff
from core.tickets.staff_requests import Command, Place, Press, Said, StaffAddress, StaffRequest, StaffRooms
from tests.conftest import at

NOW = at("2026-11-23 10:00")
TEACHING_ROOM, SERVICE_ROOM = Place("wecom", "room-teaching"), Place("wecom", "room-service")
WANG = StaffAddress("wecom", "wang.laoshi", "王老师")
LIU = StaffAddress("wecom", "liu.kuaiji", "刘会计")  # finance
STRANGER = StaffAddress("wecom", "visitor", "访客")


class ThreadedStaffChat(FakeChannel):
    """A staff lane whose chat opens a thread for each card, as forum topics do."""

    async def send(self, message: OutboundMessage) -> SendResult:
        sent = await super().send(message)
        thread = f"room-teaching:{len(self.sent)}" if message.kind == "card" else None
        return SendResult(sent.external_ref, thread_ref=thread)


@dataclass
class Desk:
    core: CoreContext
    staff: StaffCommands
    learners: FakeChannel  # the learners' channel (WeChat here)
    rooms: FakeChannel  # the made-up channel staff talk to the bot on
    cards: ThreadedStaffChat
    presses: list[tuple[str, str]]
    dispatcher: Dispatcher
    said: int = 0

    async def ask(self, who: StaffAddress, where: Place, what: Command | Press | Said, **refs: str) -> str:
        """A staff member's request, then the outbox: what the bot answered in that place."""
        self.said += 1
        key = f"m{self.said}"
        ref = None if isinstance(what, Press) else f"{where.chat}:{key}"
        await self.staff(StaffRequest(who, where, what, key, message_ref=ref, **refs), NOW)
        await self.dispatcher.drain(NOW)
        return "\n".join(m.text for m in self.rooms.sent if m.key == f"wecom:{key}:answer")


@pytest.fixture
async def desk(core: CoreContext, intake: Intake) -> Desk:
    async with core.sessions() as session, session.begin():
        await add_staff(
            session, name="王老师", department="teaching", role="staff", now=NOW, wecom_id=WANG.address
        )
        await add_staff(
            session, name="刘会计", department="finance", role="staff", now=NOW, wecom_id=LIU.address
        )
    presses: list[tuple[str, str]] = []

    async def answer_press(press_id: str, text: str) -> None:
        presses.append((press_id, text))

    rooms = StaffRooms.on("wecom", {"teaching": TEACHING_ROOM.chat}, SERVICE_ROOM.chat, managers=None)
    channels = ChannelBook([Capabilities(name="wecom", staff_address="wecom_id")])
    staff = StaffCommands(core, rooms, answer_press, intake, channels=channels)
    learners, wecom, cards = FakeChannel("wechat"), FakeChannel("wecom"), ThreadedStaffChat("staff")
    dispatcher = Dispatcher(core.sessions, core.vault, {"wechat": learners, "wecom": wecom, "staff": cards})
    return Desk(core, staff, learners, wecom, cards, presses, dispatcher)


async def complain(desk: Desk, intake: Intake) -> str:
    message = desk.learners.message("openid-learner", "老师上课总是迟到，讲课照本宣科，教学质量很差", NOW)
    result = await intake.receive(message, NOW)
    await desk.dispatcher.drain(NOW)
    assert find_ticket_numbers(desk.learners.texts_to("openid-learner")[0])
    return result.ticket_number


async def test_staff_claim_and_answer_a_learner_from_another_chat_channel(desk: Desk, intake: Intake) -> None:
    number = await complain(desk, intake)
    claimed = await desk.ask(WANG, TEACHING_ROOM, Command("claim", number))
    assert claimed == f"✅ {number}: claim by 王老师 (investigating)"
    answer = desk.rooms.sent[-1]
    assert (answer.recipient, answer.reply_to) == ("room-teaching", "room-teaching:m1")

    # Replying to the ticket's card names the ticket: the learner gets the words on their own channel.
    async with desk.core.sessions() as session:
        card = await session.scalar(select(OutboxRow).where(OutboxRow.kind == "card"))
    assert card is not None and card.external_ref
    replied = await desk.ask(
        WANG, TEACHING_ROOM, Command("reply", "您好，已安排下周补课两次。"), reply_to=card.external_ref
    )
    assert replied == f"✅ {number}: reply by 王老师 sent to the learner (investigating)"
    to_learner = desk.learners.texts_to("openid-learner")[-1]
    assert number in to_learner and "已安排下周补课两次" in to_learner

    # Plain words in the card's thread are a reply too; the answer stays in the thread.
    thread = Place(
        "wecom", "room-teaching", card.external_thread.rpartition(":")[2] if card.external_thread else None
    )
    assert thread.thread is not None
    in_thread = await desk.ask(WANG, thread, Said("补课时间另行通知。"))
    assert in_thread == f"✅ {number}: reply by 王老师 sent to the learner (investigating)"
    assert desk.rooms.sent[-1].meta == {"thread_id": thread.thread}
    assert "补课时间另行通知" in desk.learners.texts_to("openid-learner")[-1]

    # Delivered twice, a request changes nothing the second time and is not answered again.
    before = len(desk.learners.sent), len(desk.rooms.sent)
    desk.said -= 1
    assert await desk.ask(WANG, thread, Said("补课时间另行通知。")) == in_thread
    assert (len(desk.learners.sent), len(desk.rooms.sent)) == before


async def test_a_pressed_button_is_answered_in_the_chat_and_on_the_press(desk: Desk, intake: Intake) -> None:
    number = await complain(desk, intake)
    answer = await desk.ask(WANG, TEACHING_ROOM, Press(f"claim:{number}", "press-1"))
    assert answer == f"✅ {number}: claim by 王老师 (investigating)"
    assert desk.presses == [("press-1", answer)]
    assert desk.rooms.sent[-1].reply_to is None  # a press is no message to thread under
    async with desk.core.sessions() as session:
        assert (await get_ticket(session, number)).status == "investigating"


async def test_who_may_act_where_is_asked_of_the_neutral_places(desk: Desk, intake: Intake) -> None:
    number = await complain(desk, intake)
    refused = await desk.ask(STRANGER, TEACHING_ROOM, Command("claim", number))
    assert refused.startswith("⛔ Not registered as staff")
    # The finance clerk is registered, but this is the teaching department's room.
    refused = await desk.ask(LIU, TEACHING_ROOM, Command("claim", number))
    assert refused == "⛔ 刘会计: this chat is not one of yours; act in your department's chat."
    # The same address on another channel is nobody's: addresses are per channel.
    elsewhere = StaffAddress("email", WANG.address, "王老师")
    assert (await desk.ask(elsewhere, TEACHING_ROOM, Command("claim", number))).startswith(
        "⛔ Not registered"
    )
    async with desk.core.sessions() as session:
        assert (await get_ticket(session, number)).status == "routed"
    # Words outside a ticket's thread are talk among staff: no answer, nothing sent to the learner.
    sent = len(desk.learners.sent)
    assert await desk.ask(WANG, TEACHING_ROOM, Said("大家好")) == ""
    assert len(desk.learners.sent) == sent
