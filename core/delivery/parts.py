"""A message longer than its channel takes, sent in parts, each part recorded as it goes.

The dispatcher sends a row whose text is over its sender's `text_limit` as several messages, in order
(`core.text_limits.split_spans`). After each part but the last, how far the text has gone out is
written on the row (`payload.split`: the offset reached and the parts sent) in a transaction of its own,
on the condition that the row is still this attempt's. A retry (a part refused for now, a platform's
flood control, a crash) starts after the last recorded part: a part the learner has is never sent again,
except the one a crash cut between its send and its record, as for any message (`core.delivery.dispatch`).
The row is `sent` when the last part is.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.delivery.outbox import SENDING, Sender
from core.messages import OutboundMessage, SendResult
from core.storage.delivery_models import OutboxRow
from core.text_limits import TextLimit, split_spans

log = logging.getLogger(__name__)

# Kinds that cannot go in parts: a card is one message that later edits change in place, and an edit
# replaces it; the sender shortens them instead.
WHOLE_KINDS = frozenset({"card", "card-edit"})


WHOLE_TEXT = "whole_text"  # in each part's meta: the text the parts are cut from


class TakenOver(Exception):
    """The row's lease ran out while its parts went: another dispatcher has it now."""


def text_limit(sender: Sender) -> TextLimit | None:
    limit = getattr(sender, "text_limit", None)
    return limit if isinstance(limit, TextLimit) else None


def whole_kinds(sender: Sender) -> frozenset[str]:
    """The kinds this sender never takes in parts (it shortens them itself): `whole_kinds` if it says,
    e.g. a WeCom robot's markdown cards and alerts, which have a limit of their own."""
    kinds: frozenset[str] = getattr(sender, "whole_kinds", frozenset())
    return WHOLE_KINDS | frozenset(kinds)


def needs_parts(
    row: OutboxRow, message: OutboundMessage, limit: TextLimit | None, whole: frozenset[str] = WHOLE_KINDS
) -> bool:
    """Whether this message goes in parts: too long, and of a kind that can (not one of `whole`; a
    document's text is its caption, which the sender shortens), or partly sent already."""
    if limit is None or message.kind in whole or message.documents:
        return False
    return progress(row)[1] > 0 or not limit.fits(message.text.strip())


def progress(row: OutboxRow) -> tuple[int, int]:
    """(characters of the text gone out, parts sent) recorded on the row."""
    split = row.payload.get("split") or {}
    return int(split.get("upto", 0)), int(split.get("parts", 0))


async def send_in_parts(
    sessions: async_sessionmaker[AsyncSession],
    sender: Sender,
    row: OutboxRow,
    message: OutboundMessage,
    limit: TextLimit,
) -> SendResult:
    """Send what is left of `message` in parts; the result of the last part sent."""
    upto, sent = progress(row)
    text = message.text
    spans = [(start + upto, end + upto) for start, end in split_spans(text[upto:], limit)]
    result = SendResult()
    for index, (start, end) in enumerate(spans):
        last = index == len(spans) - 1
        number = sent + index + 1
        part = replace(
            message,
            key=message.key if number == 1 else f"{message.key}:part:{number}",
            text=text[start:end],
            # Threaded under the learner's message once; the buttons belong under the end of the text.
            reply_to=message.reply_to if number == 1 else None,
            buttons=message.buttons if last else (),
            # A sender that sends one message for the whole text instead (WeChat's template when the
            # learner's window is closed: `SendResult.whole`) takes it from here, not from this part.
            meta={**message.meta, WHOLE_TEXT: text},
        )
        result = await sender.send(part)
        if last or result.whole:
            break
        await _record(sessions, row, {"upto": end, "parts": number})
    if len(spans) > 1 or sent:
        log.info("outbox %s: sent in %d parts (%s each at most)", row.key, sent + len(spans), limit)
    return result


async def _record(sessions: async_sessionmaker[AsyncSession], row: OutboxRow, split: dict[str, Any]) -> None:
    """Write `split` into the row's payload as it is now, locked: what changed it meanwhile (an
    erasure scrubbing its text) stays changed; only the progress is ours to write."""
    async with sessions() as session, session.begin():
        fresh = await session.scalar(
            select(OutboxRow)
            .where(OutboxRow.id == row.id, OutboxRow.status == SENDING, OutboxRow.attempts == row.attempts)
            .with_for_update()
        )
        if fresh is not None:
            fresh.payload = {**fresh.payload, "split": split}
            payload = fresh.payload
    if fresh is None:
        raise TakenOver(f"outbox {row.key}: taken over by another dispatcher after part {split['parts']}")
    row.payload = payload
