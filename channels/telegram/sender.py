"""Sending on Telegram: learner messages and staff cards through the real client (python-telegram-bot).

Every call goes through PTB's rate limiter (about 30 messages a second overall). Flood control (429) is
not waited out here: it becomes a `TemporarySendError` carrying Telegram's `retry_after`, and the outbox
sends again after it, so a 429 storm delays messages without holding a dispatcher slot or losing anything.
Group chats take 20 messages a minute: `GroupPacing` checks that before the call and answers `PacedError`
(the row comes back in a few seconds, no attempt used) instead of letting PTB's limiter wait inside a
send, which would hold a pass of the lane that also carries learners' acknowledgements. Private chats
may take short bursts (an acknowledgement and its first question together); past them, Telegram's 429
paces us.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from aiolimiter import AsyncLimiter
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, ExtBot
from telegram.warnings import PTBDeprecationWarning

from channels.telegram.capabilities import TEXT_LIMIT
from channels.telegram.events import external_id
from core.delivery.outbox import (
    LaneLimits,
    NotConfiguredError,
    PacedError,
    PermanentSendError,
    TemporarySendError,
)
from core.messages import OutboundMessage, SendResult
from core.text_limits import shorten

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
TelegramBot = ExtBot[Any]  # the client with PTB's rate limiter
GROUP_RATE, GROUP_PERIOD_S = 20, 60.0  # Telegram's limit per group chat
LEARNER_LIMITS = LaneLimits(batch=64, concurrency=16)  # PTB's limiter keeps the overall 30/s
STAFF_LIMITS = LaneLimits(batch=32, concurrency=4)
ROW_MAX = 5  # inline buttons in one row


class GroupPacing:
    """Telegram's 20 messages a minute per group, shared by every sender of one bot: a message that
    would exceed it is `PacedError`, due again when the bucket has room (a leaky bucket frees one
    place every 3 s)."""

    def __init__(self, rate: int = GROUP_RATE, period: float = GROUP_PERIOD_S) -> None:
        self.rate, self.period = rate, period
        self._chats: dict[int, AsyncLimiter] = {}

    async def take(self, chat_id: int) -> None:
        if chat_id >= 0:  # a private chat (user ids are positive, groups' negative)
            return
        limiter = self._chats.setdefault(chat_id, AsyncLimiter(self.rate, self.period))
        if not limiter.has_capacity():
            raise PacedError(
                f"Telegram group {chat_id}: {self.rate} messages a minute", self.period / self.rate
            )
        await limiter.acquire()  # has room: does not wait


def make_bot(token: str, base_url: str | None = None) -> TelegramBot:
    """The client, pointed at `base_url` (a local Bot API server, a proxy, a test stand-in) if given."""
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    file_base = base[: -len("/bot")] + "/file/bot" if base.endswith("/bot") else base + "/file"
    # max_retries=0: the outbox owns retries (see the module docstring).
    return ExtBot(token, base_url=base, base_file_url=file_base, rate_limiter=AIORateLimiter(max_retries=0))


def _markup(message: OutboundMessage) -> InlineKeyboardMarkup | None:
    if not message.buttons:
        return None
    keys = [InlineKeyboardButton(b.label, callback_data=b.action) for b in message.buttons]
    # One row as long as it fits a phone's width; more (a summary's numbers, a card's canned replies)
    # wrap in rows of four.
    width = len(keys) if len(keys) <= ROW_MAX else 4
    return InlineKeyboardMarkup([keys[i : i + width] for i in range(0, len(keys), width)])


def _reply_parameters(chat_id: int, reply_to: str | None) -> ReplyParameters | None:
    """Thread under the learner's message when it was in this chat (`chat:message` ids)."""
    if not reply_to or ":" not in reply_to:
        return None
    chat, _, message_id = reply_to.rpartition(":")
    if chat != str(chat_id) or not message_id.isdigit():
        return None
    return ReplyParameters(message_id=int(message_id), allow_sending_without_reply=True)


def _seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        # PTB 22 warns that the int form will become a timedelta; both are handled here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


CAPTION_LIMIT = 1024  # Telegram's limit on a document's caption


async def send_text(
    bot: TelegramBot, chat_id: int, message: OutboundMessage, thread_id: int | None = None
) -> Message:
    """The message's text; a message carrying documents (the monthly report) sends its main document
    (the first that is not a picture: the PDF holds the charts) with the text as its caption."""
    try:
        if message.documents:
            files = [d for d in message.documents if not d.mime.startswith("image/")] or list(
                message.documents
            )
            caption = (
                message.text
                if len(message.text) <= CAPTION_LIMIT
                else message.text[: CAPTION_LIMIT - 1] + "…"
            )
            return await bot.send_document(
                chat_id,
                document=files[0].content,
                filename=files[0].filename,
                caption=caption,
                reply_parameters=_reply_parameters(chat_id, message.reply_to),
                message_thread_id=thread_id,
            )
        return await bot.send_message(
            chat_id,
            shorten(message.text, TEXT_LIMIT),
            reply_parameters=_reply_parameters(chat_id, message.reply_to),
            reply_markup=_markup(message),
            message_thread_id=thread_id,
        )
    except RetryAfter as exc:
        raise TemporarySendError(f"Telegram flood control: {exc}", retry_after=_seconds(exc)) from exc
    except (Forbidden, InvalidToken) as exc:  # blocked by the user, kicked from the group, bad token
        raise PermanentSendError(f"Telegram refused: {exc.message}") from exc
    except BadRequest as exc:  # chat not found, message too long...: sending again cannot help
        raise PermanentSendError(f"Telegram rejected the message: {exc.message}") from exc
    except (NetworkError, TelegramError) as exc:  # timeouts, 5xx, connection errors
        raise TemporarySendError(f"Telegram unreachable: {exc}") from exc


class TelegramSender:
    """The `telegram` channel: messages to learners, in their private chat (recipient = chat id), and
    answers to staff commands in their group."""

    def __init__(self, bot: TelegramBot, pacing: GroupPacing | None = None) -> None:
        self.bot = bot
        self.pacing = pacing or GroupPacing()
        self.limits = LEARNER_LIMITS
        self.text_limit = TEXT_LIMIT

    async def send(self, message: OutboundMessage) -> SendResult:
        chat_id = int(message.recipient)
        await self.pacing.take(chat_id)
        thread = message.meta.get("thread_id")  # a staff answer inside a ticket's forum topic
        sent = await send_text(self.bot, chat_id, message, int(thread) if thread is not None else None)
        return SendResult(external_ref=external_id(chat_id, sent.message_id))


class TelegramStaffSink:
    """The `staff` channel on Telegram: cards, notices and alerts to each department's chat.

    `chats` maps a department key (and "managers") to a chat id; the caller fills in the default
    staff chat for departments without their own. In a forum supergroup each ticket's card opens a
    topic of its own, and the ticket's later messages follow it there. A card edit changes the card
    in place (the dispatcher supplies the card's reference as `meta.card_ref`).
    """

    def __init__(self, bot: TelegramBot, chats: Mapping[str, int], pacing: GroupPacing | None = None) -> None:
        self.bot = bot
        self.chats = dict(chats)
        self.pacing = pacing or GroupPacing()
        self.limits = STAFF_LIMITS
        self.text_limit = TEXT_LIMIT
        self._forums: dict[int, bool] = {}
        self._topics: dict[str, int] = {}  # card key -> its topic, so a retried card opens no second one

    async def send(self, message: OutboundMessage) -> SendResult:
        if message.kind == "card-edit":
            return await self._edit(message)
        chat_id = self.chats.get(message.recipient)
        if chat_id is None:
            where = f"[departments.{message.recipient}] telegram_chat_id"
            raise NotConfiguredError(
                f"no Telegram chat configured for {message.recipient!r}: set {where}"
                " or [channels.telegram] staff_chat_id"
            )
        await self.pacing.take(chat_id)
        thread = _thread_in(chat_id, message.meta.get("thread_ref"))
        if thread is None and message.meta.get("thread_id") is not None:
            thread = int(message.meta["thread_id"])
        if message.kind == "card" and await self._is_forum(chat_id):
            thread = await self._open_topic(chat_id, message)
        sent = await send_text(self.bot, chat_id, message, thread)
        return SendResult(
            external_ref=external_id(chat_id, sent.message_id),
            thread_ref=f"{chat_id}:{thread}" if thread is not None else None,
        )

    async def _edit(self, message: OutboundMessage) -> SendResult:
        ref = str(message.meta.get("card_ref") or "")
        chat, _, message_id = ref.rpartition(":")
        if not chat or not message_id.isdigit():
            raise PermanentSendError(f"no card to edit ({ref!r})")
        await self.pacing.take(int(chat))
        try:
            await self.bot.edit_message_text(
                shorten(message.text, TEXT_LIMIT),
                chat_id=int(chat),
                message_id=int(message_id),
                reply_markup=_markup(message),
            )
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():  # the same text twice is no failure
                raise PermanentSendError(f"Telegram refused the card edit: {exc.message}") from exc
        except RetryAfter as exc:
            raise TemporarySendError(f"Telegram flood control: {exc}", retry_after=_seconds(exc)) from exc
        except (Forbidden, InvalidToken) as exc:
            raise PermanentSendError(f"Telegram refused: {exc.message}") from exc
        except TelegramError as exc:
            raise TemporarySendError(f"Telegram unreachable: {exc}") from exc
        return SendResult(external_ref=ref)

    async def _is_forum(self, chat_id: int) -> bool:
        if chat_id not in self._forums:
            try:
                self._forums[chat_id] = bool((await self.bot.get_chat(chat_id)).is_forum)
            except TelegramError as exc:
                raise TemporarySendError(f"Telegram unreachable: {exc}") from exc
        return self._forums[chat_id]

    async def _open_topic(self, chat_id: int, message: OutboundMessage) -> int | None:
        """The card's topic: made once per card (a retried send reuses it), None to post in the chat."""
        if message.key in self._topics:
            return self._topics[message.key]
        name = f"{message.ticket_number or 'ticket'} {message.meta.get('summary', '')}".strip()[:120]
        try:
            topic = await self.bot.create_forum_topic(chat_id, name)
        except RetryAfter as exc:
            raise TemporarySendError(f"Telegram flood control: {exc}", retry_after=_seconds(exc)) from exc
        except (BadRequest, Forbidden):  # the bot may not manage topics here: the card goes in the chat
            return None
        except TelegramError as exc:  # timeouts, 5xx: try again later
            raise TemporarySendError(f"Telegram unreachable: {exc}") from exc
        self._topics[message.key] = topic.message_thread_id
        return topic.message_thread_id


def _thread_in(chat_id: int, thread_ref: object) -> int | None:
    """The thread of `thread_ref` ("chat:thread") when it is in this chat."""
    chat, _, thread = str(thread_ref or "").rpartition(":")
    return int(thread) if chat == str(chat_id) and thread.isdigit() else None
