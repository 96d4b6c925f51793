"""A voicemail in the core: a call-back ticket on the hotline's hours, linked to a known caller.

The transcripts are built by the voicemail adapter's own parser, so what is tested is what the spool and
the webhook hand to intake.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from sqlalchemy import select

from channels.fake import FakeChannel
from channels.voicemail.parse import message as voicemail_message
from channels.voicemail.parse import parse_transcript
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import payload_text
from core.intake.intake import Intake
from core.messages import InboundMessage
from core.storage.delivery_models import OutboxRow
from core.storage.models import Clock, Event, Learner, Ticket
from core.tickets.moves import apply_move
from core.tickets.queries import get_ticket
from core.tickets.workflow import Actor, WorkflowError
from tests.conftest import at

CALLER = "+8613812348000"
HOTLINE = Actor(kind="staff", name="王", role="staff", department="service")


def call(external_id: str, transcript: str, received: datetime, caller: str = CALLER) -> InboundMessage:
    return voicemail_message(
        source="asterisk",
        external_id=external_id,
        caller=caller,
        received_at=received,
        transcript=transcript,
        raw={"external_id": external_id},
    )


async def _rows(core: CoreContext, number: str) -> tuple[Ticket, dict[str, Clock], list[OutboxRow]]:
    async with core.sessions() as session:
        ticket = await get_ticket(session, number)
        clocks = {
            c.stage: c for c in await session.scalars(select(Clock).where(Clock.ticket_id == ticket.id))
        }
        outbox = list(
            await session.scalars(
                select(OutboxRow).where(OutboxRow.ticket_id == ticket.id).order_by(OutboxRow.id)
            )
        )
    return ticket, clocks, outbox


async def test_an_after_hours_call_is_due_for_a_call_back_at_ten_and_staff_see_the_task(
    core: CoreContext, intake: Intake
) -> None:
    # Received by the telephony system at 22:14, but the file only arrives the next morning at 07:30.
    result = await intake.receive(
        call("1.1", "老师上课总是迟到", at("2026-11-24 22:14")), at("2026-11-25 07:30")
    )
    ticket, clocks, outbox = await _rows(core, result.ticket_number)
    assert ticket.channel == "voicemail" and result.created
    assert clocks["callback"].due_at == at("2026-11-25 10:00")
    assert clocks["callback"].started_at == at("2026-11-24 22:14")
    # Nobody to write to: no acknowledgement, no questions; the call-back is the answer.
    assert [row.kind for row in outbox if row.channel != "staff"] == []
    assert "acknowledge" not in clocks and ticket.awaiting_field is None
    [card] = [row for row in outbox if row.kind == "card"]
    text = payload_text(core.vault, card.payload)
    assert "📞" in text and "138****8000" in text and "2026-11-25 10:00" in text and CALLER not in text
    assert "called" in [b[1].split(":")[0] for b in card.payload["buttons"]]


async def test_an_empty_transcript_still_opens_a_ticket_and_the_call_back_fills_the_summary(
    core: CoreContext, intake: Intake
) -> None:
    result = await intake.receive(call("1.2", "", at("2026-11-24 23:40")), at("2026-11-24 23:41"))
    assert result.created
    async with core.sessions() as session, session.begin():
        ticket = await get_ticket(session, result.ticket_number)
        assert ticket.summary == ""
        await apply_move(
            core,
            session,
            ticket,
            "called",
            HOTLINE,
            at("2026-11-25 09:20"),
            detail="学员说退费 13900001111 三个月未到账",
        )
    ticket, clocks, outbox = await _rows(core, result.ticket_number)
    assert clocks["callback"].met_at == at("2026-11-25 09:20")
    said = core.vault.reveal(ticket.summary)
    assert said.startswith("学员说退费") and "13900001111" not in said
    edit = [row for row in outbox if row.kind == "card-edit"][-1]
    assert "📞" not in payload_text(core.vault, edit.payload)
    assert "called" not in [b[1].split(":")[0] for b in edit.payload["buttons"]]
    async with core.sessions() as session, session.begin():
        ticket = await get_ticket(session, result.ticket_number)
        with pytest.raises(WorkflowError, match="no call-back"):
            await apply_move(core, session, ticket, "called", HOTLINE, at("2026-11-25 09:30"))


async def test_a_caller_id_alone_links_no_learner_and_writes_nothing_to_their_other_channels(
    core: CoreContext, intake: Intake, dispatcher: Dispatcher, learner_channel: FakeChannel
) -> None:
    # Anyone can call with someone else's number: a link would send the impostor's acknowledgement,
    # and later the staff's replies, to the real owner's Telegram.
    now = at("2026-11-24 15:00")
    first = await intake.receive(
        learner_channel.message("7001", "退费申请三个月了还没到账", now, phone="13812348000"), now
    )
    await dispatcher.drain(now)
    before = learner_channel.texts_to("7001")
    later = at("2026-11-24 22:30")
    second = await intake.receive(call("2.1", "我想投诉老师上课总是迟到", later), later)
    assert second.created and second.ticket_number != first.ticket_number
    async with core.sessions() as session:
        tickets = list(await session.scalars(select(Ticket).order_by(Ticket.id)))
        learners = list(await session.scalars(select(Learner).order_by(Learner.id)))
    assert len(learners) == 2 and tickets[0].learner_id != tickets[1].learner_id
    assert learners[1].phone_index is None  # the caller ID is not recorded as a proven phone either
    await dispatcher.drain(later)
    assert learner_channel.texts_to("7001") == before
    _, clocks, outbox = await _rows(core, second.ticket_number)
    assert "acknowledge" not in clocks  # the call-back is the acknowledgement
    assert clocks["callback"].due_at == at("2026-11-25 10:00")
    assert not [row for row in outbox if row.channel != "staff"]


async def test_a_transcript_naming_another_learners_ticket_opens_its_own_and_staff_see_the_number(
    core: CoreContext, intake: Intake
) -> None:
    now = at("2026-11-24 15:00")
    telegram = FakeChannel("telegram")
    first = await intake.receive(telegram.message("7002", "老师上课总是迟到", now, phone="13812348000"), now)
    later = at("2026-11-25 06:10")
    said = f"我之前投诉过，编号 {first.ticket_number}，到现在没人联系我"
    result = await intake.receive(call("3.1", said, later), later)
    # A number is no proof of whose ticket it is: the call opens its own, with its own call-back.
    assert result.created and result.ticket_number != first.ticket_number
    before, _, outbox = await _rows(core, first.ticket_number)
    assert before.awaiting_field == "course" and before.course is None
    assert not any("没人联系我" in payload_text(core.vault, row.payload) for row in outbox)
    _, clocks, _ = await _rows(core, result.ticket_number)
    assert clocks["callback"].due_at == at("2026-11-25 10:00")
    async with core.sessions() as session:
        ticket = await get_ticket(session, result.ticket_number)
        linked = await session.scalar(
            select(Event.detail).where(Event.ticket_id == ticket.id, Event.action == "linked")
        )
    assert linked == f"names {first.ticket_number}, a ticket of another learner"
    # The same call again is the same ticket.
    again = await intake.receive(call("3.1", said, later), later)
    assert again.duplicate and again.ticket_number == result.ticket_number


async def test_withheld_numbers_are_never_one_caller(core: CoreContext, intake: Intake) -> None:
    now = at("2026-11-24 23:00")
    a = await intake.receive(call("4.1", "老师迟到", now, caller="anonymous"), now)
    b = await intake.receive(call("4.2", "退费没到账", now, caller=""), now)
    assert a.created and b.created
    async with core.sessions() as session:
        learners = {t.learner_id for t in await session.scalars(select(Ticket))}
    assert len(learners) == 2
    _, _, outbox = await _rows(core, a.ticket_number)
    card = next(row for row in outbox if row.kind == "card")
    assert "number withheld" in payload_text(core.vault, card.payload)


async def test_the_same_voicemail_twice_is_one_ticket(core: CoreContext, intake: Intake) -> None:
    now = at("2026-11-24 23:00")
    first = await intake.receive(call("5.1", "老师迟到", now), now)
    again = await intake.receive(call("5.1", "老师迟到", now), at("2026-11-24 23:05"))
    assert again.duplicate and again.ticket_number == first.ticket_number
    async with core.sessions() as session:
        assert len((await session.scalars(select(Ticket))).all()) == 1


async def test_the_finished_transcript_joins_the_ticket_its_pending_one_opened(
    core: CoreContext, intake: Intake
) -> None:
    def transcript(status: str, text: str) -> bytes:
        return json.dumps(
            {
                "schema_version": 1,
                "source": "asterisk",
                "external_id": "6.1",
                "caller": CALLER,
                "received_at": "2026-11-24T22:14:00+08:00",
                "transcript": text,
                "transcript_status": status,
                "duration_s": 40,
            }
        ).encode()

    pending = await intake.receive(parse_transcript(transcript("pending", "")), at("2026-11-24 22:15"))
    done = await intake.receive(
        parse_transcript(transcript("completed", "退费三个月没到账")), at("2026-11-24 22:25")
    )
    assert pending.created and not done.created and not done.duplicate
    assert done.ticket_number == pending.ticket_number
    ticket, clocks, _ = await _rows(core, pending.ticket_number)
    # The empty ticket now says what it is about.
    assert core.vault.reveal(ticket.summary) == "退费三个月没到账"
    assert clocks["callback"].due_at == at("2026-11-25 10:00")
    again = await intake.receive(
        parse_transcript(transcript("completed", "退费三个月没到账")), at("2026-11-24 22:30")
    )
    assert again.duplicate


async def test_the_finished_transcript_after_the_call_back_opens_no_second_one(
    core: CoreContext, intake: Intake
) -> None:
    def transcript(status: str, text: str) -> bytes:
        fields = {"schema_version": 1, "source": "asterisk", "external_id": "7.1", "caller": CALLER}
        fields |= {"received_at": "2026-11-24T22:14:00+08:00", "transcript": text, "duration_s": 40}
        return json.dumps({**fields, "transcript_status": status}).encode()

    pending = await intake.receive(parse_transcript(transcript("pending", "")), at("2026-11-24 22:15"))
    async with core.sessions() as session, session.begin():
        ticket = await get_ticket(session, pending.ticket_number)
        await apply_move(core, session, ticket, "called", HOTLINE, at("2026-11-25 09:10"), detail="已回电")
    await intake.receive(
        parse_transcript(transcript("completed", "退费三个月没到账")), at("2026-11-25 11:00")
    )
    async with core.sessions() as session:
        ticket = await get_ticket(session, pending.ticket_number)
        callbacks = (
            await session.scalars(
                select(Clock).where(Clock.ticket_id == ticket.id, Clock.stage == "callback")
            )
        ).all()
    assert [c.met_at is not None for c in callbacks] == [True]  # the call was returned; nothing new is due
