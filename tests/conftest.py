"""Test fixtures: every database test runs on SQLite and, when a server answers, on PostgreSQL.

PostgreSQL is used when COMPLAINTBOT_TEST_POSTGRES_URL is set or a server answers on 127.0.0.1:5432;
the session gets a database of its own, migrated once, and each test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import channel_book
from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.record import RetryPolicy
from core.intake.intake import Intake
from core.rules.policy import parse_policy
from core.rules.templates import Templates
from core.storage.db import create_engine, session_factory, upgrade
from core.storage.models import Base
from core.storage.privacy import Vault, generate_key

DEPARTMENTS = {
    "service": "学员服务部",
    "teaching": "教学部",
    "finance": "财务部",
    "academic": "教务管理部",
    "compliance": "合规审核部",
}


def postgres_url() -> str | None:
    url = os.environ.get("COMPLAINTBOT_TEST_POSTGRES_URL")
    if url:
        return url
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    except OSError:
        return None


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True)
class Postgres:
    """The session's PostgreSQL database, or why there is none (its tests are then skipped)."""

    url: str | None
    reason: str = ""


NO_SERVER = "no PostgreSQL server (set COMPLAINTBOT_TEST_POSTGRES_URL or run one on 127.0.0.1:5432)"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[Postgres]:
    """A fresh, migrated PostgreSQL database for this test session. A server that is absent, or that
    answers but refuses us (a wrong password, no right to create a database), skips the PostgreSQL
    tests with the reason and leaves the SQLite ones running."""
    admin = postgres_url()
    if admin is None:
        yield Postgres(None, NO_SERVER)
        return
    name = f"complaintbot_test_{uuid.uuid4().hex[:10]}"
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)

    async def create() -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(admin), timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        engine = create_engine(url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    async def drop() -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(admin), timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        where = make_url(admin).render_as_string(hide_password=True)
        yield Postgres(None, f"PostgreSQL at {where} refused the tests: {type(exc).__name__}: {exc}")
        with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
            asyncio.run(drop())  # a database created before the migration failed
        return
    yield Postgres(url)
    asyncio.run(drop())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test (migrating per test would be slow)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"

    async def create() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine)
        await engine.dispose()  # closing the last connection checkpoints the WAL into the file

    asyncio.run(create())
    return path


@dataclass
class Database:
    backend: str
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture(params=["sqlite", "postgres"])
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, postgres_database: Postgres
) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "complaintbot.db"
        shutil.copy(sqlite_template, path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        if postgres_database.url is None:
            pytest.skip(postgres_database.reason)
        url = postgres_database.url
    engine = create_engine(url)
    if request.param == "postgres":
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield Database(request.param, url, engine, session_factory(engine))
    await engine.dispose()


@pytest.fixture
def privacy_key() -> str:
    return generate_key()


@pytest.fixture
def vault(privacy_key: str) -> Vault:
    return Vault([privacy_key])


@pytest.fixture
async def core(db: Database, vault: Vault) -> AsyncIterator[CoreContext]:
    context = CoreContext(
        sessions=db.sessions,
        policy=parse_policy(),
        vault=vault,
        templates=Templates(),
        channels=channel_book(),
        department_names=DEPARTMENTS,
    )
    yield context
    await context.close()


@pytest.fixture
def intake(core: CoreContext) -> Intake:
    return Intake(core)


@pytest.fixture
def learner_channel() -> FakeChannel:
    return FakeChannel("telegram")


@pytest.fixture
def staff_channel() -> FakeChannel:
    return FakeChannel("staff")


@pytest.fixture
def dispatcher(core: CoreContext, learner_channel: FakeChannel, staff_channel: FakeChannel) -> Dispatcher:
    senders = {"telegram": learner_channel, "staff": staff_channel}
    return Dispatcher(core.sessions, core.vault, senders, retry=RetryPolicy(), batch=50)


def at(text: str) -> datetime:
    """A Shanghai wall-clock time, as the policy speaks of them: at("2026-09-30 17:30")."""
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Asia/Shanghai"))


# The longest files first: with several test processes (README: `-n 2 --dist loadfile`), one builds the
# report's quarter of history while the others run the rest, instead of all waiting for it at the end.
SLOW_FILES = ("tests/core/test_reports.py", "tests/bot/test_cli.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in SLOW_FILES)  # stable: order kept
