"""Telegram webhook mode: `POST /telegram` in our web app, fed to the handler polling uses.

The in-process tests start the channel exactly as `complaintbot run` does (`start_channel` against the Bot
API stand-in, which records the webhook) and drive our Starlette app through `httpx.ASGITransport`; the
last test runs the real service and lets the stand-in deliver to it over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.app import Application, channel_report
from bot.channel_run import offer, start_channel, utc_now
from bot.config import ConfigError, Settings, load_settings
from bot.web import create_app
from channels.base import Started
from channels.telegram.channel import TelegramChannel
from channels.telegram.config import TelegramConfig
from channels.telegram.webhook import TELEGRAM_SECRET_HEADER
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.intake.intake import Intake
from core.storage.delivery_models import OutboxRow, Unparsed
from core.storage.models import Base, Ticket
from core.storage.numbers import find_ticket_numbers
from standins.botapi import BotApiServer
from tests.bot.cli_helpers import SCRIPT, clean_env
from tests.bot.test_service import free_port
from tests.conftest import Database

LEARNER, STAFF_CHAT = 5001, -1000
SECRET = "s3cret_Web-hook"
URL = "http://testserver/telegram"  # the ASGI client's host: push_webhook(client=...) reaches our app
COMPLAINT = "前台工作人员态度很差，咨询退费时推来推去"


def _settings(botapi: BotApiServer, url: str = URL, **telegram: Any) -> Settings:
    return Settings(
        channels={
            "telegram": {
                "token": botapi.token,
                "base_url": botapi.base_url,
                "mode": "webhook",
                "webhook_url": url,
                "webhook_secret": SECRET,
                "staff_chat_id": STAFF_CHAT,
                **telegram,
            }
        }
    )


@dataclass
class Rig:
    core: CoreContext
    botapi: BotApiServer
    application: Application
    channel: TelegramChannel
    started: Started
    client: httpx.AsyncClient

    async def push(self, update: dict[str, Any]) -> httpx.Response:
        """Telegram delivers `update` to our webhook, with the secret it was given."""
        return await self.botapi.push_webhook(update, client=self.client)

    async def post(self, body: bytes, headers: Mapping[bytes, bytes] | Mapping[str, str]) -> httpx.Response:
        return await self.client.post("/telegram", content=body, headers=headers)

    async def snapshot(self) -> dict[str, int]:
        """Rows per table: "nothing stored" means this does not change."""
        async with self.core.sessions() as session:
            return {
                table.name: await session.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
            }

    async def count(self, model: type[Ticket] | type[OutboxRow]) -> int:
        async with self.core.sessions() as session:
            return await session.scalar(select(func.count()).select_from(model)) or 0

    async def send_outbox(self) -> None:
        await self.application.dispatcher.drain(utc_now())


@pytest.fixture
async def rig(
    core: CoreContext, db: Database, botapi: BotApiServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Rig]:
    for name in [n for n in os.environ if n.upper().startswith("COMPLAINTBOT_")]:
        monkeypatch.delenv(name)
    settings = _settings(botapi)
    application = Application(
        settings, db.engine, core, Intake(core), Dispatcher(core.sessions, core.vault, {})
    )
    channel = TelegramChannel(settings.channels.of(TelegramConfig))
    started = await start_channel(channel, application, offer(application))
    app = create_app(core, started.routes)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield Rig(core, botapi, application, channel, started, client)
    await channel.close()


async def test_webhook_mode_sets_the_webhook_and_does_not_poll(rig: Rig) -> None:
    assert rig.botapi.webhook is not None
    assert rig.botapi.webhook["url"] == URL
    assert rig.botapi.webhook["secret_token"] == SECRET
    (call,) = rig.botapi.calls_of("setWebhook")
    assert call.params["allowed_updates"] == ["message", "callback_query"]
    assert rig.started.summary == f"webhook at {URL}"
    assert rig.channel.task is None
    assert {"telegram", "staff"} <= set(rig.application.dispatcher.senders)

    await rig.channel.close()
    assert "getUpdates" not in rig.botapi.requests
    assert "deleteWebhook" not in rig.botapi.requests  # another instance may still serve it
    assert rig.botapi.webhook is not None


async def test_a_pushed_complaint_is_acknowledged_and_a_redelivery_creates_nothing(rig: Rig) -> None:
    update = rig.botapi.learner_message(LEARNER, COMPLAINT)

    response = await rig.push(update)
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True}
    assert rig.botapi.pending_updates == []  # confirmed by the 2xx
    assert await rig.count(Ticket) == 1
    queued = await rig.count(OutboxRow)
    assert queued >= 2  # the learner's acknowledgement and the staff card, committed before the 200

    await rig.send_outbox()
    ack = rig.botapi.texts_to(LEARNER)[0]
    assert find_ticket_numbers(ack), ack
    number = str(find_ticket_numbers(ack)[0])
    assert number in rig.botapi.texts_to(STAFF_CHAT)[0]

    before = await rig.snapshot()
    sent = len(rig.botapi.sent)
    again = await rig.push(update)  # Telegram redelivers (it never saw our first answer)
    assert again.status_code == 200, again.text
    await rig.send_outbox()
    assert await rig.snapshot() == before
    assert await rig.count(Ticket) == 1 and await rig.count(OutboxRow) == queued
    assert len(rig.botapi.sent) == sent


async def test_a_redelivered_learner_command_is_answered_once(rig: Rig) -> None:
    update = rig.botapi.learner_message(LEARNER, "/start")
    assert (await rig.push(update)).status_code == 200
    assert (await rig.push(update)).status_code == 200
    await rig.send_outbox()
    assert len(rig.botapi.texts_to(LEARNER)) == 1
    assert await rig.count(Ticket) == 0


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(b"wrong-secret", id="wrong"),
        pytest.param(SECRET[:-1].encode(), id="prefix"),
        pytest.param(b"", id="empty"),
        pytest.param("sécret".encode(), id="non-ascii"),
        pytest.param(None, id="missing"),
    ],
)
async def test_a_request_without_the_secret_gets_403_and_changes_nothing(
    rig: Rig, given: bytes | None
) -> None:
    update = rig.botapi.learner_message(LEARNER, COMPLAINT)
    before = await rig.snapshot()
    body = json.dumps(update).encode()
    headers = {b"Content-Type": b"application/json"}
    if given is not None:
        headers[TELEGRAM_SECRET_HEADER.encode()] = given
    response = await rig.post(body, headers)
    assert response.status_code == 403
    assert response.json() == {"ok": False}
    assert await rig.snapshot() == before
    assert await rig.count(Ticket) == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="text"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"update_id": 1, ', id="truncated"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'"update"', id="string"),
    ],
)
async def test_a_body_that_is_not_a_json_object_gets_400_and_changes_nothing(rig: Rig, body: bytes) -> None:
    before = await rig.snapshot()
    response = await rig.post(body, {TELEGRAM_SECRET_HEADER: SECRET, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert await rig.snapshot() == before


async def test_an_oversized_body_gets_413_and_changes_nothing(rig: Rig) -> None:
    before = await rig.snapshot()
    body = b'{"update_id": 1, "padding": "' + b"x" * (1024 * 1024) + b'"}'
    response = await rig.post(body, {TELEGRAM_SECRET_HEADER: SECRET})
    assert response.status_code == 413
    assert await rig.snapshot() == before


async def test_only_post_is_served(rig: Rig) -> None:
    response = await rig.client.get("/telegram", headers={TELEGRAM_SECRET_HEADER: SECRET})
    assert response.status_code == 405


async def test_a_failure_before_commit_gets_500_and_the_redelivery_is_handled_once(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The database is away while the update is handled: nothing is stored, Telegram delivers again."""
    receive = rig.application.intake.receive
    failures = [ConnectionRefusedError("database unreachable")]

    async def flaky(message: Any, now: datetime) -> Any:
        if failures:
            raise failures.pop()
        return await receive(message, now)

    monkeypatch.setattr(rig.application.intake, "receive", flaky)
    update = rig.botapi.learner_message(LEARNER, COMPLAINT)
    before = await rig.snapshot()
    with caplog.at_level(logging.ERROR, logger="channels.telegram.webhook"):
        response = await rig.push(update)
    assert response.status_code == 500
    assert response.json() == {"ok": False}
    assert f"telegram update {update['update_id']} failed" in caplog.text
    assert await rig.snapshot() == before
    assert [u["update_id"] for u in rig.botapi.pending_updates] == [update["update_id"]]  # not confirmed

    retry = await rig.push(update)
    assert retry.status_code == 200, retry.text
    assert await rig.count(Ticket) == 1
    await rig.send_outbox()
    assert len(rig.botapi.texts_to(LEARNER)) >= 1
    assert find_ticket_numbers(rig.botapi.texts_to(LEARNER)[0])

    assert (await rig.push(update)).status_code == 200
    assert await rig.count(Ticket) == 1


async def test_a_failure_after_commit_gets_500_and_the_redelivery_creates_nothing(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The complaint is committed, then handling fails: Telegram delivers again, dedupe absorbs it."""
    receive = rig.application.intake.receive
    failures = [RuntimeError("crashed after the commit")]

    async def committed_then_failed(message: Any, now: datetime) -> Any:
        result = await receive(message, now)
        if failures:
            raise failures.pop()
        return result

    monkeypatch.setattr(rig.application.intake, "receive", committed_then_failed)
    update = rig.botapi.learner_message(LEARNER, COMPLAINT)
    assert (await rig.push(update)).status_code == 500
    after_first = await rig.snapshot()
    assert after_first[Ticket.__tablename__] == 1

    retry = await rig.push(update)
    assert retry.status_code == 200, retry.text
    assert await rig.snapshot() == after_first
    await rig.send_outbox()
    texts = rig.botapi.texts_to(LEARNER)
    assert texts and find_ticket_numbers(texts[0])
    assert len(texts) == len(set(texts))  # the acknowledgement and follow-up question, each once


async def test_an_update_that_keeps_failing_is_kept_for_staff_and_answered_200(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram would redeliver a failing update for a day, holding the chat back: after five tries it
    is kept raw with the reason, as polling does, and the next update of the chat goes through."""

    async def always_failing(message: Any, now: datetime) -> Any:
        raise RuntimeError("a bug in intake")

    receive = rig.application.intake.receive
    monkeypatch.setattr(rig.application.intake, "receive", always_failing)
    update = rig.botapi.learner_message(LEARNER, COMPLAINT)
    answers = [(await rig.push(update)).status_code for _ in range(5)]
    assert answers == [500, 500, 500, 500, 200]
    async with rig.core.sessions() as session:
        (kept,) = (await session.scalars(select(Unparsed))).all()
    assert kept.external_id == f"update:{update['update_id']}" and "a bug in intake" in kept.reason
    assert rig.core.vault.decrypt(kept.raw_enc).count(COMPLAINT) == 1  # nothing lost

    monkeypatch.setattr(rig.application.intake, "receive", receive)
    assert (await rig.push(rig.botapi.learner_message(LEARNER, "还有一件事"))).status_code == 200
    assert await rig.count(Ticket) == 1


def test_webhook_mode_without_url_or_secret_is_skipped_with_the_reason() -> None:
    def reason(**telegram: Any) -> str | None:
        settings = Settings(channels={"telegram": {"token": "123:abc", "mode": "webhook", **telegram}})
        return dict(channel_report(settings))["telegram"]

    assert reason() == "webhook mode needs [channels.telegram] webhook_url and webhook_secret"
    assert reason(webhook_url=URL) == "webhook mode needs [channels.telegram] webhook_secret"
    assert reason(webhook_secret=SECRET) == "webhook mode needs [channels.telegram] webhook_url"
    assert reason(webhook_url=URL, webhook_secret=SECRET) is None
    polling = Settings(channels={"telegram": {"token": "123:abc"}})
    assert dict(channel_report(polling))["telegram"] is None  # polling needs neither


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("webhook_secret", "has spaces"),
        ("webhook_secret", "x" * 257),
        ("webhook_secret", "秘密"),
        ("webhook_url", "bot.school.cn/telegram"),
    ],
)
def test_a_bad_webhook_key_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    for name in [n for n in os.environ if n.upper().startswith("COMPLAINTBOT_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "complaintbot.toml"
    path.write_text(f'[channels.telegram]\nmode = "webhook"\n{key} = "{value}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    message = str(error.value)
    assert f"channels.telegram.{key}" in message and "\n" not in message
    if key == "webhook_secret":
        assert "A-Z, a-z, 0-9, _ or -" in message and value not in message  # the secret is not echoed


async def test_the_running_service_serves_the_webhook(botapi: BotApiServer, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram"
    env = clean_env(
        COMPLAINTBOT_WEB__PORT=str(port),
        COMPLAINTBOT_CHANNELS__TELEGRAM__TOKEN=botapi.token,
        COMPLAINTBOT_CHANNELS__TELEGRAM__BASE_URL=botapi.base_url,
        COMPLAINTBOT_CHANNELS__TELEGRAM__MODE="webhook",
        COMPLAINTBOT_CHANNELS__TELEGRAM__WEBHOOK_URL=url,
        COMPLAINTBOT_CHANNELS__TELEGRAM__WEBHOOK_SECRET=SECRET,
        COMPLAINTBOT_CHANNELS__TELEGRAM__STAFF_CHAT_ID=str(STAFF_CHAT),
        # Managers' alerts and digests go to their own chat; the staff chat gets the cards.
        COMPLAINTBOT_CHANNELS__TELEGRAM__MANAGER_CHAT_ID="-1009",
    )
    err = tmp_path / "run.err"
    with err.open("w") as stderr:
        process = await asyncio.create_subprocess_exec(
            SCRIPT, "run", cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=stderr, env=env
        )
        try:
            await botapi.wait_for(lambda: botapi.webhook is not None, timeout=30)
            assert botapi.webhook == {
                "url": url,
                "secret_token": SECRET,
                "max_connections": 40,
                "ip_address": "127.0.0.1",
            }
            await _wait_until_listening(f"http://127.0.0.1:{port}/healthz")
            update = botapi.learner_message(LEARNER, COMPLAINT)
            response = await botapi.push_webhook(update)
            assert response.status_code == 200, response.text
            acks = await botapi.wait_for_messages(LEARNER, count=1, timeout=30)
            cards = await botapi.wait_for_messages(STAFF_CHAT, count=1, timeout=30)
            async with httpx.AsyncClient(timeout=10) as client:
                refused = await client.post(url, json=update, headers={TELEGRAM_SECRET_HEADER: "nope"})
            assert refused.status_code == 403
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), timeout=60)  # a bound on a busy machine
    log = err.read_text()
    assert code == 0, log
    assert f"channel telegram: webhook at {url}" in log
    assert "getUpdates" not in botapi.requests
    assert botapi.webhook is not None  # left set on shutdown
    number = find_ticket_numbers(acks[0]["text"])
    assert number, acks[0]["text"]
    assert str(number[0]) in cards[0]["text"]


async def _wait_until_listening(url: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout), httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
