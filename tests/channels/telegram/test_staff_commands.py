"""The staff commands beyond claim/reply/resolve, through the real client and the Bot API stand-in:
/assign, /mine, /overdue, /stats, /show full, /log, and work inside a ticket's forum topic.

Each command is also refused, with a short reason and nothing changed, when the sender may not use it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from bot import staff_queries
from bot.staff_commands import StaffCommands
from channels.telegram.poller import OFFSET_KEY, TelegramPoller
from channels.telegram.sender import TelegramBot, TelegramSender, TelegramStaffSink, make_bot
from channels.telegram.updates import TelegramUpdates
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import Sender
from core.intake.intake import Intake
from core.storage.delivery_models import OutboxRow
from core.storage.models import Event, Learner, Ticket
from core.storage.numbers import find_ticket_numbers
from core.storage.state import set_state
from core.tickets.corrections import export_rows
from core.tickets.queries import get_ticket
from core.tickets.staff import add_staff
from core.tickets.staff_requests import StaffRooms
from core.tickets.views import ticket_view
from standins.botapi import BotApiServer
from tests.conftest import at

LEARNER, OTHER_LEARNER = 5001, 5002
TEACHER, HEAD, MANAGER, CASHIER, STRANGER = 9001, 9002, 9003, 9004, 9999
TEACHING_CHAT, STAFF_CHAT, MANAGERS_CHAT = -1001, -1000, -1009
TEACHING = "老师上课总是迟到，讲课照本宣科，教学质量很差"
FEES = "退费申请三个月了还没到账"


@dataclass
class Rig:
    core: CoreContext
    botapi: BotApiServer
    bot: TelegramBot
    poller: TelegramPoller
    dispatcher: Dispatcher
    clock: list[datetime]
    staff_ids: dict[int, int]  # Telegram user id -> staff id

    @property
    def now(self) -> datetime:
        return self.clock[0]

    async def round(self) -> None:
        """Telegram delivers what is queued; the outbox sends what that caused."""
        await self.poller.poll_once()
        await self.dispatcher.drain(self.now)

    async def say(self, chat_id: int, user_id: int, text: str, **where: Any) -> str:
        """A group member writes; the bot's answer to that message ("" when it stays silent)."""
        update = self.botapi.group_message(chat_id, user_id, text, **where)
        await self.round()
        return self.answer_to(chat_id, update)

    def answer_to(self, chat_id: int, update: dict[str, Any]) -> str:
        """The bot's answer to a command: what replies to it (the chat also gets cards, on another lane)."""
        asked = update["message"]["message_id"]
        answers = [
            m["text"]
            for m in self.botapi.messages_to(chat_id)
            if m.get("reply_to_message", {}).get("message_id") == asked
        ]
        return "\n".join(answers)

    async def complain(self, user_id: int, text: str, **who: Any) -> str:
        self.botapi.learner_message(user_id, text, **who)
        await self.round()
        numbers = find_ticket_numbers(self.botapi.texts_to(user_id)[0])
        assert numbers
        return str(numbers[0])

    async def ticket(self, number: str) -> Ticket:
        async with self.core.sessions() as session:
            return await get_ticket(session, number)

    async def events(self, number: str, action: str) -> list[Event]:
        async with self.core.sessions() as session:
            ticket = await get_ticket(session, number)
            query = select(Event).where(Event.ticket_id == ticket.id, Event.action == action)
            return list(await session.scalars(query.order_by(Event.id)))

    async def tickets(self) -> int:
        async with self.core.sessions() as session:
            return await session.scalar(select(func.count()).select_from(Ticket)) or 0


def _poller(core: CoreContext, bot: TelegramBot, clock: list[datetime]) -> TelegramPoller:
    chats = StaffRooms.on(
        "telegram", departments={"teaching": TEACHING_CHAT}, default=STAFF_CHAT, managers=MANAGERS_CHAT
    )

    async def answer(callback_id: str, text: str) -> None:
        await bot.answer_callback_query(callback_id, text)

    intake = Intake(core)
    updates = TelegramUpdates(
        core, intake, StaffCommands(core, chats, answer, intake), clock=lambda: clock[0]
    )
    return TelegramPoller(bot, core.sessions, updates, holder="test", clock=lambda: clock[0], poll_timeout=0)


@pytest.fixture
async def rig(core: CoreContext, botapi: BotApiServer) -> AsyncIterator[Rig]:
    now = at("2026-11-23 10:00")  # a Monday
    staff_ids = {}
    async with core.sessions() as session, session.begin():
        for user, name, department, role in (
            (TEACHER, "王老师", "teaching", "staff"),
            (HEAD, "张主任", "teaching", "head"),
            (MANAGER, "陈经理", "service", "manager"),
            (CASHIER, "刘会计", "finance", "staff"),
        ):
            staff = await add_staff(
                session, name=name, department=department, role=role, now=now, telegram_id=str(user)
            )
            staff_ids[user] = staff.id
    bot = make_bot(botapi.token, botapi.base_url)
    await bot.initialize()
    chats = {key: STAFF_CHAT for key in ("service", "finance", "academic", "compliance")}
    chats |= {"teaching": TEACHING_CHAT, "managers": MANAGERS_CHAT}
    senders: dict[str, Sender] = {"telegram": TelegramSender(bot), "staff": TelegramStaffSink(bot, chats)}
    clock = [now]
    dispatcher = Dispatcher(core.sessions, core.vault, senders)
    yield Rig(core, botapi, bot, _poller(core, bot, clock), dispatcher, clock, staff_ids)
    await bot.shutdown()


async def test_assign_to_a_person_is_for_heads_and_managers(rig: Rig) -> None:
    number = await rig.complain(LEARNER, TEACHING)

    refused = await rig.say(TEACHING_CHAT, TEACHER, f"/assign {number} @王老师")
    assert refused.startswith("⛔") and "may not give the ticket an owner" in refused
    answer = await rig.say(TEACHING_CHAT, HEAD, f"/assign {number} @wang_laoshi")
    assert answer.startswith("⚠️") and "@usernames are not known" in answer
    answer = await rig.say(TEACHING_CHAT, HEAD, f"/assign {number} @刘会计")
    assert answer.startswith("⚠️") and "works in finance" in answer
    answer = await rig.say(TEACHING_CHAT, HEAD, f"/assign {number} #99999")
    assert "no active staff member #99999" in answer
    answer = await rig.say(TEACHING_CHAT, STRANGER, f"/assign {number} @王老师")
    assert "Not registered as staff" in answer
    assert (await rig.ticket(number)).owner_staff_id is None
    assert await rig.events(number, "assign") == []

    answer = await rig.say(TEACHING_CHAT, HEAD, f"/assign {number} @王老师 请今天联系学员")
    assert answer.startswith("✅") and "assigned to 王老师 by 张主任" in answer
    assert (await rig.ticket(number)).owner_staff_id == rig.staff_ids[TEACHER]
    assert [e.detail for e in await rig.events(number, "assign")] == ["王老师: 请今天联系学员"]

    # A manager, from the managers' chat, by staff id.
    answer = await rig.say(MANAGERS_CHAT, MANAGER, f"/assign {number} {rig.staff_ids[HEAD]}")
    assert "assigned to 张主任 by 陈经理" in answer
    assert (await rig.ticket(number)).owner_staff_id == rig.staff_ids[HEAD]


async def test_assign_to_a_department_transfers(rig: Rig) -> None:
    number = await rig.complain(LEARNER, TEACHING)
    answer = await rig.say(TEACHING_CHAT, TEACHER, f"/assign {number} finance 其实是退费问题")
    assert answer.startswith("✅") and "transferred to finance" in answer
    ticket = await rig.ticket(number)
    assert (ticket.department, ticket.status) == ("finance", "routed")
    assert [e.detail for e in await rig.events(number, "transfer")] == ["finance: 其实是退费问题"]

    # Now it is finance's: the teaching staff member can no longer move it.
    refused = await rig.say(TEACHING_CHAT, TEACHER, f"/assign {number} teaching")
    assert refused.startswith("⛔") and "belongs to the finance department" in refused
    assert (await rig.ticket(number)).department == "finance"

    # /transfer says the same: the department, then why.
    other = await rig.complain(OTHER_LEARNER, "老师讲课太快，根本听不懂，教学质量差")
    assert "transfer by 王老师" in await rig.say(
        TEACHING_CHAT, TEACHER, f"/transfer {other} academic 排课问题"
    )
    assert [e.detail for e in await rig.events(other, "transfer")] == ["academic: 排课问题"]


async def test_mine_overdue_and_stats(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    claimed = await rig.complain(LEARNER, TEACHING)
    waiting = await rig.complain(OTHER_LEARNER, "老师讲课太快，根本听不懂，教学质量差")
    fees = await rig.complain(5003, FEES)
    assert (await rig.ticket(fees)).department == "finance"
    assert (await rig.say(TEACHING_CHAT, TEACHER, f"/claim {claimed}")).startswith("✅")
    rig.clock[0] = at("2026-11-23 15:00")  # the claim deadlines (1 working hour) have passed

    mine = await rig.say(TEACHING_CHAT, TEACHER, "/mine")
    assert claimed in mine and waiting not in mine and "investigate due" in mine and "⏰" not in mine
    assert await rig.say(TEACHING_CHAT, HEAD, "/mine") == "张主任: no open tickets of yours."

    overdue = await rig.say(TEACHING_CHAT, TEACHER, "/overdue")
    assert waiting in overdue and claimed not in overdue and fees not in overdue
    assert "claim due" in overdue and "⏰ OVERDUE" in overdue and len(overdue.splitlines()) == 2
    everything = await rig.say(MANAGERS_CHAT, MANAGER, "/overdue")
    assert waiting in everything and fees in everything and claimed not in everything

    stats = await rig.say(TEACHING_CHAT, HEAD, "/stats")
    assert stats == "teaching: open 2 (routed 1, investigating 1) · overdue 1 · closed 0"
    stats = await rig.say(MANAGERS_CHAT, MANAGER, "/stats")
    assert (
        stats.splitlines()[0] == "all departments: open 3 (routed 2, investigating 1) · overdue 2 · closed 0"
    )
    assert "finance: open 1 (routed 1) · overdue 1 · closed 0" in stats.splitlines()

    monkeypatch.setattr(staff_queries, "LIST_LIMIT", 1)
    short = await rig.say(MANAGERS_CHAT, MANAGER, "/overdue")
    assert len(short.splitlines()) == 3 and short.endswith("…and 1 more")

    assert "Not registered as staff" in await rig.say(TEACHING_CHAT, STRANGER, "/mine")
    assert "not one of yours" in await rig.say(STAFF_CHAT, TEACHER, "/stats")
    assert "Unknown command /frobnicate" in await rig.say(TEACHING_CHAT, TEACHER, "/frobnicate")


async def test_show_full_is_for_the_owner_and_managers_and_is_audited(rig: Rig) -> None:
    number = await rig.complain(
        LEARNER, TEACHING + "，请打电话13812345678", first_name="Ming", last_name="Li"
    )
    masked = await rig.say(TEACHING_CHAT, TEACHER, f"/show {number}")
    assert "138****5678" in masked and "13812345678" not in masked and "Ming" not in masked

    refused = await rig.say(TEACHING_CHAT, TEACHER, f"/show {number} full")
    assert refused.startswith("⛔") and "13812345678" not in refused and "Ming" not in refused
    assert await rig.events(number, "disclosed") == []

    await rig.say(TEACHING_CHAT, TEACHER, f"/claim {number}")
    said = await rig.say(TEACHING_CHAT, TEACHER, f"/show {number} full")
    # The group sees only that it went out privately; the owner's private chat gets the data.
    assert said.startswith("🔒") and "13812345678" not in said and "Ming" not in said
    assert not any("13812345678" in t for t in rig.botapi.texts_to(TEACHING_CHAT))
    full = rig.botapi.texts_to(TEACHER)[-1]
    assert "name: Ming Li" in full and "13812345678" in full and "recorded" in full
    async with rig.core.sessions() as session:  # not kept in clear once delivered
        kept = (await session.scalars(select(OutboxRow).where(OutboxRow.key.like("%:show-full")))).all()
    assert kept and all("13812345678" not in str(row.payload) for row in kept)
    [disclosed] = await rig.events(number, "disclosed")
    assert disclosed.actor.startswith("王老师") and "/show full" in (disclosed.detail or "")

    card = rig.botapi.messages_to(TEACHING_CHAT)[0]["message_id"]
    refused = await rig.say(TEACHING_CHAT, HEAD, "/show full", reply_to_message_id=card)
    assert refused.startswith("⛔") and "owner" in refused and "13812345678" not in refused
    assert (await rig.say(MANAGERS_CHAT, MANAGER, f"/show {number} full")).startswith("🔒")
    assert "13812345678" in rig.botapi.texts_to(MANAGER)[-1]
    assert [e.actor.split()[0] for e in await rig.events(number, "disclosed")] == ["王老师", "陈经理"]


async def test_log_opens_a_ticket_with_the_staff_member_as_first_contact(rig: Rig) -> None:
    for bad in ("/log fax 13800138000 投诉", "/log phone 小王 投诉", "/log walk-in 13800138000"):
        assert (await rig.say(TEACHING_CHAT, TEACHER, bad)).startswith("⚠️"), bad
    refused = await rig.say(TEACHING_CHAT, STRANGER, f"/log walk-in 13800138000 {TEACHING}")
    assert "Not registered as staff" in refused
    assert await rig.tickets() == 0

    update = rig.botapi.group_message(TEACHING_CHAT, TEACHER, f"/log walk-in 138-0013-8000 {TEACHING}")
    await rig.round()
    answer = rig.answer_to(TEACHING_CHAT, update)
    numbers = find_ticket_numbers(answer)
    assert answer.startswith("✅") and numbers and "138****8000" in answer
    number = str(numbers[0])
    assert any(text.startswith(f"🆕 {number}") for text in rig.botapi.texts_to(TEACHING_CHAT))  # its card
    async with rig.core.sessions() as session:
        ticket = await get_ticket(session, number)
        view = await ticket_view(rig.core, session, ticket, rig.now)
        learner = await session.get_one(Learner, ticket.learner_id)
        assert rig.core.vault.decrypt(learner.phone_enc or "") == "13800138000"
    assert (view["channel"], view["first_contact"], view["department"]) == ("staff", "王老师", "teaching")
    # Acknowledged in person by whoever took it: nothing is queued for a learner the bot cannot reach.
    assert [o["kind"] for o in view["outbox"] if o["kind"] in ("ack", "ask")] == []
    assert next(c for c in view["clocks"] if c["stage"] == "acknowledge")["met_at"] is not None
    assert [e.detail for e in await rig.events(number, "first_contact")] == ["王老师 logged it (walk-in)"]

    # Telegram delivers the same update again (the offset write was lost): nothing new.
    sent = len(rig.botapi.calls_of("sendMessage"))
    await set_state(rig.core.sessions, OFFSET_KEY, str(update["update_id"]), rig.now)
    await rig.round()
    assert rig.botapi.deliveries.count(update["update_id"]) == 2
    assert await rig.tickets() == 1 and len(await rig.events(number, "first_contact")) == 1
    assert len(rig.botapi.calls_of("sendMessage")) == sent

    mine = await rig.say(TEACHING_CHAT, TEACHER, "/mine")
    assert f"{number} · routed · teaching" in mine and "(first contact)" in mine

    # The bot has no way to a phone number: a reply is refused, and nothing is recorded.
    refused = await rig.say(TEACHING_CHAT, TEACHER, f"/reply {number} 您好")
    assert refused.startswith("⚠️") and "call the learner back" in refused
    assert await rig.events(number, "reply") == []


async def _card_in_topic(rig: Rig, number: str) -> int:
    """The ticket's card posted in its own forum topic, as the staff sink records it."""
    rig.botapi.add_chat(TEACHING_CHAT, is_forum=True)
    topic = await rig.bot.create_forum_topic(TEACHING_CHAT, number)
    thread = topic.message_thread_id
    posted = await rig.bot.send_message(TEACHING_CHAT, f"card {number}", message_thread_id=thread)
    ticket = await rig.ticket(number)
    async with rig.core.sessions() as session, session.begin():
        session.add(
            OutboxRow(
                key=f"test:card:{number}",
                ticket_id=ticket.id,
                channel="staff",
                recipient_enc=rig.core.vault.encrypt(ticket.department),
                kind="card",
                payload={"text": f"card {number}", "meta": {"ticket_number": number}},
                status="sent",
                attempts=1,
                next_attempt_at=rig.now,
                created_at=rig.now,
                sent_at=rig.now,
                external_ref=f"{TEACHING_CHAT}:{posted.message_id}",
                external_thread=f"{TEACHING_CHAT}:{thread}",
            )
        )
    return thread


async def test_in_a_ticket_topic_commands_need_no_number_and_text_reaches_the_learner(rig: Rig) -> None:
    number = await rig.complain(LEARNER, TEACHING)
    thread = await _card_in_topic(rig, number)
    to_learner = len(rig.botapi.texts_to(LEARNER))

    assert await rig.say(TEACHING_CHAT, STRANGER, "我也想说两句", thread_id=thread) == ""
    assert "Not registered as staff" in await rig.say(TEACHING_CHAT, STRANGER, "/claim", thread_id=thread)
    assert (await rig.ticket(number)).status == "routed"

    assert "claim by 王老师" in await rig.say(TEACHING_CHAT, TEACHER, "/claim", thread_id=thread)
    answer = await rig.say(TEACHING_CHAT, TEACHER, "您好，我们已安排下周补课两次。", thread_id=thread)
    assert answer.startswith("✅") and "sent to the learner" in answer
    assert rig.botapi.texts_to(LEARNER)[-1] == f"【{number}】您好，我们已安排下周补课两次。"
    assert [e.detail for e in await rig.events(number, "reply")] == ["您好，我们已安排下周补课两次。"]

    assert "note by 王老师" in await rig.say(
        TEACHING_CHAT, TEACHER, "/note 已与任课老师谈话", thread_id=thread
    )
    assert [e.detail for e in await rig.events(number, "note")] == ["已与任课老师谈话"]
    assert (await rig.say(TEACHING_CHAT, TEACHER, "/show full", thread_id=thread)).startswith("🔒")
    full = rig.botapi.texts_to(TEACHER)[-1]  # privately, never in the topic
    assert f"reply, telegram] 【{number}】您好" in full and f"learner, telegram] {TEACHING}" in full
    assert "投诉接收确认" not in full  # the bot's standard texts are not what staff need to read
    assert len(await rig.events(number, "disclosed")) == 1

    # Talk outside the ticket's topic is not for the learner, nor is the head's plain text in another chat.
    assert await rig.say(TEACHING_CHAT, TEACHER, "大家下午好") == ""
    assert await rig.say(TEACHING_CHAT, TEACHER, "别的话题", thread_id=thread + 50) == ""
    assert len(rig.botapi.texts_to(LEARNER)) == to_learner + 1

    # The reply's update delivered again (the offset write was lost): nothing is sent or recorded twice.
    update = rig.botapi.group_message(TEACHING_CHAT, TEACHER, "补课时间另行通知。", thread_id=thread)
    await rig.round()
    sent = len(rig.botapi.calls_of("sendMessage"))
    await set_state(rig.core.sessions, OFFSET_KEY, str(update["update_id"]), rig.now)
    await rig.round()
    assert rig.botapi.deliveries.count(update["update_id"]) == 2
    assert len(rig.botapi.calls_of("sendMessage")) == sent
    assert rig.botapi.texts_to(LEARNER)[-1] == f"【{number}】补课时间另行通知。"
    assert len(await rig.events(number, "reply")) == 2

    # A staff member of another department may not answer in this topic.
    refused = await rig.say(TEACHING_CHAT, CASHIER, "我来回复", thread_id=thread)
    assert refused.startswith("⛔") and "not one of yours" in refused
    assert len(await rig.events(number, "reply")) == 2


async def test_card_says_why_and_a_guess_goes_to_learner_services_to_check(rig: Rig) -> None:
    number = await rig.complain(LEARNER, TEACHING)
    card = next(t for t in rig.botapi.texts_to(TEACHING_CHAT) if number in t)
    assert "依据：teaching: " in card and "讲课" in card and "请核对分类" not in card

    # Nothing in the text points to a category: learner services (the first contact) is asked to check.
    guess = await rig.complain(OTHER_LEARNER, "你好，在吗？有件事情想说一下")
    ticket = await rig.ticket(guess)
    assert (ticket.department, ticket.category_unsure) == ("service", True)
    card = next(t for t in rig.botapi.texts_to(STAFF_CHAT) if guess in t)
    assert "❓ 请核对分类" in card and "(a guess)" in card


async def test_severity_command_corrects_alerts_and_is_recorded(rig: Rig) -> None:
    number = await rig.complain(LEARNER, TEACHING)
    assert (await rig.ticket(number)).severity == "general"

    bad = await rig.say(TEACHING_CHAT, TEACHER, f"/severity {number} urgent")
    assert bad.startswith("⚠️") and "general or major" in bad
    refused = await rig.say(STAFF_CHAT, CASHIER, f"/severity {number} major")
    assert refused.startswith("⛔")
    assert (await rig.ticket(number)).severity == "general"

    answer = await rig.say(TEACHING_CHAT, TEACHER, f"/severity {number} major 全班都受影响")
    assert answer.startswith("✅") and "severity major" in answer
    assert (await rig.ticket(number)).severity == "major"
    [detail] = [e.detail for e in await rig.events(number, "severity")]
    assert detail.startswith("general -> major; claim due") and detail.endswith(": 全班都受影响")
    assert any(number in text for text in rig.botapi.texts_to(MANAGERS_CHAT))  # as a major one at entry
    card = next(t for t in rig.botapi.texts_to(TEACHING_CHAT) if number in t and "依据" in t)
    assert "severity general -> major by 王老师" in card

    again = await rig.say(TEACHING_CHAT, TEACHER, f"/severity {number} major")
    assert again.startswith("⚠️") and "already major" in again


async def test_transfer_corrects_the_category_and_corrections_export_as_examples(rig: Rig) -> None:
    number = await rig.complain(LEARNER, TEACHING)
    await rig.say(TEACHING_CHAT, TEACHER, f"/transfer {number} finance 其实是退费问题")
    ticket = await rig.ticket(number)
    assert (ticket.department, ticket.category) == ("finance", "fees")
    # compliance takes no category of its own: a transfer there leaves the category alone.
    other = await rig.complain(OTHER_LEARNER, FEES)
    await rig.say(STAFF_CHAT, CASHIER, f"/transfer {other} compliance")
    assert (await rig.ticket(other)).category == "fees"
    await rig.say(MANAGERS_CHAT, MANAGER, f"/severity {number} major")

    async with rig.core.sessions() as session:
        examples = await export_rows(session, rig.core.vault)
    assert [(e["ticket"], e["field"], e["classified"], e["corrected"]) for e in examples] == [
        (number, "category", "teaching", "fees"),
        (number, "severity", "general", "major"),
    ]
    first = examples[0]
    assert first["text"] == TEACHING and first["actor"].startswith("王老师")
    assert first["features"]["language"] == "zh"
    assert "keyword 讲课 (3) -> teaching" in first["features"]["reasons"]


async def test_managers_get_the_report_and_grades_staff_their_own_month(rig: Rig) -> None:
    claimed = await rig.complain(LEARNER, TEACHING)
    await rig.complain(OTHER_LEARNER, "老师讲课太快，根本听不懂，教学质量差")
    assert (await rig.say(TEACHING_CHAT, TEACHER, f"/claim {claimed}")).startswith("✅")
    rig.clock[0] = at("2026-11-23 15:00")

    stats = await rig.say(TEACHING_CHAT, TEACHER, "/stats")
    assert stats.splitlines()[0].startswith("teaching: open 2")
    assert stats.splitlines()[1] == (
        "You, 2026-11: 1 owned, 0 closed · deadlines met 100% (4/4) · follow-ups done - (0/0) · "
        "mean satisfaction -"
    )

    update = rig.botapi.group_message(MANAGERS_CHAT, MANAGER, "/report 2026-11")
    await rig.round()
    asked = update["message"]["message_id"]
    [answer] = [
        m
        for m in rig.botapi.messages_to(MANAGERS_CHAT)
        if m.get("reply_to_message", {}).get("message_id") == asked
    ]
    assert answer["document"]["file_name"] == "report-2026-11.pdf"
    assert "2026-11 月报 monthly report" in answer["caption"] and "received 2" in answer["caption"]
    assert rig.botapi.files[answer["document"]["file_id"]].content.startswith(b"%PDF")

    credit = await rig.say(MANAGERS_CHAT, MANAGER, "/credit 2026Q4")
    assert credit.splitlines()[0] == "Credit 2026Q4 (provisional: the quarter is not over)"
    assert "not_graded" in credit and "教学部" in credit

    assert (await rig.say(TEACHING_CHAT, HEAD, "/report")) == "⛔ /report is for managers."
    assert (await rig.say(TEACHING_CHAT, TEACHER, "/credit")) == "⛔ /credit is for managers."
    assert "YYYY-MM" in await rig.say(MANAGERS_CHAT, MANAGER, "/report November")
    assert "YYYYQn" in await rig.say(MANAGERS_CHAT, MANAGER, "/credit 2026Q5")
