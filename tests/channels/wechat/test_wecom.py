"""Staff cards and alerts through WeCom group robots (the robot stand-in), and the WeChat senders of
`complaintbot run` built from the settings."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.config import Settings
from channels.fake import FakeChannel
from channels.wechat.channel import wechat_senders
from channels.wechat.config import WechatConfig
from channels.wechat.sender import WechatSender
from channels.wechat.wecom import MARKDOWN_LIMIT, TEXT_LIMIT, WecomStaffSink, cut, payload
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import (
    PENDING,
    SENT,
    NotConfiguredError,
    PermanentSendError,
    TemporarySendError,
    enqueue,
)
from core.intake.intake import Intake
from core.messages import Document, OutboundMessage
from core.storage.delivery_models import OutboxRow
from core.storage.models import Ticket
from standins.wechatapi import ROBOT, WechatApiServer
from tests.conftest import DEPARTMENTS, at

NOW = at("2026-11-23 10:00")
ROBOTS = {key: f"robot-{key}" for key in DEPARTMENTS}


@pytest.fixture
async def api() -> AsyncIterator[WechatApiServer]:
    async with WechatApiServer(robot_keys=(*ROBOTS.values(), "robot-managers")) as server:
        yield server


def sink(api: WechatApiServer, robots: dict[str, str] | None = None) -> WecomStaffSink:
    robots = ROBOTS if robots is None else robots
    return WecomStaffSink(robots, default=robots.get("service"), robot_url=api.robot_url)


def staff(kind: str, text: str, recipient: str = "teaching", **meta: str) -> OutboundMessage:
    return OutboundMessage(
        key=f"k-{kind}", channel="staff", recipient=recipient, kind=kind, text=text, meta=meta
    )


async def test_a_new_tickets_card_arrives_as_markdown_at_its_departments_robot(
    core: CoreContext, intake: Intake, api: WechatApiServer
) -> None:
    learner = FakeChannel("wechat")
    number = (
        await intake.receive(learner.message("oL1", "王老师上课总是迟到，希望调换老师。", NOW), NOW)
    ).ticket_number
    report = await Dispatcher(core.sessions, core.vault, {"staff": sink(api)}).drain(NOW)
    assert report.sent >= 1 and report.retried == report.dead == 0
    async with core.sessions() as session:
        ticket = (await session.scalars(select(Ticket).where(Ticket.number == number))).one()
        card = (
            await session.scalars(
                select(OutboxRow).where(OutboxRow.ticket_id == ticket.id, OutboxRow.kind == "card")
            )
        ).one()
    assert card.status == SENT and card.external_ref == f"wecom:{card.key}"
    cards = [body for key, body in api.robot_posts if body["msgtype"] == "markdown"]
    assert [key for key, body in api.robot_posts if body["msgtype"] == "markdown"] == [
        ROBOTS[ticket.department]
    ]
    content = cards[0]["markdown"]["content"]
    assert content.startswith(f"**🆕 {number}") and "\n> " in content


def test_cards_and_alerts_are_markdown_the_rest_text() -> None:
    card = payload(staff("card", "🆕 TS-1\n部门：教学部\n\n摘要：迟到"))
    assert card == {
        "msgtype": "markdown",
        "markdown": {"content": "**🆕 TS-1**\n> 部门：教学部\n>\n> 摘要：迟到"},
    }
    alert = payload(staff("alert", "重大投诉 TS-1\n请尽快处理"))
    assert alert["markdown"]["content"] == '**<font color="warning">重大投诉 TS-1</font>**\n> 请尽快处理'
    assert payload(staff("notice-staff", " 学员补充了信息 ")) == {
        "msgtype": "text",
        "text": {"content": "学员补充了信息"},
    }


def test_cut_keeps_within_the_byte_limit_on_a_character_boundary() -> None:
    assert cut("短", 10) == "短"
    for text in ("投" * 1000, "a" + "投" * 1000, "😀" * 700, "ab" + "😀" * 700):
        out = cut(text, TEXT_LIMIT)
        assert len(out.encode("utf-8")) <= TEXT_LIMIT and out.endswith("…")
        assert len(out.encode("utf-8")) > TEXT_LIMIT - 8  # cut at the limit, not far before it
        assert text.startswith(out[:-1])


async def test_long_texts_are_cut_within_the_robots_limits(api: WechatApiServer) -> None:
    robot = sink(api)
    await robot.send(staff("notice-staff", "学员说：" + "老师迟到" * 400))
    await robot.send(staff("card", "🆕 TS-1\n" + "摘要：迟到" * 1000))
    [(_, text), (_, card)] = api.robot_posts  # the stand-in refuses anything over the limit (40058)
    assert len(text["text"]["content"].encode()) <= TEXT_LIMIT and text["text"]["content"].endswith("…")
    content = card["markdown"]["content"]
    assert MARKDOWN_LIMIT - 8 < len(content.encode()) <= MARKDOWN_LIMIT and content.endswith("…")


async def test_recipients_map_to_robots_with_the_first_contact_desk_as_default(api: WechatApiServer) -> None:
    robot = sink(api, {"service": "robot-service", "managers": "robot-managers"})
    await robot.send(staff("alert", "重大投诉", recipient="managers"))
    await robot.send(staff("notice-staff", "通知", recipient="finance"))  # no robot of its own
    assert [key for key, _ in api.robot_posts] == ["robot-managers", "robot-service"]
    # Nowhere to post: the outbox parks such a row (no attempt used) until a robot is configured.
    with pytest.raises(NotConfiguredError, match=r"set \[departments.finance\] wecom_robot_key"):
        await sink(api, {"teaching": "robot-teaching"}).send(
            staff("notice-staff", "通知", recipient="finance")
        )
    with pytest.raises(NotConfiguredError, match=r"set \[channels.wechat\] wecom_managers_key"):
        await sink(api, {"teaching": "robot-teaching"}).send(staff("alert", "x", recipient="managers"))


async def test_card_edits_are_not_posted_and_refusals_are_sorted(api: WechatApiServer) -> None:
    robot = sink(api)
    result = await robot.send(staff("card-edit", "🆕 TS-1 已认领", card_ref="wecom:card-1"))
    assert result.external_ref == "wecom:card-1" and api.robot_posts == []
    with pytest.raises(TemporarySendError, match="93000"):  # a removed robot: fixed in the configuration
        await sink(api, {"teaching": "robot-gone"}).send(staff("card", "TS-1"))
    api.fail_next(ROBOT, 40008, "invalid message type")
    with pytest.raises(PermanentSendError, match="40008"):
        await robot.send(staff("card", "TS-1"))


async def test_the_robots_rate_limit_retries_after_a_minute(core: CoreContext, api: WechatApiServer) -> None:
    async with core.sessions() as session, session.begin():
        enqueue(
            session,
            core.vault,
            key="n1",
            channel="staff",
            recipient="teaching",
            kind="alert",
            text="重大投诉 TS-1",
            now=NOW,
        )
    api.fail_next(ROBOT, 45009, "api freq out of limit")
    outbox = Dispatcher(core.sessions, core.vault, {"staff": sink(api)})
    assert (await outbox.drain(NOW)).retried == 1
    async with core.sessions() as session:
        waiting = (await session.scalars(select(OutboxRow).where(OutboxRow.key == "n1"))).one()
    assert waiting.status == PENDING and "45009" in (waiting.last_error or "")
    assert (
        waiting.next_attempt_at >= NOW + timedelta(seconds=60) and waiting.attempts == 0
    )  # pacing, not failing
    assert (await outbox.drain(waiting.next_attempt_at)).sent == 1
    assert [key for key, _ in api.robot_posts] == ["robot-teaching"]


async def test_a_long_alert_is_one_robot_post_and_a_long_notice_goes_in_parts(
    core: CoreContext, api: WechatApiServer
) -> None:
    alert = "重大投诉 TS-1\n" + "学员说老师上课迟到。" * 100  # over the text limit, within markdown's
    notice = "TS-1 的处理说明：" + "老师已调换，补课两次。" * 100
    async with core.sessions() as session, session.begin():
        for key, kind, text in (("a1", "alert", alert), ("n1", "notice", notice)):
            enqueue(
                session,
                core.vault,
                key=key,
                channel="staff",
                recipient="teaching",
                kind=kind,
                text=text,
                now=NOW,
            )
    assert TEXT_LIMIT < len(alert.encode()) < MARKDOWN_LIMIT
    assert (await Dispatcher(core.sessions, core.vault, {"staff": sink(api)}).drain(NOW)).sent == 2
    alerts = [p for _, p in api.robot_posts if p["msgtype"] == "markdown"]
    texts = [p for _, p in api.robot_posts if p["msgtype"] == "text"]
    assert (
        len(alerts) == 1 and "学员说老师上课迟到" in alerts[0]["markdown"]["content"]
    )  # one alert, not several
    assert len(texts) > 1 and "".join(t["text"]["content"] for t in texts).count("补课两次") == 100


async def test_wechat_senders_are_built_from_the_settings(core: CoreContext, api: WechatApiServer) -> None:
    assert wechat_senders(Settings().channels.of(WechatConfig), {}, core) == {}
    settings = Settings(
        channels={
            "wechat": {
                "app_id": "wx-test-app",
                "app_secret": "test-secret",
                "api_base_url": api.url,
                "template_id": "TPL-complaint",
                "wecom_managers_key": "robot-managers",
                "wecom_robot_url": api.robot_url,
            }
        },
        departments={"service": {"wecom_robot_key": "robot-service"}, "finance": {"name": "财务部"}},
    )
    departments = {key: d.model_dump() for key, d in settings.departments.items()}
    senders = wechat_senders(settings.channels.of(WechatConfig), departments, core)
    assert set(senders) == {"wechat", "wecom-staff"}
    wechat, robot = senders["wechat"], senders["wecom-staff"]
    assert isinstance(wechat, WechatSender) and wechat.template_id == "TPL-complaint"
    assert isinstance(robot, WecomStaffSink) and robot.robots == {
        "service": "robot-service",
        "managers": "robot-managers",
    }
    await wechat.send(OutboundMessage(key="a", channel="wechat", recipient="oL1", kind="reply", text="好"))
    await robot.send(staff("notice-staff", "通知", recipient="finance"))
    assert api.custom_messages[0]["touser"] == "oL1" and api.robot_posts[0][0] == "robot-service"


async def test_the_monthly_report_arrives_as_its_summary_and_an_overview_picture(
    api: WechatApiServer,
) -> None:
    picture = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    report = OutboundMessage(
        key="report:2026-10",
        channel="staff",
        recipient="managers",
        kind="report",
        text="2026-10 月报 monthly report — 全部门 all departments\n收到 received 12",
        documents=(
            Document("report-2026-10.pdf", "application/pdf", b"%PDF-1.4 ..."),
            Document("report-2026-10-overview.png", "image/png", picture),
        ),
    )
    await sink(api, {**ROBOTS, "managers": "robot-managers"}).send(report)
    posts = api.robot_posts
    assert [key for key, _ in posts] == ["robot-managers", "robot-managers"]
    assert "收到 received 12" in posts[0][1]["text"]["content"]
    image = posts[1][1]
    assert image["msgtype"] == "image"
    assert base64.b64decode(image["image"]["base64"]) == picture  # the PDF itself cannot go by robot
