"""SMTP connections kept open between messages: a burst shares a few of them, a connection the server
dropped meanwhile is replaced without losing or doubling the mail, and a refusal never leaves a
connection in an unknown state for the next message."""

from __future__ import annotations

import asyncio

from aiosmtpd.controller import Controller

from channels.fake import FakeChannel
from channels.mail.sender import MailSender, SmtpServer
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import LaneLimits
from core.intake.intake import Intake
from standins.smtp import HOST, Recorder, SmtpStandIn, free_port
from tests.channels.mail.test_sender import FROM, ack
from tests.conftest import at

NOW = at("2026-11-23 10:00")


def sender(server: SmtpStandIn, connections: int = 4) -> MailSender:
    smtp = SmtpServer(server.host, server.port, security="none", timeout=5)
    limits = LaneLimits(batch=64, concurrency=connections)
    return MailSender(smtp, FROM, from_name="学员服务部", clock=lambda: NOW, limits=limits)


async def test_a_burst_of_acknowledgements_shares_a_few_connections(
    core: CoreContext, intake: Intake, smtp: SmtpStandIn
) -> None:
    learners = FakeChannel("email")
    for i in range(30):
        address = f"learner{i}@example.org"
        message = learners.message(address, f"老师上课迟到 {i}", NOW, external_id=f"<m{i}@example.org>")
        await intake.receive(message, NOW)
    mail = sender(smtp, connections=3)
    try:
        await Dispatcher(core.sessions, core.vault, {"email": mail}).drain(NOW)
    finally:
        await mail.close()
    received = smtp.recorder.received
    assert len(received) == 60  # an acknowledgement and a question each
    assert len({r.peer for r in received}) <= 3  # over three connections at most, not sixty


async def test_a_connection_the_server_dropped_is_replaced_and_the_mail_sent_once() -> None:
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname=HOST, port=port)
    controller.start()
    mail = sender(SmtpStandIn(HOST, port, recorder), connections=1)
    try:
        await mail.send(ack(key="in:1:ack"))
        # The server goes away and comes back (a restart, an idle timeout): the kept connection is dead.
        controller.stop()
        controller = Controller(recorder, hostname=HOST, port=port)
        controller.start()
        await mail.send(ack(key="in:2:ack"))
    finally:
        await mail.close()
        controller.stop()
    first, second = recorder.received  # each once: the dead connection took nothing
    assert first.peer != second.peer
    assert first.message()["Message-ID"] != second.message()["Message-ID"]


async def test_after_a_refusal_the_next_message_goes_through(smtp: SmtpStandIn) -> None:
    smtp.recorder.data_replies.append("451 4.3.0 try again later")
    mail = sender(smtp, connections=1)
    try:
        results = await asyncio.gather(
            mail.send(ack(key="in:1:ack")), mail.send(ack(key="in:2:ack")), return_exceptions=True
        )
    finally:
        await mail.close()
    assert type(results[0]).__name__ == "TemporarySendError" and "451" in str(results[0])
    assert len(smtp.recorder.received) == 1  # the second, on a connection of its own


async def test_an_idle_connection_is_not_reused(smtp: SmtpStandIn) -> None:
    mail = sender(smtp, connections=1)
    mail.connections.idle_seconds = 0.0  # anything idle is too old
    try:
        await mail.send(ack(key="in:1:ack"))
        await mail.send(ack(key="in:2:ack"))
    finally:
        await mail.close()
    first, second = smtp.recorder.received
    assert first.peer != second.peer
