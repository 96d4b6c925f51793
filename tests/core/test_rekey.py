"""Retiring a privacy key: after `rotate`, the first key alone reads everything and finds everyone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bot.app import channel_book
from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.outbox import recipient_key
from core.intake.intake import Intake
from core.intake.unparsed import keep_unparsed
from core.privacy.keycheck import check_key
from core.privacy.rekey import ENCRYPTED, rotate, seal_clear_text
from core.rules.policy import parse_policy
from core.rules.templates import Templates
from core.storage.delivery_models import OutboxRow, Unparsed
from core.storage.models import Learner, Ticket
from core.storage.privacy import PrivacyKeyError, Vault, generate_key
from tests.conftest import DEPARTMENTS, Database, at

NOW = at("2026-11-23 10:00")
ROTATED = datetime(2026, 12, 1, tzinfo=UTC)


def context(db: Database, keys: list[str]) -> CoreContext:
    return CoreContext(
        sessions=db.sessions,
        policy=parse_policy(),
        vault=Vault(keys),
        templates=Templates(),
        channels=channel_book(),
        department_names=DEPARTMENTS,
    )


@pytest.fixture
async def old_core(db: Database, privacy_key: str) -> AsyncIterator[CoreContext]:
    core = context(db, [privacy_key])
    await check_key(core.sessions, core.vault, NOW)
    yield core
    await core.close()


async def tokens(core: CoreContext) -> list[str]:
    found = []
    async with core.sessions() as session:
        for model, columns in ENCRYPTED:
            for name in columns:
                column = getattr(model, name)
                found += [t for t in await session.scalars(select(column).where(column.is_not(None)))]
        # Texts kept encrypted in plain columns: the summary, and the outbox's texts.
        found += [t for t in await session.scalars(select(Ticket.summary)) if t]
        for payload in await session.scalars(select(OutboxRow.payload)):
            found += [payload["text"]] + ([payload["subject"]] if payload.get("subject") else [])
            found += [payload["meta"]["summary"]] if payload["meta"].get("summary") else []
    return found


async def test_after_rotation_the_new_key_alone_reads_everything_and_finds_everyone(
    db: Database, old_core: CoreContext, privacy_key: str
) -> None:
    telegram, mail = FakeChannel("telegram"), FakeChannel("email")
    first = telegram.message("7001", "老师上课总是迟到", NOW, phone="13812348000", sender_name="李明")
    await Intake(old_core).receive(first, NOW)
    await Intake(old_core).receive(
        mail.message("li@163.com", "退费三个月没到账", NOW, email="li@163.com"), NOW
    )
    await keep_unparsed(old_core, "wechat", "bad-1", '{"xml": "<broken"}', "not XML", NOW)
    before = len(await tokens(old_core))

    new = generate_key()
    both = context(db, [new, privacy_key])
    await check_key(both.sessions, both.vault, NOW)  # a new key in front changes no index: accepted
    done = await rotate(both.sessions, both.vault, [new, privacy_key], ROTATED)
    assert done.tokens == before and done.unmatched == 0
    await both.close()

    core = context(db, [new])
    try:
        await check_key(core.sessions, core.vault, ROTATED)  # the new key alone is the database's now
        for token in await tokens(core):
            core.vault.decrypt(token)  # every value readable without the old key
        intake = Intake(core)
        again = await intake.receive(first, ROTATED)  # a redelivery is still recognised as one
        assert again.duplicate
        later = await intake.receive(telegram.message("7001", "还有，作业也不批改", ROTATED), ROTATED)
        async with core.sessions() as session:
            assert await session.scalar(select(func.count(Learner.id))) == 2  # the same learner, found
            assert await session.scalar(select(func.count(Ticket.id))) == 2
            learner = await session.scalar(
                select(Learner).where(Learner.phone_index == core.vault.blind_index("phone", "13812348000"))
            )
            assert learner is not None and core.vault.decrypt(learner.name_enc or "") == "李明"
            rows = list(await session.scalars(select(OutboxRow).where(OutboxRow.recipient_key.is_not(None))))
            assert rows and all(
                r.recipient_key == recipient_key(core.vault, r.channel, core.vault.decrypt(r.recipient_enc))
                for r in rows
            )
            kept = await session.scalar(select(Unparsed.raw_enc))
            assert kept is not None and json.loads(core.vault.decrypt(kept)) == {"xml": "<broken"}
        assert later.ticket_number
    finally:
        await core.close()
    # The old configuration (old key last) no longer starts: it would index learners under the old key.
    for keys in ([new, privacy_key], [privacy_key]):
        stale = context(db, keys)
        with pytest.raises(PrivacyKeyError, match="cannot read this database"):
            await check_key(stale.sessions, stale.vault, ROTATED)
        await stale.close()


async def test_rotation_needs_a_new_key_in_front_and_changes_nothing_without_one(
    db: Database, old_core: CoreContext, privacy_key: str
) -> None:
    await Intake(old_core).receive(FakeChannel().message("7001", "老师上课总是迟到", NOW), NOW)
    before = await tokens(old_core)
    with pytest.raises(PrivacyKeyError, match="put a new one in front"):
        await rotate(old_core.sessions, old_core.vault, [privacy_key], ROTATED)
    assert await tokens(old_core) == before
    await check_key(old_core.sessions, old_core.vault, ROTATED)


async def test_text_an_earlier_version_stored_in_clear_is_encrypted_once(old_core: CoreContext) -> None:
    result = await Intake(old_core).receive(FakeChannel().message("7001", "老师上课总是迟到", NOW), NOW)
    async with old_core.sessions() as session, session.begin():  # as an earlier version wrote them
        ticket = await session.scalar(select(Ticket).where(Ticket.number == result.ticket_number))
        assert ticket is not None
        ticket.summary = "老师上课总是迟到"
        for row in await session.scalars(select(OutboxRow)):
            row.payload = {**row.payload, "text": "您的投诉已受理", "subject": None}
    assert await seal_clear_text(old_core.sessions, old_core.vault, NOW) > 0
    async with old_core.sessions() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.number == result.ticket_number))
        assert ticket is not None and "老师" not in ticket.summary
        assert old_core.vault.decrypt(ticket.summary) == "老师上课总是迟到"
        payloads = list(await session.scalars(select(OutboxRow.payload)))
    assert payloads and all(old_core.vault.decrypt(p["text"]) == "您的投诉已受理" for p in payloads)
    assert await seal_clear_text(old_core.sessions, old_core.vault, NOW) == 0  # done once
