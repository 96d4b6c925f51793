"""`GET/POST /wechat`: real signed (and encrypted) pushes in plaintext, compatible and safe mode.

Requests are built by `signing` straight from WeChat's documented algorithm, and encrypted replies are
opened the same way; the app runs in-process via `httpx.ASGITransport`, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import func, select

from bot.metrics import Metrics
from bot.web import create_app
from channels.fake import FakeChannel
from channels.wechat.passive import PASSIVE_REF
from channels.wechat.webhook import WeChatWebhook
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import enqueue
from core.intake.intake import Intake, IntakeResult
from core.messages import InboundMessage, OutboundMessage
from core.storage.db import outbox_signal
from core.storage.delivery_models import OutboxRow, Unparsed
from core.storage.models import Base, Message, Ticket
from scheduler.delivery import Delivery
from tests.channels.wechat import signing
from tests.channels.wechat.recorded import push
from tests.channels.wechat.signing import ACCOUNT, text_xml
from tests.scheduler.test_delivery import Inbox

NOW = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a working day
TS = int(NOW.timestamp())
COMPLAINT = "老师上课总是迟到，已经三次了，请处理"
MODES = ("plaintext", "compatible", "safe")
VOICE_MEDIA = "Vt9s2kL4pQ7wE1rY6uI3oA8dF5gH0jK2zX4cV7c"  # the MediaId of pushes/voice_recognition.xml
IMAGE_MEDIA = "Lq3c8yE0mQ_vFj2rW9kP1aZx7uN4sB6dH5gT0oC"  # of pushes/image.xml
T = TypeVar("T")


@dataclass
class Rig:
    core: CoreContext
    webhook: WeChatWebhook
    client: httpx.AsyncClient

    async def post(self, xml: str, mode: str = "safe", **sign: Any) -> httpx.Response:
        signed = signing.push(xml, mode, **({"timestamp": TS} | sign))
        return await self.client.post("/wechat", params=signed.params, content=signed.body)

    async def count(self, model: type[Base]) -> int:
        async with self.core.sessions() as session:
            return await session.scalar(select(func.count()).select_from(model)) or 0

    async def snapshot(self) -> dict[str, int]:
        """Rows per table: "nothing stored" means this does not change."""
        async with self.core.sessions() as session:
            return {
                table.name: await session.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
            }

    async def dispatch(self) -> list[OutboundMessage]:
        """What the outbox dispatcher then sends to the learner as customer-service messages."""
        wechat = FakeChannel("wechat")
        senders = {"wechat": wechat, "staff": FakeChannel("staff")}
        await Dispatcher(self.core.sessions, self.core.vault, senders).drain(NOW)
        return wechat.sent

    async def acks(self) -> list[OutboxRow]:
        async with self.core.sessions() as session:
            return list(await session.scalars(select(OutboxRow).where(OutboxRow.kind == "ack")))


def reply_content(response: httpx.Response, mode: str) -> str:
    """The passive reply's text, opened (and its signature checked) when it came sealed."""
    assert response.status_code == 200, response.text
    xml = signing.open_reply(response.text) if mode != "plaintext" else response.text
    root = ET.fromstring(xml)
    assert root.findtext("MsgType") == "text"
    assert (root.findtext("FromUserName"), root.findtext("ToUserName")) == (ACCOUNT, "oLearner")
    return root.findtext("Content") or ""


@pytest.fixture
async def serve(intake: Intake, core: CoreContext) -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    clients: list[httpx.AsyncClient] = []

    async def build(**options: Any) -> Rig:
        config: dict[str, Any] = {
            "token": signing.TOKEN,
            "app_id": signing.APP_ID,
            "encoding_aes_key": signing.ENCODING_AES_KEY,
            "clock": lambda: NOW,
        }
        webhook = WeChatWebhook(intake, core, **(config | options))
        app = create_app(core, list(webhook.routes()))
        clients.append(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        )
        return Rig(core, webhook, clients[-1])

    yield build
    for client in clients:
        await client.aclose()


@pytest.fixture
async def rig(serve: Callable[..., Awaitable[Rig]], request: pytest.FixtureRequest) -> Rig:
    """An account in the test's `mode`: one in plaintext mode has no EncodingAESKey configured."""
    mode = getattr(request.node, "callspec", None) and request.node.callspec.params.get("mode")
    return await serve(encoding_aes_key=None) if mode == "plaintext" else await serve()


async def test_server_verification_echoes_echostr_only_when_signed(rig: Rig) -> None:
    params = {"signature": signing.sha1_signature(signing.TOKEN, str(TS), "42"), "timestamp": str(TS)}
    params |= {"nonce": "42", "echostr": "5838479218127813673"}
    ok = await rig.client.get("/wechat", params=params)
    assert (ok.status_code, ok.text) == (200, "5838479218127813673")
    forged = await rig.client.get("/wechat", params=params | {"signature": "0" * 40})
    assert forged.status_code == 403 and "5838479218127813673" not in forged.text
    stale = str(TS - 600)
    old = params | {"timestamp": stale, "signature": signing.sha1_signature(signing.TOKEN, stale, "42")}
    assert (await rig.client.get("/wechat", params=old)).status_code == 403


@pytest.mark.parametrize("mode", MODES)
async def test_a_text_complaint_is_answered_with_its_acknowledgement(rig: Rig, mode: str) -> None:
    response = await rig.post(text_xml(COMPLAINT, at=TS), mode)
    content = reply_content(response, mode)
    if mode != "plaintext":
        assert "<Encrypt>" in response.text and COMPLAINT not in response.text
    (ticket,) = await _all(rig, Ticket)
    assert ticket.channel == "wechat" and ticket.number in content and "处理流程与时限" in content
    # Delivered by the response: the dispatcher must not send it again as a customer-service message.
    (ack,) = await rig.acks()
    assert (ack.status, ack.external_ref) == ("sent", PASSIVE_REF)
    sent = await rig.dispatch()
    assert [m.kind for m in sent] == ["ask"]  # the follow-up question: one message per response


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"token": "another-token"}, id="wrong-signature"),
        pytest.param({"app_id": "wx0000000000000000"}, id="wrong-app-id"),
        pytest.param({"timestamp": TS - 301}, id="stale-timestamp"),
        pytest.param({"timestamp": TS + 301}, id="future-timestamp"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
async def test_a_forged_or_replayed_push_is_refused_and_changes_nothing(
    rig: Rig, mode: str, change: dict[str, Any]
) -> None:
    if mode == "plaintext" and "app_id" in change:
        pytest.skip("a plaintext push carries no app id")
    before = await rig.snapshot()
    response = await rig.post(text_xml(COMPLAINT, at=TS), mode, **change)
    assert response.status_code == 403
    assert await rig.snapshot() == before


async def test_a_wrong_msg_signature_is_refused(rig: Rig) -> None:
    signed = signing.push(text_xml(COMPLAINT, at=TS), "safe", timestamp=TS)
    params = signed.params | {"msg_signature": signing.sha1_signature("x", "y", "z")}
    before = await rig.snapshot()
    assert (await rig.client.post("/wechat", params=params, content=signed.body)).status_code == 403
    assert await rig.snapshot() == before


# Nine levels of ten references each: a billion "lol"s, three gigabytes, if an entity were ever expanded.
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY lol0 "lol">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    + "]><xml><ToUserName>gh</ToUserName><FromUserName>oLearner</FromUserName><MsgType>text</MsgType>"
    "<Content>&lol9;</Content><MsgId>1</MsgId></xml>"
)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "xml",
    [
        pytest.param(BILLION_LAUGHS, id="billion-laughs"),
        pytest.param(
            '<!doctype xml SYSTEM "file:///etc/passwd"><xml><Content>x</Content></xml>', id="doctype"
        ),
        pytest.param('<xml><!ENTITY x "y"><Content>x</Content></xml>', id="entity"),
    ],
)
async def test_entity_tricks_are_refused_fast_and_nothing_is_stored(rig: Rig, mode: str, xml: str) -> None:
    before = await rig.snapshot()
    started = time.perf_counter()
    response = await rig.post(xml, mode)  # in safe mode the declaration hides inside the ciphertext
    assert response.status_code == 400
    # Refused before any expansion: well inside the 5 s WeChat waits (an expanded bomb takes minutes).
    assert time.perf_counter() - started < 5
    assert await rig.snapshot() == before


async def test_an_oversized_body_is_refused(rig: Rig) -> None:
    before = await rig.snapshot()
    response = await rig.post(text_xml("投诉" * 20_000, at=TS), "safe")
    assert response.status_code == 413
    assert await rig.snapshot() == before


async def test_with_a_key_configured_a_plaintext_push_is_refused(rig: Rig) -> None:
    before = await rig.snapshot()
    assert (await rig.post(text_xml(COMPLAINT, at=TS), "plaintext")).status_code == 403
    assert await rig.snapshot() == before


async def test_authentic_xml_that_cannot_be_read_is_kept_for_staff(rig: Rig) -> None:
    response = await rig.post("<xml><FromUserName>oLearner</FromUserName><MsgType>text", "safe")
    assert (response.status_code, response.text) == (200, "success")
    (kept,) = await _all(rig, Unparsed)
    assert kept.channel == "wechat" and "malformed" in kept.reason
    assert await rig.count(Ticket) == 0


async def test_an_encrypted_push_without_a_configured_key_is_kept_for_staff(
    serve: Callable[..., Awaitable[Rig]],
) -> None:
    rig = await serve(encoding_aes_key=None)
    response = await rig.post(text_xml(COMPLAINT, at=TS), "safe")
    assert (response.status_code, response.text) == (200, "success")
    (kept,) = await _all(rig, Unparsed)
    assert "no encoding_aes_key" in kept.reason and await rig.count(Ticket) == 0
    # In compatible mode the plaintext copy is there: read it, and answer in plaintext.
    content = reply_content(await rig.post(text_xml(COMPLAINT, at=TS), "compatible"), "plaintext")
    (ticket,) = await _all(rig, Ticket)
    assert ticket.number in content


async def test_a_voice_message_files_its_recognition_with_the_media_id(rig: Rig) -> None:
    xml = push("voice_recognition", FromUserName="oLearner", CreateTime=TS, Recognition=COMPLAINT)
    content = reply_content(await rig.post(xml), "safe")
    (ticket,) = await _all(rig, Ticket)
    assert ticket.number in content and rig.core.vault.reveal(ticket.summary) == COMPLAINT
    (message,) = await _all(rig, Message, Message.direction == "in")
    assert rig.core.vault.decrypt(message.text_enc) == COMPLAINT
    assert message.attachments == [
        {"kind": "voice", "ref": VOICE_MEDIA, "name": None, "mime": "audio/amr", "size": None}
    ]


async def test_an_image_is_an_attachment(rig: Rig) -> None:
    reply_content(await rig.post(push("image", FromUserName="oLearner", CreateTime=TS)), "safe")
    (message,) = await _all(rig, Message, Message.direction == "in")
    assert [(a["kind"], a["ref"]) for a in message.attachments] == [("image", IMAGE_MEDIA)]


def _event(sample: str) -> str:
    """A recorded event (`pushes/event_*.xml`), from the learner of these tests, sent now."""
    return push(f"event_{sample}", FromUserName="oLearner", CreateTime=TS)


@pytest.mark.parametrize("mode", MODES)
async def test_following_the_account_greets_with_the_privacy_notice(rig: Rig, mode: str) -> None:
    before = await rig.snapshot()
    content = reply_content(await rig.post(_event("subscribe_qrscene"), mode), mode)
    assert "隐私说明" in content and "投诉编号" in content
    assert await rig.snapshot() == before


async def test_other_events_get_success(rig: Rig) -> None:
    before = await rig.snapshot()
    # Unfollow, QR scan, menu click and link, location report, a template message's delivery report.
    for event in ("unsubscribe", "scan", "click", "view", "location", "templatesendjobfinish"):
        response = await rig.post(_event(event))
        assert (response.status_code, response.text) == (200, "success")
    assert await rig.snapshot() == before


class _Held:
    """A database that starts no transaction until released (`waiting`: something asked for one)."""

    def __init__(self) -> None:
        self._gate = asyncio.Event()
        self.waiting = 0

    @property
    def released(self) -> bool:
        return self._gate.is_set()

    def release(self) -> None:
        self._gate.set()


def _held(core: CoreContext) -> _Held:
    held, run = _Held(), core.writer.run

    async def wait(work: Callable[..., T]) -> T:
        held.waiting += 1
        await held._gate.wait()
        return await run(work)

    core.writer.run = wait  # type: ignore[method-assign]
    return held


def _count_intakes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The external ids of every message that went into intake."""
    calls: list[str] = []
    receive = Intake.receive

    async def counted(self: Intake, message: InboundMessage, now: datetime) -> IntakeResult:
        calls.append(message.external_id)
        return await receive(self, message, now)

    monkeypatch.setattr(Intake, "receive", counted)
    return calls


async def test_a_slow_database_answers_success_and_the_ack_goes_by_customer_service(
    serve: Callable[..., Awaitable[Rig]], core: CoreContext
) -> None:
    rig = await serve(reply_timeout=0.2)
    # The database answers nothing until the webhook has answered WeChat: however busy the machine, the
    # reply cannot have waited for the commit.
    database = _held(core)
    response = await asyncio.wait_for(rig.post(text_xml(COMPLAINT, at=TS)), 60)  # not: waits for ever
    assert (response.status_code, response.text) == (200, "success")
    assert database.waiting and not database.released
    database.release()
    await rig.webhook.wait_idle()
    (ticket,) = await _all(rig, Ticket)
    (ack,) = await rig.acks()
    assert ack.status == "pending" and ack.channel == "wechat"
    sent = await rig.dispatch()
    assert [(m.kind, m.recipient) for m in sent] == [("ack", "oLearner"), ("ask", "oLearner")]
    assert ticket.number in sent[0].text


@pytest.mark.parametrize("mode", ["plaintext", "safe"])
async def test_four_deliveries_two_at_once_make_one_ticket_and_one_acknowledgement(
    rig: Rig, core: CoreContext, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    intakes = _count_intakes(monkeypatch)
    # The first delivery is still in intake when the second arrives: the database answers only once the
    # webhook has both in hand, whatever the machine's load.
    database, complaint = _held(core), WeChatWebhook._complaint
    arrived: list[str] = []

    async def arriving(self: WeChatWebhook, message: InboundMessage, now: datetime) -> str | None:
        arrived.append(message.external_id)
        if len(arrived) == 2:
            database.release()  # the first can move on only after this one has joined it
        return await complaint(self, message, now)

    monkeypatch.setattr(WeChatWebhook, "_complaint", arriving)
    xml = text_xml(COMPLAINT, at=TS)
    first, second = await asyncio.gather(rig.post(xml, mode, nonce="a"), rig.post(xml, mode, nonce="b"))
    third = await rig.post(xml, mode, nonce="c")
    fourth = await rig.post(xml, mode, nonce="d")
    contents = {reply_content(r, mode) for r in (first, second, third, fourth)}
    assert len(contents) == 1
    (ticket,) = await _all(rig, Ticket)
    assert ticket.number in contents.pop()
    assert len(await _all(rig, Message, Message.direction == "in")) == 1
    (ack,) = await rig.acks()
    assert (ack.status, ack.external_ref) == ("sent", PASSIVE_REF)
    assert len(intakes) == 3  # the concurrent pair shared one intake; the later two met its dedupe


async def _all(rig: Rig, model: type[Any], *where: Any) -> list[Any]:
    async with rig.core.sessions() as session:
        return list(await session.scalars(select(model).where(*where)))


async def test_the_outbox_woken_by_the_commit_leaves_the_acknowledgement_to_the_response(
    serve: Callable[..., Awaitable[Rig]], core: CoreContext
) -> None:
    rig = await serve()
    wechat = Inbox("wechat")
    dispatcher = Dispatcher(core.sessions, core.vault, {"wechat": wechat, "staff": FakeChannel("staff")})
    delivery = Delivery(dispatcher, outbox_signal(core.sessions), clock=lambda: NOW, safety_net=3600)
    stop = asyncio.Event()
    running = asyncio.create_task(delivery.run(stop))
    try:
        await asyncio.wait_for(delivery.ready.wait(), 60)
        response = await rig.post(text_xml(COMPLAINT, at=TS))
        (ticket,) = await _all(rig, Ticket)
        assert ticket.number in reply_content(response, "safe")
        # The question waited behind the acknowledgement, and left once the response had carried it.
        assert [m.kind for m in await wechat.count(1)] == ["ask"]
    finally:
        stop.set()
        await running
    assert [m.kind for m in wechat.sent] == ["ask"]


async def test_an_acknowledgement_carried_by_the_response_is_counted_in_the_metrics(
    serve: Callable[..., Awaitable[Rig]],
) -> None:
    metrics = Metrics()
    rig = await serve(observer=metrics)
    await rig.post(text_xml(COMPLAINT, at=TS))
    sample = metrics.registry.get_sample_value
    assert sample("complaintbot_acknowledgement_seconds_count", {"channel": "wechat"}) == 1.0
    assert sample("complaintbot_outbox_results_total", {"channel": "wechat", "result": "sent"}) == 1.0


async def test_the_response_does_not_overtake_a_message_to_the_learner_still_waiting(
    rig: Rig, core: CoreContext
) -> None:
    await rig.post(text_xml(COMPLAINT, at=TS))
    (ticket,) = await _all(rig, Ticket)
    async with core.sessions() as session, session.begin():  # a staff reply, its first try failed
        row = enqueue(
            session,
            core.vault,
            key="telegram:1:reply",
            channel="wechat",
            recipient="oLearner",
            kind="reply",
            text="您好，已为您调换老师。",
            now=NOW,
            ticket_id=ticket.id,
        )
        row.next_attempt_at = NOW + timedelta(minutes=5)
    response = await rig.post(text_xml("课程是雅思口语班", msg_id="1234567890123457", at=TS + 10))
    # The answer to the learner's second message waits behind the reply rather than jump the queue.
    assert (response.status_code, response.text) == (200, "success")
    sent = await rig.dispatch()
    # The first complaint's question goes; the reply waits for its retry, and the answer behind it.
    assert [m.kind for m in sent] == ["ask"]
