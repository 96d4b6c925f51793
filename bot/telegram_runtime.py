"""Starting and stopping the Telegram channel inside `complaintbot run` (long polling)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.app import Application
from bot.config import Settings
from bot.staff_commands import StaffChats, StaffCommands
from bot.telegram import TelegramUpdates
from channels.telegram.poller import TelegramPoller
from channels.telegram.sender import TelegramBot, TelegramSender, TelegramStaffSink, make_bot


def utc_now() -> datetime:
    return datetime.now(UTC)


def staff_chats(settings: Settings) -> StaffChats:
    telegram = settings.channels.telegram
    own = {
        key: d.telegram_chat_id for key, d in settings.departments.items() if d.telegram_chat_id is not None
    }
    return StaffChats(departments=own, default=telegram.staff_chat_id, managers=telegram.manager_chat_id)


@dataclass
class TelegramRuntime:
    bot: TelegramBot
    task: asyncio.Task[None]
    stop: asyncio.Event

    async def close(self) -> None:
        self.stop.set()
        # A long poll can wait 25 s: cancel it. An update being handled is safe to abandon: its
        # transaction either committed (the offset write is lost, dedupe absorbs the redelivery) or not.
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.bot.shutdown()


async def start_telegram(application: Application, settings: Settings) -> TelegramRuntime:
    """Connect (getMe), register the senders, and start polling in the background."""
    config = settings.channels.telegram
    assert config.token is not None  # the caller checked the channel is configured
    bot = make_bot(config.token, config.base_url)
    await bot.initialize()  # getMe: a wrong token or an unreachable server fails here, at start-up
    chats = staff_chats(settings)
    application.dispatcher.senders["telegram"] = TelegramSender(bot)
    sink_chats = {key: chats.departments.get(key, chats.default) for key in application.core.department_names}
    sink = {key: chat for key, chat in sink_chats.items() if chat is not None}
    managers = chats.managers if chats.managers is not None else chats.default
    if managers is not None:
        sink["managers"] = managers
    if sink:
        application.dispatcher.senders["staff"] = TelegramStaffSink(bot, sink)

    async def answer(callback_id: str, text: str) -> None:
        await bot.answer_callback_query(callback_id, text)

    updates = TelegramUpdates(
        application.core,
        application.intake,
        StaffCommands(application.core, chats, answer),
        clock=utc_now,
        bot_username=bot.username,
    )
    holder = f"{socket.gethostname()}:{os.getpid()}"
    poller = TelegramPoller(bot, application.core.sessions, updates, holder=holder, clock=utc_now)
    stop = asyncio.Event()
    return TelegramRuntime(bot, asyncio.create_task(poller.run(stop)), stop)
