"""Starting and stopping the Telegram channel inside `complaintbot run`: long polling or webhook.

Both modes share everything but the way updates arrive: `connect_telegram` builds the client, the
senders and the one `TelegramUpdates` handler; polling feeds it from a `TelegramPoller`, webhook mode
from the `POST /telegram` route of our web app.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.routing import BaseRoute
from telegram.error import InvalidToken, TelegramError

from bot.app import Application
from bot.config import Settings
from bot.staff_commands import StaffChats, StaffCommands
from bot.telegram import TelegramUpdates
from bot.telegram_gate import UpdateGate
from bot.web import telegram_webhook
from channels.telegram.poller import ALLOWED_UPDATES, TelegramPoller
from channels.telegram.sender import GroupPacing, TelegramBot, TelegramSender, TelegramStaffSink, make_bot
from core.outbox import Sender


def utc_now() -> datetime:
    return datetime.now(UTC)


class TelegramStartError(Exception):
    """The channel cannot start; the message is the one-line reason `complaintbot run` prints."""


def staff_chats(settings: Settings) -> StaffChats:
    telegram = settings.channels.telegram
    own = {
        key: d.telegram_chat_id for key, d in settings.departments.items() if d.telegram_chat_id is not None
    }
    return StaffChats(departments=own, default=telegram.staff_chat_id, managers=telegram.manager_chat_id)


@dataclass
class TelegramParts:
    """What both update modes share: the connected client, its senders and the update handler."""

    bot: TelegramBot
    senders: dict[str, Sender]
    updates: TelegramUpdates


async def connect_telegram(application: Application, settings: Settings) -> TelegramParts:
    """Connect (getMe) and build the senders and the handler; nothing is registered or started yet."""
    config = settings.channels.telegram
    assert config.token is not None  # the caller checked the channel is configured
    bot = make_bot(config.token, config.base_url)
    try:
        await bot.initialize()  # getMe: a wrong token or an unreachable server fails here, at start-up
    except TelegramError as exc:
        await bot.shutdown()
        # PTB's InvalidToken message repeats the token: keep it out of the terminal and the logs.
        reason = "the token was rejected" if isinstance(exc, InvalidToken) else str(exc)
        raise TelegramStartError(f"cannot connect: {reason}") from exc
    chats = staff_chats(settings)
    pacing = GroupPacing()  # one per bot: both senders write to the staff groups
    senders: dict[str, Sender] = {"telegram": TelegramSender(bot, pacing)}
    sink_chats = {key: chats.departments.get(key, chats.default) for key in application.core.department_names}
    sink = {key: chat for key, chat in sink_chats.items() if chat is not None}
    managers = chats.managers if chats.managers is not None else chats.default
    if managers is not None:
        sink["managers"] = managers
    if sink:
        senders["staff"] = TelegramStaffSink(bot, sink, pacing)

    async def answer(callback_id: str, text: str) -> None:
        await bot.answer_callback_query(callback_id, text)

    updates = TelegramUpdates(
        application.core,
        application.intake,
        StaffCommands(application.core, chats, answer, application.intake),
        clock=utc_now,
        bot_username=bot.username,
        answer_callback=answer,
    )
    return TelegramParts(bot, senders, updates)


@dataclass
class TelegramRuntime:
    bot: TelegramBot
    summary: str  # what `complaintbot run` prints after "channel telegram: "
    routes: list[BaseRoute] = field(default_factory=list)  # for the web app (webhook mode)
    task: asyncio.Task[None] | None = None  # the poller (polling mode)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            # A long poll can wait 25 s: cancel it. An update being handled is safe to abandon: its
            # transaction either committed (the offset write is lost, dedupe absorbs the redelivery) or not.
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        # Webhook mode leaves the webhook set: another instance may still serve it, and Telegram keeps
        # what arrives while none does, for up to 24 hours.
        await self.bot.shutdown()


async def start_telegram(application: Application, settings: Settings) -> TelegramRuntime:
    """Connect, then poll in the background or set the webhook; register the senders once started.

    Raises `TelegramStartError` (with everything it opened closed again) when the channel cannot run.
    """
    config = settings.channels.telegram
    parts = await connect_telegram(application, settings)
    try:
        if config.mode == "webhook":
            runtime = await _start_webhook(parts, settings)
        else:
            runtime = await _start_polling(parts, application)
    except BaseException:
        await parts.bot.shutdown()
        raise
    application.dispatcher.senders.update(parts.senders)
    return runtime


async def _start_webhook(parts: TelegramParts, settings: Settings) -> TelegramRuntime:
    config = settings.channels.telegram
    assert config.webhook_url and config.webhook_secret  # TelegramConfig.missing() checked both
    # One chat's updates in Telegram's order; one that keeps failing kept for staff, like polling.
    route = telegram_webhook(UpdateGate(parts.updates, parts.updates.give_up), config.webhook_secret)
    try:
        await parts.bot.set_webhook(
            config.webhook_url, secret_token=config.webhook_secret, allowed_updates=ALLOWED_UPDATES
        )
    except TelegramError as exc:  # e.g. Telegram refuses a URL that is not HTTPS on an allowed port
        raise TelegramStartError(f"cannot set the webhook: {exc}") from exc
    return TelegramRuntime(parts.bot, f"webhook at {config.webhook_url}", routes=[route])


async def _start_polling(parts: TelegramParts, application: Application) -> TelegramRuntime:
    # getUpdates is refused while a webhook is set (e.g. left by an earlier run in webhook mode).
    # Pending updates are kept: polling picks them up.
    try:
        await parts.bot.delete_webhook()
    except TelegramError as exc:
        raise TelegramStartError(f"cannot remove the webhook to poll: {exc}") from exc
    holder = f"{socket.gethostname()}:{os.getpid()}"
    poller = TelegramPoller(
        parts.bot,
        application.core.sessions,
        parts.updates,
        holder=holder,
        clock=utc_now,
        give_up=parts.updates.give_up,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    return TelegramRuntime(parts.bot, f"polling as @{parts.bot.username}", task=task, stop=stop)
