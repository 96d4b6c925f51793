"""What a Telegram update means to complaintbot: a learner's message or command, a staff command, text or
button press, or an update ignored or unusable (kept raw); and the idempotency key of a message."""

from __future__ import annotations

from dataclasses import dataclass

from core.messages import InboundMessage

UNKNOWN_UPDATE_ID = -1  # the update_id of an event whose update carried no usable one


@dataclass(frozen=True)
class LearnerMessage:
    message: InboundMessage  # a private chat message from a learner: opens or continues a ticket


@dataclass(frozen=True)
class LearnerCommand:
    command: str
    chat_id: int
    user_id: int
    args: str
    message: InboundMessage  # the same message as a learner message; for /new: text=args, new_ticket=True


@dataclass(frozen=True)
class StaffCommand:
    command: str
    args: str
    chat_id: int
    user_id: int
    user_name: str
    thread_id: int | None
    reply_to_message_id: int | None
    message_id: int
    update_id: int


@dataclass(frozen=True)
class StaffText:
    text: str  # plain text in a staff chat; in a ticket's forum topic it is a reply to the learner
    chat_id: int
    user_id: int
    user_name: str
    thread_id: int | None
    message_id: int
    update_id: int


@dataclass(frozen=True)
class ButtonPress:
    callback_id: str
    data: str
    chat_id: int
    user_id: int
    user_name: str
    message_id: int
    thread_id: int | None
    update_id: int


@dataclass(frozen=True)
class Ignored:
    reason: str
    update_id: int


@dataclass(frozen=True)
class Unusable:
    reason: str
    update_id: int
    external_id: str  # idempotency key for keeping the raw update: "update:<update_id>"


TelegramEvent = LearnerMessage | LearnerCommand | StaffCommand | StaffText | ButtonPress | Ignored | Unusable


def external_id(chat_id: int, message_id: int) -> str:
    """The idempotency key of a message: Telegram message ids are unique only per chat."""
    return f"{chat_id}:{message_id}"
