"""The voicemail spool: files in, tickets out, each file once, nothing lost (real SQLite and PostgreSQL).

Time is passed in (`scan_once(now)`); only the watcher tests wait, on a condition, for `run()`.
Run as `python -m tests.channels.voicemail.test_spool URL KEY SPOOL` it is one competing process.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.app import channel_book
from channels.voicemail.parse import MAX_BYTES, parse_transcript
from channels.voicemail.spool import SpoolInbox, SpoolReport
from core.context import CoreContext
from core.delivery.outbox import payload_text
from core.intake.intake import Intake
from core.messages import InboundMessage
from core.rules.policy import parse_policy
from core.rules.templates import Templates
from core.storage.db import create_engine, session_factory
from core.storage.delivery_models import OutboxRow, Unparsed
from core.storage.models import Message, Ticket
from core.storage.privacy import Vault
from tests.channels.voicemail import recorded

NOW = datetime(2026, 9, 30, 9, 58, tzinfo=ZoneInfo("Asia/Shanghai"))  # the recorded call's
REPO = Path(__file__).resolve().parents[3]


def transcript(**changes: Any) -> dict[str, Any]:
    """The recorded transcript with the required fields only, changed (None: the field left out)."""
    return recorded.transcript("asterisk_minimal", **changes)


def drop(spool: Path, name: str, content: dict[str, Any] | bytes) -> None:
    """As a producer does: write into tmp/, then rename into new/."""
    body = content if isinstance(content, bytes) else json.dumps(content, ensure_ascii=False).encode()
    (spool / "tmp" / name).write_bytes(body)
    os.rename(spool / "tmp" / name, spool / "new" / name)


def leave_claim(spool: Path, name: str, content: dict[str, Any], claimed_at: datetime) -> Path:
    """What an instance that crashed holding a claim leaves behind."""
    path = spool / "tmp" / f"claimed.0dead0beef00.{int(claimed_at.timestamp() * 1000)}.{name}"
    path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    return path


def names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


async def tickets(core: CoreContext) -> list[Ticket]:
    async with core.sessions() as session:
        return list(await session.scalars(select(Ticket).order_by(Ticket.id)))


async def inbound_texts(core: CoreContext) -> list[str]:
    async with core.sessions() as session:
        rows = await session.scalars(select(Message).where(Message.direction == "in").order_by(Message.id))
        return [core.vault.decrypt(row.text_enc) for row in rows]


async def unparsed(core: CoreContext) -> list[Unparsed]:
    async with core.sessions() as session:
        return list(await session.scalars(select(Unparsed).order_by(Unparsed.id)))


async def staff_notice(core: CoreContext, unparsed_id: int) -> OutboxRow | None:
    async with core.sessions() as session:
        return await session.scalar(select(OutboxRow).where(OutboxRow.key == f"unparsed:{unparsed_id}"))


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def inbox(spool: Path, intake: Intake, core: CoreContext) -> SpoolInbox:
    box = SpoolInbox(spool, intake, core)
    box.ensure_dirs()
    return box


async def test_a_transcript_file_opens_a_ticket_and_moves_to_cur(
    inbox: SpoolInbox, spool: Path, core: CoreContext
) -> None:
    drop(spool, "1790733480.M1P2.pbx", recorded.body("asterisk_minimal"))  # the job's bytes, as written
    assert await inbox.scan_once(NOW) == SpoolReport(taken=1)
    [ticket] = await tickets(core)
    assert ticket.channel == "voicemail"
    assert await inbound_texts(core) == ["老师上课总是迟到，课时费也没有退，请给我回个电话"]
    assert names(spool / "cur") == ["1790733480.M1P2.pbx"]
    assert names(spool / "new") == names(spool / "tmp") == names(spool / "failed") == []


async def test_an_empty_or_failed_transcript_still_opens_a_ticket(
    inbox: SpoolInbox, spool: Path, core: CoreContext
) -> None:
    drop(spool, "silent", recorded.body("asterisk_failed"))
    assert await inbox.scan_once(NOW) == SpoolReport(taken=1)
    assert len(await tickets(core)) == 1
    assert names(spool / "cur") == ["silent"]


async def test_the_same_voicemail_in_two_files_is_one_ticket(
    inbox: SpoolInbox, spool: Path, core: CoreContext
) -> None:
    drop(spool, "a", transcript())
    drop(spool, "b", transcript())
    assert await inbox.scan_once(NOW) == SpoolReport(taken=1, duplicates=1)
    assert len(await tickets(core)) == 1
    assert names(spool / "cur") == ["a", "b"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"schema_version": 1, "source": ', "not JSON"),
        (transcript(caller=None), "missing field caller"),
        (transcript(duration_s="31"), "duration_s must be int or float, not str"),
        (b"[1, 2]", "not a JSON object but list"),
        (b'{"transcript": "' + b"x" * MAX_BYTES + b'"}', f"over the limit of {MAX_BYTES}"),
    ],
    ids=["bad-json", "missing-field", "wrong-type", "not-an-object", "oversize"],
)
async def test_an_unusable_file_goes_to_failed_with_its_reason_and_staff_are_told(
    inbox: SpoolInbox, spool: Path, core: CoreContext, content: dict[str, Any] | bytes, reason: str
) -> None:
    drop(spool, "bad.pbx", content)
    drop(spool, "good.pbx", transcript())  # one bad file does not hold up the others
    assert await inbox.scan_once(NOW) == SpoolReport(taken=1, failed=1)
    assert names(spool / "failed") == ["bad.pbx", "bad.pbx.reason"]
    assert reason in (spool / "failed" / "bad.pbx.reason").read_text(encoding="utf-8")
    assert names(spool / "cur") == ["good.pbx"]
    [kept] = await unparsed(core)
    assert kept.channel == "voicemail" and kept.external_id.startswith("spool:bad.pbx:")
    assert reason in kept.reason
    assert len(core.vault.decrypt(kept.raw_enc)) <= 64 * 1024  # of a huge file, only a prefix is read
    notice = await staff_notice(core, kept.id)
    assert notice is not None and notice.channel == "staff"
    assert reason in payload_text(core.vault, notice.payload)
    assert len(await tickets(core)) == 1


async def test_the_same_id_from_another_caller_is_refused_to_failed(
    inbox: SpoolInbox, spool: Path, core: CoreContext
) -> None:
    drop(spool, "a", transcript())
    drop(spool, "b", transcript(caller="+8613900139000", transcript="另一位来电者"))
    assert await inbox.scan_once(NOW) == SpoolReport(taken=1, failed=1)
    assert names(spool / "cur") == ["a"]
    assert names(spool / "failed") == ["b", "b.reason"]
    assert "already used by another sender" in (spool / "failed" / "b.reason").read_text(encoding="utf-8")
    [kept] = await unparsed(core)
    assert "另一位来电者" in core.vault.decrypt(kept.raw_enc)
    assert await staff_notice(core, kept.id) is not None
    assert len(await tickets(core)) == 1


class HasUrl(Protocol):  # the `db` fixture (tests.conftest.Database)
    url: str


def thirty(spool: Path) -> None:
    """Thirty voicemails from thirty callers: thirty tickets."""
    for i in range(30):
        drop(spool, f"{1700000000 + i}.M{i}.pbx", transcript(external_id=f"c{i}", caller=f"+86139{i:08d}"))


async def test_two_instances_sharing_the_spool_take_each_file_once(
    inbox: SpoolInbox, spool: Path, intake: Intake, core: CoreContext
) -> None:
    thirty(spool)
    rival = SpoolInbox(spool, intake, core)
    reports = await asyncio.gather(inbox.scan_once(NOW), rival.scan_once(NOW))
    assert sum(r.taken for r in reports) == 30
    assert sum(r.duplicates + r.failed + r.left for r in reports) == 0
    assert len(await tickets(core)) == 30
    assert len(names(spool / "cur")) == 30
    assert names(spool / "new") == names(spool / "tmp") == []


async def test_two_processes_sharing_the_spool_take_each_file_once(
    inbox: SpoolInbox, spool: Path, core: CoreContext, db: HasUrl, privacy_key: str
) -> None:
    thirty(spool)
    command = [sys.executable, "-m", "tests.channels.voicemail.test_spool", db.url, privacy_key, str(spool)]
    workers = [
        await asyncio.create_subprocess_exec(*command, cwd=REPO, stdout=asyncio.subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [await asyncio.wait_for(worker.communicate(), timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    reports = [SpoolReport(**json.loads(out.decode().splitlines()[-1])) for out, _ in outputs]
    assert sum(r.taken for r in reports) == 30
    assert sum(r.failed + r.left for r in reports) == 0
    assert len(await tickets(core)) == 30
    assert len(names(spool / "cur")) == 30
    assert names(spool / "new") == names(spool / "tmp") == []


async def test_a_claim_left_by_a_crash_is_taken_over_once_stale(
    inbox: SpoolInbox, spool: Path, core: CoreContext
) -> None:
    leave_claim(spool, "old", transcript(), claimed_at=NOW - timedelta(minutes=10))
    fresh = leave_claim(spool, "fresh", transcript(external_id="2", caller="+8613900139000"), claimed_at=NOW)
    (spool / "tmp" / "being-written").write_text("{", encoding="utf-8")  # a producer's, not ours
    (spool / "new" / ".hidden").write_text("{", encoding="utf-8")
    assert await inbox.scan_once(NOW) == SpoolReport(taken=1)
    assert names(spool / "cur") == ["old"]
    assert fresh.exists()  # its owner may still be working on it
    assert names(spool / "new") == [".hidden"]

    assert await inbox.scan_once(NOW + timedelta(minutes=6)) == SpoolReport(taken=1)
    assert names(spool / "cur") == ["fresh", "old"]
    assert names(spool / "tmp") == ["being-written"]
    assert len(await tickets(core)) == 2


async def test_a_crash_after_the_commit_before_the_move_creates_nothing_twice(
    inbox: SpoolInbox, spool: Path, intake: Intake, core: CoreContext
) -> None:
    await intake.receive(parse_transcript(json.dumps(transcript()).encode()), NOW)
    leave_claim(spool, "done", transcript(), claimed_at=NOW - timedelta(minutes=10))
    assert await inbox.scan_once(NOW) == SpoolReport(duplicates=1)
    assert len(await tickets(core)) == 1
    assert names(spool / "cur") == ["done"]
    assert names(spool / "tmp") == []


async def test_a_database_error_leaves_the_file_for_a_retry_not_in_failed(
    inbox: SpoolInbox, spool: Path, intake: Intake, core: CoreContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    receive = intake.receive
    down = [True]
    calls: list[str] = []

    async def flaky(message: InboundMessage, now: datetime) -> Any:
        calls.append(message.external_id)
        if down[0]:
            raise ConnectionRefusedError("database unreachable")
        return await receive(message, now)

    monkeypatch.setattr(intake, "receive", flaky)
    for i in range(5):
        drop(spool, f"m{i}", transcript(external_id=f"call-{i}", caller=f"+86139{i:08d}"))
    # Three failures in a row end the pass: the other files would only fail the same way.
    assert await inbox.scan_once(NOW) == SpoolReport(left=5)
    assert len(calls) == 3
    assert names(spool / "failed") == names(spool / "cur") == []
    assert await unparsed(core) == []

    down[0] = False
    assert await inbox.scan_once(NOW + timedelta(seconds=30)) == SpoolReport(taken=5)
    assert names(spool / "cur") == [f"m{i}" for i in range(5)]
    assert names(spool / "tmp") == names(spool / "new") == []
    assert len(await tickets(core)) == 5


async def eventually(check: Callable[[], bool], seconds: float = 5) -> None:
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 - a file landing in cur/ is no event we could await
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
async def test_run_takes_the_backlog_then_each_new_file_within_seconds(
    spool: Path, intake: Intake, core: CoreContext, polling: bool
) -> None:
    # No periodic rescan during the test: only the watcher can find the second file.
    inbox = SpoolInbox(spool, intake, core, polling=polling, rescan=3600)
    inbox.ensure_dirs()
    drop(spool, "backlog", transcript())
    stop = asyncio.Event()
    running = asyncio.create_task(inbox.run(stop))
    try:
        await eventually(lambda: (spool / "cur" / "backlog").exists())
        drop(spool, "later", transcript(external_id="2", caller="+8613900139000"))
        await eventually(lambda: (spool / "cur" / "later").exists())
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=5)
    assert len(await tickets(core)) == 2


async def _worker(url: str, key: str, directory: str) -> None:
    engine = create_engine(url)
    core = CoreContext(
        sessions=session_factory(engine),
        policy=parse_policy(),
        vault=Vault([key]),
        templates=Templates(),
        channels=channel_book(),
    )
    report = await SpoolInbox(Path(directory), Intake(core), core).scan_once(NOW)
    await core.close()
    await engine.dispose()
    print(json.dumps(vars(report)))


if __name__ == "__main__":
    asyncio.run(_worker(*sys.argv[1:4]))
