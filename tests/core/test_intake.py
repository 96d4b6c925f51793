"""Intake: a complaint in, a ticket with number, routing, clocks, acknowledgement and staff card out."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import func, select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.intake.intake import Intake
from core.intake.kept_aside import IdReused
from core.storage.delivery_models import OutboxRow, Unparsed
from core.storage.models import Learner, Message, Ticket
from core.storage.numbers import TicketNumber
from core.tickets.queries import get_ticket
from core.tickets.views import ticket_view
from tests.conftest import at


async def test_complaint_opens_routed_ticket_with_ack_and_card(
    intake: Intake,
    core: CoreContext,
    dispatcher: Dispatcher,
    learner_channel: FakeChannel,
    staff_channel: FakeChannel,
) -> None:
    now = at("2026-11-23 10:00")
    msg = learner_channel.message(
        "chat-1", "我要退费！交了3000元，机构一直拖着不退。", now, sender_name="李明"
    )
    result = await intake.receive(msg, now)

    assert result.created and not result.duplicate
    number = TicketNumber.parse(result.ticket_number)
    assert str(number) == "TS-261123-00016"  # first of the day; Damm digit of 2611230001 is 6
    async with core.sessions() as session:
        ticket = await get_ticket(session, result.ticket_number)
        view = await ticket_view(core, session, ticket, now)
    assert (view["category"], view["severity"], view["department"]) == ("fees", "major", "finance")
    assert view["status"] == "routed" and view["first_contact"] == "service"
    stages = {c["stage"]: c for c in view["clocks"]}
    assert stages["claim"]["met_at"] is None
    assert stages["claim"]["due_at"] == "2026-11-23T10:30:00+08:00"  # major: half an hour to claim
    assert stages["route"]["met_at"] is not None
    assert [e["action"] for e in view["events"]][:3] == ["received", "classified", "routed"]

    await dispatcher.drain(now)
    ack, ask = learner_channel.texts_to("chat-1")
    assert result.ticket_number in ack and "隐私" in ack and "上级" in ack
    assert "课程" in ask
    cards = [m for m in staff_channel.sent if m.kind == "card"]
    assert [c.recipient for c in cards] == ["finance"]
    assert result.ticket_number in cards[0].text and "李*" in cards[0].text and "李明" not in cards[0].text
    alerts = [m for m in staff_channel.sent if m.kind == "alert"]
    assert [a.recipient for a in alerts] == ["managers"]
    async with core.sessions() as session:
        view = await ticket_view(core, session, await get_ticket(session, result.ticket_number), now)
    assert {c["stage"]: c["met_at"] for c in view["clocks"]}["acknowledge"] is not None


async def test_english_complaint_gets_english_ack(
    intake: Intake, dispatcher: Dispatcher, learner_channel: FakeChannel
) -> None:
    now = at("2026-11-23 10:00")
    msg = learner_channel.message(
        "chat-2", "The teacher keeps skipping chapters and the materials are outdated.", now
    )
    result = await intake.receive(msg, now)
    await dispatcher.drain(now)
    ack = learner_channel.texts_to("chat-2")[0]
    assert ack.startswith("Complaint received") and result.ticket_number in ack
    assert "3 working days" in ack and "Privacy" in ack


async def test_redelivery_returns_same_ticket_and_creates_nothing(
    intake: Intake, core: CoreContext, learner_channel: FakeChannel
) -> None:
    now = at("2026-11-23 10:00")
    msg = learner_channel.message("chat-1", "老师上课总是迟到", now, external_id="upd-77")
    first = await intake.receive(msg, now)
    counts_after_first = await _counts(core)
    again = await intake.receive(msg, now)
    assert again.duplicate and again.ticket_number == first.ticket_number
    assert again.replies == first.replies and again.reply_keys == first.reply_keys
    assert await _counts(core) == counts_after_first
    assert counts_after_first[0] == 1


async def _counts(core: CoreContext) -> tuple[int, ...]:
    async with core.sessions() as session:
        return tuple(
            [
                await session.scalar(select(func.count()).select_from(t)) or 0
                for t in (Ticket, Message, OutboxRow)
            ]
        )


async def test_a_platform_id_reused_by_another_sender_is_kept_not_mistaken_for_a_redelivery(
    intake: Intake, core: CoreContext, learner_channel: FakeChannel
) -> None:
    now = at("2026-11-23 10:00")
    first = await intake.receive(
        learner_channel.message("chat-1", "老师上课总是迟到", now, external_id="17"), now
    )
    other = learner_channel.message("chat-2", "退费三个月没到账", now, external_id="17")
    with pytest.raises(IdReused, match="already used by another sender") as refused:
        await intake.receive(other, now)
    async with core.sessions() as session:
        kept = await session.get_one(Unparsed, refused.value.unparsed_id)
        tickets = (await session.scalars(select(Ticket.number))).all()
    assert "退费三个月没到账" in core.vault.decrypt(kept.raw_enc)
    assert tickets == [first.ticket_number]  # the other learner got no one else's ticket


async def test_overlong_or_nul_platform_ids_still_dedupe(
    intake: Intake, learner_channel: FakeChannel
) -> None:
    now = at("2026-11-23 10:00")
    long_id = "<" + "x" * 400 + "@mail.example.com>"
    for external_id in (long_id, "id-with-\x00-nul"):
        msg = learner_channel.message(
            f"chat-{len(external_id)}", "老师迟到\x00了", now, external_id=external_id
        )
        first = await intake.receive(msg, now)
        again = await intake.receive(msg, now)
        assert first.created and again.duplicate and again.ticket_number == first.ticket_number


async def test_missing_details_are_asked_and_recorded(
    intake: Intake, core: CoreContext, dispatcher: Dispatcher, learner_channel: FakeChannel
) -> None:
    now = at("2026-11-23 10:00")
    first = await intake.receive(learner_channel.message("chat-9", "班主任态度很差，问什么都不回", now), now)
    for answer in ("Python 全栈班", "希望更换班主任", "138 1234 8000"):
        result = await intake.receive(learner_channel.message("chat-9", answer, now), now)
        assert result.ticket_number == first.ticket_number and not result.created
    await dispatcher.drain(now)
    texts = learner_channel.texts_to("chat-9")
    assert "课程" in texts[1] and "处理" in texts[2] and "电话" in texts[3] and "已记录" in texts[4]
    async with core.sessions() as session:
        ticket = await get_ticket(session, first.ticket_number)
        learner = await session.get_one(Learner, ticket.learner_id)
        assert (ticket.course, ticket.expected_resolution) == ("Python 全栈班", "希望更换班主任")
        assert ticket.awaiting_field is None
        assert ticket.contact_enc is not None and core.vault.decrypt(ticket.contact_enc) == "138 1234 8000"
        # A typed number is the ticket's contact, never a key that links learners together.
        assert learner.phone_index is None
    # Once the details are complete, a new message is a new complaint.
    later = await intake.receive(learner_channel.message("chat-9", "另外，教室空调坏了", now), now)
    assert later.created and later.ticket_number != first.ticket_number


async def test_explicit_number_continues_only_the_learners_own_ticket(
    intake: Intake, core: CoreContext, learner_channel: FakeChannel
) -> None:
    now = at("2026-11-23 10:00")
    mine = await intake.receive(learner_channel.message("chat-1", "退费申请被拒", now, new_ticket=True), now)
    await intake.receive(learner_channel.message("chat-1", "skip", now), now)
    await intake.receive(learner_channel.message("chat-1", "skip", now), now)
    await intake.receive(learner_channel.message("chat-1", "skip", now), now)
    follow = await intake.receive(
        learner_channel.message("chat-1", f"关于 {mine.ticket_number} 补充一下", now), now
    )
    assert follow.ticket_number == mine.ticket_number and not follow.created
    # Someone else quoting that number gets a ticket of their own, not a view of this one.
    stranger = await intake.receive(
        learner_channel.message("chat-2", f"{mine.ticket_number} 我也是", now), now
    )
    assert stranger.created and stranger.ticket_number != mine.ticket_number


async def test_reply_to_our_message_continues_the_ticket(
    intake: Intake, dispatcher: Dispatcher, learner_channel: FakeChannel
) -> None:
    now = at("2026-11-23 10:00")
    first = await intake.receive(learner_channel.message("chat-5", "老师讲课太快听不懂", now), now)
    second = await intake.receive(
        learner_channel.message("chat-5", "新的投诉：前台态度恶劣", now, new_ticket=True), now
    )
    assert second.created
    await dispatcher.drain(now)
    ack_ref = "telegram-out-1"  # the platform id of the first acknowledgement the fake channel sent
    reply = learner_channel.message("chat-5", "补充：第三章完全没讲", now, reply_to=ack_ref)
    result = await intake.receive(reply, now)
    assert result.ticket_number == first.ticket_number


async def test_an_intake_abandoned_by_its_caller_still_commits_once(
    intake: Intake, core: CoreContext, learner_channel: FakeChannel
) -> None:
    """A webhook that stops waiting (WeChat's 5 s) must neither lose the complaint nor block the next one."""
    now = at("2026-11-23 10:00")
    msg = learner_channel.message("chat-1", "老师上课总是迟到", now, external_id="m-1")
    task = asyncio.create_task(intake.receive(msg, now))
    await asyncio.sleep(0)  # let it start, then give up on it
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    redelivered = await asyncio.wait_for(intake.receive(msg, now), timeout=30)
    following = await intake.receive(learner_channel.message("chat-2", "前台态度差", now), now)
    assert following.created
    tickets, _, _ = await _counts(core)
    assert tickets == 2  # the abandoned complaint exactly once, whether it had committed or not
    assert redelivered.ticket_number != following.ticket_number


async def test_a_shared_contact_answers_the_phone_question(
    intake: Intake, core: CoreContext, learner_channel: FakeChannel
) -> None:
    now = at("2026-11-23 10:00")
    first = await intake.receive(learner_channel.message("chat-3", "教室太吵，没法上课", now), now)
    await intake.receive(learner_channel.message("chat-3", "跳过", now), now)  # course
    await intake.receive(learner_channel.message("chat-3", "跳过", now), now)  # expected resolution
    # The phone question, answered with the platform's "share my contact" button: no text, a phone.
    await intake.receive(learner_channel.message("chat-3", "", now, phone="+8613812348000"), now)
    async with core.sessions() as session:
        ticket = await get_ticket(session, first.ticket_number)
    assert ticket.contact_enc is not None and core.vault.decrypt(ticket.contact_enc) == "+8613812348000"
    assert (ticket.course, ticket.expected_resolution, ticket.awaiting_field) == ("", "", None)


async def test_a_very_long_complaint_is_classified_off_the_event_loop_and_taken_whole(
    core: CoreContext, intake: Intake
) -> None:
    # 100,000 characters (a pasted chat log): classified in a thread, the same result as inline.
    text = "".join(f"第{i}次催退费：退费申请三个月了还没到账，学费一直不退。\n" for i in range(3_000))
    now = at("2026-11-23 10:00")
    result = await intake.receive(FakeChannel("telegram").message("long-1", text, now), now)
    assert result.created
    async with core.sessions() as session:
        ticket = await get_ticket(session, result.ticket_number)
        stored = await session.scalar(select(Message.text_enc).where(Message.ticket_id == ticket.id))
    assert ticket.category == "fees"
    assert stored is not None and core.vault.decrypt(stored) == text
