"""Machine-written mail and e-mail threads in the core: robots are recorded, never answered; a reply
anywhere in a thread finds its ticket; a reply into someone else's thread opens a ticket with a link."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.intake.intake import Intake
from core.intake.kept_aside import NotAComplaint
from core.storage.delivery_models import OutboxRow, Unparsed
from core.storage.models import Event, Ticket
from core.tickets.queries import get_ticket
from tests.conftest import at

NOW = at("2026-11-23 10:00")


async def _ack_ref(core: CoreContext, mail: FakeChannel, number: str) -> str:
    """The Message-ID our acknowledgement went out with (the sender's reference for it)."""
    await Dispatcher(core.sessions, core.vault, {"email": mail}).drain(NOW)
    async with core.sessions() as session:
        ticket = await get_ticket(session, number)
        ref = await session.scalar(
            select(OutboxRow.external_ref).where(OutboxRow.ticket_id == ticket.id, OutboxRow.kind == "ack")
        )
    assert ref
    return ref


async def _count(core: CoreContext, model: type[Ticket] | type[Unparsed] | type[OutboxRow]) -> int:
    async with core.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_an_out_of_office_reply_and_a_bounce_join_the_ticket_and_get_no_answer(
    core: CoreContext, intake: Intake
) -> None:
    mail = FakeChannel("email")
    first = await intake.receive(mail.message("li@example.cn", "老师上课总是迟到", NOW), NOW)
    ack = await _ack_ref(core, mail, first.ticket_number)
    outbox_before = await _count(core, OutboxRow)
    away = mail.message(
        "li@example.cn",
        "我正在休假，11月30日回来。",
        NOW,
        reply_to=ack,
        auto_reply="Auto-Submitted: auto-replied",
    )
    bounce = mail.message(
        "MAILER-DAEMON@mx.example.cn",
        "Delivery failed",
        NOW,
        references=("<x@y>", ack),
        auto_reply="delivery-status report",
    )
    for message in (away, bounce):
        result = await intake.receive(message, NOW)
        assert result.ticket_number == first.ticket_number and not result.created and result.replies == ()
    # Nothing went to the robots: only the staff notices of the two messages were queued.
    async with core.sessions() as session:
        added = (await session.scalars(select(OutboxRow).order_by(OutboxRow.id).offset(outbox_before))).all()
        details = [e.detail for e in await session.scalars(select(Event).where(Event.action == "message"))]
    assert [row.channel for row in added] == ["staff", "staff"]
    assert details == ["automatic: Auto-Submitted: auto-replied", "automatic: delivery-status report"]
    assert await _count(core, Ticket) == 1


async def test_a_list_post_about_nothing_is_kept_for_staff_not_made_a_ticket(
    core: CoreContext, intake: Intake
) -> None:
    mail = FakeChannel("email")
    post = mail.message("news@lists.example.cn", "本周课程优惠", NOW, auto_reply="List-Id: <news.example.cn>")
    with pytest.raises(NotAComplaint) as kept:
        await intake.receive(post, NOW)
    assert await _count(core, Ticket) == 0
    async with core.sessions() as session:
        row = await session.get_one(Unparsed, kept.value.unparsed_id)
        notice = await session.scalar(select(OutboxRow).where(OutboxRow.key == f"unparsed:{row.id}"))
    assert "List-Id" in row.reason
    # Kept, but no notice is sent: mailed to a desk that reads this very mailbox, a notice about a
    # robot's mail would come back as a robot's mail, and again, for ever.
    assert notice is None
    with pytest.raises(NotAComplaint):  # delivered again: still one record
        await intake.receive(post, NOW)
    assert await _count(core, Unparsed) == 1


async def test_a_reply_deep_in_the_thread_continues_and_a_strangers_reply_is_linked(
    core: CoreContext, intake: Intake
) -> None:
    mail = FakeChannel("email")
    first = await intake.receive(mail.message("li@example.cn", "退费申请三个月了还没到账", NOW), NOW)
    ack = await _ack_ref(core, mail, first.ticket_number)
    # Her mail program names only its own previous message as the parent; ours is further up.
    again = mail.message(
        "li@example.cn", "请尽快处理", NOW, reply_to="<her-own@mail>", references=(ack, "<her-own@mail>")
    )
    assert (await intake.receive(again, NOW)).ticket_number == first.ticket_number
    # Someone else answers in that thread: never her ticket; a new one that says which it answered.
    other = await intake.receive(
        mail.message("wang@example.cn", "我也遇到同样的退费问题", NOW, reply_to=ack), NOW
    )
    assert other.created and other.ticket_number != first.ticket_number
    async with core.sessions() as session:
        ticket = await get_ticket(session, other.ticket_number)
        linked = await session.scalar(
            select(Event.detail).where(Event.ticket_id == ticket.id, Event.action == "linked")
        )
    assert linked is not None and first.ticket_number in linked
