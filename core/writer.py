"""Running a synchronous unit of work in one transaction, as fast as each backend allows.

The hot path (intake) is written as plain synchronous SQLAlchemy code over a `Session`. On
PostgreSQL it runs through `AsyncSession.run_sync`: each statement is a network round trip anyway.
On SQLite the async driver costs several thread hand-offs per statement, which dominated intake; so
the whole transaction runs in one dedicated thread on a synchronous connection to the same file,
one hand-off per transaction. While it runs, the writer holds the async engine's only pooled
connection (see `core.db.create_engine`), so no other writer of this process races it for the lock;
other processes still queue through SQLite's busy timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from core.db import SQLITE_PRAGMAS

T = TypeVar("T")


def _sync_sqlite_engine(async_engine: AsyncEngine) -> Engine:
    url = async_engine.url.set(drivername="sqlite+pysqlite")
    # The connection is made and used only in the writer's own thread.
    engine = create_engine(url, pool_size=1, max_overflow=0)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN IMMEDIATE ourselves, as on the async engine
        for pragma in SQLITE_PRAGMAS:
            dbapi_connection.execute(pragma)

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Writer:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._async_sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._sync_engine: Engine | None = None
        self._sync_sessions: sessionmaker[Session] | None = None
        self._thread: ThreadPoolExecutor | None = None
        database = make_url(str(engine.url)).database
        if engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
            self._sync_engine = _sync_sqlite_engine(engine)
            self._sync_sessions = sessionmaker(self._sync_engine, expire_on_commit=False)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="complaintbot-sqlite-writer")

    async def run(self, work: Callable[[Session], T]) -> T:
        """`work(session)` in one transaction: committed if it returns, rolled back if it raises."""
        if self._thread is None:
            async with self._async_sessions() as session, session.begin():
                return await session.run_sync(work)
        async with self.engine.connect():
            future = asyncio.get_running_loop().run_in_executor(self._thread, self._in_transaction, work)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                # The caller gave up (e.g. a webhook's deadline) but the thread's transaction goes on:
                # keep the in-process lock until it ends, or another writer would wait on SQLite's lock.
                while not future.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.wait({future})
                raise

    def _in_transaction(self, work: Callable[[Session], T]) -> T:
        assert self._sync_sessions is not None
        with self._sync_sessions() as session, session.begin():
            return work(session)

    async def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        if self._sync_engine is not None:
            self._sync_engine.dispose()
            self._sync_engine = None
