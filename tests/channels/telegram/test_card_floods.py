"""No card floods: while a department's staff chat is saturated, new tickets are held for one summary
per interval (a button per number posts its card); a major complaint gets its card at once. Through
the real client and the Bot API stand-in; the lane's state is set up and time is passed in."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from core.delivery.outbox import SENT, enqueue
from core.storage.delivery_models import OutboxRow
from core.storage.models import Ticket
from scheduler import card_summary
from tests.channels.telegram.test_staff_commands import (
    LEARNER,
    OTHER_LEARNER,
    TEACHER,
    TEACHING,
    TEACHING_CHAT,
    Rig,
)

MAJOR = "老师上课总是迟到，教学质量很差，我要找媒体曝光"
BACKLOG = "backlog:"


async def _saturate(rig: Rig, count: int = 20) -> None:
    """`count` staff messages to the teaching chat, waiting for Telegram's pace (due in an hour)."""
    async with rig.core.sessions() as session, session.begin():
        for n in range(count):
            row = enqueue(
                session,
                rig.core.vault,
                key=f"{BACKLOG}{n}",
                channel="staff",
                recipient="teaching",
                kind="notice-staff",
                text=f"notice {n}",
                now=rig.now,
            )
            row.next_attempt_at = rig.now + timedelta(hours=1)


async def _backlog_delivered(rig: Rig) -> None:
    async with rig.core.sessions() as session, session.begin():
        await session.execute(
            update(OutboxRow).where(OutboxRow.key.startswith(BACKLOG)).values(status=SENT, sent_at=rig.now)
        )


async def _cards(rig: Rig, number: str) -> list[OutboxRow]:
    async with rig.core.sessions() as session:
        query = select(OutboxRow).join(Ticket).where(Ticket.number == number, OutboxRow.kind == "card")
        return list(await session.scalars(query))


def _card_texts(rig: Rig, number: str) -> list[str]:
    return [t for t in rig.botapi.texts_to(TEACHING_CHAT) if number in t and "🆕" in t]


async def test_a_flooded_chat_gets_one_summary_and_cards_on_demand(rig: Rig) -> None:
    await _saturate(rig)
    held = [await rig.complain(5100 + n, TEACHING) for n in range(3)]
    major = await rig.complain(OTHER_LEARNER, MAJOR)
    assert ((await rig.ticket(major)).severity, (await rig.ticket(major)).department) == ("major", "teaching")
    # Each learner has their number at once; the general tickets' cards wait, the major one's does not.
    assert all([await _cards(rig, n) == [] for n in held])
    assert len(await _cards(rig, major)) == 1
    assert [e.detail for e in await rig.events(held[0], "card_held")] == ["teaching: staff chat flooded"]

    # Not before the interval is over; then one summary with every held number, once.
    early = await card_summary.run(rig.core, rig.now + timedelta(minutes=1), False)
    assert early.actions == []
    later = rig.now + timedelta(minutes=2)
    report = await card_summary.run(rig.core, later, False)
    assert report.actions == ["summary of 3 new ticket(s) to teaching"]
    assert (await card_summary.run(rig.core, later, False)).actions == []

    await _backlog_delivered(rig)
    rig.clock[0] = later
    await rig.dispatcher.drain(rig.now)
    summary = next(m for m in rig.botapi.messages_to(TEACHING_CHAT) if "🗂" in m["text"])
    assert "3 件" in summary["text"] and all(n in summary["text"] for n in held)
    assert major not in summary["text"] and _card_texts(rig, major)
    buttons = [b["callback_data"] for row in summary["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == [f"card:{n}" for n in held]

    # A number pressed: its card, in the chat; pressed again, a private copy for whoever asks.
    rig.botapi.callback(TEACHING_CHAT, TEACHER, summary["message_id"], f"card:{held[1]}")
    await rig.round()
    assert len(_card_texts(rig, held[1])) == 1 and _card_texts(rig, held[0]) == []
    assert any(
        f"{held[1]}: card posted in the teaching chat" in t for t in rig.botapi.texts_to(TEACHING_CHAT)
    )
    rig.botapi.callback(TEACHING_CHAT, TEACHER, summary["message_id"], f"card:{held[1]}")
    await rig.round()
    assert len(_card_texts(rig, held[1])) == 1
    assert any(held[1] in t and "🆕" in t for t in rig.botapi.texts_to(TEACHER))
    # The card works like any other: a claim edits it.
    assert (await rig.say(TEACHING_CHAT, TEACHER, f"/claim {held[1]}")).startswith("✅")
    assert "王老师" in _card_texts(rig, held[1])[0]


async def test_a_chat_that_keeps_up_gets_every_card_at_once(rig: Rig) -> None:
    await _saturate(rig, count=19)  # one short of saturated
    number = await rig.complain(LEARNER, TEACHING)
    assert len(await _cards(rig, number)) == 1
    assert (await card_summary.run(rig.core, rig.now + timedelta(hours=1), False)).actions == []
