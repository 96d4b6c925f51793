"""A staff member answering our staff mail (a card, an alert) from their own address into the complaint
mailbox: a note on the ticket it answers, never a complaint of its own (real SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update

from channels.mail.prepared import prepare
from channels.mail.reader import MailReader
from core.context import CoreContext
from core.intake.intake import Intake
from core.storage.delivery_models import OutboxRow
from core.storage.models import Event, Staff, Ticket
from core.tickets.staff import add_staff, remove_staff
from tests.channels.mail.dovecot import complaint_mail, tally

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CARD_ID = "<card-1.ts@school.example.cn>"
ANSWER = "已联系学员，周六补课。"
QUOTED_CARD = (
    "\n\n在 2026年11月23日 10:00，学员投诉台 <desk@school.example.cn> 写道：\n> 新投诉\n> 王老师上课总是迟到"
)


async def open_ticket(core: CoreContext, intake: Intake) -> Ticket:
    """A learner's complaint, its staff card mailed (the sender records the card's Message-ID)."""
    reader = MailReader(intake, core)
    mail = complaint_mail("li.ming@163.com", "王老师上课总是迟到，已经三次了。", message_id="<c-1@163.com>")
    assert await reader.take(prepare("1", mail, NOW), NOW) == "taken"
    async with core.sessions() as session, session.begin():
        ticket: Ticket | None = await session.scalar(select(Ticket))
        assert ticket is not None
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.channel == "staff", OutboxRow.kind == "card")
            .values(external_ref=CARD_ID)
        )
        await add_staff(
            session,
            name="张老师",
            department="service",
            role="staff",
            now=NOW,
            email="Zhang.Laoshi@School.example.cn",
        )
    return ticket


async def notes(core: CoreContext) -> list[tuple[str, str | None]]:
    async with core.sessions() as session:
        rows = await session.execute(select(Event.actor, Event.detail).where(Event.action == "note"))
        return [(actor, detail) for actor, detail in rows]


async def test_a_staff_answer_to_a_card_is_a_note_on_its_ticket(core: CoreContext, intake: Intake) -> None:
    await open_ticket(core, intake)
    before = await tally(core)
    answer = complaint_mail(
        "zhang.laoshi@school.example.cn",
        ANSWER + QUOTED_CARD,
        subject="Re: 新投诉",
        message_id="<answer-1@school.example.cn>",
        headers={"In-Reply-To": CARD_ID, "References": CARD_ID},
    )
    reader = MailReader(intake, core)
    later = NOW + timedelta(minutes=20)
    assert await reader.take(prepare("2", answer, later), later) == "taken"
    assert await notes(core) == [("张老师 (service/staff)", ANSWER)]  # the quoted card is not in it
    assert await tally(core) == before  # no ticket, no message from a learner, no acknowledgement
    # Read again (a crash before the mailbox heard it was done): nothing is added.
    assert await reader.take(prepare("2", answer, later), later) == "duplicate"
    assert len(await notes(core)) == 1


async def test_a_ticket_number_in_the_subject_is_enough_when_our_mail_server_vouches_for_the_sender(
    core: CoreContext, intake: Intake
) -> None:
    ticket = await open_ticket(core, intake)
    answer = complaint_mail(
        "zhang.laoshi@school.example.cn",
        "退费已批准。",
        subject=f"Re: 提醒 [{ticket.number}]",
        message_id="<a-2@s.cn>",
        headers={"Authentication-Results": "mx.school.example.cn; dmarc=pass header.from=school.example.cn"},
    )
    reader = MailReader(intake, core, authserv_id="mx.school.example.cn")
    assert await reader.take(prepare("2", answer, NOW), NOW) == "taken"
    assert await notes(core) == [("张老师 (service/staff)", "退费已批准。")]


async def test_a_forged_staff_address_naming_a_ticket_writes_no_note(
    core: CoreContext, intake: Intake
) -> None:
    # Anyone can put a staff member's address in From and a ticket number in the subject: without an
    # answer to our own mail (or our server's word) it is no note on the ticket.
    ticket = await open_ticket(core, intake)
    forged = complaint_mail(
        "zhang.laoshi@school.example.cn",
        "已退款，此单关闭。",
        subject=f"Re: 提醒 [{ticket.number}]",
        message_id="<forged@evil.example>",
        headers={"In-Reply-To": "<c-1@163.com>"},  # the learner's own mail: its id is no secret
    )
    assert await MailReader(intake, core).take(prepare("2", forged, NOW), NOW) == "taken"
    assert await notes(core) == []


async def test_staff_mail_that_answers_no_ticket_and_removed_staff_are_read_as_any_mail(
    core: CoreContext, intake: Intake
) -> None:
    await open_ticket(core, intake)
    reader = MailReader(intake, core)
    # A staff member's own complaint (their child is a learner) is a complaint like any other.
    own = complaint_mail(
        "zhang.laoshi@school.example.cn", "我的孩子也在这里上课，老师总是迟到。", message_id="<o@s.cn>"
    )
    assert await reader.take(prepare("2", own, NOW), NOW) == "taken"
    assert (await tally(core))["tickets"] == 2
    async with core.sessions() as session, session.begin():
        staff_id = await session.scalar(select(func.min(Staff.id)))
        assert staff_id is not None
        await remove_staff(session, staff_id)
    # Once removed from the directory, their answer to a card is a learner's mail again.
    before = await tally(core)
    answer = complaint_mail(
        "zhang.laoshi@school.example.cn", ANSWER, message_id="<a-3@s.cn>", headers={"In-Reply-To": CARD_ID}
    )
    assert await reader.take(prepare("3", answer, NOW), NOW) == "taken"
    assert await notes(core) == []
    assert (await tally(core))["inbound"] == before["inbound"] + 1


async def test_a_staff_out_of_office_reply_is_no_note(core: CoreContext, intake: Intake) -> None:
    await open_ticket(core, intake)
    auto = complaint_mail(
        "zhang.laoshi@school.example.cn",
        "我休假到周一。",
        subject="自动回复：新投诉",
        message_id="<auto@s.cn>",
        headers={"In-Reply-To": CARD_ID, "Auto-Submitted": "auto-replied"},
    )
    await MailReader(intake, core).take(prepare("2", auto, NOW), NOW)
    assert await notes(core) == []
