"""Canned replies taken in and used by two instances at once (core.tickets.canned).

PostgreSQL lets two transactions race: the first stays open until the second has read the table or is
about to write it. SQLite has one writer at a time, so there the second simply follows the first."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

from core.context import CoreContext
from core.rules.templates import Templates
from core.storage.record_models import CannedReply
from core.tickets import canned
from tests.conftest import Database, at

NOW = at("2026-11-20 10:00")
FIELDS = canned.TicketFields("TS-261120-00001", "2026-11-23 11:00", "claim", "教学部", "teaching", "routed")


class SecondReached:
    """Set once, after `arm()`, a statement has read canned_replies or is about to write them."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.reached = asyncio.Event()
        self.armed = False
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(db.engine.sync_engine, "after_cursor_execute", self._after)

    def _touches(self, statement: str, reads: bool) -> bool:
        return (
            self.armed and "canned_replies" in statement and statement.lstrip().startswith("SELECT") == reads
        )

    def _before(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self._touches(statement, reads=False):  # a write may wait for our lock: do not wait for it
            self.reached.set()

    def _after(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self._touches(statement, reads=True):
            self.reached.set()

    async def wait(self) -> None:
        if self.db.backend == "postgres":
            await self.reached.wait()

    def close(self) -> None:
        event.remove(self.db.engine.sync_engine, "before_cursor_execute", self._before)
        event.remove(self.db.engine.sync_engine, "after_cursor_execute", self._after)


async def test_two_instances_starting_together_both_take_in_the_file(
    db: Database, core: CoreContext, tmp_path: Path
) -> None:
    (tmp_path / "canned.toml").write_text('[teaching.late]\nen = "We have {{ number }}."\n', encoding="utf-8")
    core.templates = Templates(tmp_path)

    async def start() -> None:  # what bot.service does at start
        async with core.sessions() as session, session.begin():
            await canned.sync_file(core, session, NOW)

    second = SecondReached(db)
    try:
        async with core.sessions() as session, session.begin():
            await canned.sync_file(core, session, NOW)
            await session.flush()
            second.armed = True
            other = asyncio.create_task(start())
            await second.wait()
        await other  # started as well, instead of failing on the unique constraint
    finally:
        second.close()
    async with core.sessions() as session:
        rows = [(r.department, r.key, r.text_en) for r in await session.scalars(select(CannedReply))]
    assert rows == [("teaching", "late", "We have {{ number }}.")]


async def test_replies_sent_at_once_are_both_counted(db: Database, core: CoreContext) -> None:
    async with core.sessions() as session, session.begin():
        await canned.store(core, session, "teaching", "late", "en", "We have {{ number }}.", "陈经理", NOW)

    async def send() -> str:
        async with core.sessions() as session, session.begin():
            return await canned.fill(core, session, "teaching", "late", "en", FIELDS, NOW)

    second = SecondReached(db)
    try:
        async with core.sessions() as session, session.begin():
            assert await canned.fill(core, session, "teaching", "late", "en", FIELDS, NOW) == (
                "We have TS-261120-00001."
            )
            second.armed = True
            other = asyncio.create_task(send())
            await second.wait()
        assert await other == "We have TS-261120-00001."
    finally:
        second.close()
    async with core.sessions() as session:
        assert await session.scalar(select(CannedReply.uses)) == 2  # on the card's ranking, both count
