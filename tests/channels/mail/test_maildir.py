"""The Maildir source and the reading step both sources share (real SQLite and PostgreSQL, no server).

Passes are driven with `fetch_once(now)`; only the `run()` test waits, on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import mailbox
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from channels.mail.maildir import MaildirSource, batches
from channels.mail.prepared import prepare
from channels.mail.reader import MailReader
from core.context import CoreContext
from core.intake.intake import Intake
from core.storage.delivery_models import OutboxRow
from core.storage.models import Message
from tests.channels.mail.dovecot import complaint_mail, tally

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
ZH = "王老师上课总是迟到，已经三次了，希望调换老师。"
EN = "The IELTS speaking teacher cancelled four classes this month without notice. I want a refund."


def deliver(
    box: mailbox.Maildir, raw: bytes, *, subdir: Literal["new", "cur"] = "new", flags: str = ""
) -> str:
    message = mailbox.MaildirMessage(raw)
    message.set_subdir(subdir)
    message.set_flags(flags)
    return box.add(message)


def files(directory: Path, sub: str) -> list[str]:
    return sorted(path.name for path in (directory / sub).iterdir())


async def test_a_maildir_gives_one_ticket_per_message_and_marks_each_seen(
    tmp_path: Path, core: CoreContext, intake: Intake
) -> None:
    box = mailbox.Maildir(tmp_path / "mail", create=True)
    deliver(box, complaint_mail("li.ming@163.com", ZH, name="李明", message_id="<zh-1@163.com>"))
    deliver(box, complaint_mail("emily@gmail.com", EN, message_id="<en-1@gmail.com>"), subdir="cur")
    deliver(box, complaint_mail("old@qq.com", ZH, message_id="<old@qq.com>"), subdir="cur", flags="RS")
    deliver(box, b"no headers, no sender\n")
    source = MaildirSource(tmp_path / "mail", MailReader(intake, core))

    report = await source.fetch_once(NOW)
    assert (report.taken, report.duplicates, report.kept, report.left) == (2, 0, 1, 0)
    assert await tally(core) == {"tickets": 2, "inbound": 2, "acks": 2, "unparsed": 1}
    assert files(tmp_path / "mail", "new") == []
    assert all(name.rsplit(",", 1)[1].count("S") == 1 for name in files(tmp_path / "mail", "cur"))
    assert any(name.endswith(":2,RS") for name in files(tmp_path / "mail", "cur"))  # flags kept

    assert (await source.fetch_once(NOW)).done == []  # nothing waits any more


class CrashBeforeRename(MaildirSource):
    def mark_done(self, path: Path) -> None:
        raise SystemExit("killed between commit and the rename")


async def test_a_crash_between_commit_and_rename_repeats_nothing(
    tmp_path: Path, core: CoreContext, intake: Intake
) -> None:
    box = mailbox.Maildir(tmp_path / "mail", create=True)
    for i in range(3):
        deliver(box, complaint_mail(f"learner{i}@163.com", ZH, message_id=f"<c{i}@163.com>"))
    with pytest.raises(SystemExit):
        await CrashBeforeRename(tmp_path / "mail", MailReader(intake, core)).fetch_once(NOW)
    assert len(files(tmp_path / "mail", "new")) == 3

    report = await MaildirSource(tmp_path / "mail", MailReader(intake, core)).fetch_once(NOW)
    assert (report.taken, report.duplicates) == (0, 3)
    assert files(tmp_path / "mail", "new") == []
    assert await tally(core) == {"tickets": 3, "inbound": 3, "acks": 3, "unparsed": 0}


async def test_run_takes_a_new_message_within_the_poll_interval(
    tmp_path: Path, core: CoreContext, intake: Intake
) -> None:
    source = MaildirSource(tmp_path / "mail", MailReader(intake, core), poll_seconds=0.1)
    stop = asyncio.Event()
    running = asyncio.create_task(source.run(stop))
    try:
        await asyncio.sleep(0.2)
        box = mailbox.Maildir(tmp_path / "mail")
        deliver(box, complaint_mail("li.ming@163.com", ZH, message_id="<zh-1@163.com>"))
        began = time.monotonic()
        while (await tally(core))["tickets"] < 1:
            assert time.monotonic() - began < 5
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
    assert files(tmp_path / "mail", "new") == []


async def learner_replies(core: CoreContext, external_id: str) -> int:
    """Messages queued to the learner because of this inbound message."""
    async with core.sessions() as session:
        inbound = await session.scalar(select(Message.id).where(Message.external_id == external_id))
        assert inbound is not None
        keys = await session.scalars(select(OutboxRow.key).where(OutboxRow.key.like(f"in:{inbound}:%")))
        return len([key for key in keys if not key.endswith(("staff-notice", "card"))])


async def test_a_flood_from_one_sender_is_recorded_without_replies(core: CoreContext, intake: Intake) -> None:
    # Our mail server vouches for the sender, so the second mail counts as the answer it is.
    reader = MailReader(intake, core, per_sender_per_hour=2, authserv_id="mx.school.example.cn")
    texts = [ZH, "课程名称是 Python 全栈班", "我的电话是 13800138000", "还有，退款什么时候到？"]
    ids = [f"<flood-{i}@163.com>" for i in range(len(texts))]
    vouched = {"Authentication-Results": "mx.school.example.cn; dmarc=pass header.from=163.com"}
    for n, (text, mid) in enumerate(zip(texts, ids, strict=True)):
        raw = complaint_mail("li.ming@163.com", text, message_id=mid, headers=vouched)
        assert await reader.take(prepare(str(n), raw, NOW), NOW + timedelta(minutes=n)) == "taken"
    assert [await learner_replies(core, mid) > 0 for mid in ids] == [True, True, False, False]
    assert (await tally(core))["inbound"] == 4  # recorded all the same

    # An hour later the sender may write again and is answered.
    later = complaint_mail("li.ming@163.com", "请尽快处理", message_id="<later@163.com>", headers=vouched)
    assert await reader.take(prepare("9", later, NOW), NOW + timedelta(minutes=70)) == "taken"
    assert await learner_replies(core, "<later@163.com>") > 0


async def test_our_own_mail_in_the_mailbox_is_not_taken_in(core: CoreContext, intake: Intake) -> None:
    # Staff mail sent to a desk address that is the complaint mailbox itself comes back here.
    reader = MailReader(intake, core, own_addresses=["Complaints@School.example.cn "])
    raw = complaint_mail(
        "complaints@school.example.cn", "🆕 TS-261123-00016 | 教学质量类", message_id="<own@x>"
    )
    assert await reader.take(prepare("1", raw, NOW), NOW) == "kept"
    assert (await tally(core))["inbound"] == 0


async def test_each_message_is_timed_by_its_own_intake_not_by_the_passs_start(
    tmp_path: Path, core: CoreContext, intake: Intake
) -> None:
    box = mailbox.Maildir(tmp_path / "mail", create=True)
    for i in range(3):
        deliver(box, complaint_mail(f"learner{i}@163.com", ZH, message_id=f"<c{i}@163.com>"))
    ticks = iter(NOW + timedelta(seconds=10 * n) for n in range(1, 100))
    source = MaildirSource(tmp_path / "mail", MailReader(intake, core, clock=lambda: next(ticks)))
    await source.fetch_once(NOW)
    async with core.sessions() as session:
        acks = list(await session.scalars(select(OutboxRow).where(OutboxRow.kind == "ack")))
    # A backlog pass takes a while: each acknowledgement (and the clocks it meets) dates from the
    # moment its own message went in, which is what its latency and deadlines count from.
    assert sorted(row.created_at for row in acks) == [NOW + timedelta(seconds=s) for s in (10, 20, 30)]


def test_batches_are_bounded_in_messages_and_in_bytes() -> None:
    mb = 1024 * 1024
    waiting = [
        (Path(name), size)
        for name, size in [("a", 10), ("b", 20 * mb), ("c", 20 * mb), ("d", 5), ("e", 90 * mb)]
    ]
    cut = batches(waiting, count=100, limit=32 * mb)
    assert [[p.name for p in group] for group in cut] == [
        ["a", "b"],
        ["c", "d"],
        ["e"],
    ]  # in order, none over
    assert [[p.name for p in group] for group in batches(waiting[:1] * 5, count=2, limit=32 * mb)] == [
        ["a", "a"],
        ["a", "a"],
        ["a"],
    ]


async def test_small_byte_batches_take_every_message(
    tmp_path: Path, core: CoreContext, intake: Intake
) -> None:
    box = mailbox.Maildir(tmp_path / "mail", create=True)
    for n in range(4):
        deliver(
            box,
            complaint_mail("li.ming@163.com", f"{ZH} 第{n}封", name="李明", message_id=f"<zh-{n}@163.com>"),
        )
    source = MaildirSource(tmp_path / "mail", MailReader(intake, core), batch_bytes=1)  # one mail a batch
    report = await source.fetch_once(NOW)
    assert (report.taken, report.left) == (4, 0)
    assert (await tally(core))["inbound"] == 4
    assert files(tmp_path / "mail", "new") == []
