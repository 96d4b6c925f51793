"""An e-mail learner's commands: a mail that says 查询进度 (in its body, or in its subject with an empty
body) is answered with their complaints' progress, by real SMTP, in the thread of their mail."""

from __future__ import annotations

from sqlalchemy import func, select

from channels.fake import FakeChannel
from channels.mail.prepared import prepare
from channels.mail.reader import MailReader
from channels.mail.sender import MailSender, SmtpServer
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.intake.intake import Intake
from core.storage.models import Ticket
from core.storage.numbers import find_ticket_numbers
from standins.smtp import SmtpStandIn
from tests.channels.mail.dovecot import complaint_mail
from tests.conftest import at

NOW = at("2026-11-23 10:00")
LEARNER = "li.ming@163.com"
ZH = "王老师上课总是迟到，已经三次了，希望调换老师。"


async def tickets(core: CoreContext) -> int:
    async with core.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Ticket)) or 0


async def test_status_by_mail_is_answered_in_the_learners_thread(
    core: CoreContext, intake: Intake, smtp: SmtpStandIn
) -> None:
    reader = MailReader(intake, core)
    raw = complaint_mail(LEARNER, ZH, message_id="<c-1@163.com>")
    assert await reader.take(prepare("1", raw, NOW), NOW) == "taken"
    asked = complaint_mail(LEARNER, "查询进度\n", subject="查询", message_id="<s-1@163.com>")
    assert await reader.take(prepare("2", asked, NOW), NOW) == "taken"
    by_subject = complaint_mail(LEARNER, "", subject="我的投诉", message_id="<s-2@163.com>")
    assert await reader.take(prepare("3", by_subject, NOW), NOW) == "taken"
    assert await tickets(core) == 1  # asking opened nothing

    smtp_server = SmtpServer(smtp.host, smtp.port, security="none", timeout=5)
    sender = MailSender(smtp_server, "complaints@school.example.cn", clock=lambda: NOW)
    await Dispatcher(core.sessions, core.vault, {"email": sender, "staff": FakeChannel("staff")}).drain(NOW)
    mails = [r.message() for r in smtp.recorder.received]
    ack = next(m for m in mails if m["In-Reply-To"] == "<c-1@163.com>")
    number = str(find_ticket_numbers(str(ack["Subject"]))[0])
    for asked_id in ("<s-1@163.com>", "<s-2@163.com>"):
        (answer,) = [m for m in mails if m["In-Reply-To"] == asked_id]
        assert answer["To"].addresses[0].addr_spec == LEARNER
        body = answer.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        assert "您的投诉" in text and number in text
