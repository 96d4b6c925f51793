"""The outbox sent continuously: a commit wakes the lanes at once (in this process, and through LISTEN/NOTIFY
from another instance on PostgreSQL), a wake-up during a pass is not lost, a retry comes at its time.

Each Delivery here has a safety-net timer of an hour, so nothing can arrive by the timer: what arrives was
woken. The waits below are guards against a hang (generous, never what decides the outcome)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import channel_book
from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import TemporarySendError
from core.delivery.record import RetryPolicy
from core.intake.intake import Intake
from core.messages import OutboundMessage, SendResult
from core.rules.policy import parse_policy
from core.rules.templates import Templates
from core.storage.db import create_engine, outbox_signal, session_factory
from scheduler.delivery import Delivery
from tests.conftest import Database

TEACHING = "老师上课总是迟到，讲课照本宣科，教学质量很差"
HOUR = 3600.0
GUARD = 60.0  # seconds: only a hang gets this far


def utc_now() -> datetime:
    return datetime.now(UTC)


class Inbox(FakeChannel):
    """A fake channel whose sends can be awaited: `await inbox.count(n)`."""

    def __init__(self, name: str = "telegram") -> None:
        super().__init__(name)
        self._grew = asyncio.Event()

    async def send(self, message: OutboundMessage) -> SendResult:
        result = await super().send(message)
        self._grew.set()
        return result

    async def count(self, n: int) -> list[OutboundMessage]:
        async with asyncio.timeout(GUARD):
            while len(self.sent) < n:
                self._grew.clear()
                await self._grew.wait()
        return self.sent


@asynccontextmanager
async def delivering(dispatcher: Dispatcher, listen_dsn: str | None = None) -> AsyncIterator[Delivery]:
    delivery = Delivery(
        dispatcher, outbox_signal(dispatcher.sessions), safety_net=HOUR, listen_dsn=listen_dsn
    )
    stop = asyncio.Event()
    task = asyncio.create_task(delivery.run(stop))
    try:
        async with asyncio.timeout(GUARD):
            await delivery.ready.wait()  # first passes done: from now on only a wake-up starts one
        yield delivery
    finally:
        stop.set()
        await task


async def test_a_commit_wakes_the_lanes_at_once(core: CoreContext, intake: Intake) -> None:
    inbox, staff = Inbox(), Inbox("staff")
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": inbox, "staff": staff})
    async with delivering(dispatcher):
        now = utc_now()
        result = await intake.receive(inbox.message("chat-1", TEACHING, now), now)
        ack, ask = await inbox.count(2)
        assert (ack.kind, ask.kind) == ("ack", "ask") and result.ticket_number in ack.text
        assert [m.kind for m in await staff.count(1)] == ["card"]


class Gate:
    """Holds the first send until released: a pass that is still running when the next commit comes."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, message: OutboundMessage) -> SendResult:
        if not self.release.is_set():
            self.entered.set()
            await self.release.wait()
        return await self.inbox.send(message)


async def test_a_wake_up_during_a_pass_is_not_lost(core: CoreContext, intake: Intake) -> None:
    inbox = Inbox()
    gate = Gate(inbox)
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": gate})
    async with delivering(dispatcher):
        now = utc_now()
        await intake.receive(inbox.message("chat-1", TEACHING, now), now)
        async with asyncio.timeout(GUARD):
            await gate.entered.wait()  # the pass is under way, holding chat-1's acknowledgement
        await intake.receive(inbox.message("chat-2", TEACHING, now), now)  # its wake-up comes now
        gate.release.set()
        sent = await inbox.count(4)
    assert sorted((m.recipient, m.kind) for m in sent) == [
        ("chat-1", "ack"),
        ("chat-1", "ask"),
        ("chat-2", "ack"),
        ("chat-2", "ask"),
    ]


async def test_a_retry_is_sent_at_its_time_without_a_wake_up(core: CoreContext, intake: Intake) -> None:
    inbox = Inbox()
    inbox.fail_next = [TemporarySendError("502 Bad Gateway")]
    retry = RetryPolicy(base_delay=timedelta(milliseconds=20))
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": inbox}, retry=retry)
    async with delivering(dispatcher):
        now = utc_now()
        await intake.receive(inbox.message("chat-1", TEACHING, now), now)
        assert [m.kind for m in await inbox.count(2)] == ["ack", "ask"]


async def test_another_instances_commit_wakes_this_one_through_postgres(
    db: Database, core: CoreContext, intake: Intake
) -> None:
    if db.backend != "postgres":
        pytest.skip("instances share a database, and hear each other, on PostgreSQL")
    # The other instance: its own engine, sessions and signal; only this one delivers.
    engine = create_engine(db.url)
    here = CoreContext(
        sessions=session_factory(engine),
        policy=parse_policy(),
        vault=core.vault,
        templates=Templates(),
        channels=channel_book(),
    )
    inbox = Inbox()
    dispatcher = Dispatcher(here.sessions, here.vault, {"telegram": inbox})
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        async with delivering(dispatcher, listen_dsn=dsn):
            # The commit below fires the other instance's signal, not this one's: only the
            # notification PostgreSQL delivers at its commit can wake this instance.
            now = utc_now()
            await intake.receive(inbox.message("chat-1", TEACHING, now), now)
            assert [m.kind for m in await inbox.count(2)] == ["ack", "ask"]
    finally:
        await here.close()
        await engine.dispose()


async def test_two_instances_share_the_lanes_without_sending_a_message_twice(
    db: Database, core: CoreContext, intake: Intake
) -> None:
    if db.backend != "postgres":
        pytest.skip("several instances share a database on PostgreSQL")
    engines = [create_engine(db.url) for _ in range(2)]
    dsn = engines[0].url.set(drivername="postgresql").render_as_string(hide_password=False)
    inbox = Inbox()
    dispatchers = [
        Dispatcher(session_factory(engine), core.vault, {"telegram": inbox}, batch=7) for engine in engines
    ]
    try:
        # Both hear the commits of the intake below (a third instance's) through PostgreSQL.
        async with delivering(dispatchers[0], dsn), delivering(dispatchers[1], dsn):
            now = utc_now()
            await asyncio.gather(
                *(intake.receive(inbox.message(f"chat-{i}", TEACHING, now), now) for i in range(100))
            )
            sent = await inbox.count(200)
    finally:
        for engine in engines:
            await engine.dispose()
    keys = [m.key for m in sent]
    assert len(keys) == len(set(keys)) == 200
    for i in range(100):  # each learner: the number first, then the question
        assert [m.kind for m in sent if m.recipient == f"chat-{i}"] == ["ack", "ask"]


async def test_a_lane_whose_oldest_due_message_waits_over_a_minute_is_reported(
    core: CoreContext, intake: Intake, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox()
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": inbox})
    delivery = Delivery(dispatcher, outbox_signal(core.sessions))
    then = utc_now()
    await intake.receive(inbox.message("chat-1", TEACHING, then), then)
    assert await delivery.report_late(then + timedelta(seconds=59)) == []
    with caplog.at_level("WARNING", logger="scheduler.delivery"):
        late = {state.lane: state for state in await delivery.report_late(then + timedelta(seconds=90))}
    assert late["telegram"].oldest_due == timedelta(seconds=90)
    assert set(late) == {"telegram"}  # the staff card has no sender here: shown at start, not "late"
    assert "outbox lane telegram is late: its oldest due message has waited 90 s (2 pending)" in caplog.text


class SlowToSleep(Dispatcher):
    """Its lane is slow to fall asleep: a commit lands while it works out when to wake next."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.armed = False
        self.deciding = asyncio.Event()
        self.go_on = asyncio.Event()

    async def next_due(self, lane: str) -> datetime | None:
        due = await super().next_due(lane)  # nothing: it will sleep until woken (or for an hour)
        if self.armed:
            self.armed = False
            self.deciding.set()
            await self.go_on.wait()
        return due


async def test_a_wake_up_while_the_lane_decides_to_sleep_is_not_lost(
    core: CoreContext, intake: Intake
) -> None:
    inbox = Inbox()
    dispatcher = SlowToSleep(core.sessions, core.vault, {"telegram": inbox})
    async with delivering(dispatcher) as delivery:
        dispatcher.armed = True
        delivery.wake()  # a pass that finds nothing, then stops to decide how long to sleep
        async with asyncio.timeout(GUARD):
            await dispatcher.deciding.wait()
        now = utc_now()
        await intake.receive(inbox.message("chat-1", TEACHING, now), now)  # its wake-up comes now
        dispatcher.go_on.set()
        assert [m.kind for m in await inbox.count(2)] == ["ack", "ask"]
