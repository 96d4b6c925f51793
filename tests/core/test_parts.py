"""A text longer than its channel takes goes in parts, in order, and no part the learner has goes twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import PENDING, SENT, TemporarySendError, enqueue, payload_text
from core.delivery.record import RetryPolicy
from core.messages import Button, OutboundMessage, SendResult
from core.privacy.scrub import ERASED, scrub_outbox_row
from core.storage.delivery_models import OutboxRow
from core.text_limits import TextLimit
from tests.conftest import at

NOW = at("2026-11-23 10:00")
LIMIT = TextLimit(60, "utf8")  # twenty Chinese characters
PARAGRAPHS = [
    "第一段：老师已经调换，下周一起生效。",
    "第二段：退费申请已提交财务部审核。",
    "第三段：如有疑问请回复本消息。",
]
LONG = "\n\n".join(PARAGRAPHS)


async def queue(core: CoreContext, key: str, text: str, **fields: object) -> None:
    async with core.sessions() as session, session.begin():
        enqueue(
            session,
            core.vault,
            key=key,
            channel="telegram",
            recipient="chat-1",
            kind="reply",
            text=text,
            now=NOW,
            **fields,
        )


async def row(core: CoreContext, key: str) -> OutboxRow:
    async with core.sessions() as session:
        return (await session.scalars(select(OutboxRow).where(OutboxRow.key == key))).one()


def dispatcher(core: CoreContext, channel: object) -> Dispatcher:
    return Dispatcher(core.sessions, core.vault, {"telegram": channel}, retry=RetryPolicy())  # type: ignore[dict-item]


async def test_a_long_text_arrives_in_parts_in_order_with_the_buttons_under_the_last(
    core: CoreContext,
) -> None:
    channel = FakeChannel("telegram", text_limit=LIMIT)
    await queue(core, "reply-1", LONG, reply_to="chat-1:7", buttons=(Button("满意", "rate:5"),))
    await queue(core, "reply-2", "之后的消息")
    report = await dispatcher(core, channel).drain(NOW)
    assert report.sent == 2 and report.retried == 0
    assert channel.texts_to("chat-1") == [*PARAGRAPHS, "之后的消息"]
    assert all(LIMIT.fits(m.text) for m in channel.sent)
    first, second, third = channel.sent[:3]
    assert (first.reply_to, second.reply_to, third.reply_to) == ("chat-1:7", None, None)
    assert (first.buttons, second.buttons, third.buttons) == ((), (), (Button("满意", "rate:5"),))
    sent = await row(core, "reply-1")
    assert sent.status == SENT and sent.external_ref == "telegram-out-3"  # the last part's


async def test_a_part_refused_for_now_is_retried_without_sending_the_parts_before_it_again(
    core: CoreContext,
) -> None:
    channel = FakeChannel("telegram", text_limit=LIMIT)

    class FailsOnSecondPart:
        text_limit = LIMIT

        async def send(self, message: OutboundMessage) -> SendResult:
            if message.key.endswith(":part:2") and not getattr(self, "failed", False):
                self.failed = True
                raise TemporarySendError("Telegram unreachable")
            return await channel.send(message)

    await queue(core, "reply-1", LONG)
    sender = FailsOnSecondPart()
    first = await dispatcher(core, sender).run_once(NOW)
    assert first.retried == 1 and channel.texts_to("chat-1") == PARAGRAPHS[:1]
    waiting = await row(core, "reply-1")
    assert waiting.status == PENDING and waiting.payload["split"]["parts"] == 1
    await dispatcher(core, sender).drain(NOW + timedelta(hours=1))
    assert channel.texts_to("chat-1") == PARAGRAPHS  # the first part once, then the rest
    assert (await row(core, "reply-1")).status == SENT


async def test_after_a_crash_between_parts_the_next_dispatcher_sends_only_what_is_left(
    core: CoreContext,
) -> None:
    channel = FakeChannel("telegram", text_limit=LIMIT)
    second_part, never = asyncio.Event(), asyncio.Event()

    class HangsOnSecondPart:
        text_limit = LIMIT

        async def send(self, message: OutboundMessage) -> SendResult:
            if message.key.endswith(":part:2"):
                second_part.set()
                await never.wait()  # the process dies here: the part was never sent
            return await channel.send(message)

    await queue(core, "reply-1", LONG)
    crashing = asyncio.create_task(dispatcher(core, HangsOnSecondPart()).run_once(NOW))
    await second_part.wait()
    crashing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await crashing
    assert channel.texts_to("chat-1") == PARAGRAPHS[:1]
    # Another instance, once the dead one's lease has run out, takes the row up where it was left.
    later = NOW + RetryPolicy().lease + timedelta(seconds=1)
    report = await dispatcher(core, channel).drain(later)
    assert report.sent == 1
    assert channel.texts_to("chat-1") == PARAGRAPHS


async def test_a_send_that_stands_for_the_whole_text_ends_it(core: CoreContext) -> None:
    class TemplateInstead:
        text_limit = LIMIT

        def __init__(self) -> None:
            self.sent: list[str] = []

        async def send(self, message: OutboundMessage) -> SendResult:
            self.sent.append(message.text)
            return SendResult(external_ref="template:1", whole=True)

    await queue(core, "reply-1", LONG)
    sender = TemplateInstead()
    await dispatcher(core, sender).drain(NOW)
    assert sender.sent == PARAGRAPHS[:1]
    assert (await row(core, "reply-1")).status == SENT


async def test_a_card_is_never_split(core: CoreContext) -> None:
    channel = FakeChannel("telegram", text_limit=LIMIT)
    async with core.sessions() as session, session.begin():
        enqueue(
            session,
            core.vault,
            key="card-1",
            channel="telegram",
            recipient="g",
            kind="card",
            text=LONG,
            now=NOW,
        )
    await dispatcher(core, channel).drain(NOW)
    assert [m.text for m in channel.sent] == [LONG]  # whole: the sender shortens what it must


async def test_an_erasure_while_the_parts_go_is_not_undone_by_recording_them(core: CoreContext) -> None:
    async with core.sessions() as session, session.begin():
        enqueue(
            session,
            core.vault,
            key="n-1",
            channel="staff",
            recipient="managers",
            kind="notice",
            text=LONG,
            now=NOW,
        )

    class ErasedMeanwhile:
        """A staff chat where, while the first part goes out, the learner's data is erased."""

        text_limit = LIMIT

        def __init__(self) -> None:
            self.sent: list[str] = []

        async def send(self, message: OutboundMessage) -> SendResult:
            self.sent.append(message.text)
            if len(self.sent) == 1:
                async with core.sessions() as session, session.begin():
                    row = (await session.scalars(select(OutboxRow).where(OutboxRow.key == "n-1"))).one()
                    scrub_outbox_row(row, core.vault.encrypt(ERASED), learner_bound=False)
            return SendResult(external_ref=f"x{len(self.sent)}")

    sink = ErasedMeanwhile()
    await Dispatcher(core.sessions, core.vault, {"staff": sink}, retry=RetryPolicy()).drain(NOW)
    assert len(sink.sent) == 3
    async with core.sessions() as session:
        row = (await session.scalars(select(OutboxRow).where(OutboxRow.key == "n-1"))).one()
    assert payload_text(core.vault, row.payload) == ERASED  # the progress was recorded, not the old text
