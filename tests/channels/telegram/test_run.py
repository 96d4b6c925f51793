"""`complaintbot run` with a Telegram token: the service itself polls the Bot API stand-in and answers."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from core.storage.numbers import find_ticket_numbers
from standins.botapi import BotApiServer
from tests.bot.cli_helpers import SCRIPT, clean_env
from tests.bot.test_service import free_port

LEARNER, STAFF_CHAT = 5001, -1000


async def test_the_running_service_acknowledges_a_telegram_complaint_and_posts_the_card(
    botapi: BotApiServer, tmp_path: Path
) -> None:
    env = clean_env(
        COMPLAINTBOT_WEB__PORT=str(free_port()),
        COMPLAINTBOT_CHANNELS__TELEGRAM__TOKEN=botapi.token,
        COMPLAINTBOT_CHANNELS__TELEGRAM__BASE_URL=botapi.base_url,
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
            botapi.learner_message(LEARNER, "前台工作人员态度很差，咨询退费时推来推去")
            acks = await botapi.wait_for_messages(LEARNER, count=1, timeout=30)
            cards = await botapi.wait_for_messages(STAFF_CHAT, count=1, timeout=30)
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), timeout=60)  # a bound on a busy machine
    log = err.read_text()
    assert code == 0, log
    assert "channel telegram: polling as @complaint_test_bot" in log
    number = find_ticket_numbers(acks[0]["text"])
    assert number, acks[0]["text"]
    assert str(number[0]) in cards[0]["text"]
    # The log says what happened to the ticket, a line each, and nothing of the scheduler's passes.
    assert f"ticket {number[0]} opened" in log and f"ticket {number[0]} acknowledged via telegram" in log
    assert "apscheduler" not in log
