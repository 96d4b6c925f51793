"""Searching many tickets (core.tickets.search): every match counted, and a cut-short scan said."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert

from core.context import CoreContext
from core.storage.models import Learner, Ticket
from core.tickets.search import SCAN, parse_query, search_listed, search_tickets
from tests.conftest import at

NOW = at("2026-11-20 10:00")
OLD = "课程安排很乱，老师经常换"


async def add_tickets(core: CoreContext, count: int, now: datetime, department: str = "teaching") -> None:
    """`count` open tickets of one learner, TS-200101-00000 the oldest, all saying `OLD`."""
    summary = core.vault.encrypt(OLD)
    async with core.sessions() as session, session.begin():
        learner = Learner(locale="zh", created_at=now)
        session.add(learner)
        await session.flush()
        await session.execute(
            insert(Ticket),
            [
                {
                    "number": f"TS-200101-{i:05d}",
                    "status": "routed",
                    "category": "teaching",
                    "severity": "normal",
                    "department": department,
                    "channel": "telegram",
                    "locale": "zh",
                    "learner_id": learner.id,
                    "first_contact_department": department,
                    "summary": summary,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(count)
            ],
        )


async def test_a_number_search_counts_every_match_and_pages_in_the_database(core: CoreContext) -> None:
    await add_tickets(core, 620, NOW)
    async with core.sessions() as session, session.begin():
        found = await search_listed(
            core, session, parse_query("200101"), "open", NOW, "operator:t", limit=50, offset=600
        )
    assert found.total == 620 and found.note == ""  # not the first 500 only
    assert [t.number for t in found.tickets] == [f"TS-200101-{i:05d}" for i in range(19, -1, -1)]


async def test_a_word_search_says_when_older_tickets_were_not_read(core: CoreContext) -> None:
    await add_tickets(core, SCAN + 1, NOW)
    async with core.sessions() as session, session.begin():
        found = await search_listed(
            core, session, parse_query("课程安排"), "all", NOW, "operator:t", limit=10
        )
        assert (found.total, len(found.tickets)) == (SCAN, 10)
        assert found.note == f"(searched the newest {SCAN} tickets)"
        assert found.tickets[0].number == f"TS-200101-{SCAN:05d}"  # newest first
        # Fewer than the scan reads: every one was searched, and nothing needs saying.
        found = await search_tickets(core, session, parse_query("课程安排"), department="finance")
        assert (found.total, found.note) == (0, "")
