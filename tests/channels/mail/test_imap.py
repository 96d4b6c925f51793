"""The IMAP reader against a real Dovecot: every message one ticket, nothing read before it is committed.

Each test gets its own Dovecot (own config, loopback port) and runs on SQLite and PostgreSQL. Passes
are driven with `fetch_once(now)`; only the tests of `run()` (reconnecting, IDLE, two instances)
wait, on a condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from channels.mail.imap import ImapSource
from channels.mail.imap_connection import ImapAccount, ImapConnection, ImapError
from channels.mail.parse import parse_mail
from channels.mail.prepared import Mail, MailReport
from channels.mail.reader import MailReader, Outcome
from core.context import CoreContext
from core.intake.intake import Intake
from core.rules.templates import Templates
from core.storage.db import create_engine, session_factory
from core.storage.delivery_models import Unparsed
from core.storage.state import get_state
from tests.channels.mail.dovecot import MISSING, Dovecot, complaint_mail, tally
from tests.conftest import DEPARTMENTS, Database

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
ZH = "王老师上课总是迟到，已经三次了，希望调换老师。"
EN = "The IELTS speaking teacher cancelled four classes this month without notice. I want a refund."
OUT_OF_OFFICE = complaint_mail(
    "helpdesk@company.example.com",
    "I am out of the office until Monday.",
    subject="Automatic reply: 投诉",
    message_id="<ooo-1@company.example.com>",
    headers={"Auto-Submitted": "auto-replied", "In-Reply-To": "<nobody@school.example.cn>"},
)


def complaints(count: int, start: int = 0) -> list[bytes]:
    """`count` complaints from as many learners, alternately Chinese and English."""
    return [
        complaint_mail(f"learner{i}@163.com", ZH if i % 2 else EN, message_id=f"<c{i}@mail.example>")
        for i in range(start, start + count)
    ]


def source(dovecot: Dovecot, reader: MailReader, **options: object) -> ImapSource:
    options.setdefault("timeout", 5.0)
    return ImapSource(dovecot.account(**options.pop("account", {})), reader, **options)  # type: ignore[arg-type]


async def until(condition: Callable[[], Awaitable[bool]], seconds: float) -> float:
    """Wait until `condition` holds; how long it took. Fails the test after `seconds`."""
    began = time.monotonic()
    while not await condition():
        assert time.monotonic() - began < seconds, f"not within {seconds}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def test_a_mixed_mailbox_gives_exactly_the_expected_tickets(
    dovecot: Dovecot, core: CoreContext, intake: Intake
) -> None:
    dovecot.append(
        [
            complaint_mail("li.ming@163.com", ZH, name="李明", message_id="<zh-1@163.com>"),
            complaint_mail("emily@gmail.com", EN, subject="Refund", message_id="<en-1@gmail.com>"),
            complaint_mail("no.id@qq.com", "课程退款一直没有到账，已经两个月了。"),  # no Message-ID: a hash
            b"this is not an e-mail at all\r\n",  # no sender: kept for staff
        ]
    )
    reader = source(dovecot, MailReader(intake, core))
    report = await reader.fetch_once(NOW)
    await reader.close()

    counts = await tally(core)
    assert dovecot.search("UNSEEN") == []
    assert (report.taken, report.duplicates, report.left) == (3, 0, 0)
    assert report.kept == 1
    assert counts == {"tickets": 3, "inbound": 3, "acks": 3, "unparsed": 1}

    again = source(dovecot, MailReader(intake, core))
    assert (await again.fetch_once(NOW)).done == []  # all were marked: nothing to read
    await again.close()


@pytest.mark.skipif(
    parse_mail(OUT_OF_OFFICE, NOW).auto_reply is None, reason="parse_mail does not flag auto-replies yet"
)
async def test_auto_replies_are_recorded_without_an_acknowledgement(
    dovecot: Dovecot, core: CoreContext, intake: Intake
) -> None:
    dovecot.append([complaint_mail("li.ming@163.com", ZH, message_id="<zh-1@163.com>"), OUT_OF_OFFICE])
    reader = source(dovecot, MailReader(intake, core))
    await reader.fetch_once(NOW)
    dovecot.append(
        [
            complaint_mail(
                "li.ming@163.com",
                "我正在休假，将于下周一回复。",
                message_id="<ooo-2@163.com>",
                headers={"Auto-Submitted": "auto-replied", "In-Reply-To": "<zh-1@163.com>"},
            )
        ]
    )
    report = await reader.fetch_once(NOW)
    await reader.close()
    assert (report.taken, report.kept) == (1, 0)  # part of the ticket it answers, answered nothing
    # The robot's reply that belongs to no ticket is kept for staff, not made a ticket.
    assert await tally(core) == {"tickets": 1, "inbound": 2, "acks": 1, "unparsed": 1}


class CrashBeforeSeen(ImapSource):
    """The bot dies after intake committed and before `\\Seen` reached the server."""

    async def mark_done(self, uids: list[int]) -> None:
        raise SystemExit("killed between commit and \\Seen")


async def test_a_crash_between_commit_and_seen_repeats_nothing(
    dovecot: Dovecot, core: CoreContext, intake: Intake
) -> None:
    dovecot.append(complaints(4))
    crashing = CrashBeforeSeen(dovecot.account(), MailReader(intake, core), timeout=5)
    with pytest.raises(SystemExit):
        await crashing.fetch_once(NOW)
    await crashing.close()
    assert len(dovecot.search("UNSEEN")) == 4  # committed, but not marked: read again next time
    assert (await tally(core))["tickets"] == 4

    restarted = source(dovecot, MailReader(intake, core))
    report = await restarted.fetch_once(NOW)
    await restarted.close()
    assert (report.taken, report.duplicates) == (0, 4)
    assert dovecot.search("UNSEEN") == []
    assert await tally(core) == {"tickets": 4, "inbound": 4, "acks": 4, "unparsed": 0}


class FailingOn(MailReader):
    """Intake fails (the database is down) for one message."""

    def __init__(self, intake: Intake, core: CoreContext, bad: str) -> None:
        super().__init__(intake, core)
        self.bad = bad

    async def take(
        self, mail: Mail, now: datetime, recent: int | None = None, staff: frozenset[str] | None = None
    ) -> Outcome:
        if mail.message is not None and mail.message.external_id == self.bad:
            raise ConnectionError("database down")
        return await super().take(mail, now, recent, staff)


async def test_a_message_stays_unseen_until_its_intake_commits(
    dovecot: Dovecot, core: CoreContext, intake: Intake
) -> None:
    dovecot.append(complaints(3))
    failing = source(dovecot, FailingOn(intake, core, "<c1@mail.example>"))
    report = await failing.fetch_once(NOW)
    await failing.close()
    assert (report.taken, report.left) == (2, 1)
    assert dovecot.search("UNSEEN") == [2]  # the one whose intake failed, and only it

    healed = source(dovecot, MailReader(intake, core))
    assert (await healed.fetch_once(NOW)).taken == 1
    await healed.close()
    assert dovecot.search("UNSEEN") == []
    assert (await tally(core))["tickets"] == 3


async def test_a_message_read_by_a_person_before_the_bot_is_still_taken(
    dovecot: Dovecot, core: CoreContext, intake: Intake
) -> None:
    dovecot.append(complaints(1))
    reader = source(dovecot, MailReader(intake, core))
    await reader.fetch_once(NOW)
    dovecot.append(complaints(1, start=1), flags=r"(\Seen)")  # opened in a mail client first
    report = await reader.fetch_once(NOW)
    await reader.close()
    assert report.taken == 1
    assert (await tally(core))["tickets"] == 2


async def test_a_new_uidvalidity_loses_nothing_and_repeats_nothing(
    dovecot: Dovecot, core: CoreContext, intake: Intake
) -> None:
    dovecot.create("Complaints")
    dovecot.append(complaints(3), folder="Complaints")
    reader = source(dovecot, MailReader(intake, core), account={"folder": "Complaints"})
    assert (await reader.fetch_once(NOW)).taken == 3
    before = dovecot.uidvalidity("Complaints")

    # The mailbox is recreated (a migration, a restore): new UIDVALIDITY, the old mail back unseen,
    # two new messages, one of them already read by a person.
    dovecot.delete("Complaints")
    dovecot.create("Complaints")
    dovecot.append(complaints(4), folder="Complaints")
    dovecot.append(complaints(1, start=4), folder="Complaints", flags=r"(\Seen)")
    assert dovecot.uidvalidity("Complaints") != before

    report = await reader.fetch_once(NOW)
    await reader.close()
    assert (report.taken, report.duplicates) == (2, 3)
    assert dovecot.search("UNSEEN", folder="Complaints") == []
    assert await tally(core) == {"tickets": 5, "inbound": 5, "acks": 5, "unparsed": 0}
    state = await get_state(core.sessions, reader.state_key)
    assert state == f"{dovecot.uidvalidity('Complaints')}:5"


async def test_taken_messages_move_to_the_done_folder(
    dovecot: Dovecot, core: CoreContext, intake: Intake
) -> None:
    dovecot.append(complaints(3))
    reader = source(dovecot, MailReader(intake, core), account={"done_folder": "Done"})
    assert (await reader.fetch_once(NOW)).taken == 3
    await reader.close()
    assert dovecot.search("ALL") == []
    assert len(dovecot.search("ALL", folder="Done")) == 3


async def test_the_server_killed_mid_batch_loses_nothing_and_repeats_nothing(
    dovecot: Dovecot, core: CoreContext, intake: Intake
) -> None:
    dovecot.append(complaints(30))
    killed = asyncio.Event()

    class KillingServer(MailReader):
        taken = 0

        async def take(
            self, mail: Mail, now: datetime, recent: int | None = None, staff: frozenset[str] | None = None
        ) -> Outcome:
            outcome = await super().take(mail, now, recent, staff)
            self.taken += 1
            if self.taken == 12:  # in the third batch of five, committed, before its \Seen
                dovecot.kill()
                killed.set()
            return outcome

    reader = source(dovecot, KillingServer(intake, core), batch=5, idle=False, poll_seconds=0.2)
    stop = asyncio.Event()
    running = asyncio.create_task(reader.run(stop))
    try:
        await asyncio.wait_for(killed.wait(), 20)
        await asyncio.to_thread(dovecot.start)

        async def all_seen() -> bool:
            return not await asyncio.to_thread(dovecot.search, "UNSEEN")

        await until(all_seen, 20)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert await tally(core) == {"tickets": 30, "inbound": 30, "acks": 30, "unparsed": 0}


async def test_a_hung_server_times_out_and_the_next_pass_reconnects(
    dovecot: Dovecot, core: CoreContext, intake: Intake
) -> None:
    dovecot.append(complaints(1))
    reader = source(dovecot, MailReader(intake, core), timeout=0.5)
    assert (await reader.fetch_once(NOW)).taken == 1
    assert dovecot.process is not None
    os.killpg(dovecot.process.pid, signal.SIGSTOP)  # the server hangs: connected, silent
    try:
        began = time.monotonic()
        with pytest.raises(ImapError, match="timed out"):
            await reader.fetch_once(NOW)
        assert time.monotonic() - began < 3
    finally:
        os.killpg(dovecot.process.pid, signal.SIGCONT)
    dovecot.append(complaints(1, start=1))
    assert (await reader.fetch_once(NOW)).taken == 1  # on a new connection: the hung one is dropped
    await reader.close()


async def test_a_server_that_never_greets_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = ImapConnection(ImapAccount("127.0.0.1", port, "u", "p", tls=False), timeout=0.3)
    try:
        with pytest.raises((ImapError, TimeoutError)):
            await connection.open()
    finally:
        await connection.close()
        server.close()


async def test_idle_wakes_the_reader_within_a_second_or_two(
    dovecot: Dovecot, core: CoreContext, intake: Intake
) -> None:
    dovecot.append(complaints(1))
    reader = source(dovecot, MailReader(intake, core), poll_seconds=30)  # polling would take 30 s
    stop = asyncio.Event()
    running = asyncio.create_task(reader.run(stop))

    async def tickets(n: int) -> bool:
        return (await tally(core))["tickets"] == n

    try:
        await until(lambda: tickets(1), 10)
        await asyncio.sleep(0.3)  # into IDLE
        await asyncio.to_thread(dovecot.append, complaints(1, start=1))
        assert await until(lambda: tickets(2), 5) < 2.5
        assert reader.connection is not None and reader.connection.has("IDLE")
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)


async def test_two_instances_reading_one_mailbox_create_each_ticket_once(
    dovecot: Dovecot, db: Database, core: CoreContext, intake: Intake
) -> None:
    if db.backend != "postgres":
        pytest.skip("several instances share PostgreSQL")
    engine = create_engine(db.url)
    other = CoreContext(
        sessions=session_factory(engine),
        policy=core.policy,
        vault=core.vault,
        templates=Templates(),
        channels=core.channels,
        department_names=DEPARTMENTS,
    )
    try:
        dovecot.append(complaints(20))
        first = source(dovecot, MailReader(intake, core, workers=4), holder="one")
        second = source(dovecot, MailReader(Intake(other), other, workers=4), holder="two")
        # Both passes see every message unseen and take them all at once: dedupe keeps one of each.
        reports = await asyncio.gather(first.fetch_once(NOW), second.fetch_once(NOW))
        assert sum(r.taken for r in reports) == 20
        assert await tally(core) == {"tickets": 20, "inbound": 20, "acks": 20, "unparsed": 0}
        await asyncio.gather(first.close(), second.close())

        # Running: one of them holds the lease and reads, the other waits.
        dovecot.append(complaints(10, start=20))
        stop = asyncio.Event()
        runs = [asyncio.create_task(s.run(stop)) for s in (first, second)]
        try:

            async def all_seen() -> bool:
                return not await asyncio.to_thread(dovecot.search, "UNSEEN")

            await until(all_seen, 15)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*runs), 10)
        assert await tally(core) == {"tickets": 30, "inbound": 30, "acks": 30, "unparsed": 0}
    finally:
        await other.close()
        await engine.dispose()


async def test_tls(core: CoreContext, intake: Intake) -> None:
    if MISSING:
        pytest.skip(MISSING)
    server = Dovecot(tls=True)
    try:
        server.start()
        server.append(complaints(2))
        reader = ImapSource(server.account(), MailReader(intake, core), timeout=5)
        assert (await reader.fetch_once(NOW)).taken == 2
        await reader.close()
        untrusted = ImapSource(server.account(ssl_context=None), MailReader(intake, core), timeout=5)
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):  # a self-signed cert is refused
            await untrusted.fetch_once(NOW)
        await untrusted.close()
    finally:
        server.close()


async def test_a_pass_that_loses_its_lease_stops_between_batches(
    dovecot: Dovecot, core: CoreContext, intake: Intake
) -> None:
    dovecot.append(complaints(5))
    reader = source(dovecot, MailReader(intake, core), batch=2)
    renewals: list[bool] = [False]  # the lease is lost after the first batch (a long backlog pass)

    async def renew() -> bool:
        return renewals.pop(0) if renewals else False

    reader._renew = renew
    report = await reader.fetch_once(NOW)
    await reader.close()
    assert (report.taken, report.left) == (2, 3)  # what another instance now reads was left alone
    assert len(dovecot.search("UNSEEN")) == 3


class ArrivesDuringThePass(MailReader):
    """A learner's mail lands in the mailbox while the reader is busy with the first one."""

    def __init__(self, dovecot: Dovecot, intake: Intake, core: CoreContext) -> None:
        super().__init__(intake, core)
        self.dovecot, self.passes = dovecot, 0

    async def take_all(self, mails: Sequence[Mail], now: datetime) -> MailReport:
        self.passes += 1
        if self.passes == 1:
            await asyncio.to_thread(self.dovecot.append, complaints(1, start=1))
        return await super().take_all(mails, now)


async def test_mail_that_arrives_during_a_pass_is_taken_without_waiting_for_the_next_push(
    dovecot: Dovecot, core: CoreContext, intake: Intake
) -> None:
    dovecot.append(complaints(1))
    # Without a push or a poll for an hour, only looking again at once can find the second mail.
    hour = timedelta(hours=3)
    reader = source(dovecot, ArrivesDuringThePass(dovecot, intake, core), poll_seconds=3600, lease_ttl=hour)
    stop = asyncio.Event()
    running = asyncio.create_task(reader.run(stop))

    async def tickets(n: int) -> bool:
        return (await tally(core))["tickets"] == n

    try:
        await until(lambda: tickets(2), 60)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert dovecot.search("UNSEEN") == []


class StopsDuringThePass(MailReader):
    """The service is asked to stop while the reader works through a backlog."""

    def __init__(self, intake: Intake, core: CoreContext, stop: asyncio.Event) -> None:
        super().__init__(intake, core)
        self.stop = stop

    async def take_all(self, mails: Sequence[Mail], now: datetime) -> MailReport:
        self.stop.set()
        return await super().take_all(mails, now)


async def test_a_stop_during_a_backlog_ends_the_pass_at_the_batch_under_way(
    dovecot: Dovecot, core: CoreContext, intake: Intake
) -> None:
    dovecot.append(complaints(30))
    stop = asyncio.Event()
    reader = source(dovecot, StopsDuringThePass(intake, core, stop), batch=5)
    await asyncio.wait_for(reader.run(stop), 60)
    # The batch under way was finished and marked; the rest waits, unread, for the next start.
    assert (await tally(core))["tickets"] == 5
    assert len(dovecot.search("UNSEEN")) == 25


async def test_an_oversize_mail_is_kept_for_staff_from_its_header_without_being_downloaded(
    dovecot: Dovecot, core: CoreContext, intake: Intake
) -> None:
    huge = complaint_mail("big@163.com", "附件太大 " + "证据" * 40_000, message_id="<huge@163.com>")
    dovecot.append([*complaints(2), huge, *complaints(2, start=2)])
    # Sizes first: a mail over the limit is never fetched whole; a batch is bounded in bytes too.
    reader = source(dovecot, MailReader(intake, core), max_bytes=len(huge) - 1, batch_bytes=3_000)
    report = await reader.fetch_once(NOW)
    await reader.close()
    assert (report.taken, report.kept, report.left) == (4, 1, 0)
    assert dovecot.search("UNSEEN") == []  # done with, every one
    async with core.sessions() as session:
        (kept,) = (await session.scalars(select(Unparsed))).all()
    assert "over the limit" in kept.reason and "kept from its header" in kept.reason
    raw = core.vault.decrypt(kept.raw_enc)
    assert "<huge@163.com>" in raw and "证据证据" not in raw  # the header, not the body
    assert (await tally(core))["tickets"] == 4
