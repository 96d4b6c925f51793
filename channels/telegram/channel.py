"""The Telegram channel inside `complaintbot run`: long polling or webhook.

Both modes share everything but the way updates arrive: `connect` builds the client, the senders and
the one `TelegramUpdates` handler; polling feeds it from a `TelegramPoller`, webhook mode from the
`POST /telegram` route of the web app. Staff work in Telegram chats: the application's staff-command
layer gets their commands and button presses.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from telegram.error import InvalidToken, TelegramError

from channels.base import Channel, ChannelError, Offer, Started
from channels.telegram.capabilities import CAPABILITIES
from channels.telegram.config import TelegramConfig
from channels.telegram.gate import UpdateGate
from channels.telegram.poller import ALLOWED_UPDATES, TelegramPoller
from channels.telegram.sender import GroupPacing, TelegramBot, TelegramSender, TelegramStaffSink, make_bot
from channels.telegram.updates import TelegramUpdates
from channels.telegram.webhook import telegram_webhook
from core.delivery.outbox import Sender
from core.tickets.staff_requests import StaffRooms


class TelegramStartError(ChannelError):
    """The channel cannot start: a wrong token, an unreachable base_url, a refused webhook URL."""


@dataclass(frozen=True)
class StaffChats:
    """Which Telegram chat serves whom, by chat id: each department's, the default staff chat, the
    managers'. The staff sink writes to them; the staff-command layer gets them as neutral rooms."""

    departments: Mapping[str, int]
    default: int | None
    managers: int | None

    def rooms(self) -> StaffRooms:
        return StaffRooms.on(CAPABILITIES.name, self.departments, self.default, self.managers)


def staff_chats(config: TelegramConfig, departments: Mapping[str, Mapping[str, Any]]) -> StaffChats:
    """From `[channels.telegram]` and each `[departments.<key>] telegram_chat_id`."""
    own = {
        key: int(section["telegram_chat_id"])
        for key, section in departments.items()
        if section.get("telegram_chat_id") is not None
    }
    return StaffChats(departments=own, default=config.staff_chat_id, managers=config.manager_chat_id)


@dataclass
class TelegramParts:
    """What both update modes share: the connected client, its senders and the update handler."""

    bot: TelegramBot
    senders: dict[str, Sender]
    updates: TelegramUpdates


async def connect(config: TelegramConfig, offer: Offer) -> TelegramParts:
    """Connect (getMe) and build the senders and the handler; nothing is registered or started yet."""
    assert config.token is not None  # the caller checked the channel is configured
    bot = make_bot(config.token, config.base_url)
    try:
        await bot.initialize()  # getMe: a wrong token or an unreachable server fails here, at start-up
    except TelegramError as exc:
        await bot.shutdown()
        # PTB's InvalidToken message repeats the token: keep it out of the terminal and the logs.
        reason = "the token was rejected" if isinstance(exc, InvalidToken) else str(exc)
        raise TelegramStartError(f"cannot connect: {reason}") from exc
    rooms = staff_chats(config, offer.departments)
    pacing = GroupPacing()  # one per bot: both senders write to the staff groups
    senders: dict[str, Sender] = {"telegram": TelegramSender(bot, pacing)}
    sink_chats = {key: rooms.departments.get(key, rooms.default) for key in offer.core.department_names}
    sink = {key: chat for key, chat in sink_chats.items() if chat is not None}
    managers = rooms.managers if rooms.managers is not None else rooms.default
    if managers is not None:
        sink["managers"] = managers
    if sink:
        senders["staff"] = TelegramStaffSink(bot, sink, pacing)

    async def answer(callback_id: str, text: str) -> None:
        await bot.answer_callback_query(callback_id, text)

    updates = TelegramUpdates(
        offer.core,
        offer.intake,
        offer.staff_commands(rooms.rooms(), answer),
        clock=offer.clock,
        bot_username=bot.username,
        answer_callback=answer,
    )
    return TelegramParts(bot, senders, updates)


class TelegramChannel(Channel):
    name = "telegram"
    capabilities = CAPABILITIES
    config_model = TelegramConfig
    config: TelegramConfig

    def __init__(self, config: TelegramConfig) -> None:
        super().__init__(config)
        self.bot: TelegramBot | None = None
        self.task: asyncio.Task[None] | None = None  # the poller (polling mode)
        self._stop = asyncio.Event()

    async def start(self, offer: Offer) -> Started:
        """Connect, then poll in the background or set the webhook. Raises `TelegramStartError` (with
        everything it opened closed again) when the channel cannot run."""
        parts = await connect(self.config, offer)
        try:
            if self.config.mode == "webhook":
                started = await self._start_webhook(parts)
            else:
                started = await self._start_polling(parts, offer)
        except BaseException:
            await parts.bot.shutdown()
            raise
        self.bot = parts.bot
        started.senders = {name: s for name, s in parts.senders.items() if name != "staff"}
        started.staff = parts.senders.get("staff")
        return started

    async def _start_webhook(self, parts: TelegramParts) -> Started:
        config = self.config
        assert config.webhook_url and config.webhook_secret  # TelegramConfig.missing() checked both
        # One chat's updates in Telegram's order; one that keeps failing kept for staff, like polling.
        route = telegram_webhook(UpdateGate(parts.updates, parts.updates.give_up), config.webhook_secret)
        try:
            await parts.bot.set_webhook(
                config.webhook_url, secret_token=config.webhook_secret, allowed_updates=ALLOWED_UPDATES
            )
        except TelegramError as exc:  # e.g. Telegram refuses a URL that is not HTTPS on an allowed port
            raise TelegramStartError(f"cannot set the webhook: {exc}") from exc
        return Started(f"webhook at {config.webhook_url}", routes=[route])

    async def _start_polling(self, parts: TelegramParts, offer: Offer) -> Started:
        # getUpdates is refused while a webhook is set (e.g. left by an earlier run in webhook mode).
        # Pending updates are kept: polling picks them up.
        try:
            await parts.bot.delete_webhook()
        except TelegramError as exc:
            raise TelegramStartError(f"cannot remove the webhook to poll: {exc}") from exc
        holder = f"{socket.gethostname()}:{os.getpid()}"
        poller = TelegramPoller(
            parts.bot,
            offer.core.sessions,
            parts.updates,
            holder=holder,
            clock=offer.clock,
            give_up=parts.updates.give_up,
        )
        self.task = asyncio.create_task(poller.run(self._stop))
        return Started(f"polling as @{parts.bot.username}")

    async def close(self) -> None:
        """After the outbox: the senders share the bot. The poller stops here too, as it always has:
        an update being handled is safe to abandon, its transaction either committed (the offset write
        is lost, dedupe absorbs the redelivery) or not."""
        self._stop.set()
        if self.task is not None:
            # A long poll can wait 25 s: cancel it.
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        # Webhook mode leaves the webhook set: another instance may still serve it, and Telegram keeps
        # what arrives while none does, for up to 24 hours.
        if self.bot is not None:
            await self.bot.shutdown()
