"""What a learner asks of the desk rather than of a ticket, alike on every channel that can answer.

- their complaints' progress: `/status`, 查询进度, 查进度, 投诉进度, 我的投诉, "status", "my complaints";
- a separate complaint: `/new` (the next message opens one), `/new <text>` or 新投诉：<text> (this one
  does); 新投诉, 另起投诉, "new complaint";
- what the desk does and how: `/start`, `/help`, 帮助, "help".

The plain words count only as the whole message (a long text that mentions 投诉进度 is a complaint).
The answer goes out through the outbox to the learner's own address on the channel they wrote on, once
per message (a redelivery finds it queued and queues nothing more), and is the message's first reply,
so a channel that answers inline (WeChat's passive reply) carries it. Machine-written mail and messages
that may not be answered (a flood, a forged sender) are no commands: they go to intake as they are.
Acts on a ticket (`/confirm`, 确认, a score) are intake's: `core.intake.learner_acts`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.capabilities import ChannelBook
from core.classification.classify import detect_language
from core.context import CoreContext
from core.delivery.outbox import enqueue, payload_text
from core.intake.intake import Intake, IntakeResult
from core.messages import InboundMessage, storage_key
from core.storage.delivery_models import OutboxRow
from core.storage.models import Learner, LearnerIdentity
from core.storage.state import get_state, put_state, swap_state
from core.tickets.views import learner_tickets

STATUS, NEW, START = "status", "new", "start"
_SLASH = {"status": STATUS, "new": NEW, "start": START, "help": START}
# fmt: off
_WORDS = {
    STATUS: ("查询进度", "查进度", "查询投诉进度", "投诉进度", "进度查询", "查询投诉", "我的投诉", "处理进度",
             "status", "my complaints", "check status", "complaint status"),
    NEW: ("新投诉", "新的投诉", "另起投诉", "另一个投诉", "新建投诉", "new complaint", "another complaint"),
    START: ("帮助", "help", "使用说明"),
}
# fmt: on
_PHRASES = {phrase: kind for kind, phrases in _WORDS.items() for phrase in phrases}
_TRAILING = " \t\r\n。.!！?？~～"
# "新投诉：老师迟到" / "new complaint: the teacher is late": the complaint follows the words.
_NEW_WITH_TEXT = re.compile(
    "^(?:" + "|".join(re.escape(p) for p in _WORDS[NEW]) + r")\s*[:：,，、\-—]\s*(\S.*)$", re.I | re.S
)


@dataclass(frozen=True)
class LearnerCommand:
    kind: str  # status | new | start
    text: str = ""  # for `new`: the separate complaint itself, when it came with the command


def parse_command(text: str) -> LearnerCommand | None:
    """The command in a learner's whole message, or None for anything else. Pure."""
    folded = unicodedata.normalize("NFKC", text or "").strip()
    if folded.startswith("/"):
        head = folded[1:].split(None, 1)[0] if len(folded) > 1 else ""
        kind = _SLASH.get(head.split("@", 1)[0].lower())
        if kind is None:
            return None
        # The complaint is kept as the learner wrote it, not as folded.
        original = (text or "").strip().split(None, 1)
        return LearnerCommand(kind, original[1].strip() if kind == NEW and len(original) > 1 else "")
    words = " ".join(folded.rstrip(_TRAILING).lower().split())
    if words in _PHRASES:
        return LearnerCommand(_PHRASES[words])
    # The complaint as the learner wrote it; folded only when the words were (full-width letters).
    match = _NEW_WITH_TEXT.match((text or "").strip()) or _NEW_WITH_TEXT.match(folded)
    return LearnerCommand(NEW, match.group(1).strip()) if match else None


def answerable(channels: ChannelBook, message: InboundMessage) -> bool:
    """Whether the desk may answer this message with anything of its own."""
    return (
        channels.of(message.channel).writes_back and message.auto_reply is None and message.unanswered is None
    )


def command_of(channels: ChannelBook, message: InboundMessage) -> LearnerCommand | None:
    """The learner's command in this message: in its text, or in a mail's subject when the body says
    nothing. None when the message may not be answered."""
    if not answerable(channels, message) or message.attachments:
        return None  # a photo or file captioned with a command is kept as a message, not dropped
    text = message.text if message.text.strip() else (message.subject or "")
    return parse_command(text)


def _next_is_new(core: CoreContext, message: InboundMessage) -> str:
    """The state key that says this sender's next message opens a separate complaint (no address in
    clear: a keyed hash, as their identity is kept)."""
    return f"new-complaint-next:{core.vault.blind_index(message.channel, message.sender_id)[:32]}"


async def carry_out(
    intake: Intake,
    message: InboundMessage,
    command: LearnerCommand,
    now: datetime,
    *,
    locale: str | None = None,
) -> IntakeResult:
    """Do what the learner asked and answer them; `locale`: the language the platform says they
    read, if it says (else their complaints', else their message's)."""
    core = intake.core
    if command.kind == NEW and command.text:  # the separate complaint itself: never a continuation
        return await intake.receive(replace(message, text=command.text, new_ticket=True), now)
    # `/new` alone: the sender's next message opens a separate complaint. Armed with the answer, once:
    # a redelivered `/new` after that next message must not arm it again.
    arm = _next_is_new(core, message) if command.kind == NEW else None
    return await _answer(core, message, command.kind, now, locale, arm=arm)


async def receive_message(intake: Intake, message: InboundMessage, now: datetime) -> IntakeResult:
    """Intake, after `/new` alone: the message that follows it opens a separate complaint (an act on a
    ticket, `/confirm`, a score button, is not that message)."""
    if (
        not answerable(intake.core.channels, message)
        or message.new_ticket
        or message.text.lstrip().startswith("/")
    ):
        return await intake.receive(message, now)
    key = _next_is_new(intake.core, message)
    # Used up before intake, in one statement: of two messages right after `/new`, one opens the
    # separate complaint and the other continues it. A read first: nearly every message finds nothing
    # armed, and a write per message would queue each behind intake's writer.
    if await get_state(intake.core.sessions, key) != "1" or not await swap_state(
        intake.core.sessions, key, "1", "0", now
    ):
        return await intake.receive(message, now)
    try:
        return await intake.receive(replace(message, new_ticket=True), now)
    except BaseException:
        await swap_state(intake.core.sessions, key, "0", "1", now)  # not taken: its retry opens it
        raise


async def _answer(
    core: CoreContext,
    message: InboundMessage,
    template: str,
    now: datetime,
    locale: str | None,
    *,
    arm: str | None = None,
) -> IntakeResult:
    key = f"{message.channel}:{storage_key(message.external_id)}:{template}"[:255]
    async with core.sessions() as session, session.begin():
        said = await session.scalar(select(OutboxRow.payload).where(OutboxRow.key == key))
        if said is not None:  # a redelivery: answered already
            return _result(payload_text(core.vault, said), key, duplicate=True)
        if arm is not None:
            await put_state(session, arm, "1", now)
        learner = await _learner(core, session, message)
        language = locale or (learner.locale if learner is not None else None)
        language = language or detect_language(message.text)
        context: dict[str, object] = {}
        if template == STATUS:
            context["tickets"] = await learner_tickets(core, session, message.channel, message.sender_id, now)
        text = core.templates.render(language, f"{template}.txt", **context)
        row = enqueue(
            session,
            core.vault,
            key=key,
            channel=message.channel,
            recipient=message.sender_id,
            kind="notice",
            text=text,
            now=now,
            reply_to=message.external_id,
        )
        if message.reply_inline_until is not None:  # the platform's response may carry it: wait for it
            row.next_attempt_at = max(now, message.reply_inline_until)
    return _result(text, key, duplicate=False)


async def _learner(core: CoreContext, session: AsyncSession, message: InboundMessage) -> Learner | None:
    index = core.vault.blind_index(message.channel, message.sender_id)
    return await session.scalar(
        select(Learner)
        .join(LearnerIdentity, LearnerIdentity.learner_id == Learner.id)
        .where(LearnerIdentity.channel == message.channel, LearnerIdentity.address_index == index)
    )


def _result(text: str, key: str, *, duplicate: bool) -> IntakeResult:
    """A command's answer as intake's result: no ticket, one reply."""
    return IntakeResult("", 0, 0, created=False, duplicate=duplicate, replies=(text,), reply_keys=(key,))
