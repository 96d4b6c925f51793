"""The retention duty: closed complaints past `days_after_close` anonymised once, nothing else touched."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from core.context import CoreContext
from core.intake.intake import Intake
from core.privacy.scrub import ERASED
from core.storage.db import create_engine, session_factory
from core.storage.delivery_models import OutboxRow
from core.storage.models import Event, Learner, Ticket
from core.tickets.queries import get_ticket
from scheduler import retention
from tests.conftest import Database, at
from tests.core.erasure_story import LI, WANG, Person, close, everything, statistics, tell

ZHAO = Person("tg-70003", "赵磊", "13711112222", "zhao.lei@example.com", "教室漏水一直没人修", "HSK五级")
NOW = at("2026-06-01 03:00")  # 730 days after 2024-06-01 03:00


async def anonymized(core: CoreContext, number: str) -> bool:
    async with core.sessions() as session:
        ticket = await get_ticket(session, number)
        return ticket.anonymized_at is not None and ticket.summary == ERASED


async def learner_erased(core: CoreContext, learner_id: int) -> bool:
    async with core.sessions() as session:
        learner = await session.get_one(Learner, learner_id)
        return learner.erased_at is not None and learner.phone_index is None


async def three_learners(core: CoreContext, intake: Intake) -> dict[str, list[str]]:
    """李明: one complaint long closed, one closed last month. 王芳: both long closed.
    赵磊: one closed a day short of retention, one still open from long ago."""
    li = await tell(core, intake, LI, at("2024-03-04 10:00"))
    wang = await tell(core, intake, WANG, at("2024-03-05 10:00"))
    zhao = await tell(core, intake, ZHAO, at("2024-03-06 10:00"))
    await close(core, li.numbers[0], at("2024-04-01 10:00"))
    await close(core, li.numbers[1], at("2026-05-01 10:00"))
    await close(core, wang.numbers[0], at("2024-04-02 10:00"), satisfaction=5)
    await close(core, wang.numbers[1], at("2024-05-31 10:00"), satisfaction=1)
    await close(core, zhao.numbers[0], NOW - timedelta(days=729))
    return {"li": li.numbers, "wang": wang.numbers, "zhao": zhao.numbers}


async def test_only_tickets_closed_past_retention_are_anonymised_and_audited(
    core: CoreContext, intake: Intake
) -> None:
    numbers = await three_learners(core, intake)
    before = await statistics(core)

    report = await retention.run(core, NOW, dry_run=False)

    due = [numbers["li"][0], numbers["wang"][0], numbers["wang"][1]]
    assert sorted(line.split(":")[0] for line in report.actions if line.startswith("TS-")) == sorted(due)
    for number in due:
        assert await anonymized(core, number)
    for number in (numbers["li"][1], *numbers["zhao"]):  # recent, a day short, still open
        assert not await anonymized(core, number)
    async with core.sessions() as session:
        li_learner = (await get_ticket(session, numbers["li"][0])).learner_id
        wang_learner = (await get_ticket(session, numbers["wang"][0])).learner_id
        events = list(await session.scalars(select(Event).where(Event.action == "anonymized")))
        untouched = await get_ticket(session, numbers["li"][1])
        assert LI.name in core.vault.reveal(untouched.summary)  # the recent complaint keeps its words
    # 李明 still has a complaint within retention: it needs his contact data. 王芳 has none left.
    assert not await learner_erased(core, li_learner)
    assert await learner_erased(core, wang_learner)
    assert sorted(e.ticket_id for e in events) == sorted([t for t in await ticket_ids(core, due)])
    assert {(e.actor, e.detail.split(":")[0] if e.detail else None) for e in events} == {
        ("complaintbot", "retention")
    }
    assert await statistics(core) == before
    # Their old /status answers, outside any ticket, are past retention as well.
    async with core.sessions() as session:
        keys = [r.key for r in await session.scalars(select(OutboxRow).where(OutboxRow.ticket_id.is_(None)))]
    assert not any(LI.chat in key or WANG.chat in key for key in keys)

    # Once his last complaint passes retention too, 李明 is erased entirely.
    later = at("2028-05-02 03:00")
    await retention.run(core, later, dry_run=False)
    assert await anonymized(core, numbers["li"][1]) and await learner_erased(core, li_learner)
    dump = await everything(core)
    assert [needle for needle in (*LI.needles(core), *WANG.needles(core)) if needle in dump] == []
    assert ZHAO.name in dump  # an open ticket is never due


async def ticket_ids(core: CoreContext, numbers: list[str]) -> list[int]:
    async with core.sessions() as session:
        return [(await get_ticket(session, n)).id for n in numbers]


async def test_a_dry_run_reports_and_writes_nothing(core: CoreContext, intake: Intake) -> None:
    numbers = await three_learners(core, intake)
    snapshot = await everything(core)

    report = await retention.run(core, NOW, dry_run=True)

    assert report.dry_run and report.count == 4  # three tickets and the /status answers
    assert f"{numbers['wang'][1]}: anonymized (closed 2024-05-31); the learner's contact data erased" in (
        report.actions
    )
    assert await everything(core) == snapshot
    real = await retention.run(core, NOW, dry_run=False)
    assert real.actions == report.actions


@pytest.mark.parametrize("batch", [500, 1])
async def test_two_instances_at_once_anonymise_each_ticket_once(
    db: Database, core: CoreContext, intake: Intake, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    # One ticket per page: the instances take turns within one learner's tickets, the hard case
    # (on PostgreSQL they can deadlock over the learner's rows; the loser's page runs again).
    monkeypatch.setattr(retention, "BATCH", batch)
    wang = await tell(core, intake, WANG, at("2024-03-05 10:00"))
    li = await tell(core, intake, LI, at("2024-03-04 10:00"))
    # Closed in turns, so that consecutive pages hold tickets of different learners.
    for n, number in enumerate([wang.numbers[0], li.numbers[0], wang.numbers[1], li.numbers[1]]):
        await close(core, number, at("2024-04-01 10:00") + timedelta(hours=n))
    # The other instance: its own engine and connections, as another process would have.
    engine = create_engine(db.url)
    other = CoreContext(
        sessions=session_factory(engine),
        policy=core.policy,
        vault=core.vault,
        templates=core.templates,
        channels=core.channels,
        department_names=core.department_names,
    )
    try:
        reports = await asyncio.gather(retention.run(core, NOW, False), retention.run(other, NOW, False))
    finally:
        await other.close()
        await engine.dispose()

    done = [line.split(":")[0] for r in reports for line in r.actions if line.startswith("TS-")]
    assert sorted(done) == sorted([*wang.numbers, *li.numbers])  # each once, between the two
    async with core.sessions() as session:
        events = Counter(
            e.ticket_id for e in await session.scalars(select(Event).where(Event.action == "anonymized"))
        )
        tickets = list(await session.scalars(select(Ticket)))
    assert sorted(events.values()) == [1, 1, 1, 1] and all(t.anonymized_at == NOW for t in tickets)
    erased = sum(line.endswith("contact data erased") for r in reports for line in r.actions)
    assert erased >= 2  # each learner's data is said to be erased on each ticket of the run that did it
    dump = await everything(core)
    assert [needle for needle in (*LI.needles(core), *WANG.needles(core)) if needle in dump] == []


class Deadlock(Exception):
    pgcode = "40P01"


async def test_a_page_that_loses_a_deadlock_runs_again_and_reports_once(
    core: CoreContext, intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    wang = await tell(core, intake, WANG, at("2024-03-05 10:00"))
    for number in wang.numbers:
        await close(core, number, at("2024-04-01 10:00"))
    real, failures = retention._handle, [Deadlock()]

    async def loses_once(*args: Any, **kwargs: Any) -> None:
        await real(*args, **kwargs)  # everything written, then PostgreSQL picks this one to abort
        if failures:
            raise DBAPIError("UPDATE learners ...", None, failures.pop())

    monkeypatch.setattr(retention, "_handle", loses_once)
    report = await retention.run(core, NOW, dry_run=False)

    assert [line.split(":")[0] for line in report.actions if line.startswith("TS-")] == wang.numbers
    async with core.sessions() as session:
        events = list(await session.scalars(select(Event).where(Event.action == "anonymized")))
    assert len(events) == 2
    assert [await anonymized(core, n) for n in wang.numbers] == [True, True]
