"""One Telegram update (Bot API JSON, from getUpdates or a webhook) -> what complaintbot should do with it.

Pure (no I/O, no PTB objects), so recorded payloads test it. It never raises for any dict: a malformed
update comes back `Unusable`, for the caller to keep raw."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from channels.telegram.events import (
    UNKNOWN_UPDATE_ID,
    ButtonPress,
    Ignored,
    LearnerCommand,
    LearnerMessage,
    StaffCommand,
    StaffText,
    TelegramEvent,
    Unusable,
    external_id,
)
from core.messages import Attachment, InboundMessage

# Chat events Telegram reports as messages; rarer ones have no text or attachment and are ignored for that.
# fmt: off
_SERVICE_KEYS = frozenset((
    "new_chat_members", "left_chat_member", "new_chat_title", "new_chat_photo", "delete_chat_photo",
    "group_chat_created", "supergroup_chat_created", "migrate_to_chat_id", "migrate_from_chat_id",
    "pinned_message", "message_auto_delete_timer_changed", "forum_topic_created", "forum_topic_edited",
    "forum_topic_closed", "forum_topic_reopened", "write_access_allowed", "video_chat_started",
))
# (message key, Attachment.kind, mime when Telegram omits it). Animations (GIFs) carry a `document` too.
_MEDIA = (("photo", "photo", "image/jpeg"), ("voice", "voice", "audio/ogg"), ("audio", "audio", None),
          ("document", "document", None), ("video", "video", None), ("video_note", "video", "video/mp4"))
# fmt: on


class _Malformed(Exception):
    """Raised inside this module only; `parse_update` turns it into `Unusable`."""


_T = TypeVar("_T", int, str, bool, dict[str, Any])  # dict: a JSON object, as json.loads makes it
_ELSEWHERE = ("@", "")  # what `_command` says of "/cmd@OtherBot" ("@" is in no command name)


def parse_update(
    update: Mapping[str, Any], *, received_at: datetime, bot_username: str | None = None
) -> TelegramEvent:
    """Classify one update. `received_at` (aware) caps the message's own date, which a sender's clock
    can put in the future; with `bot_username`, `/cmd@OtherBot` in a shared group is ignored."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    update_id = update.get("update_id") if isinstance(update, Mapping) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        # Still a stable key, so that a redelivery of this update is kept once.
        digest = hashlib.sha256(repr(update).encode("utf-8", errors="surrogatepass")).hexdigest()
        return Unusable("update_id is missing or not an integer", UNKNOWN_UPDATE_ID, f"sha256:{digest}")
    try:
        if "message" in update:
            return _message(update, update_id, received_at, bot_username)
        if "callback_query" in update:
            return _button(update, update_id)
    except _Malformed as exc:
        return Unusable(str(exc), update_id, f"update:{update_id}")
    kinds = [str(key) for key in update if key != "update_id"]
    if not kinds:
        return Unusable("update carries nothing besides update_id", update_id, f"update:{update_id}")
    return Ignored(f"{kinds[0]} updates are not handled", update_id)


def _message(
    update: Mapping[str, Any], update_id: int, received_at: datetime, bot_username: str | None
) -> TelegramEvent:
    msg = _req(update, "message", "update", dict)
    chat = _req(msg, "chat", "message", dict)
    chat_id, chat_type = _req(chat, "id", "message.chat", int), _req(chat, "type", "message.chat", str)
    message_id, text = _req(msg, "message_id", "message", int), _opt(msg, "text", "message", str)
    try:
        sent_at = datetime.fromtimestamp(_req(msg, "date", "message", int), tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise _Malformed("message.date is out of range") from None
    sender = _req(msg, "from", "message", dict)
    user_id = _req(sender, "id", "message.from", int)
    thread_id, reply_to = _thread_and_reply(msg, "message")
    # Bots include GroupAnonymousBot: anonymous admins cannot be told apart, so they cannot act.
    if _opt(sender, "is_bot", "message.from", bool):
        return Ignored("message from a bot", update_id)
    # Posts of a linked channel copied into the group come from "Telegram" (777000), not a person.
    if _opt(msg, "is_automatic_forward", "message", bool):
        return Ignored("automatic forward from a linked channel", update_id)
    # Only a flag that is set counts: serialisers such as PTB's to_dict() write the unset ones as False.
    service = next((str(key) for key, value in msg.items() if key in _SERVICE_KEYS and value), None)
    if service is not None:
        return Ignored(f"service message: {service}", update_id)
    command = _command(msg, text, bot_username)
    if command == _ELSEWHERE:
        return Ignored("command addressed to another bot", update_id)
    if chat_type == "private":
        learner = _inbound(update, msg, chat_id, user_id, min(sent_at, received_at.astimezone(UTC)))
        if learner is None:
            return Ignored("private message without text or attachment (a sticker, a location…)", update_id)
        if command is None:
            return LearnerMessage(learner)
        if command[0] == "new":
            learner = replace(learner, text=command[1], new_ticket=True)
        return LearnerCommand(command[0], chat_id, user_id, command[1], learner)
    if chat_type not in ("group", "supergroup"):
        return Ignored(f"message in a {chat_type} chat", update_id)
    user_name = _name(sender, "message.from") or str(user_id)
    if command is not None:
        return StaffCommand(*command, chat_id, user_id, user_name, thread_id, reply_to, message_id, update_id)
    if text is None:
        # A photo or file from staff is not passed on: its caption alone would mislead the learner.
        return Ignored("staff message without text", update_id)
    return StaffText(text, chat_id, user_id, user_name, thread_id, message_id, update_id)


def _inbound(
    update: Mapping[str, Any], msg: dict[str, Any], chat_id: int, user_id: int, at: datetime
) -> InboundMessage | None:
    attachments = _attachments(msg)
    text, (_, reply_to) = _opt(msg, "text", "message", str), _thread_and_reply(msg, "message")
    body = text if text is not None else _opt(msg, "caption", "message", str) or ""
    phone, contact = None, _opt(msg, "contact", "message", dict)
    if contact is not None:
        number = _req(contact, "phone_number", "message.contact", str)
        if _opt(contact, "user_id", "message.contact", int) == user_id:
            phone = number  # the learner's own number, sent with the "share contact" button
        else:
            # Someone else's card is content, not the learner's identity: it must not link learners.
            body = " ".join(p for p in (body, "[contact]", _name(contact, "message.contact"), number) if p)
    if not body and not attachments and phone is None:
        return None
    return InboundMessage(
        channel="telegram",
        external_id=external_id(chat_id, _req(msg, "message_id", "message", int)),
        sender_id=str(chat_id),  # replies go to the chat
        text=body,
        received_at=at,
        sender_name=_name(msg["from"], "message.from"),
        phone=phone,
        reply_to=None if reply_to is None else external_id(chat_id, reply_to),
        attachments=attachments,
        raw=update,
    )


def _button(update: Mapping[str, Any], update_id: int) -> TelegramEvent:
    query = _req(update, "callback_query", "update", dict)
    callback_id = _req(query, "id", "callback_query", str)
    sender = _req(query, "from", "callback_query", dict)
    user_id = _req(sender, "id", "callback_query.from", int)
    data = _req(query, "data", "callback_query", str)  # we send no game buttons, the only ones without
    # Without `message` the button sat on an inline-mode message: there is no chat to act in.
    msg = _req(query, "message", "callback_query", dict)
    # An inaccessible message (date 0, older than 48 h) still names its chat and id, which is enough.
    chat = _req(msg, "chat", "callback_query.message", dict)
    chat_id = _req(chat, "id", "callback_query.message.chat", int)
    message_id = _req(msg, "message_id", "callback_query.message", int)
    thread_id, _ = _thread_and_reply(msg, "callback_query.message")
    user_name = _name(sender, "callback_query.from") or str(user_id)
    return ButtonPress(callback_id, data, chat_id, user_id, user_name, message_id, thread_id, update_id)


def _command(msg: dict[str, Any], text: str | None, bot_username: str | None) -> tuple[str, str] | None:
    """(command, args) of a bot command, `_ELSEWHERE` for another bot's, None for plain text."""
    entities = msg.get("entities")
    if text is None or not text.startswith("/") or entities is None:
        return None
    if not isinstance(entities, list) or not all(isinstance(entity, dict) for entity in entities):
        raise _Malformed("message.entities is not a list of objects")
    if not any(e.get("type") == "bot_command" and _opt(e, "offset", "entities", int) == 0 for e in entities):
        return None  # "/" that the client did not mark as a command, e.g. "/ 50% refund?"
    head = text.split(maxsplit=1)[0]
    verb, _, target = head[1:].partition("@")
    if target and bot_username and target.lower() != bot_username.removeprefix("@").lower():
        return _ELSEWHERE
    return verb.lower(), text[len(head) :].strip()


def _attachments(msg: dict[str, Any]) -> tuple[Attachment, ...]:
    found: list[Attachment] = []
    for key, kind, default_mime in _MEDIA:
        media, where = msg.get(key), f"message.{key}"
        if key == "photo" and media is not None:
            if not isinstance(media, list) or not media or not all(isinstance(s, dict) for s in media):
                raise _Malformed("message.photo is not a list of sizes")
            # Telegram sends several scalings of one picture; staff should see the largest.
            media = max(media, key=_pixels)
        if media is None:
            continue
        if not isinstance(media, dict):
            raise _Malformed(f"{where} is not an object")
        file_id, name = _req(media, "file_id", where, str), _opt(media, "file_name", where, str)
        mime = _opt(media, "mime_type", where, str) or default_mime
        found.append(Attachment(kind, file_id, name, mime, _opt(media, "file_size", where, int)))
    return tuple(found)


def _pixels(size: dict[str, Any]) -> int:
    width, height = _opt(size, "width", "message.photo", int), _opt(size, "height", "message.photo", int)
    return (width or 0) * (height or 0)


def _thread_and_reply(msg: dict[str, Any], where: str) -> tuple[int | None, int | None]:
    # message_thread_id is also set on reply threads of ordinary groups; only forum topics count.
    topic = _opt(msg, "is_topic_message", where, bool)
    thread_id = _opt(msg, "message_thread_id", where, int) if topic else None
    reply = _opt(msg, "reply_to_message", where, dict)
    replied = None if reply is None else _req(reply, "message_id", f"{where}.reply_to_message", int)
    # In a forum topic every message "replies" to the topic's opening message: that is not a reply.
    return thread_id, None if replied == thread_id else replied


def _name(person: dict[str, Any], where: str) -> str | None:
    parts = (_opt(person, "first_name", where, str), _opt(person, "last_name", where, str))
    full_name = " ".join(part.strip() for part in parts if part and part.strip())
    return full_name or _opt(person, "username", where, str)  # first_name is required, but not by us


def _opt(obj: Mapping[str, Any], key: str, where: str, kind: type[_T]) -> _T | None:
    """The field; None when absent or null, as PTB reads it. `true` is no id, nor a number past 64 bits."""
    value = obj.get(key)
    if value is None:
        return None
    wrong_int = kind is int and (isinstance(value, bool) or (isinstance(value, int) and abs(value) >= 2**63))
    if wrong_int or not isinstance(value, kind):
        raise _Malformed(f"{where}.{key} is not a usable {kind.__name__} (got {type(value).__name__})")
    return value


def _req(obj: Mapping[str, Any], key: str, where: str, kind: type[_T]) -> _T:
    value = _opt(obj, key, where, kind)
    if value is None:
        raise _Malformed(f"{where}.{key} is missing")
    return value
