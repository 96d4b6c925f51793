"""What intake answers for a message, and the pieces its steps share to build the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.delivery.outbox import LEARNER_KINDS, payload_text
from core.messages import InboundMessage
from core.storage.privacy import Vault


@dataclass(frozen=True)
class IntakeResult:
    ticket_number: str
    ticket_id: int
    message_id: int
    created: bool  # a new ticket was opened
    duplicate: bool  # this message had been received before; nothing changed
    replies: tuple[str, ...]  # texts queued for the learner because of this message, in order
    reply_keys: tuple[str, ...]  # their outbox keys (a channel that replies inline marks them sent)
    # What the learner's message did besides adding to the ticket (core.intake.learner_acts): confirm, agree,
    # object, reopen, rate, appeal, or "refused" (asked for one the ticket's state does not allow).
    act: str | None = None


def reply_key(message_id: int, what: str) -> str:
    return f"in:{message_id}:{what}"


def hold_for_inline_reply(replies: list[dict[str, Any]], message: InboundMessage) -> None:
    """The first reply waits while the platform's own response may carry it (WeChat's passive reply):
    the dispatcher, woken by the commit, would otherwise race the response for it."""
    if replies and message.reply_inline_until is not None:
        first = replies[0]
        first["next_attempt_at"] = max(first["next_attempt_at"], message.reply_inline_until)


def result_of(
    vault: Vault,
    number: str,
    ticket_id: int,
    message_id: int,
    *,
    created: bool,
    replies: list[dict[str, Any]],
    act: str | None = None,
) -> IntakeResult:
    learner_rows = [row for row in replies if row["kind"] in LEARNER_KINDS]
    return IntakeResult(
        ticket_number=number,
        ticket_id=ticket_id,
        message_id=message_id,
        created=created,
        duplicate=False,
        replies=tuple(payload_text(vault, row["payload"]) for row in learner_rows),
        reply_keys=tuple(row["key"] for row in learner_rows),
        act=act,
    )
