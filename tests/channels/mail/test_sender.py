"""Sending e-mail against a real SMTP server (aiosmtpd on a loopback port): headers, threading, parts,
TLS and AUTH, how refusals map onto the outbox's retries, and the whole way through the dispatcher."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.config import Settings
from channels.base import ChannelError
from channels.fake import FakeChannel
from channels.mail.channel import email_senders
from channels.mail.compose import references_of, subject_of
from channels.mail.config import EmailConfig
from channels.mail.sender import MailSender, MailStaffSink, SmtpServer
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import (
    DEAD,
    PENDING,
    SENT,
    NotConfiguredError,
    PermanentSendError,
    Sender,
    TemporarySendError,
)
from core.delivery.record import RetryPolicy
from core.intake.intake import Intake
from core.messages import OutboundMessage
from core.storage.delivery_models import OutboxRow
from core.tickets.queries import get_ticket
from core.tickets.views import ticket_view
from standins.smtp import Certificate, Recorder, SmtpStandIn, free_port, password_check, run_smtp
from tests.conftest import at

NOW = at("2026-11-22 10:00")
FROM = "complaints@school.example.cn"
LEARNER = "li.lei@example.org"
LEARNER_MID = "<CAF=learner-1@mail.example.org>"
NUMBER = "TS-261122-00071"
TEXT = "李雷同学您好：\n您的投诉已受理，编号 TS-261122-00071。\n\n我们会在 1 个工作日内联系您。<谢谢>"


def ack(**changes: Any) -> OutboundMessage:
    message = OutboundMessage(
        key="in:1:ack",
        channel="email",
        recipient=LEARNER,
        kind="ack",
        text=TEXT,
        ticket_number=NUMBER,
        subject=f"[{NUMBER}] 老师迟到",
        reply_to=LEARNER_MID,
        meta={"ticket_number": NUMBER},
    )
    return dataclasses.replace(message, **changes)


def mail_sender(server: SmtpStandIn, **options: Any) -> MailSender:
    smtp = SmtpServer(server.host, server.port, security="none", timeout=5)
    return MailSender(dataclasses.replace(smtp, **options), FROM, from_name="学员服务部", clock=lambda: NOW)


def only(server: SmtpStandIn) -> EmailMessage:
    assert len(server.recorder.received) == 1
    return server.recorder.received[0].message()


async def test_an_acknowledgement_is_threaded_tagged_and_marked_automatic(smtp: SmtpStandIn) -> None:
    result = await mail_sender(smtp).send(ack())
    mail = only(smtp)
    received = smtp.recorder.received[0]
    assert (received.mail_from, received.rcpt_tos) == (FROM, [LEARNER])
    assert mail["Subject"] == f"Re: [{NUMBER}] 老师迟到"
    assert (mail["In-Reply-To"], mail["References"]) == (LEARNER_MID, LEARNER_MID)
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["X-Auto-Response-Suppress"] == "All"
    assert mail["From"].addresses[0].display_name == "学员服务部"
    assert mail["From"].addresses[0].addr_spec == FROM
    assert mail["To"].addresses[0].addr_spec == LEARNER
    assert parsedate_to_datetime(mail["Date"]) == NOW
    # Our own domain's Message-ID, kept by the outbox so the learner's answer finds the ticket.
    assert mail["Message-ID"].endswith("@school.example.cn>")
    assert result.external_ref == mail["Message-ID"]


async def test_a_retry_of_the_same_row_carries_the_same_message_id(smtp: SmtpStandIn) -> None:
    sender = mail_sender(smtp)
    first = await sender.send(ack())
    again = await sender.send(ack())
    other = await sender.send(ack(key="in:2:ack"))
    ids = [r.message()["Message-ID"] for r in smtp.recorder.received]
    assert ids == [first.external_ref, first.external_ref, other.external_ref]
    assert again.external_ref == first.external_ref != other.external_ref


async def test_plain_text_and_html_parts_keep_the_chinese_text(smtp: SmtpStandIn) -> None:
    await mail_sender(smtp).send(ack())
    mail = only(smtp)
    assert mail.get_content_type() == "multipart/alternative"
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
    assert plain.get_content().replace("\r\n", "\n").rstrip("\n") == TEXT
    markup = html.get_content().replace("\r\n", "\n")
    assert "<p>李雷同学您好：<br>\n您的投诉已受理，编号 TS-261122-00071。</p>" in markup
    assert "&lt;谢谢&gt;" in markup and "<谢谢>" not in markup  # the learner's text is never markup
    assert "老师迟到" in str(mail["Subject"])


async def test_a_staff_reply_is_not_marked_automatic_and_still_carries_the_tag(smtp: SmtpStandIn) -> None:
    reply = ack(
        key="telegram:9:reply", kind="reply", subject=None, reply_to=None, text="您好，已为您调换老师。"
    )
    await mail_sender(smtp).send(reply)
    mail = only(smtp)
    assert mail["Auto-Submitted"] is None
    assert mail["X-Auto-Response-Suppress"] == "All"
    assert mail["Subject"] == f"[{NUMBER}] 投诉处理答复"
    assert mail["In-Reply-To"] is None


def test_subjects_by_kind_and_language_always_tag_the_ticket() -> None:
    english = ack(text="Dear Li Lei, your complaint has been received.", subject=None, reply_to=None)
    assert subject_of(english, "en") == f"[{NUMBER}] Your complaint has been received"
    assert subject_of(ack(subject="老师迟到"), "zh") == f"Re: [{NUMBER}] 老师迟到"
    assert subject_of(ack(subject=f"[{NUMBER}]"), "zh") == f"Re: [{NUMBER}] 投诉已受理"
    # One line, one `Re:`, the tag first wherever the learner's client put it.
    injected = ack(subject=f"RE: 回复：老师 [{NUMBER}]\r\nBcc: x@y.org")
    assert subject_of(injected, "zh") == f"Re: [{NUMBER}] 老师 Bcc: x@y.org"
    notice = ack(kind="alert", ticket_number=None, subject=None, reply_to=None)
    assert subject_of(notice, "zh") == "提醒"


def test_references_keep_the_thread_and_end_with_the_message_answered() -> None:
    message = ack(meta={"references": "<a@x.org> <b@x.org>"}, reply_to="b@x.org")
    assert references_of(message) == ["<a@x.org>", "<b@x.org>"]
    # A mail that came without a Message-ID is keyed by its hash: nothing to thread under.
    assert references_of(ack(reply_to="sha256:00ff")) == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback, on purpose
async def test_login_then_send_and_a_wrong_password_is_retried() -> None:
    check = password_check({"bot": "s3cret"})
    with run_smtp(authenticator=check, auth_required=True, auth_require_tls=False) as server:
        await mail_sender(server, username="bot", password="s3cret").send(ack())
        assert only(server) is not None and server.recorder.received[0].login == "bot"
        with pytest.raises(TemporarySendError, match="535"):  # our configuration, not the message
            await mail_sender(server, username="bot", password="wrong").send(ack())
        with pytest.raises(TemporarySendError, match="530"):  # no login at all
            await mail_sender(server).send(ack())
        assert len(server.recorder.received) == 1


async def test_starttls_with_login(smtp_certificate: Certificate) -> None:
    options = {
        "tls_context": smtp_certificate.server_context(),
        "require_starttls": True,
        "authenticator": password_check({"bot": "s3cret"}),
        "auth_required": True,
    }
    with run_smtp(**options) as server:
        client = smtp_certificate.client_context()
        sender = mail_sender(
            server, security="starttls", username="bot", password="s3cret", tls_context=client
        )
        await sender.send(ack())
        got = server.recorder.received[0]
        assert (got.tls, got.login) == (True, "bot")
        # A certificate we do not trust is a setup fault: retried, never sent in the clear.
        with pytest.raises(TemporarySendError, match="unreachable"):
            await mail_sender(server, security="starttls", username="bot", password="s3cret").send(ack())
        assert len(server.recorder.received) == 1


async def test_implicit_tls(smtp_certificate: Certificate) -> None:
    with run_smtp(ssl_context=smtp_certificate.server_context()) as server:
        client = smtp_certificate.client_context()
        await mail_sender(server, security="tls", tls_context=client).send(ack())
        assert server.recorder.received[0].tls


@pytest.mark.parametrize(
    ("rcpt", "data", "error", "reason"),
    [
        (["450 4.2.1 mailbox busy"], [], TemporarySendError, "450 4.2.1 mailbox busy"),
        ([], ["451 4.3.0 try again later"], TemporarySendError, "451 4.3.0 try again later"),
        (["550 5.1.1 mailbox unavailable"], [], PermanentSendError, "550 5.1.1 mailbox unavailable"),
        (["553 5.1.3 bad address syntax"], [], PermanentSendError, "553 5.1.3 bad address syntax"),
        ([], ["554 5.7.1 rejected as spam"], PermanentSendError, "554 5.7.1 rejected as spam"),
    ],
)
async def test_smtp_refusals_are_temporary_or_permanent_by_their_code(
    smtp: SmtpStandIn, rcpt: list[str], data: list[str], error: type[Exception], reason: str
) -> None:
    smtp.recorder.rcpt_replies.extend(rcpt)
    smtp.recorder.data_replies.extend(data)
    with pytest.raises(error) as raised:
        await mail_sender(smtp).send(ack())
    assert reason in str(raised.value) and type(raised.value) is error
    assert smtp.recorder.received == []


async def test_a_server_that_is_down_or_silent_is_retried_later() -> None:
    with pytest.raises(TemporarySendError, match="unreachable"):
        await mail_sender(SmtpStandIn("127.0.0.1", free_port(), Recorder())).send(ack())

    async def never_greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # holds the connection open and says nothing

    silent = await asyncio.start_server(never_greet, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TemporarySendError, match="unreachable"):
            await mail_sender(SmtpStandIn("127.0.0.1", port, Recorder()), timeout=0.3).send(ack())
    finally:
        silent.close()


async def test_an_unusable_address_is_permanent_without_a_connection() -> None:
    sender = mail_sender(SmtpStandIn("127.0.0.1", free_port(), Recorder()))
    for bad in ("", "not an address", "a@b.org\r\nBcc: c@d.org"):
        with pytest.raises(PermanentSendError, match="not a usable e-mail address"):
            await sender.send(ack(recipient=bad))


# --- staff by e-mail ----------------------------------------------------------------------------------


def staff_sink(
    server: SmtpStandIn, managers: Sequence[str] = (), card_updates: bool = False
) -> MailStaffSink:
    async def lookup() -> Sequence[str]:
        return managers

    departments = {"teaching": ["teach@school.example.cn", "wang@school.example.cn"]}
    return MailStaffSink(
        mail_sender(server),
        departments,
        lookup,
        default=["desk@school.example.cn"],
        card_updates=card_updates,
    )


def staff(kind: str, recipient: str, **meta: object) -> OutboundMessage:
    return OutboundMessage(
        key=f"ticket:1:{kind}",
        channel="staff",
        recipient=recipient,
        kind=kind,
        text=f"🆕 {NUMBER} 教学 / 一般\n学员：李*\n老师上课迟到",
        ticket_number=NUMBER,
        meta={"ticket_number": NUMBER, "summary": "老师上课迟到", **meta},
    )


async def test_staff_mail_goes_to_the_department_threaded_under_its_card(smtp: SmtpStandIn) -> None:
    sink = staff_sink(smtp)
    card = await sink.send(staff("card", "teaching"))
    notice = await sink.send(staff("notice-staff", "teaching", card_ref=card.external_ref))
    first, second = (r.message() for r in smtp.recorder.received)
    assert smtp.recorder.received[0].rcpt_tos == ["teach@school.example.cn", "wang@school.example.cn"]
    assert first["Subject"] == f"[{NUMBER}] 新投诉 老师上课迟到"
    assert first["Auto-Submitted"] == "auto-generated" and first["In-Reply-To"] is None
    assert (second["In-Reply-To"], second["Subject"]) == (card.external_ref, f"Re: [{NUMBER}] 通知")
    assert notice.external_ref == second["Message-ID"] != card.external_ref
    # A department without an address falls back to the first-contact desk.
    await sink.send(staff("notice-staff", "finance"))
    assert smtp.recorder.received[2].rcpt_tos == ["desk@school.example.cn"]


async def test_card_edits_are_not_mailed_unless_asked(smtp: SmtpStandIn) -> None:
    edit = staff("card-edit", "teaching", card_ref="<card@school.example.cn>")
    result = await staff_sink(smtp).send(edit)
    assert result.external_ref == "<card@school.example.cn>" and smtp.recorder.received == []
    await staff_sink(smtp, card_updates=True).send(edit)
    assert only(smtp)["In-Reply-To"] == "<card@school.example.cn>"


async def test_managers_come_from_the_directory_else_the_desk(smtp: SmtpStandIn) -> None:
    await staff_sink(smtp, managers=["boss@school.example.cn"]).send(staff("alert", "managers"))
    await staff_sink(smtp).send(staff("alert", "managers"))
    assert [r.rcpt_tos for r in smtp.recorder.received] == [
        ["boss@school.example.cn"],
        ["desk@school.example.cn"],
    ]
    lonely = MailStaffSink(mail_sender(smtp), {}, staff_sink(smtp).managers)
    # Nothing to send it to: the outbox parks the row (no attempt used) until a desk is configured.
    with pytest.raises(NotConfiguredError, match=r"\[departments.teaching\] email"):
        await lonely.send(staff("card", "teaching"))


async def test_one_refused_colleague_does_not_stop_the_others(smtp: SmtpStandIn) -> None:
    smtp.recorder.refuse["wang@school.example.cn"] = "550 5.1.1 no such user"
    await staff_sink(smtp).send(staff("card", "teaching"))
    assert smtp.recorder.received[0].rcpt_tos == ["teach@school.example.cn"]


# --- through the outbox -------------------------------------------------------------------------------


async def _rows(core: CoreContext) -> dict[str, OutboxRow]:
    async with core.sessions() as session:
        rows = await session.scalars(select(OutboxRow).where(OutboxRow.channel == "email"))
        return {row.kind: row for row in rows}


async def _complain(intake: Intake) -> str:
    learner = FakeChannel("email")
    message = learner.message(
        LEARNER,
        "王老师上课总是迟到，希望调换老师。",
        NOW,
        external_id=LEARNER_MID,
        subject="老师迟到",
        email=LEARNER,
    )
    return (await intake.receive(message, NOW)).ticket_number


def email_dispatcher(core: CoreContext, server: SmtpStandIn) -> Dispatcher:
    retry = RetryPolicy(max_attempts=4, base_delay=timedelta(seconds=30))
    return Dispatcher(core.sessions, core.vault, {"email": mail_sender(server)}, retry=retry)


async def test_an_acknowledgement_by_mail_and_the_learners_answer_to_it(
    core: CoreContext, intake: Intake, smtp: SmtpStandIn
) -> None:
    number = await _complain(intake)
    await email_dispatcher(core, smtp).drain(NOW)
    rows = await _rows(core)
    sent = {r.message()["Message-ID"]: r.message() for r in smtp.recorder.received}
    assert rows["ack"].status == SENT and rows["ack"].external_ref in sent
    mail = sent[rows["ack"].external_ref]
    assert number in mail["Subject"] and mail["In-Reply-To"] == LEARNER_MID
    # The learner answers our mail: its In-Reply-To is all intake needs to find the ticket.
    answer = FakeChannel("email").message(
        LEARNER, "上课时间是周六上午。", NOW, reply_to=rows["ack"].external_ref, subject=mail["Subject"]
    )
    answered = await intake.receive(answer, NOW)
    assert (answered.ticket_number, answered.created) == (number, False)


async def test_a_permanent_refusal_ends_as_a_dead_row_with_the_servers_reason(
    core: CoreContext, intake: Intake, smtp: SmtpStandIn
) -> None:
    smtp.recorder.refuse[LEARNER] = "550 5.1.1 <li.lei@example.org>: mailbox unavailable"
    number = await _complain(intake)
    report = await email_dispatcher(core, smtp).drain(NOW)
    ack_row = (await _rows(core))["ack"]
    assert (ack_row.status, ack_row.attempts, report.retried) == (DEAD, 1, 0)
    # The server's reason, with the address it quoted masked: error texts reach logs and staff screens.
    assert "550 5.1.1 <l***@example.org>: mailbox unavailable" in (ack_row.last_error or "")
    assert "li.lei@" not in (ack_row.last_error or "")
    async with core.sessions() as session:
        view = await ticket_view(core, session, await get_ticket(session, number), NOW)
    shown = [o for o in view["outbox"] if o["kind"] == "ack"]
    assert shown[0]["status"] == "dead" and "mailbox unavailable" in shown[0]["last_error"]


async def test_a_temporary_refusal_is_retried_then_sent_with_its_message_id(
    core: CoreContext, intake: Intake, smtp: SmtpStandIn
) -> None:
    await _complain(intake)
    dispatcher = email_dispatcher(core, smtp)
    smtp.recorder.data_replies.append("451 4.3.0 try again later")
    await dispatcher.run_once(NOW)
    failed = (await _rows(core))["ack"]
    assert (failed.status, failed.attempts) == (PENDING, 1) and "451 4.3.0" in (failed.last_error or "")
    assert smtp.recorder.received == []
    # The question waits behind the acknowledgement to the same learner, untried.
    assert ((await _rows(core))["ask"].status, (await _rows(core))["ask"].attempts) == (PENDING, 0)
    await dispatcher.drain(failed.next_attempt_at + timedelta(minutes=5))
    ack_row = (await _rows(core))["ack"]
    assert (ack_row.status, ack_row.attempts, ack_row.last_error) == (SENT, 2, None)
    ids = [r.message()["Message-ID"] for r in smtp.recorder.received]
    assert ids.count(ack_row.external_ref) == 1


# --- wiring -------------------------------------------------------------------------------------------


def test_senders_from_the_configuration() -> None:
    email = {"smtp_host": "smtp.school.example.cn", "smtp_user": "bot", "from_address": FROM}
    settings = Settings(channels={"email": email}, departments={"teaching": {"email": "教学部 <teach@x.cn>"}})

    def senders_of(settings: Settings, **kwargs: Any) -> dict[str, Sender]:
        departments = {key: d.model_dump() for key, d in settings.departments.items()}
        config = settings.channels.of(EmailConfig)
        return email_senders(config, departments, settings.department_names(), **kwargs)

    assert senders_of(Settings()) == {}
    senders = senders_of(settings)
    mail = senders["email"]
    assert isinstance(mail, MailSender) and set(senders) == {"email"}
    assert (mail.server.port, mail.server.security, mail.sender.display_name) == (
        587,
        "starttls",
        "学员服务部",
    )
    sessions: Any = object()  # the managers' lookup is only called at send time
    sink = senders_of(settings, staff_sessions=sessions)["staff"]
    assert isinstance(sink, MailStaffSink) and sink.departments == {"teaching": ["teach@x.cn"]}
    broken = Settings(channels={"email": email}, departments={"finance": {"email": "finance at school"}})
    with pytest.raises(ChannelError, match=r"departments.finance.email"):
        senders_of(broken, staff_sessions=sessions)


async def test_an_international_domain_is_written_in_its_ascii_form(smtp: SmtpStandIn) -> None:
    await mail_sender(smtp).send(ack(recipient="li.lei@例子.中国"))
    received = smtp.recorder.received[0]
    assert received.rcpt_tos == ["li.lei@xn--fsqu00a.xn--fiqs8s"]
    assert received.message()["To"].addresses[0].addr_spec == "li.lei@xn--fsqu00a.xn--fiqs8s"


async def test_a_mailbox_name_that_is_not_ascii_is_refused_for_good(smtp: SmtpStandIn) -> None:
    with pytest.raises(PermanentSendError, match="not a usable e-mail address"):
        await mail_sender(smtp).send(ack(recipient="李雷@example.org"))
    assert smtp.recorder.received == []
