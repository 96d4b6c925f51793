"""Every channel's error paths, with known secrets configured: none of them, no OpenID, phone number or
learner's address reaches a log line, an outbox row's `last_error`, an unparsed input's reason, or any
other column of the database in clear."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest
from prometheus_client import generate_latest
from sqlalchemy import select, text

from bot.metrics import Metrics
from bot.web import create_app
from channels.mail.sender import MailSender, SmtpServer
from channels.telegram.sender import TelegramSender, make_bot
from channels.voicemail.webhook import voicemail_webhook
from channels.wechat.api import SharedAccessToken, WechatClient, token_fetcher
from channels.wechat.parse import Unusable, parse_push
from channels.wechat.sender import WechatSender
from channels.wechat.wecom import WecomStaffSink
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import enqueue
from core.intake.intake import Intake
from core.intake.unparsed import keep_unparsed
from core.storage.delivery_models import OutboxRow
from core.storage.models import Base
from core.storage.redaction import Redactor, install
from standins.botapi import BotApiServer
from standins.smtp import password_check, run_smtp
from standins.wechatapi import TOKEN, WechatApiServer
from tests.bot.test_service import free_port
from tests.conftest import at

NOW = at("2026-11-23 10:00")
APP_ID = "wx5b3c2d1e0f9a8b7c"
APP_SECRET = "a8f3c2e1d4b5a69788776655443322ff"
BOT_TOKEN = "7234567890:AAH3kx9vQ2mPz8LwTn5Rb1Yc4Df6Gh7Jk0L"
ROBOT_KEY = "693a91f6-7d2e-4bc4-97a0-0ec2b1fa5aaa"
SMTP_PASSWORD = "Smtp-pa55word!"
VOICEMAIL_SECRET = "vm-hmac-7f3e9a1c"
OPENID = "oLVPpjqs9BhvzwPj5A-vTYAX3GLc"
PHONE, PHONE_SPACED = "13800138000", "+86 138 0013 8000"
LEARNER_MAIL = "li.lei@example.org"
SECRETS = (APP_SECRET, BOT_TOKEN, ROBOT_KEY, SMTP_PASSWORD)
PERSONAL = (OPENID, PHONE, PHONE_SPACED, LEARNER_MAIL)


@pytest.fixture
def redactor(core: CoreContext) -> Redactor:
    """As `complaintbot run` builds it from the configuration, on the core and the dispatcher."""
    core.redact = Redactor(SECRETS)
    return core.redact


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, redactor: Redactor) -> Iterator[pytest.LogCaptureFixture]:
    """Every record, as the service's handlers write it (the redacting filter on each of them)."""
    caplog.set_level(logging.INFO)
    remove = install(redactor)
    yield caplog
    remove()


@pytest.fixture
async def wechat_api() -> AsyncIterator[WechatApiServer]:
    async with WechatApiServer(APP_ID, APP_SECRET, robot_keys=(ROBOT_KEY,)) as server:
        yield server


async def database_text(core: CoreContext) -> str:
    """Every value of every row of every table, as text."""
    found = []
    async with core.sessions() as session:
        for table in Base.metadata.sorted_tables:
            rows = await session.execute(text(f'SELECT * FROM "{table.name}"'))
            found += [repr(tuple(row)) for row in rows]
    return "\n".join(found)


async def outbox_errors(core: CoreContext) -> list[str]:
    async with core.sessions() as session:
        return [e or "" for e in await session.scalars(select(OutboxRow.last_error).order_by(OutboxRow.id))]


async def queue(core: CoreContext, channel: str, recipient: str, key: str = "leak:1") -> None:
    async with core.sessions() as session, session.begin():
        enqueue(
            session,
            core.vault,
            key=key,
            channel=channel,
            recipient=recipient,
            kind="reply" if channel != "staff" else "notice-staff",
            text="您的投诉已受理",
            now=NOW,
        )


async def assert_nothing_leaked(core: CoreContext, logs: pytest.LogCaptureFixture, *extra: str) -> None:
    logged = logs.text + "\n".join(str(r.exc_text or "") for r in logs.records)
    stored = await database_text(core)
    for value in (*SECRETS, *PERSONAL, *extra):
        assert value not in logged, f"{value!r} in the log"
        assert value not in stored, f"{value!r} in the database"


def wechat_sender(core: CoreContext, token_url: str, api_url: str) -> WechatSender:
    token = SharedAccessToken(
        core.sessions, APP_ID, token_fetcher(APP_ID, APP_SECRET, token_url), clock=lambda: NOW, wait=0.01
    )
    return WechatSender(WechatClient(APP_ID, APP_SECRET, api_url), token)


async def test_a_5xx_from_wechats_token_endpoint_keeps_the_app_secret_out(
    core: CoreContext, redactor: Redactor, logs: pytest.LogCaptureFixture, wechat_api: WechatApiServer
) -> None:
    wechat_api.fail_http_next(TOKEN, 502)
    await queue(core, "wechat", OPENID)
    sender = wechat_sender(core, wechat_api.url, wechat_api.url)
    metrics = Metrics()
    dispatcher = Dispatcher(core.sessions, core.vault, {"wechat": sender}, redact=redactor, observer=metrics)
    report = await dispatcher.drain(NOW)
    assert report.retried == 1
    [error] = await outbox_errors(core)
    assert "HTTP 502" in error
    await assert_nothing_leaked(core, logs)
    # What /metrics shows of it: lanes and results, nobody's address and no secret.
    await metrics.refresh(core, dispatcher, NOW)
    scraped = generate_latest(metrics.registry).decode()
    assert 'complaintbot_outbox_results_total{channel="wechat",result="retried"} 1.0' in scraped
    assert not [value for value in (*SECRETS, *PERSONAL) if value in scraped]


async def test_an_unreachable_wechat_api_keeps_the_access_token_out(
    core: CoreContext, redactor: Redactor, logs: pytest.LogCaptureFixture, wechat_api: WechatApiServer
) -> None:
    # The token comes from the stand-in; the messages go to a port nobody listens on. requests names
    # the URL it failed on, `…/message/custom/send?access_token=TOKEN-1`.
    dead = f"http://127.0.0.1:{free_port()}/"
    await queue(core, "wechat", OPENID)
    sender = wechat_sender(core, wechat_api.url, dead)
    await Dispatcher(core.sessions, core.vault, {"wechat": sender}, redact=redactor).drain(NOW)
    [error] = await outbox_errors(core)
    assert "unreachable" in error and "access_token=***" in error
    logs.records.clear()  # the token itself is kept in channel_state, by design: look at the rest
    assert "TOKEN-1" not in logs.text and "TOKEN-1" not in error
    await assert_nothing_leaked(core, logs)


async def test_a_wecom_robot_refusal_and_outage_keep_its_key_out(
    core: CoreContext, redactor: Redactor, logs: pytest.LogCaptureFixture, wechat_api: WechatApiServer
) -> None:
    wrong_key = "0f0f0f0f-wrong-key-0f0f"
    down = f"http://127.0.0.1:{free_port()}/cgi-bin/webhook/send"
    # One after the other: the first row waits for its retry while the second is tried.
    for department, sink in (
        ("service", WecomStaffSink({"service": wrong_key}, robot_url=wechat_api.robot_url)),  # 93000
        ("teaching", WecomStaffSink({"teaching": ROBOT_KEY}, robot_url=down)),  # nobody answers
    ):
        await queue(core, "staff", department, f"leak:robot:{department}")
        await Dispatcher(core.sessions, core.vault, {"staff": sink}, redact=redactor).drain(NOW)
    errors = await outbox_errors(core)
    assert any("93000" in e for e in errors) and any("unreachable" in e for e in errors)
    await assert_nothing_leaked(core, logs, wrong_key)


async def test_telegram_errors_that_quote_the_token_and_a_phone_number_are_stored_without_them(
    core: CoreContext, redactor: Redactor, logs: pytest.LogCaptureFixture
) -> None:
    async with BotApiServer(token=BOT_TOKEN) as api:
        bot = make_bot(BOT_TOKEN, api.base_url)
        await bot.initialize()
        try:
            api.fail_next(
                "sendMessage", status=500, description=f"bad gateway for /bot{BOT_TOKEN} {PHONE_SPACED}"
            )
            api.fail_next("sendMessage", status=400, description=f"Bad Request: chat of {PHONE} not found")
            await queue(core, "telegram", "5001", "leak:tg:1")
            dispatcher = Dispatcher(
                core.sessions, core.vault, {"telegram": TelegramSender(bot)}, redact=redactor
            )
            await dispatcher.drain(NOW)  # 500: retried later
            await queue(core, "telegram", "5002", "leak:tg:2")
            await dispatcher.drain(NOW)  # 400: given up
        finally:
            await bot.shutdown()
    errors = await outbox_errors(core)
    assert "Telegram unreachable" in errors[0] and "[secret]" in errors[0] and "138****8000" in errors[0]
    assert "138****8000" in errors[1]
    await assert_nothing_leaked(core, logs)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback, on purpose
async def test_smtp_refusals_keep_the_password_and_the_learners_address_out(
    core: CoreContext, redactor: Redactor, logs: pytest.LogCaptureFixture
) -> None:
    check = password_check({"bot": SMTP_PASSWORD})
    with run_smtp(authenticator=check, auth_required=True, auth_require_tls=False) as server:
        server.recorder.refuse[LEARNER_MAIL] = f"550 5.1.1 <{LEARNER_MAIL}>: mailbox unavailable"
        smtp = SmtpServer(server.host, server.port, security="none", username="bot", timeout=5)
        good = MailSender(replace(smtp, password=SMTP_PASSWORD), "desk@school.example.cn")
        wrong = MailSender(replace(smtp, password=SMTP_PASSWORD + "x"), "desk@school.example.cn")
        await queue(core, "email", LEARNER_MAIL, "leak:mail:1")
        await Dispatcher(core.sessions, core.vault, {"email": good}, redact=redactor).drain(NOW)
        await queue(core, "email", "wang.fang@example.org", "leak:mail:2")
        await Dispatcher(core.sessions, core.vault, {"email": wrong}, redact=redactor).drain(NOW)
        await good.close()
        await wrong.close()
    errors = await outbox_errors(core)
    assert "550" in errors[0] and "l***@example.org" in errors[0]
    assert "535" in errors[1]
    await assert_nothing_leaked(core, logs, SMTP_PASSWORD + "x", "wang.fang@example.org")


async def test_an_unusable_input_is_kept_with_a_reason_free_of_secrets(
    core: CoreContext, redactor: Redactor, logs: pytest.LogCaptureFixture
) -> None:
    # A push without MsgId, kept under its key as the webhook keeps it; a reason that quotes a secret.
    push = parse_push(
        {"FromUserName": OPENID, "CreateTime": "1700000000", "MsgType": "text"}, received_at=NOW
    )
    assert isinstance(push, Unusable)
    reason = f"{push.reason}; RuntimeError('GET https://x/token?secret={APP_SECRET}&openid={OPENID}')"
    await keep_unparsed(core, "wechat", push.key, "<xml/>", reason, NOW)
    stored = await database_text(core)
    assert "secret=***" in stored or "[secret]" in stored
    await assert_nothing_leaked(core, logs)


def test_the_redactor_hides_what_httpx_says_of_a_token_call() -> None:
    request = httpx.Request(
        "GET", "http://127.0.0.1/cgi-bin/token", params={"appid": APP_ID, "secret": "x" * 8}
    )
    error = httpx.HTTPStatusError("boom", request=request, response=httpx.Response(500, request=request))
    said = f"{error} {request.url}"
    assert "x" * 8 not in Redactor()(said)  # by the parameter's name, even when no secret is configured
    assert APP_SECRET not in Redactor([APP_SECRET])(f"app secret is {APP_SECRET}")


async def test_voicemail_refusals_keep_the_shared_secret_and_the_callers_number_out(
    core: CoreContext, redactor: Redactor, logs: pytest.LogCaptureFixture, intake: Intake
) -> None:
    core.redact = Redactor([*SECRETS, VOICEMAIL_SECRET])
    route = voicemail_webhook(intake, core, secret=VOICEMAIL_SECRET, clock=lambda: NOW)
    transport = httpx.ASGITransport(app=create_app(core, [route]))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        body = json.dumps(
            {"schema_version": 1, "caller": PHONE_SPACED, "note": f"from {LEARNER_MAIL}"}
        ).encode()
        stamp = str(int(NOW.timestamp()))
        good = hmac.new(VOICEMAIL_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        wrong = {"X-Voicemail-Timestamp": stamp, "X-Voicemail-Signature": VOICEMAIL_SECRET}
        assert (await client.post("/voicemail", content=body, headers=wrong)).status_code == 403
        signed = {"X-Voicemail-Timestamp": stamp, "X-Voicemail-Signature": good}
        refused = await client.post("/voicemail", content=body, headers=signed)
    assert refused.status_code == 422  # kept for staff: its raw body encrypted, its reason in clear
    await assert_nothing_leaked(core, logs, VOICEMAIL_SECRET)
