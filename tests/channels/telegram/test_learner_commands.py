"""A Telegram learner's commands in plain words as in slash form, and texts over Telegram's 4,096
characters, through the real client and the Bot API stand-in, on SQLite and PostgreSQL."""

from __future__ import annotations

from core.storage.numbers import find_ticket_numbers
from tests.channels.telegram.test_staff_commands import FEES, LEARNER, TEACHER, TEACHING, TEACHING_CHAT, Rig


async def test_progress_in_plain_words_or_as_a_command(rig: Rig) -> None:
    first = await rig.complain(LEARNER, TEACHING)
    for asked in ("查询进度", "/status"):
        rig.botapi.learner_message(LEARNER, asked)
        await rig.round()
        answer = rig.botapi.texts_to(LEARNER)[-1]
        assert answer.startswith("您的投诉") and first in answer
    assert await rig.tickets() == 1


async def test_new_complaint_in_plain_words_opens_a_separate_ticket(rig: Rig) -> None:
    first = await rig.complain(LEARNER, TEACHING)
    rig.botapi.learner_message(LEARNER, "新投诉")
    await rig.round()
    assert "单独编号" in rig.botapi.texts_to(LEARNER)[-1]
    said = len(rig.botapi.texts_to(LEARNER))
    rig.botapi.learner_message(LEARNER, FEES)
    await rig.round()
    second = find_ticket_numbers(rig.botapi.texts_to(LEARNER)[said])[0]
    assert str(second) != first and await rig.tickets() == 2


async def test_a_reply_longer_than_telegram_takes_reaches_the_learner_in_parts(rig: Rig) -> None:
    number = await rig.complain(LEARNER, TEACHING)
    paragraphs = [f"第{n}段：" + "我们已安排下周补课两次，并调换了任课老师。" * 70 for n in range(1, 4)]
    text = "\n\n".join(paragraphs)  # some 4,200 characters: over 4,096
    before = len(rig.botapi.texts_to(LEARNER))
    answer = await rig.say(TEACHING_CHAT, TEACHER, f"/reply {number} {text}")
    assert answer.startswith("✅"), answer
    parts = rig.botapi.texts_to(LEARNER)[before:]
    assert len(parts) == 2 and all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in parts)
    assert number in parts[0]
    assert parts[1].startswith("第3段")  # parted between paragraphs
    assert [p for p in paragraphs if not any(p in part for part in parts)] == []  # every paragraph whole
