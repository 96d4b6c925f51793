"""The write path of the hot units of work (intake, the passive reply's claim): group commit.

Callers hand in a synchronous unit of work (`work(session)`); one flusher takes whatever has queued,
up to `max_batch`, and runs it in one transaction with a savepoint per unit, so that one failing unit
(a conflict on a unique key, a bug) is rolled back alone while the others commit together. Each caller
is answered only after the commit that holds its unit: what a caller then tells its platform
("received") is true. Many callers, one commit: on SQLite one write lock and one WAL append instead of
one per complaint; on PostgreSQL one WAL flush.

On PostgreSQL the batch runs through `AsyncSession.run_sync` (each statement is a network round trip
anyway). On SQLite the async driver costs several thread hand-offs per statement, so the batch runs in
one dedicated thread on a synchronous connection to the same file, one hand-off per batch. While it
runs, the writer holds the async engine's only pooled connection (see `core.storage.db.create_engine`), so no
other writer of this process races it for the lock; other processes queue through SQLite's busy timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from core.storage.db import SQLITE_PRAGMAS

T = TypeVar("T")
Work = Callable[[Session], Any]
# Per unit: (True, its result) or (False, the exception it raised).
Outcome = tuple[bool, Any]
MAX_BATCH = 32  # units per transaction: enough to share the commit, short enough to share the lock


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


def _run_units(session: Session, works: Sequence[Work]) -> list[Outcome]:
    """Each unit in a savepoint of the caller's transaction (a lone unit needs none: it is the batch)."""
    if len(works) == 1:
        return [(True, works[0](session))]
    outcomes: list[Outcome] = []
    for work in works:
        try:
            with session.begin_nested():
                result = work(session)
        except Exception as exc:  # rolled back to its savepoint; handed to its own caller
            # Objects it made persistent without a flush (`core.tickets.learners`) would stay in the identity
            # map although their rows are gone, and clash with the next unit's rows of the same id.
            session.expunge_all()
            outcomes.append((False, exc))
        else:
            outcomes.append((True, result))
    return outcomes


@dataclass
class _Unit:
    work: Work
    answer: asyncio.Future[Any]


class Writer:
    def __init__(
        self, engine: AsyncEngine, *, info: Mapping[str, Any] | None = None, max_batch: int = MAX_BATCH
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        session_info = dict(info or {})  # e.g. the outbox signal (`core.storage.wakeup`)
        self._async_sessions = async_sessionmaker(engine, expire_on_commit=False, info=session_info)
        self._sync_engine: Engine | None = None
        self._sync_sessions: sessionmaker[Session] | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._queue: deque[_Unit] = deque()
        self._flusher: asyncio.Task[None] | None = None
        database = make_url(str(engine.url)).database
        if engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
            self._sync_engine = _sync_sqlite_engine(engine)
            self._sync_sessions = sessionmaker(self._sync_engine, expire_on_commit=False, info=session_info)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="complaintbot-sqlite-writer")

    async def run(self, work: Callable[[Session], T]) -> T:
        """`work(session)` committed (with whatever else was queued) if it returns; rolled back alone if
        it raises, and the exception raised here. A caller that gives up (cancelled) does not take its
        unit back: it may still be committed, as a request whose answer was lost."""
        unit = _Unit(work, asyncio.get_running_loop().create_future())
        # Retrieved even when its caller gave up, so a late failure is not reported as never seen.
        unit.answer.add_done_callback(lambda answer: answer.cancelled() or answer.exception())
        self._queue.append(unit)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="complaintbot-writer")
        result: T = await asyncio.shield(unit.answer)
        return result

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # callers woken by the same event get into the first batch
        while self._queue:
            units = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))]
            try:
                outcomes = await self._transaction([u.work for u in units])
                for unit, (ok, value) in zip(units, outcomes, strict=True):
                    if unit.answer.done():
                        continue
                    if ok:
                        unit.answer.set_result(value)
                    else:
                        unit.answer.set_exception(value)
            except Exception as exc:  # the transaction itself failed (commit, connection): nothing is kept
                for unit in units:
                    if not unit.answer.done():
                        unit.answer.set_exception(exc)
            except BaseException:
                for unit in units:
                    unit.answer.cancel()
                raise

    async def _transaction(self, works: list[Work]) -> list[Outcome]:
        if self._thread is None:
            async with self._async_sessions() as session, session.begin():
                return await session.run_sync(_run_units, works)
        async with self.engine.connect():
            future = asyncio.get_running_loop().run_in_executor(self._thread, self._in_thread, works)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                # Shutting down mid-batch: the thread's transaction goes on; keep the in-process lock
                # until it ends, or another writer would wait on SQLite's lock.
                while not future.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.wait({future})
                raise

    def _in_thread(self, works: list[Work]) -> list[Outcome]:
        assert self._sync_sessions is not None
        with self._sync_sessions() as session, session.begin():
            return _run_units(session, works)

    async def close(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher})
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        if self._sync_engine is not None:
            self._sync_engine.dispose()
            self._sync_engine = None
