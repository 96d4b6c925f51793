"""Replies to WeChat learners through wechatpy against the local stand-in of the WeChat API, on SQLite
and PostgreSQL: customer-service messages, the shared access token, its refresh, the 48-hour window."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from channels.fake import FakeChannel
from channels.wechat.api import AccessToken, SharedAccessToken, WechatClient, cgi_base, token_fetcher
from channels.wechat.sender import WINDOW_REASONS, WechatSender, template_data
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import DEAD, PENDING, SENT, PermanentSendError, TemporarySendError, enqueue
from core.delivery.parts import WHOLE_TEXT
from core.intake.intake import Intake
from core.messages import OutboundMessage
from core.storage.delivery_models import OutboxRow
from core.storage.models import Ticket
from core.storage.state import get_state
from core.tickets.queries import get_ticket
from core.tickets.views import ticket_view
from standins.wechatapi import CUSTOM, TEMPLATE, TOKEN, WechatApiServer
from tests.conftest import at

APP_ID, SECRET = "wx-test-app", "test-secret"
OPENID = "oLearner-0001"
TEMPLATE_ID = "TPL-complaint"
NOW = at("2026-11-23 10:00")


@pytest.fixture
async def api() -> AsyncIterator[WechatApiServer]:
    async with WechatApiServer(APP_ID, SECRET, template_ids=(TEMPLATE_ID,)) as server:
        yield server


def wechat_sender(
    core: CoreContext, base_url: str, *, template_id: str | None = None, secret: str = SECRET
) -> WechatSender:
    """A sender as one instance of the bot has it: its own client and its own view of the token."""
    fetch = token_fetcher(APP_ID, secret, base_url)
    token = SharedAccessToken(core.sessions, APP_ID, fetch, clock=lambda: NOW, wait=0.01, vault=core.vault)
    return WechatSender(WechatClient(APP_ID, secret, base_url), token, template_id=template_id)


def dispatcher(core: CoreContext, sender: WechatSender) -> Dispatcher:
    return Dispatcher(core.sessions, core.vault, {"wechat": sender})


def message(key: str, text: str, recipient: str = OPENID) -> OutboundMessage:
    return OutboundMessage(key=key, channel="wechat", recipient=recipient, kind="reply", text=text)


async def complain(intake: Intake) -> str:
    learner = FakeChannel("wechat")
    return (
        await intake.receive(learner.message(OPENID, "王老师上课总是迟到，希望调换老师。", NOW), NOW)
    ).ticket_number


async def staff_reply(core: CoreContext, number: str, text: str) -> str:
    """What `/reply` queues: an outbox row to the learner's OpenID on the ticket."""
    key = f"test:reply:{number}"
    async with core.sessions() as session, session.begin():
        ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
        enqueue(
            session,
            core.vault,
            key=key,
            channel="wechat",
            recipient=OPENID,
            kind="reply",
            text=text,
            now=NOW,
            ticket=ticket,
            meta={"ticket_number": number},
        )
    return key


async def row(core: CoreContext, key: str) -> OutboxRow:
    async with core.sessions() as session:
        return (await session.scalars(select(OutboxRow).where(OutboxRow.key == key))).one()


async def test_a_staff_reply_reaches_the_learner_as_a_customer_service_message(
    core: CoreContext, intake: Intake, api: WechatApiServer
) -> None:
    number = await complain(intake)
    key = await staff_reply(core, number, "您好，已为您调换老师。")
    report = await dispatcher(core, wechat_sender(core, api.url)).drain(NOW)
    assert report.dead == 0 and report.retried == 0
    assert (await row(core, key)).status == SENT
    assert {"touser": OPENID, "msgtype": "text", "text": {"content": "您好，已为您调换老师。"}} in (
        api.custom_messages
    )
    # The acknowledgement went the same way, with the ticket number; one token served every message.
    assert any(number in m["text"]["content"] for m in api.custom_messages)
    assert api.token_calls == 1
    # Shared through the database, encrypted there: a copy of the database is no key to the account.
    kept = await get_state(core.sessions, f"wechat:{APP_ID}:access_token")
    assert kept is not None and "TOKEN-1" not in kept
    stored = AccessToken.load(core.vault.decrypt(kept))
    assert stored is not None and stored.value == "TOKEN-1"
    assert {c.query["access_token"] for c in api.calls if c.endpoint == CUSTOM} == {"TOKEN-1"}


async def test_two_instances_fetch_the_token_once_and_share_it(
    core: CoreContext, api: WechatApiServer
) -> None:
    first, second = wechat_sender(core, api.url), wechat_sender(core, api.url)
    await asyncio.gather(first.send(message("a", "一")), second.send(message("b", "二")))
    await second.send(message("c", "三"))
    assert api.token_calls == 1
    assert sorted(m["text"]["content"] for m in api.custom_messages) == ["一", "三", "二"]


@pytest.mark.parametrize("refusal", ["revoke", "expire"])  # 40001 invalid, 42001 expired
async def test_a_refused_token_is_refreshed_once_for_every_instance(
    core: CoreContext, api: WechatApiServer, refusal: str
) -> None:
    first, second = wechat_sender(core, api.url), wechat_sender(core, api.url)
    await first.send(message("a", "一"))
    await second.send(message("b", "二"))
    if refusal == "revoke":
        api.revoke_tokens()
    else:
        api.expire_tokens()
    await first.send(message("c", "三"))
    await second.send(message("d", "四"))  # refused too, and finds the token `first` fetched
    assert api.token_calls == 2
    assert [m["text"]["content"] for m in api.custom_messages] == ["一", "二", "三", "四"]
    refused = [c.errcode for c in api.calls if c.endpoint == CUSTOM and c.errcode]
    assert refused == [40001 if refusal == "revoke" else 42001] * 2


async def test_a_token_refused_twice_waits_in_the_outbox(core: CoreContext, api: WechatApiServer) -> None:
    async with core.sessions() as session, session.begin():
        enqueue(
            session,
            core.vault,
            key="r1",
            channel="wechat",
            recipient=OPENID,
            kind="reply",
            text="好",
            now=NOW,
        )
    api.fail_next(CUSTOM, 40001, times=2)
    report = await dispatcher(core, wechat_sender(core, api.url)).drain(NOW)
    failed = await row(core, "r1")
    assert (report.retried, failed.status) == (1, PENDING)
    assert "freshly fetched access token" in (failed.last_error or "")
    assert api.token_calls == 2 and api.custom_messages == []


async def test_outside_the_48_hour_window_without_a_template_the_reply_is_shown_undelivered(
    core: CoreContext, intake: Intake, api: WechatApiServer
) -> None:
    number = await complain(intake)
    await dispatcher(core, wechat_sender(core, api.url)).drain(NOW)  # the acknowledgement
    api.close_window(OPENID)
    key = await staff_reply(core, number, "您好，已为您调换老师。")
    report = await dispatcher(core, wechat_sender(core, api.url)).drain(NOW)
    dead = await row(core, key)
    assert (report.dead, dead.status, dead.attempts) == (1, DEAD, 1)
    reason = "outside WeChat's 48-hour window: the learner must write first, or configure a template message"
    assert dead.last_error == reason
    async with core.sessions() as session:
        view = await ticket_view(core, session, await get_ticket(session, number), NOW)
    assert [o["last_error"] for o in view["outbox"] if o["kind"] == "reply"] == [reason]
    assert api.template_messages == []


@pytest.mark.parametrize("errcode", [45015, 45047])
async def test_outside_the_window_a_configured_template_message_goes_instead(
    core: CoreContext, intake: Intake, api: WechatApiServer, errcode: int
) -> None:
    number = await complain(intake)
    sender = wechat_sender(core, api.url, template_id=TEMPLATE_ID)
    await dispatcher(core, sender).drain(NOW)
    key = await staff_reply(core, number, "您好，已为您调换老师。")
    api.fail_next(CUSTOM, errcode)
    await dispatcher(core, sender).drain(NOW)
    sent = await row(core, key)
    assert sent.status == SENT and (sent.external_ref or "").startswith("template:")
    [template] = api.template_messages
    assert (template["touser"], template["template_id"]) == (OPENID, TEMPLATE_ID)
    assert template["data"] == {
        "first": {"value": "您的投诉有新的消息"},
        "keyword1": {"value": number},
        "keyword2": {"value": "已回复"},
        "remark": {"value": "您好，已为您调换老师。"},
    }


async def test_system_busy_is_tried_again_later(core: CoreContext, api: WechatApiServer) -> None:
    async with core.sessions() as session, session.begin():
        enqueue(
            session,
            core.vault,
            key="r1",
            channel="wechat",
            recipient=OPENID,
            kind="reply",
            text="好",
            now=NOW,
        )
    api.fail_next(CUSTOM, -1)
    outbox = dispatcher(core, wechat_sender(core, api.url))
    assert (await outbox.drain(NOW)).retried == 1
    waiting = await row(core, "r1")
    assert waiting.status == PENDING and "busy" in (waiting.last_error or "")
    assert (await outbox.drain(waiting.next_attempt_at)).sent == 1
    assert [m["text"]["content"] for m in api.custom_messages] == ["好"]


async def test_other_refusals_are_permanent_with_wechats_words(
    core: CoreContext, api: WechatApiServer
) -> None:
    api.fail_next(CUSTOM, 43004, "require subscribe")
    with pytest.raises(PermanentSendError, match="43004 require subscribe"):
        await wechat_sender(core, api.url).send(message("a", "一"))


async def test_a_wrong_secret_or_an_unreachable_api_is_temporary(
    core: CoreContext, api: WechatApiServer
) -> None:
    with pytest.raises(TemporarySendError, match=r"40125 .*check \[channels.wechat\] app_id, app_secret"):
        await wechat_sender(core, api.url, secret="wrong").send(message("a", "一"))
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    with pytest.raises(TemporarySendError, match="unreachable"):
        await wechat_sender(core, closed).send(message("a", "一"))
    # With a valid token stored, the message call itself fails on the network.
    await wechat_sender(core, api.url).send(message("b", "二"))
    with pytest.raises(TemporarySendError, match="WeChat API unreachable"):
        await wechat_sender(core, closed).send(message("c", "三"))
    assert [c.endpoint for c in api.calls if c.errcode == 0] == [TOKEN, CUSTOM]


def test_api_base_url_and_template_fields() -> None:
    assert cgi_base(None) == "https://api.weixin.qq.com/cgi-bin/"
    assert cgi_base("http://127.0.0.1:9000") == "http://127.0.0.1:9000/cgi-bin/"
    assert cgi_base("https://proxy.school.cn/wx/cgi-bin/") == "https://proxy.school.cn/wx/cgi-bin/"
    long = OutboundMessage(key="k", channel="wechat", recipient=OPENID, kind="notice", text="长" * 500)
    data = template_data(long)
    assert len(data["remark"]["value"]) == 200 and data["remark"]["value"].endswith("…")
    assert (data["keyword1"]["value"], data["keyword2"]["value"]) == ("-", "处理进展")
    # A later part of a long text that meets a closed window: the template starts where the text does.
    part = OutboundMessage(
        key="k:part:2",
        channel="wechat",
        recipient=OPENID,
        kind="reply",
        text="第二段",
        meta={WHOLE_TEXT: "第一段。第二段"},
    )
    assert template_data(part)["remark"]["value"] == "第一段。第二段"
    assert set(WINDOW_REASONS) == {45015, 45047}
    assert json.loads(AccessToken("t", NOW).dump())["token"] == "t" and AccessToken.load("{bad") is None


async def test_the_template_path_is_only_taken_for_a_closed_window(
    core: CoreContext, api: WechatApiServer
) -> None:
    api.fail_next(CUSTOM, 45002, "content size out of limit")
    sender = wechat_sender(core, api.url, template_id=TEMPLATE_ID)
    with pytest.raises(PermanentSendError, match="45002"):
        await sender.send(message("a", "一"))
    assert [c.endpoint for c in api.calls if c.endpoint == TEMPLATE] == []


async def test_a_wrong_template_id_waits_for_the_configuration(
    core: CoreContext, api: WechatApiServer
) -> None:
    api.fail_next(CUSTOM, 45015)
    with pytest.raises(TemporarySendError, match=r"40037 .*check \[channels.wechat\] template_id"):
        await wechat_sender(core, api.url, template_id="TPL-unknown").send(message("a", "一"))


# A staff reply of about 1,500 Chinese characters: some 4,500 bytes, where a customer-service text takes
# 2,048; its first paragraph alone is too long for one message.
LONG_REPLY = "\n\n".join(
    [
        "您好，关于您反映的王老师迟到问题，我们已经核实。" * 30,
        "教学部已与王老师谈话，并从下周起为您调换老师，缺的课会在周末补上。" * 10,
        "如对处理结果有异议，请直接回复本消息。" * 8,
    ]
)


async def test_wechat_refuses_a_text_over_2048_bytes(core: CoreContext, api: WechatApiServer) -> None:
    # The sender alone, with no dispatcher to part it: WeChat's own answer to an over-long text.
    with pytest.raises(PermanentSendError, match="45002"):
        await wechat_sender(core, api.url).send(message("too-long", "长" * 683))  # 2,049 bytes


async def test_a_long_reply_reaches_the_learner_in_parts_each_within_wechats_limit(
    core: CoreContext, intake: Intake, api: WechatApiServer
) -> None:
    number = await complain(intake)
    key = await staff_reply(core, number, LONG_REPLY)
    report = await dispatcher(core, wechat_sender(core, api.url)).drain(NOW)
    assert report.dead == 0 and report.retried == 0
    assert (await row(core, key)).status == SENT
    parts = [m["text"]["content"] for m in api.custom_messages]
    parts = parts[[p.startswith("您好，关于") for p in parts].index(True) :]  # after the ack and question
    assert len(parts) == 2 and all(len(p.encode("utf-8")) <= 2048 for p in parts)
    assert all(p.endswith("。") for p in parts)  # each ends with a sentence
    # In order and whole: only the line breaks where it was parted are gone.
    assert _bare(parts) == _bare([LONG_REPLY])
    assert [c for c in api.calls if c.errcode == 45002] == []


async def test_a_part_refused_for_now_goes_again_alone(
    core: CoreContext, intake: Intake, api: WechatApiServer
) -> None:
    number = await complain(intake)
    sender = wechat_sender(core, api.url)
    await dispatcher(core, sender).drain(NOW)  # the acknowledgement and the question
    before = len(api.custom_messages)
    key = await staff_reply(core, number, LONG_REPLY)
    api.fail_next(CUSTOM, -1)  # busy: the first part
    first = await dispatcher(core, sender).run_once(NOW)
    assert first.retried == 1 and len(api.custom_messages) == before
    await dispatcher(core, sender).drain(NOW + timedelta(hours=1))
    parts = [m["text"]["content"] for m in api.custom_messages[before:]]
    assert _bare(parts) == _bare([LONG_REPLY]) and len(parts) == 2
    assert (await row(core, key)).status == SENT


async def test_outside_the_window_a_long_reply_is_one_template_message(
    core: CoreContext, intake: Intake, api: WechatApiServer
) -> None:
    number = await complain(intake)
    sender = wechat_sender(core, api.url, template_id=TEMPLATE_ID)
    await dispatcher(core, sender).drain(NOW)
    api.close_window(OPENID)
    key = await staff_reply(core, number, LONG_REPLY)
    await dispatcher(core, sender).drain(NOW)
    assert (await row(core, key)).status == SENT
    [template] = api.template_messages  # one notice for the whole reply, not one per part
    assert template["data"]["remark"]["value"].startswith("您好，关于您反映的王老师迟到问题")


def _bare(texts: list[str]) -> str:
    """The texts run together without white space: what a split may not change."""
    return "".join("".join(text.split()) for text in texts)
