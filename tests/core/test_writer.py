"""Group commit: units handed in together share one transaction; one that fails is rolled back alone; each
caller hears back only after the commit that holds its unit; intake under 50 concurrent callers (and
redeliveries racing each other) creates everything exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, insert, select
from sqlalchemy.orm import Session

import core.intake.opening as intake_module
from channels.fake import FakeChannel
from core.context import CoreContext
from core.intake.intake import Intake
from core.storage.db import create_engine
from core.storage.models import Message, Ticket, TicketCounter
from core.storage.writer import Writer
from tests.conftest import Database, at

NOW = at("2026-11-23 10:00")


def _counter(day: int) -> Any:
    def work(session: Session) -> int:
        session.execute(insert(TicketCounter).values(prefix="T", day=NOW.date().replace(day=day), value=day))
        return day

    return work


def _count_commits(writer: Writer) -> list[int]:
    """Commits on the connection the writer writes with (its own on SQLite, the pool's on PostgreSQL)."""
    commits: list[int] = []
    engine = writer._sync_engine or writer.engine.sync_engine

    @event.listens_for(engine, "commit")
    def _commit(connection: Connection) -> None:
        commits.append(1)

    return commits


async def _days(core: CoreContext) -> list[int]:
    async with core.sessions() as session:
        return sorted(c.day.day for c in await session.scalars(select(TicketCounter)))


async def test_units_handed_in_together_share_one_commit(core: CoreContext) -> None:
    commits = _count_commits(core.writer)
    results = await asyncio.gather(*(core.writer.run(_counter(day)) for day in range(1, 21)))
    assert results == list(range(1, 21))
    assert await _days(core) == list(range(1, 21))
    assert len(commits) == 1  # twenty units, one transaction


async def test_a_failing_unit_is_rolled_back_alone(core: CoreContext) -> None:
    def broken(session: Session) -> int:
        session.execute(insert(TicketCounter).values(prefix="T", day=NOW.date().replace(day=28), value=1))
        raise RuntimeError("a bug in one message's handling")

    outcomes = await asyncio.gather(
        core.writer.run(_counter(1)),
        core.writer.run(broken),
        core.writer.run(_counter(1)),  # the same key again: a conflict, in its own savepoint
        core.writer.run(_counter(2)),
        return_exceptions=True,
    )
    assert outcomes[0] == 1 and outcomes[3] == 2
    assert isinstance(outcomes[1], RuntimeError) and type(outcomes[2]).__name__ == "IntegrityError"
    assert await _days(core) == [1, 2]  # neither the bug's row nor the duplicate


async def test_a_caller_hears_back_only_once_its_unit_is_committed(core: CoreContext, db: Database) -> None:
    # Another engine, as another process would read: it sees only what is committed, and does not wait
    # for this process's writer.
    other = create_engine(db.url)
    try:
        for day in (5, 6, 7):
            await core.writer.run(_counter(day))
            async with other.connect() as connection:
                seen = await connection.scalar(select(func.count()).select_from(TicketCounter))
            assert seen == day - 4
    finally:
        await other.dispose()


async def test_fifty_concurrent_callers_and_racing_redeliveries_make_each_ticket_once(
    core: CoreContext, intake: Intake
) -> None:
    channel = FakeChannel("wechat")
    messages = [channel.message(f"openid-{i}", f"老师上课迟到 {i}", NOW) for i in range(150)]
    # Every message delivered twice at once (a webhook retried while the first delivery is in intake).
    deliveries = [m for m in messages for _ in range(2)]
    limit = asyncio.Semaphore(50)

    async def deliver(message: Any) -> Any:
        async with limit:
            return await intake.receive(message, NOW)

    results = await asyncio.gather(*(deliver(m) for m in deliveries))
    by_message = Counter(r.ticket_number for r in results)
    assert len(by_message) == 150 and set(by_message.values()) == {2}
    assert sum(r.created for r in results) == 150
    async with core.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 150
        inbound = select(func.count()).select_from(Message).where(Message.direction == "in")
        assert await session.scalar(inbound) == 150
        numbers = list(await session.scalars(select(Ticket.number)))
    assert len(set(numbers)) == 150


@pytest.mark.parametrize("units", [1, 3])
async def test_a_failed_commit_fails_every_caller_in_it(core: CoreContext, units: int) -> None:
    def poison(session: Session) -> int:
        # Deferred to the commit: the transaction as a whole cannot be committed.
        session.execute(insert(TicketCounter).values(prefix="T", day=NOW.date().replace(day=9), value=1))
        session.info["fail_commit"] = True
        return 9

    @event.listens_for(Session, "before_commit")
    def _fail(session: Session) -> None:
        if not session.in_nested_transaction() and session.info.pop("fail_commit", False):
            raise RuntimeError("disk full")

    try:
        work = [poison] + [_counter(day) for day in range(1, units)]
        outcomes = await asyncio.gather(*(core.writer.run(w) for w in work), return_exceptions=True)
    finally:
        event.remove(Session, "before_commit", _fail)
    assert all(isinstance(o, RuntimeError) and str(o) == "disk full" for o in outcomes)
    assert await _days(core) == []


async def test_a_failing_complaint_does_not_take_the_next_new_learners_with_it(
    core: CoreContext, intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite gives a rolled-back learner's id to the next one: the failed unit must leave nothing
    behind that the next unit's learner would clash with."""
    channel = FakeChannel("telegram")
    await intake.receive(channel.message("chat-0", "老师上课迟到 0", NOW), NOW)
    real, calls = intake_module.allocate_number, []

    def numbering(session: Session, prefix: str, day: Any) -> Any:
        calls.append(prefix)
        if len(calls) == 2:  # the second of the three below, after its new learner was inserted
            raise RuntimeError("a bug in one complaint's handling")
        return real(session, prefix, day)

    monkeypatch.setattr(intake_module, "allocate_number", numbering)
    results = await asyncio.gather(
        *(intake.receive(channel.message(f"chat-{i}", f"老师上课迟到 {i}", NOW), NOW) for i in (1, 2, 3)),
        return_exceptions=True,
    )
    assert isinstance(results[1], RuntimeError)
    assert [type(r).__name__ for r in (results[0], results[2])] == ["IntakeResult", "IntakeResult"]
    async with core.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 3
