"""Fixtures for Telegram tests: a running Bot API stand-in and a real ``telegram.Bot`` pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import telegram

from standins.botapi import BotApiServer

TOKEN = "123:abc"


@pytest.fixture
async def botapi() -> AsyncIterator[BotApiServer]:
    """The Bot API stand-in, serving on 127.0.0.1 for the duration of one test."""
    async with BotApiServer(token=TOKEN) as server:
        yield server


@pytest.fixture
async def tg_bot(botapi: BotApiServer) -> AsyncIterator[telegram.Bot]:
    """An initialized real ``telegram.Bot`` talking HTTP to :func:`botapi`."""
    async with botapi.make_bot() as bot:
        yield bot


# The staff-chat rig (a Telegram bot with staff and learners, its poller and dispatcher) for every
# module of staff chat-ops, defined beside the staff commands' tests.
from tests.channels.telegram.test_staff_commands import rig  # noqa: E402, F401
