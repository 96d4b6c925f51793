"""A forged e-mail acts on nothing: acts and answers count only from a reply to our own mail to that
address, or from a sender our receiving server vouches for (RFC 8601 Authentication-Results); a sender
it marks as failing is not answered; unknown addresses are acknowledged up to an hourly cap."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from email import message_from_bytes
from email.policy import default

import pytest
from sqlalchemy import func, select

from channels.fake import FakeChannel
from channels.mail.compose import message_id
from channels.mail.prepared import prepare
from channels.mail.reader import MailReader
from channels.mail.sender import MailSender, SmtpServer
from channels.mail.trust import sender_verdict
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.record import RetryPolicy
from core.intake.intake import Intake
from core.messages import OutboundMessage
from core.rules.policy import parse_policy
from core.storage.delivery_models import OutboxRow
from core.storage.models import Event, Learner, Ticket
from core.tickets.moves import apply_move, staff_actor
from core.tickets.queries import get_ticket
from core.tickets.staff import add_staff
from standins.smtp import SmtpStandIn
from tests.channels.mail.dovecot import complaint_mail
from tests.conftest import at

NOW = at("2026-11-23 10:00")  # a Monday
MAILBOX = "complaints@school.example.cn"
VICTIM = "li.ming@163.com"
SERVER = "mx.school.example.cn"
TEACHING = "老师上课总是迟到，讲课照本宣科，教学质量很差"


# --- what our server says ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "verdict"),
    [
        ([f"{SERVER}; spf=pass smtp.mailfrom=163.com; dmarc=pass (p=none) header.from=163.com"], "pass"),
        ([f"{SERVER.upper()} 1; dkim=pass header.d=163.com; dmarc=pass header.from=163.com"], "pass"),
        ([f"{SERVER}; dmarc=pass"], "pass"),  # no header.from: the server checked the From it saw
        ([f"{SERVER}; dmarc=fail (p=reject) header.from=163.com"], "fail"),
        ([f"{SERVER}; spf=fail smtp.mailfrom=163.com"], "fail"),
        ([f"{SERVER}; spf=fail smtp.mailfrom=163.com; dmarc=pass header.from=163.com"], "pass"),
        ([f"{SERVER}; spf=softfail smtp.mailfrom=163.com"], None),
        ([f"{SERVER}; dmarc=pass header.from=evil.example"], None),  # not the From's domain
        # A pass the sender wrote themselves, under our server's header: only the topmost is ours.
        ([f"{SERVER}; dmarc=none", f"{SERVER}; dmarc=pass header.from=163.com"], None),
        (["mx.elsewhere.example; dmarc=pass header.from=163.com"], None),
        ([], None),
    ],
)
def test_only_our_servers_topmost_header_speaks_for_the_sender(
    headers: list[str], verdict: str | None
) -> None:
    assert sender_verdict(headers, SERVER, VICTIM) == verdict


def test_without_a_configured_server_no_header_is_believed() -> None:
    assert sender_verdict([f"{SERVER}; dmarc=pass header.from=163.com"], None, VICTIM) is None


def test_our_message_ids_cannot_be_computed_without_the_servers_secret() -> None:
    row = OutboundMessage(key="in:1:ack", channel="email", recipient=VICTIM, kind="ack", text="…")
    keyed = message_id(row, "school.example.cn", b"k" * 32)
    assert keyed == message_id(row, "school.example.cn", b"k" * 32)  # the same on every attempt
    assert keyed != message_id(row, "school.example.cn", b"x" * 32)
    assert keyed != message_id(row, "school.example.cn")


# --- the whole way: mail in, mail out, a forged act --------------------------------------------------


@pytest.fixture
def mail_out(smtp: SmtpStandIn, core: CoreContext) -> MailSender:
    server = SmtpServer(smtp.host, smtp.port, security="none", timeout=5)
    return MailSender(server, MAILBOX, clock=lambda: NOW, id_secret=core.vault.derived_key("message-id"))


@pytest.fixture
def mail_dispatcher(core: CoreContext, mail_out: MailSender) -> Dispatcher:
    senders = {"email": mail_out, "staff": FakeChannel("staff")}
    return Dispatcher(core.sessions, core.vault, senders, retry=RetryPolicy(), batch=50)


def reader(intake: Intake, core: CoreContext) -> MailReader:
    return MailReader(intake, core, authserv_id=SERVER)


async def take(intake: Intake, core: CoreContext, raw: bytes, key: str) -> str:
    return await reader(intake, core).take(prepare(key, raw, NOW), NOW)


def vouched_mail(sender: str, text: str, message_id: str) -> bytes:
    """A mail our receiving server checked: DMARC passed for the From's own domain."""
    domain = sender.rpartition("@")[2]
    results = f"{SERVER}; dmarc=pass header.from={domain}"
    return complaint_mail(sender, text, message_id=message_id, headers={"Authentication-Results": results})


def ids_sent_to(smtp: SmtpStandIn, address: str) -> list[str]:
    mails = [message_from_bytes(r.content, policy=default) for r in smtp.recorder.received]
    return [str(m["Message-ID"]) for m in mails if address in str(m["To"])]


async def awaiting_confirmation(
    core: CoreContext, intake: Intake, dispatcher: Dispatcher, smtp: SmtpStandIn
) -> str:
    """The victim's complaint, acknowledged by mail and resolved: it waits for their "确认"."""
    assert (
        await take(intake, core, complaint_mail(VICTIM, TEACHING, message_id="<v1@163.com>"), "1") == "taken"
    )
    async with core.sessions() as session, session.begin():
        number = await session.scalar(select(Ticket.number).join(OutboxRow).where(OutboxRow.kind == "ack"))
        assert number is not None
        teacher = await add_staff(session, name="王老师", department="teaching", role="staff", now=NOW)
        found = await get_ticket(session, number)
        for action, detail in (("claim", None), ("resolve", "已更换任课老师")):
            await apply_move(core, session, found, action, staff_actor(teacher), NOW, detail=detail)
    await dispatcher.drain(NOW)
    assert ids_sent_to(smtp, VICTIM)  # the acknowledgement and the result went out by mail
    return number


async def status_of(core: CoreContext, number: str) -> str:
    async with core.sessions() as session:
        return (await get_ticket(session, number)).status


async def test_a_forged_confirmation_changes_nothing_and_staff_see_it(
    core: CoreContext, intake: Intake, mail_dispatcher: Dispatcher, smtp: SmtpStandIn
) -> None:
    number = await awaiting_confirmation(core, intake, mail_dispatcher, smtp)
    sent_before = len(smtp.recorder.received)
    # The attacker knows the victim's address and even the ticket number, but received none of our mail.
    forged = complaint_mail(
        VICTIM, f"确认 {number}", subject=f"Re: [{number}]", message_id="<forged@evil.example>",
        headers={"In-Reply-To": f"<{'0' * 32}@school.example.cn>"},
    )  # fmt: skip
    assert await take(intake, core, forged, "2") == "taken"
    assert await status_of(core, number) == "awaiting_confirmation"
    async with core.sessions() as session:
        ticket = await get_ticket(session, number)
        events = list(await session.scalars(select(Event).where(Event.ticket_id == ticket.id)))
    recorded = [e for e in events if e.action == "message"]
    assert recorded and "not verified" in (recorded[-1].detail or "")
    await mail_dispatcher.drain(NOW)
    assert len(smtp.recorder.received) == sent_before  # nothing at all went to the victim

    # The victim answers the mail we sent them: that is proof, and the confirmation counts.
    ours = ids_sent_to(smtp, VICTIM)[-1]
    genuine = complaint_mail(
        VICTIM, "确认，谢谢", subject=f"Re: [{number}]", message_id="<v2@163.com>",
        headers={"In-Reply-To": ours, "References": ours},
    )  # fmt: skip
    assert await take(intake, core, genuine, "3") == "taken"
    assert await status_of(core, number) == "follow_up"


async def test_a_mail_our_server_vouches_for_may_act_without_a_thread(
    core: CoreContext, intake: Intake, mail_dispatcher: Dispatcher, smtp: SmtpStandIn
) -> None:
    number = await awaiting_confirmation(core, intake, mail_dispatcher, smtp)
    vouched = vouched_mail(VICTIM, f"确认 {number}", "<v3@163.com>")
    assert await take(intake, core, vouched, "2") == "taken"
    assert await status_of(core, number) == "follow_up"


async def test_a_forged_answer_does_not_overwrite_the_tickets_details(
    core: CoreContext, intake: Intake, mail_dispatcher: Dispatcher, smtp: SmtpStandIn
) -> None:
    assert (
        await take(intake, core, complaint_mail(VICTIM, TEACHING, message_id="<a1@163.com>"), "1") == "taken"
    )
    async with core.sessions() as session:
        row = (await session.execute(select(Ticket.number, Ticket.awaiting_field).join(OutboxRow))).first()
        assert row is not None
        number, asked = row
    assert asked == "course"
    forged = complaint_mail(VICTIM, "课程是 诈骗速成班", message_id="<a2@evil.example>")
    assert await take(intake, core, forged, "2") == "taken"
    async with core.sessions() as session:
        ticket = await get_ticket(session, number)
        assert (ticket.course, ticket.awaiting_field) == (None, "course")


async def test_mail_our_server_marks_as_failing_is_kept_for_staff_and_not_answered(
    core: CoreContext, intake: Intake, mail_dispatcher: Dispatcher, smtp: SmtpStandIn
) -> None:
    failing = complaint_mail(
        VICTIM, TEACHING, message_id="<f1@evil.example>",
        headers={"Authentication-Results": f"{SERVER}; dmarc=fail (p=reject) header.from=163.com"},
    )  # fmt: skip
    assert await take(intake, core, failing, "1") == "taken"
    await mail_dispatcher.drain(NOW)
    assert ids_sent_to(smtp, VICTIM) == []
    async with core.sessions() as session:
        held = await session.scalar(select(Event.detail).where(Event.action == "not_acknowledged"))
    assert held is not None and "DMARC" in held


async def test_acknowledgements_to_unknown_addresses_are_capped_per_hour(
    core: CoreContext, intake: Intake, mail_dispatcher: Dispatcher, smtp: SmtpStandIn
) -> None:
    core.policy = parse_policy("[intake]\nnew_sender_acks_per_hour = 2\n")
    for i in range(4):
        raw = complaint_mail(f"stranger{i}@example.org", TEACHING, message_id=f"<s{i}@example.org>")
        assert await take(intake, core, raw, str(i)) == "taken"
    await mail_dispatcher.drain(NOW)
    answered = {i for i in range(4) if ids_sent_to(smtp, f"stranger{i}@example.org")}
    assert answered == {0, 1}
    async with core.sessions() as session:
        held = list(await session.scalars(select(Event.detail).where(Event.action == "not_acknowledged")))
        tickets = await session.scalar(select(func.count(Learner.id)))
    assert len(held) == 2 and all("staff review" in h for h in held)
    assert tickets == 4  # every complaint is taken all the same
    # A sender our server vouches for is not a stranger to fear.
    vouched = vouched_mail("known@163.com", TEACHING, "<k1@163.com>")
    assert await take(intake, core, vouched, "9") == "taken"
    await mail_dispatcher.drain(NOW + timedelta(seconds=1))
    assert ids_sent_to(smtp, "known@163.com")


async def test_a_from_address_alone_links_no_other_channel(
    core: CoreContext, intake: Intake, mail_dispatcher: Dispatcher, smtp: SmtpStandIn
) -> None:
    # A learner known on Telegram with a proven address; a mail merely claiming that address.
    telegram = FakeChannel("telegram")
    known = dataclasses.replace(telegram.message("7001", TEACHING, NOW), email=VICTIM)
    await intake.receive(known, NOW)
    assert (
        await take(intake, core, complaint_mail(VICTIM, "退费三个月没到账", message_id="<l1@x>"), "1")
        == "taken"
    )
    async with core.sessions() as session:
        learners = list(await session.scalars(select(Learner)))
        to_telegram = list(await session.scalars(select(OutboxRow).where(OutboxRow.channel == "telegram")))
    assert len(learners) == 2
    assert to_telegram and all(row.ticket_id == to_telegram[0].ticket_id for row in to_telegram)
