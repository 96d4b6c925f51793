"""Erasing a learner on request: no personal data readable anywhere afterwards, statistics intact."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import DEAD, NotConfiguredError, enqueue
from core.intake.intake import Intake
from core.privacy.erasure import ErasureReport, erase_learner
from core.privacy.scrub import ERASED, NOT_SENT
from core.storage.delivery_models import OutboxRow
from core.storage.models import Event, Learner, LearnerIdentity, Message, Ticket
from core.tickets.queries import get_ticket
from core.tickets.views import ticket_view
from tests.conftest import at
from tests.core.erasure_story import LI, WANG, close, everything, statistics, tell

ACTOR, REASON = "operator:tester", "learner's request; identity verified by the operator"


async def forget(core: CoreContext, learner_id: int, now_text: str = "2026-12-01 10:00") -> ErasureReport:
    async with core.sessions() as session, session.begin():
        learner = await session.get_one(Learner, learner_id)
        return await erase_learner(core, session, learner, at(now_text), ACTOR, REASON)


async def test_after_erasure_no_personal_data_of_the_learner_is_readable_anywhere(
    core: CoreContext, intake: Intake, dispatcher: Dispatcher, tmp_path: Path
) -> None:
    core.file_roots = (tmp_path,)  # the recordings directory
    receipt = tmp_path / "receipt.pdf"
    receipt.write_bytes(b"%PDF personal")
    li = await tell(core, intake, LI, at("2026-11-23 10:00"), attachment=receipt)
    await tell(core, intake, WANG, at("2026-11-23 11:00"))
    await dispatcher.drain(at("2026-11-23 12:00"))
    before = await everything(core)
    assert all(needle in before for needle in LI.needles(core))  # the dump does see them

    report = await forget(core, li.learner_id)

    assert report.learner_erased and report.tickets == li.numbers
    assert report.open_tickets == li.numbers  # both still open: allowed, and reported
    assert report.scrubbed.files_removed == [str(receipt)] and not receipt.exists()
    after = await everything(core)
    assert [needle for needle in LI.needles(core) if needle in after] == []
    assert all(needle in after for needle in WANG.needles(core))  # nobody else was touched
    now = at("2026-12-01 10:00")
    async with core.sessions() as session:
        for number in li.numbers:
            view = await ticket_view(core, session, await get_ticket(session, number), now, full=True)
            shown = json.dumps(view, ensure_ascii=False)
            assert [needle for needle in LI.needles(core) if needle in shown] == []
            assert view["summary"] == ERASED and view["course"] is None and view["plan"] is None
            assert {m["text"] for m in view["messages"]} == {ERASED}
            assert all(m["attachments"] == [] for m in view["messages"])
        learner = await session.get_one(Learner, li.learner_id)
        assert learner.erased_at == now
        assert (learner.name_enc, learner.phone_index, learner.email_index) == (None, None, None)
        identities = await session.scalar(
            select(func.count())
            .select_from(LearnerIdentity)
            .where(LearnerIdentity.learner_id == li.learner_id)
        )
        assert identities == 0


async def test_statistics_survive_and_both_tickets_are_audited(
    core: CoreContext, intake: Intake, dispatcher: Dispatcher
) -> None:
    li = await tell(core, intake, LI, at("2026-11-23 10:00"))
    await tell(core, intake, WANG, at("2026-11-23 11:00"))
    await close(core, li.numbers[0], at("2026-11-25 10:00"), satisfaction=2)
    await dispatcher.drain(at("2026-11-25 10:00"))
    before = await statistics(core)

    await forget(core, li.learner_id)

    assert await statistics(core) == before
    async with core.sessions() as session:
        for number in li.numbers:
            ticket = await get_ticket(session, number)
            assert ticket.anonymized_at == at("2026-12-01 10:00")
            erased = list(
                await session.scalars(
                    select(Event).where(Event.ticket_id == ticket.id, Event.action == "erased")
                )
            )
            assert [(e.actor, e.detail) for e in erased] == [(ACTOR, REASON)]
            details = {
                e.action: e.detail
                for e in await session.scalars(select(Event).where(Event.ticket_id == ticket.id))
            }
            # The bot's own details stay; what staff typed may quote the learner and is gone.
            assert details["routed"] and details["received"] == "via telegram"
            assert details.get("note") is None and details.get("plan") is None


async def test_erasing_twice_is_harmless_and_audits_once(core: CoreContext, intake: Intake) -> None:
    li = await tell(core, intake, LI, at("2026-11-23 10:00"))
    first = await forget(core, li.learner_id)
    snapshot = await everything(core)
    again = await forget(core, li.learner_id, "2026-12-02 10:00")
    assert first.changed and not again.changed and again.tickets == []
    assert await everything(core) == snapshot


async def test_the_learner_is_a_stranger_afterwards(core: CoreContext, intake: Intake) -> None:
    li = await tell(core, intake, LI, at("2026-11-23 10:00"))
    await forget(core, li.learner_id)
    channel = FakeChannel("telegram")
    now = at("2026-12-03 10:00")
    by_phone = await intake.receive(channel.message("tg-80001", "又是我", now, phone=LI.phone), now)
    by_chat = await intake.receive(channel.message(LI.chat, "还是没有退款", now), now)
    assert by_phone.created and by_chat.created  # no continuation of an erased ticket either
    async with core.sessions() as session:
        learners = {(await get_ticket(session, r.ticket_number)).learner_id for r in (by_phone, by_chat)}
        assert li.learner_id not in learners
        assert (
            await session.scalar(
                select(func.count()).select_from(Ticket).where(Ticket.learner_id == li.learner_id)
            )
            == 2
        )


async def test_messages_not_yet_sent_to_the_learner_are_given_up_and_the_card_is_edited(
    core: CoreContext,
    intake: Intake,
    dispatcher: Dispatcher,
    learner_channel: FakeChannel,
    staff_channel: FakeChannel,
) -> None:
    li = await tell(core, intake, LI, at("2026-11-23 10:00"))
    await dispatcher.drain(at("2026-11-23 12:00"))
    sent_before = len(learner_channel.sent)
    async with core.sessions() as session, session.begin():
        ticket = await get_ticket(session, li.numbers[0])
        enqueue(
            session,
            core.vault,
            key="test:late-reply",
            channel="telegram",
            recipient=LI.chat,
            kind="reply",
            text=f"{LI.name}，退款已到账",
            now=at("2026-11-24 10:00"),
            ticket=ticket,
        )

    await forget(core, li.learner_id)
    await dispatcher.drain(at("2026-12-01 10:05"))

    assert len(learner_channel.sent) == sent_before  # nothing goes to an erased address
    async with core.sessions() as session:
        late = await session.scalar(select(OutboxRow).where(OutboxRow.key == "test:late-reply"))
        assert late is not None and (late.status, late.last_error) == (DEAD, NOT_SENT)
        messages = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.raw_enc.is_not(None), Message.ticket_id == late.ticket_id)
        )
        assert messages == 0
    edits = [m for m in staff_channel.sent if m.kind == "card-edit" and ERASED in m.text]
    assert {m.meta.get("ticket_number") for m in edits} == set(li.numbers)
    assert all(LI.name not in m.text and "李*" not in m.text for m in edits), [m.text for m in edits]


async def test_a_local_file_behind_a_link_is_not_followed(
    core: CoreContext, intake: Intake, tmp_path: Path
) -> None:
    core.file_roots = (tmp_path,)
    target = tmp_path / "elsewhere.txt"
    target.write_text("not the learner's")
    link = tmp_path / "link.pdf"
    link.symlink_to(target)
    li = await tell(core, intake, LI, at("2026-11-23 10:00"), attachment=link)
    report = await forget(core, li.learner_id)
    assert report.scrubbed.files_removed == [] and target.exists() and link.is_symlink()


async def test_a_file_outside_the_recordings_directory_is_never_deleted(
    core: CoreContext, intake: Intake, tmp_path: Path
) -> None:
    # A transcript's payload names whatever path it likes: "/etc/…", or "../" out of the directory.
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    core.file_roots = (recordings,)
    precious = tmp_path / "config.toml"
    precious.write_text("an operator's file")
    escaping = recordings / ".." / "config.toml"
    li = await tell(core, intake, LI, at("2026-11-23 10:00"), attachment=escaping)
    report = await forget(core, li.learner_id)
    assert report.scrubbed.files_removed == [] and precious.read_text() == "an operator's file"


async def test_a_message_delivered_again_after_erasure_is_still_a_redelivery(
    core: CoreContext, intake: Intake
) -> None:
    mail = FakeChannel("email")
    message = mail.message(
        "li@example.cn", "退费申请三个月了还没到账", at("2026-11-23 10:00"), external_id="<a1@x>"
    )
    first = await intake.receive(message, at("2026-11-23 10:00"))
    async with core.sessions() as session:
        learner_id = (await get_ticket(session, first.ticket_number)).learner_id
    await forget(core, learner_id, "2026-11-24 10:00")
    async with core.sessions() as session:
        ids = list(await session.scalars(select(Message.external_id).where(Message.direction == "in")))
    assert ids and all(i is not None and i.startswith("erased:") and "a1@x" not in i for i in ids)
    # The mailbox is read again (a UIDVALIDITY change): the old mail must not become a new ticket.
    again = await intake.receive(message, at("2026-11-25 10:00"))
    assert again.duplicate and again.ticket_number == first.ticket_number
    async with core.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 1


class Unreachable:
    async def send(self, message: object) -> object:
        raise NotConfiguredError("no chat configured for this learner's channel")


async def test_a_parked_message_to_an_erased_learner_is_given_up_not_sent_later(
    core: CoreContext, intake: Intake
) -> None:
    learners = FakeChannel("telegram")
    now = at("2026-12-01 09:00")
    result = await intake.receive(learners.message("tg-1", "老师上课总是迟到", now), now)
    await Dispatcher(core.sessions, core.vault, {"telegram": Unreachable()}).drain(now)  # type: ignore[dict-item]
    async with core.sessions() as session:
        ticket = await get_ticket(session, result.ticket_number)
        learner_id = ticket.learner_id
    await forget(core, learner_id)

    # The channel is configured later: nothing is sent to the erased learner.
    restarted = Dispatcher(core.sessions, core.vault, {"telegram": learners})
    await restarted.prepare(at("2026-12-02 09:00"))
    await restarted.drain(at("2026-12-02 09:00"))
    assert learners.sent == []
    async with core.sessions() as session:
        rows = list(await session.scalars(select(OutboxRow).where(OutboxRow.channel == "telegram")))
    assert [(r.status, r.last_error, r.recipient_key) for r in rows] == [(DEAD, NOT_SENT, None)] * 2
