"""The second instance (上级渠道): a learner unhappy with the result gets a linked ticket at compliance."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.intake.intake import Intake, IntakeResult
from core.storage.models import Event, Ticket
from core.tickets.moves import apply_move, staff_actor
from core.tickets.queries import get_ticket
from core.tickets.second_instance import open_second_instance
from core.tickets.staff import add_staff
from core.tickets.views import ticket_view
from core.tickets.workflow import LEARNER, Actor, NotAllowed, WorkflowError
from tests.conftest import at

TEACHING = "老师上课总是迟到，讲课照本宣科，教学质量很差"
CHAT = "chat-1"
OWNER_TELEGRAM = "9001"


async def say(
    intake: Intake, channel: FakeChannel, text: str, now: datetime, chat: str = CHAT
) -> IntakeResult:
    return await intake.receive(channel.message(chat, text, now), now)


async def complaint(
    core: CoreContext, intake: Intake, channel: FakeChannel, now: datetime, *moves: tuple[str, str | None]
) -> str:
    """A teaching complaint that 王老师 (Telegram id 9001) has taken through `moves`."""
    number = (await say(intake, channel, TEACHING, now)).ticket_number
    async with core.sessions() as session, session.begin():
        teacher = await add_staff(
            session, name="王老师", department="teaching", role="staff", now=now, telegram_id=OWNER_TELEGRAM
        )
        ticket = await get_ticket(session, number)
        for action, detail in moves:
            await apply_move(core, session, ticket, action, staff_actor(teacher), now, detail=detail)
    return number


async def show(core: CoreContext, number: str, now: datetime) -> dict[str, Any]:
    async with core.sessions() as session:
        return await ticket_view(core, session, await get_ticket(session, number), now)


async def tickets(core: CoreContext) -> int:
    async with core.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Ticket)) or 0


async def test_appeal_opens_a_linked_compliance_ticket_and_tells_owner_and_managers(
    core: CoreContext,
    intake: Intake,
    dispatcher: Dispatcher,
    learner_channel: FakeChannel,
    staff_channel: FakeChannel,
) -> None:
    number = await complaint(
        core, intake, learner_channel, at("2026-11-23 10:00"), ("claim", None), ("resolve", "已补课一次")
    )
    now = at("2026-11-24 10:00")
    result = await say(intake, learner_channel, "我要上级投诉", now)

    assert result.act == "appeal" and result.ticket_number == number
    original = await show(core, number, now)
    [review] = original["second_instances"]
    child = await show(core, str(review), now)
    assert (child["department"], child["status"], child["parent"]) == ("compliance", "routed", number)
    assert (child["category"], child["summary"]) == (original["category"], original["summary"])
    claim = {c["stage"]: c for c in child["clocks"]}["claim"]
    assert claim["due_at"] == "2026-11-24T11:00:00+08:00" and claim["met_at"] is None  # same clocks: 1 h
    assert "appealed" in [e["action"] for e in original["events"]]
    assert child["events"][0]["detail"] == f"second instance of {number}"
    # The original stays as it was: the review is a ticket of its own.
    assert original["status"] == "awaiting_confirmation"

    await dispatcher.drain(now)
    ack = learner_channel.texts_to(CHAT)[-1]
    assert str(review) in ack and number in ack and "合规审核部" in ack
    card = [m for m in staff_channel.sent if m.kind == "card" and m.recipient == "compliance"]
    assert len(card) == 1 and str(review) in card[0].text
    to_owner = learner_channel.texts_to(OWNER_TELEGRAM)  # the owner privately, by their Telegram id
    assert len(to_owner) == 1 and str(review) in to_owner[0] and "已补课一次" not in to_owner[0]
    to_managers = [m.text for m in staff_channel.sent if m.recipient == "managers"]
    assert any(str(review) in text and number in text for text in to_managers)
    reviewer = [
        m.text for m in staff_channel.sent if m.recipient == "compliance" and m.kind == "notice-staff"
    ]
    assert len(reviewer) == 1 and "已补课一次" in reviewer[0] and "我要上级投诉" in reviewer[0]

    # Asking again answers with the same number and opens nothing.
    again = await say(intake, learner_channel, "/appeal", at("2026-11-24 11:00"))
    assert again.act == "appeal" and str(review) in again.replies[-1]
    assert await tickets(core) == 2


async def test_appeal_before_the_result_is_refused_with_the_reason(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await complaint(core, intake, learner_channel, at("2026-11-23 10:00"), ("claim", None))
    result = await say(intake, learner_channel, "/appeal 太慢了", at("2026-11-23 11:00"))

    assert result.act == "refused" and result.ticket_number == number
    assert "仍在处理中" in result.replies[-1] and "调查核实中" in result.replies[-1]
    assert await tickets(core) == 1


async def test_appeal_after_a_low_score_reopened_the_ticket(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await complaint(
        core, intake, learner_channel, at("2026-11-23 10:00"), ("claim", None), ("resolve", "已补课一次")
    )
    await say(intake, learner_channel, "确认", at("2026-11-23 11:00"))
    await say(intake, learner_channel, "1", at("2026-11-23 12:00"))
    assert (await show(core, number, at("2026-11-23 12:00")))["status"] == "investigating"

    # The offer made with the low score holds although the ticket is open again.
    result = await say(intake, learner_channel, f"{number} appeal", at("2026-11-23 13:00"))
    assert result.act == "appeal"
    assert len((await show(core, number, at("2026-11-23 13:00")))["second_instances"]) == 1


async def test_only_the_learner_of_the_ticket_may_ask_and_a_review_is_final(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await complaint(
        core, intake, learner_channel, at("2026-11-23 10:00"), ("claim", None), ("resolve", "已补课一次")
    )
    now = at("2026-11-23 11:00")
    async with core.sessions() as session, session.begin():
        ticket = await get_ticket(session, number)
        manager = await add_staff(session, name="陈经理", department="service", role="manager", now=now)
        try:
            await open_second_instance(core, session, ticket, now, None, actor=staff_actor(manager))
        except NotAllowed as exc:
            assert "only the learner" in str(exc)
        else:
            raise AssertionError("staff opened a second instance")

    review = await say(intake, learner_channel, "上级复核", now)
    async with core.sessions() as session, session.begin():
        child = await session.scalar(select(Ticket).where(Ticket.parent_id.is_not(None)))
        assert child is not None
        events = await session.scalar(
            select(func.count()).select_from(Event).where(Event.ticket_id == child.id)
        )
        assert events and review.act == "appeal"
        learner_actor = Actor(kind=LEARNER, name="learner", role=LEARNER, learner_id=child.learner_id)
        try:
            await open_second_instance(core, session, child, now, None, actor=learner_actor)
        except WorkflowError as exc:
            assert "itself the second instance" in str(exc)
        else:
            raise AssertionError("a second instance of a second instance")
