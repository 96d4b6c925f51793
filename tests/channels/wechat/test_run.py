"""`complaintbot run` with the Official Account configured: a signed, encrypted complaint pushed to
`POST /wechat` is answered in the HTTP response with its acknowledgement, and the follow-up question
reaches the learner as a customer-service message through the WeChat API (a local stand-in)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.storage.numbers import find_ticket_numbers
from standins.wechatapi import WechatApiServer
from tests.bot.cli_helpers import SCRIPT, clean_env
from tests.bot.test_service import free_port
from tests.channels.wechat.signing import APP_ID, ENCODING_AES_KEY, TOKEN, open_reply, push, text_xml

SECRET = "app-secret-for-tests"


@pytest.fixture
async def api() -> AsyncIterator[WechatApiServer]:
    async with WechatApiServer(APP_ID, SECRET) as server:
        yield server


async def test_the_running_service_answers_a_wechat_push_and_sends_the_question(
    api: WechatApiServer, tmp_path: Path
) -> None:
    port = free_port()
    env = clean_env(
        COMPLAINTBOT_WEB__PORT=str(port),
        COMPLAINTBOT_CHANNELS__WECHAT__TOKEN=TOKEN,
        COMPLAINTBOT_CHANNELS__WECHAT__APP_ID=APP_ID,
        COMPLAINTBOT_CHANNELS__WECHAT__APP_SECRET=SECRET,
        COMPLAINTBOT_CHANNELS__WECHAT__ENCODING_AES_KEY=ENCODING_AES_KEY,
        COMPLAINTBOT_CHANNELS__WECHAT__API_BASE_URL=api.url,
    )
    log = tmp_path / "run.log"
    with log.open("w") as out:
        process = await asyncio.create_subprocess_exec(
            SCRIPT, "run", cwd=tmp_path, stdout=out, stderr=out, env=env
        )
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                deadline = time.monotonic() + 60  # a bound on a busy machine, not a timing
                while time.monotonic() < deadline:
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
                now = int(time.time())
                signed = push(
                    text_xml("老师上课总是迟到，教学质量很差", msg_id="9000000001", at=now),
                    "safe",
                    timestamp=now,
                )
                answer = await client.post("/wechat", params=signed.params, content=signed.body)
            deadline = time.monotonic() + 60  # the follow-up question goes as a customer-service message
            while time.monotonic() < deadline:
                if api.custom_messages:
                    break
                await asyncio.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), timeout=60)
    said = log.read_text()
    assert code == 0, said
    assert "channel wechat: POST /wechat, safe mode (AES)" in said, said
    assert answer.status_code == 200, answer.text
    reply = open_reply(answer.text)
    numbers = find_ticket_numbers(reply)
    assert numbers, reply
    [question] = api.custom_messages
    assert question["touser"] == "oLearner" and str(numbers[0]) in question["text"]["content"]
