"""Storage promises: personal data encrypted at rest, the migration matching the models,
unusable input kept, operator templates overriding the packaged ones."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, select, text

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.intake.intake import Intake
from core.intake.unparsed import keep_unparsed
from core.rules.templates import Templates
from core.storage.db import create_engine
from core.storage.delivery_models import OutboxRow, Unparsed
from core.storage.models import Base
from tests.conftest import Database, at

NOW = at("2026-11-23 10:00")


async def test_personal_data_is_encrypted_at_rest_and_masked_for_staff(
    db: Database, core: CoreContext, intake: Intake, dispatcher: Dispatcher, staff_channel: FakeChannel
) -> None:
    email = FakeChannel("email")
    dispatcher.senders["email"] = email
    message = email.message(
        "li.ming@example.com",
        "客服态度恶劣，电话 13812348000 没人回",
        NOW,
        sender_name="李明",
        phone="13812348000",
        email="li.ming@example.com",
    )
    await intake.receive(message, NOW)
    await dispatcher.drain(NOW)
    async with db.engine.connect() as conn:
        dump = []
        for table in (
            "learners",
            "learner_identities",
            "tickets",
            "outbox",
            "messages",
            "events",
            "unparsed",
        ):
            rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()
            dump.extend(str(value) for row in rows for value in row)
    stored = " ".join(dump)
    # Neither who complained nor what they said: the summary on the ticket and the card in the outbox
    # quote the complaint (masked or not), so they are encrypted too.
    for secret in (
        "李明",
        "13812348000",
        "li.ming@example.com",
        "客服态度恶劣",
        "没人回",
        "138****8000",
        "李*",
    ):
        assert secret not in stored, f"{secret} stored in clear"
    card = next(m for m in staff_channel.sent if m.kind == "card")
    assert "李*" in card.text and "13812348000" not in card.text
    # The acknowledgement still reached the learner's real address.
    assert [m.recipient for m in email.sent if m.kind == "ack"] == ["li.ming@example.com"]


def _diff(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_the_migration_creates_exactly_the_models_schema(db: Database) -> None:
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_unusable_input_is_kept_once_and_shown_to_staff(
    core: CoreContext, dispatcher: Dispatcher, staff_channel: FakeChannel
) -> None:
    raw = b"<xml><MsgId>1</MsgId><Content>\xff\xfe broken"
    first = await keep_unparsed(core, "wechat", "msg-1", raw, "XML is not well-formed", NOW)
    again = await keep_unparsed(core, "wechat", "msg-1", raw, "XML is not well-formed", NOW)
    assert first == again
    async with core.sessions() as session:
        rows = list(await session.scalars(select(Unparsed)))
        notices = list(await session.scalars(select(OutboxRow).where(OutboxRow.kind == "notice-staff")))
    assert len(rows) == 1 and rows[0].reason == "XML is not well-formed"
    assert "<MsgId>1</MsgId>" in core.vault.decrypt(rows[0].raw_enc)
    assert len(notices) == 1
    await dispatcher.drain(NOW)
    notice = next(m for m in staff_channel.sent if m.kind == "notice-staff")
    assert notice.recipient == "service" and "XML is not well-formed" in notice.text


async def test_operator_templates_override_packaged_ones_file_by_file(
    tmp_path: Path, core: CoreContext, dispatcher: Dispatcher, learner_channel: FakeChannel
) -> None:
    (tmp_path / "zh").mkdir()
    (tmp_path / "zh" / "ack.txt.j2").write_text(
        "已收到，编号 {{ number }}。本校投诉专线 400-123-4567。", encoding="utf-8"
    )
    core.templates = Templates(tmp_path)
    result = await Intake(core).receive(learner_channel.message("chat-1", "老师迟到", NOW), NOW)
    await dispatcher.drain(NOW)
    ack, ask = learner_channel.texts_to("chat-1")
    assert ack == f"已收到，编号 {result.ticket_number}。本校投诉专线 400-123-4567。"
    assert "课程" in ask  # templates not overridden still come from the package


async def test_a_received_complaint_is_on_disk_before_the_platform_is_answered(tmp_path: Path) -> None:
    # WAL with synchronous=NORMAL survives a crash of the process but may lose the last commits on a
    # power loss; FULL syncs the log at each commit (one per group of complaints).
    engine = create_engine(f"sqlite:///{tmp_path / 'durable.db'}")
    try:
        async with engine.connect() as connection:
            modes = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
            synchronous = (await connection.execute(text("PRAGMA synchronous"))).scalar_one()
    finally:
        await engine.dispose()
    assert (modes, synchronous) == ("wal", 2)  # 2: FULL
