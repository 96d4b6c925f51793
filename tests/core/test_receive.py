"""Receive or keep aside: what every channel adapter does with its input, in one place."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import func, select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.intake.intake import Intake, IntakeResult
from core.intake.receive import Aside, Kept, receive_or_keep
from core.storage.delivery_models import Unparsed
from core.storage.models import Ticket
from tests.conftest import at

NOW = at("2026-11-23 10:00")


async def _unparsed(core: CoreContext) -> list[Unparsed]:
    async with core.sessions() as session:
        return list(await session.scalars(select(Unparsed).order_by(Unparsed.id)))


async def test_a_message_is_received_and_a_redelivery_finds_the_same_ticket(
    intake: Intake, core: CoreContext, learner_channel: FakeChannel
) -> None:
    message = learner_channel.message("chat-1", "老师上课总是迟到", NOW, external_id="7")
    first = await receive_or_keep(intake, message, NOW)
    again = await receive_or_keep(intake, message, NOW)
    assert isinstance(first, IntakeResult) and isinstance(again, IntakeResult)
    assert first.created and again.duplicate and again.ticket_number == first.ticket_number
    assert await _unparsed(core) == []


async def test_an_id_reused_by_another_sender_is_kept_for_staff_with_its_reason(
    intake: Intake,
    core: CoreContext,
    dispatcher: Dispatcher,
    learner_channel: FakeChannel,
    staff_channel: FakeChannel,
) -> None:
    await receive_or_keep(intake, learner_channel.message("chat-1", "老师迟到", NOW, external_id="17"), NOW)
    other = learner_channel.message("chat-2", "退费三个月没到账", NOW, external_id="17")
    kept = await receive_or_keep(intake, other, NOW)
    assert isinstance(kept, Kept) and "already used by another sender" in kept.reason
    again = await receive_or_keep(intake, other, NOW)  # the platform tries again: kept once
    assert isinstance(again, Kept) and again.unparsed_id == kept.unparsed_id
    rows = await _unparsed(core)
    assert [r.id for r in rows] == [kept.unparsed_id]
    assert "退费三个月没到账" in core.vault.decrypt(rows[0].raw_enc)
    async with core.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 1
    await dispatcher.drain(NOW)
    notices = [m for m in staff_channel.sent if m.kind == "notice-staff"]
    assert [m.recipient for m in notices] == ["service"]  # the first-contact desk is told, once
    assert f"#{kept.unparsed_id}" in notices[0].text


async def test_machine_written_mail_about_no_ticket_is_kept_without_telling_anyone(
    intake: Intake, core: CoreContext, dispatcher: Dispatcher, staff_channel: FakeChannel
) -> None:
    mail = FakeChannel("email").message("someone@example.com", "I am out of the office", NOW)
    kept = await receive_or_keep(intake, replace(mail, auto_reply="auto-replied"), NOW)
    assert isinstance(kept, Kept) and "automatic message" in kept.reason
    assert len(await _unparsed(core)) == 1
    await dispatcher.drain(NOW)
    assert staff_channel.sent == []  # a notice to a desk that is this mailbox would come back for ever


async def test_input_that_is_no_message_is_kept_raw_once_and_staff_are_told(
    intake: Intake, core: CoreContext, dispatcher: Dispatcher, staff_channel: FakeChannel
) -> None:
    aside = Aside("wechat", "xml:abc", b"<xml><broken", "XML is not well-formed")
    kept = await receive_or_keep(intake, aside, NOW)
    again = await receive_or_keep(intake, aside, NOW)
    assert isinstance(kept, Kept) and kept.reason == "XML is not well-formed"
    assert again == kept
    rows = await _unparsed(core)
    assert [(r.channel, r.reason) for r in rows] == [("wechat", "XML is not well-formed")]
    assert core.vault.decrypt(rows[0].raw_enc) == "<xml><broken"
    await dispatcher.drain(NOW)
    assert [m.recipient for m in staff_channel.sent] == ["service"]
