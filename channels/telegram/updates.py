"""Telegram wiring: each update parsed, then handed to the core (a learner's message or command:
`core.intake.receive`) or to the staff layer."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from channels.telegram.events import (
    ButtonPress,
    Ignored,
    LearnerCommand,
    LearnerMessage,
    StaffCommand,
    StaffText,
    Unusable,
    external_id,
)
from channels.telegram.parse import parse_update
from core.classification.classify import detect_language
from core.context import CoreContext
from core.intake.intake import Intake
from core.intake.receive import Aside, Kept, receive_or_keep
from core.messages import InboundMessage
from core.tickets.staff_requests import Command, Place, Press, Said, StaffAddress, StaffRequest

log = logging.getLogger(__name__)

StaffHandler = Callable[[StaffRequest, datetime], Awaitable[None]]  # the staff-command layer
AnswerCallback = Callable[[str, str], Awaitable[None]]  # (callback query id, toast text)
TOAST_LIMIT = 190  # Telegram shows up to 200 characters in a callback answer


# Staff work in Telegram groups: what they say or press there, as the staff-command layer reads it.
def staff_request(event: StaffCommand | StaffText | ButtonPress) -> StaffRequest:
    """A staff member's command, words or button press as a channel-neutral request: the update id
    keys it (a redelivered update is the same request), the chat and forum topic are where it was
    said, and the sender's user id is their address (the staff directory's `telegram_id`)."""
    who = StaffAddress("telegram", str(event.user_id), event.user_name)
    thread = None if event.thread_id is None else str(event.thread_id)
    where = Place("telegram", str(event.chat_id), thread)
    key = str(event.update_id)
    if isinstance(event, ButtonPress):  # a press is no message of its own: the answer threads under none
        return StaffRequest(who, where, Press(event.data, event.callback_id), key)
    own = external_id(event.chat_id, event.message_id)
    if isinstance(event, StaffText):
        return StaffRequest(who, where, Said(event.text), key, message_ref=own)
    replied = event.reply_to_message_id
    reply_to = None if replied is None else external_id(event.chat_id, replied)
    return StaffRequest(
        who, where, Command(event.command, event.args), key, message_ref=own, reply_to=reply_to
    )


def learner_locale(message: InboundMessage) -> str:
    """The learner's language: Telegram's interface language if Chinese or English, else their text's."""
    sender = message.raw.get("message", {}).get("from", {}) if isinstance(message.raw, Mapping) else {}
    code = str(sender.get("language_code") or "") if isinstance(sender, Mapping) else ""
    if code.startswith("zh"):
        return "zh"
    if code.startswith("en"):
        return "en"
    return detect_language(message.text) if message.text else "zh"


class TelegramUpdates:
    def __init__(
        self,
        core: CoreContext,
        intake: Intake,
        staff: StaffHandler,
        *,
        clock: Callable[[], datetime],
        bot_username: str | None = None,
        answer_callback: AnswerCallback | None = None,
    ) -> None:
        self.core = core
        self.intake = intake
        self.staff = staff
        self.clock = clock
        self.bot_username = bot_username
        self.answer_callback = answer_callback

    async def __call__(self, update: Mapping[str, Any]) -> None:
        now = self.clock()
        event = parse_update(update, received_at=now, bot_username=self.bot_username)
        if isinstance(event, LearnerMessage):
            # Plain words (查询进度, 新投诉...) are the learner's commands here as on every channel.
            await self._learner(event.message, now)
        elif isinstance(event, LearnerCommand):
            message = event.message
            if event.command == "new":  # the parser took the text after /new as the message: put it back
                message = replace(message, text=f"/new {event.args}".strip(), new_ticket=False)
            await self._learner(message, now)
        elif isinstance(event, ButtonPress) and event.chat_id == event.user_id:
            # A button in the learner's own private chat: the survey's scores. Staff buttons sit on
            # cards in groups, whose ids are never a user's.
            await self._learner_button(event, update, now)
        elif isinstance(event, StaffCommand | StaffText | ButtonPress):
            await self.staff(staff_request(event), now)
        elif isinstance(event, Unusable):
            raw = json.dumps(update, ensure_ascii=False, default=str)
            await receive_or_keep(self.intake, Aside("telegram", event.external_id, raw, event.reason), now)
        elif isinstance(event, Ignored):
            log.debug("telegram update %s ignored: %s", event.update_id, event.reason)

    async def give_up(self, update: Mapping[str, Any], error: Exception) -> None:
        """An update that keeps failing: kept raw with the reason and shown to staff, not retried."""
        raw = json.dumps(update, ensure_ascii=False, default=str)
        reason = f"could not be handled ({type(error).__name__}: {str(error)[:300]})"
        aside = Aside("telegram", f"update:{update.get('update_id')}", raw, reason)
        await receive_or_keep(self.intake, aside, self.clock())

    async def _learner(self, message: InboundMessage, now: datetime) -> None:
        """A learner's message or command, as on every channel (`core.intake.receive`); kept aside or not,
        the update is done with."""
        await receive_or_keep(self.intake, message, now, locale=learner_locale(message))

    async def _learner_button(self, event: ButtonPress, update: Mapping[str, Any], now: datetime) -> None:
        """A score pressed under the survey ("rate:<number>:<score>") goes through intake like the
        learner typing "/rate <number> <score>": the same checks (only their own ticket, only while the
        survey waits), the same answer, and the press's id makes a redelivery change nothing."""
        verb, _, rest = event.data.partition(":")
        number, _, score = rest.rpartition(":")
        if verb != "rate" or not number or not score.isdigit():
            await self._toast(event, "?")
            return
        message = InboundMessage(
            channel="telegram",
            external_id=f"{event.chat_id}:callback:{event.callback_id}",
            sender_id=str(event.chat_id),
            text=f"/rate {number} {score}",
            received_at=now,
            sender_name=event.user_name,
            raw=update,
        )
        result = await receive_or_keep(self.intake, message, now)
        if isinstance(result, Kept):
            return
        await self._toast(event, result.replies[-1] if result.replies else "✓")

    async def _toast(self, event: ButtonPress, text: str) -> None:
        if self.answer_callback is None:
            return
        try:
            await self.answer_callback(event.callback_id, text[:TOAST_LIMIT])
        except Exception:  # the toast is a courtesy; the answer in the chat is the record
            log.warning("could not answer Telegram callback %s", event.callback_id, exc_info=True)
