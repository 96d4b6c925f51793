"""Canned replies and `/find` from the staff chat, through the real client and the Bot API stand-in."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from core.rules.templates import Templates
from core.storage.models import Event
from core.storage.record_models import CannedReply
from core.tickets.search import SCAN, parse_query, search_listed
from tests.channels.telegram.test_staff_commands import (
    CASHIER,
    FEES,
    LEARNER,
    MANAGER,
    MANAGERS_CHAT,
    OTHER_LEARNER,
    STAFF_CHAT,
    TEACHER,
    TEACHING,
    TEACHING_CHAT,
    Rig,
)
from tests.core.test_search import add_tickets

LATE_ZH = "您好，您的投诉 {{ number }} 已转教学部，我们会在 {{ due }} 前与您联系。"
LATE_EN = "Hello, {{ number }} is with {{ department }}; we will contact you by {{ due }}."


async def _uses(rig: Rig, key: str) -> int:
    async with rig.core.sessions() as session:
        row = await session.scalar(select(CannedReply).where(CannedReply.key == key))
        assert row is not None
        return row.uses


async def test_managers_keep_canned_replies_and_staff_send_them(rig: Rig) -> None:
    number = await rig.complain(LEARNER, TEACHING)
    refused = await rig.say(TEACHING_CHAT, TEACHER, f"/canned set teaching #late zh {LATE_ZH}")
    assert refused.startswith("⛔") and "only managers" in refused
    bad = await rig.say(MANAGERS_CHAT, MANAGER, "/canned set teaching #late zh 您好 {{ learner_phone }}")
    assert bad.startswith("⚠️") and "learner_phone" in bad and "{{ number }}" in bad
    # Fields are substituted, nothing else: a text cannot reach into Python.
    bad = await rig.say(MANAGERS_CHAT, MANAGER, "/canned set teaching #x en {{ number.__class__.__mro__ }}")
    assert bad.startswith("⚠️") and "'{{ number.__class__.__mro__ }}' cannot be filled in" in bad
    said = await rig.say(MANAGERS_CHAT, MANAGER, f"/canned set teaching #late zh {LATE_ZH}")
    assert said.startswith("✅") and "#late (zh) of teaching saved by 陈经理" in said
    assert (await rig.say(MANAGERS_CHAT, MANAGER, f"/canned set teaching #late en {LATE_EN}")).startswith(
        "✅"
    )

    listed = await rig.say(TEACHING_CHAT, TEACHER, "/canned")
    assert "#late [zh/en, used 0×]" in listed

    sent = await rig.say(TEACHING_CHAT, TEACHER, f"/reply {number} #late")
    assert sent.startswith("✅") and "reply by 王老师 sent to the learner" in sent
    reply = rig.botapi.texts_to(LEARNER)[-1]
    assert number in reply and "我们会在 2026-11-23" in reply and "{{" not in reply
    assert await _uses(rig, "late") == 1
    assert [e.detail for e in await rig.events(number, "reply")] == [reply.partition("】")[2]]
    unknown = await rig.say(TEACHING_CHAT, TEACHER, f"/reply {number} #refund")
    assert unknown.startswith("⚠️") and "no canned reply #refund in teaching" in unknown and "#late" in unknown

    # The next card offers the department's most used reply as a button; pressing it sends it.
    other = await rig.complain(OTHER_LEARNER, "老师讲课太快，根本听不懂，教学质量差")
    card = next(
        m for m in rig.botapi.messages_to(TEACHING_CHAT) if other in m.get("text", "") and "🆕" in m["text"]
    )
    buttons = [b["callback_data"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert f"reply:{other} #late" in buttons
    rig.botapi.callback(TEACHING_CHAT, TEACHER, card["message_id"], f"reply:{other} #late")
    await rig.round()
    assert other in rig.botapi.texts_to(OTHER_LEARNER)[-1] and await _uses(rig, "late") == 2

    assert "#late removed" in await rig.say(MANAGERS_CHAT, MANAGER, "/canned remove teaching #late")
    assert "No canned replies for teaching" in await rig.say(TEACHING_CHAT, TEACHER, "/canned")


async def test_canned_texts_fill_in_fields_and_nothing_else(rig: Rig, tmp_path: Path) -> None:
    number = await rig.complain(LEARNER, TEACHING)
    # What a template language would run (for ever, or into a huge reply, or into an error nobody
    # answers) is refused with one line, and the chat goes on answering.
    for text in (
        "{% for a in range(99999) %}{% for b in range(99999) %}x{% endfor %}{% endfor %}",
        "{{ 'x' * 10**8 }}",
        "{{ 1/0 }}",
        "{{ range(10**6) }}",
        "{# a note #} {{ number }}",
    ):
        said = await rig.say(MANAGERS_CHAT, MANAGER, f"/canned set teaching #x en {text}")
        assert said.startswith("⚠️") and "cannot be filled in" in said and "\n" not in said, text
    assert "No canned replies for teaching" in await rig.say(TEACHING_CHAT, TEACHER, "/canned")
    said = await rig.say(MANAGERS_CHAT, MANAGER, "/canned set teaching #x en {{number}} by {{  due }}")
    assert said.startswith("✅")

    # Longer than a message may be, from the file: refused when it is taken in.
    (tmp_path / "canned.toml").write_text(f'[teaching.long]\nen = "{"x" * 5000}"\n', encoding="utf-8")
    rig.core.templates = Templates(tmp_path)
    listed = await rig.say(TEACHING_CHAT, TEACHER, "/canned")
    assert listed.startswith("⚠️") and "5000 characters long; at most 4096" in listed
    (tmp_path / "canned.toml").unlink()

    # A text stored before these rules is refused when used, and nothing reaches the learner.
    async with rig.core.sessions() as session, session.begin():
        session.add(
            CannedReply(
                department="teaching",
                key="old",
                text_en="{{ 1/0 }}",
                uses=0,
                updated_at=rig.now,
                updated_by="x",
            )
        )
    before = len(rig.botapi.texts_to(LEARNER))
    said = await rig.say(TEACHING_CHAT, TEACHER, f"/reply {number} #old")
    assert said.startswith("⚠️") and "#old of teaching cannot be filled in" in said
    assert len(rig.botapi.texts_to(LEARNER)) == before and await _uses(rig, "old") == 0


async def test_canned_replies_from_the_templates_directory(rig: Rig, tmp_path: Path) -> None:
    (tmp_path / "canned.toml").write_text(
        '[finance.refund]\nzh = "{{ number }}：退费已在处理，{{ stage }} 截止 {{ due }}。"\n'
        'en = "{{ number }}: your refund is being handled."\n',
        encoding="utf-8",
    )
    rig.core.templates = Templates(tmp_path)
    number = await rig.complain(LEARNER, FEES)
    listed = await rig.say(STAFF_CHAT, CASHIER, "/canned")
    assert "#refund [zh/en, used 0×]" in listed
    assert (await rig.say(STAFF_CHAT, CASHIER, f"/reply {number} #refund")).startswith("✅")
    assert rig.botapi.texts_to(LEARNER)[-1].endswith(f"{number}：退费已在处理，claim 截止 2026-11-23 11:00。")
    # Edited from chat afterwards: the newer edit wins over the (older) file.
    rig.clock[0] += timedelta(minutes=5)
    assert (
        await rig.say(MANAGERS_CHAT, MANAGER, "/canned set finance #refund zh 已加急：{{ number }}")
    ).startswith("✅")
    assert "已加急" in await rig.say(STAFF_CHAT, CASHIER, "/canned finance")

    # Removed from chat, the file would bring it back: refused, and it stays.
    said = await rig.say(MANAGERS_CHAT, MANAGER, "/canned remove finance #refund")
    assert said.startswith("⚠️") and "in " in said and "canned.toml: remove it there" in said
    assert "#refund" in await rig.say(STAFF_CHAT, CASHIER, "/canned finance")
    # Once gone from the file, it is removed from chat for good.
    (tmp_path / "canned.toml").write_text("", encoding="utf-8")
    assert "#refund removed" in await rig.say(MANAGERS_CHAT, MANAGER, "/canned remove finance #refund")
    assert "No canned replies for finance" in await rig.say(STAFF_CHAT, CASHIER, "/canned finance")


async def test_find_by_words_number_and_phone_tail(rig: Rig) -> None:
    teaching = await rig.complain(LEARNER, "老师上课总是迟到，教学质量很差，我的手机 13812348000")
    fees = await rig.complain(OTHER_LEARNER, FEES)

    found = await rig.say(TEACHING_CHAT, TEACHER, "/find 迟到")
    assert teaching in found and fees not in found and "Found 1 (teaching)" in found
    assert "138****8000" in found and "13812348000" not in found  # masked, as everywhere in chat
    # Staff see their own department's; a manager, every one.
    assert "Nothing found" in await rig.say(TEACHING_CHAT, TEACHER, "/find 退费")
    assert fees in await rig.say(MANAGERS_CHAT, MANAGER, "/find 退费")
    assert fees in await rig.say(MANAGERS_CHAT, MANAGER, f"/find {fees[-7:]}")

    assert await rig.events(teaching, "searched") == []
    by_phone = await rig.say(TEACHING_CHAT, TEACHER, "/find *8000")
    assert teaching in by_phone and fees not in by_phone
    searched = await rig.events(teaching, "searched")
    assert len(searched) == 1 and "王老师" in searched[0].actor and "8000" in (searched[0].detail or "")
    assert (await rig.say(TEACHING_CHAT, TEACHER, "/find")).startswith("⚠️")

    # `complaintbot tickets list --search` reads the same way (every department), and audits a phone tail.
    async with rig.core.sessions() as session, session.begin():
        listed = await search_listed(rig.core, session, parse_query("退费"), "open", rig.now, "operator:test")
        assert [t.number for t in listed.tickets] == [fees] and listed.total == 1
        listed = await search_listed(
            rig.core, session, parse_query("138****8000"), "all", rig.now, "operator:x"
        )
        assert [t.number for t in listed.tickets] == [teaching]
    async with rig.core.sessions() as session:
        actors = await session.scalars(
            select(Event.actor).where(Event.action == "searched").order_by(Event.id)
        )
        assert list(actors)[-1] == "operator:x"


async def test_find_says_when_it_read_only_the_newest_tickets(rig: Rig) -> None:
    await add_tickets(rig.core, SCAN + 1, rig.now)
    found = await rig.say(TEACHING_CHAT, TEACHER, "/find 课程安排")
    assert f"Found {SCAN} (teaching) (searched the newest {SCAN} tickets):" in found
    assert "more: add a word" in found
    nothing = await rig.say(TEACHING_CHAT, TEACHER, "/find 退费")
    assert nothing == f"Nothing found for '退费' (teaching). (searched the newest {SCAN} tickets)"
    # By number, the database counts every match.
    assert f"Found {SCAN + 1} (teaching):" in await rig.say(TEACHING_CHAT, TEACHER, "/find 200101")
