"""What the benchmarks share: the complaint corpus, throwaway databases and their migration.

The databases are SQLite files, or PostgreSQL databases made for the run on the server of
COMPLAINTBOT_TEST_POSTGRES_URL (else postgresql://postgres@127.0.0.1:5432/postgres) and dropped afterwards;
when no PostgreSQL server answers, a line says so and the caller skips that backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from core.storage.db import create_engine, upgrade

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "core" / "data" / "complaints.jsonl"
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def complaint_texts() -> list[str]:
    """The texts of tests/core/data/complaints.jsonl, in order (Chinese and English)."""
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [str(json.loads(line)["text"]) for line in lines if line.strip()]


async def migrate(url: str) -> None:
    """The schema, as the service migrates it at start (core.storage.db.upgrade)."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def throwaway_databases(
    backend: str, *names: str, prefix: str = "complaintbot_bench", directory: Path | None = None
) -> AsyncIterator[list[str]]:
    """One fresh, migrated database per name, their URLs in that order; none (after a printed line) when
    PostgreSQL does not answer.

    SQLite (`backend == "sqlite"`): the file `<name>.db` in `directory`, else in a temporary directory
    removed afterwards. PostgreSQL: the database `<prefix>_<pid>_<name>`, made here and dropped afterwards
    WITH (FORCE); its URL has no driver (`postgresql://`), as an operator writes it."""
    if backend == "sqlite":
        place: contextlib.AbstractContextManager[str] = (
            tempfile.TemporaryDirectory(prefix="complaintbot-bench-")
            if directory is None
            else contextlib.nullcontext(str(directory))
        )
        with place as where:
            urls = [f"sqlite+aiosqlite:///{Path(where) / f'{name}.db'}" for name in names]
            for url in urls:
                await migrate(url)
            yield urls
        return
    admin = os.environ.get("COMPLAINTBOT_TEST_POSTGRES_URL", POSTGRES_ADMIN).replace("+asyncpg", "")
    try:
        conn = await asyncpg.connect(admin, timeout=3)
    except (OSError, asyncpg.PostgresError) as error:  # a timeout is an OSError
        print(f"postgres: skipped, no server ({error}): set COMPLAINTBOT_TEST_POSTGRES_URL or start one")
        yield []
        return
    databases = [f"{prefix}_{os.getpid()}_{re.sub(r'[^a-z0-9_]', '_', name.lower())}" for name in names]
    try:
        urls = []
        for database in databases:
            await conn.execute(f'CREATE DATABASE "{database}"')
            urls.append(make_url(admin).set(database=database).render_as_string(hide_password=False))
            await migrate(urls[-1])
        yield urls
    finally:
        for database in databases:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.close()


@asynccontextmanager
async def throwaway_database(
    backend: str, name: str, *, prefix: str = "complaintbot_bench", directory: Path | None = None
) -> AsyncIterator[str | None]:
    """`throwaway_databases` for one: its URL, or None when PostgreSQL does not answer."""
    async with throwaway_databases(backend, name, prefix=prefix, directory=directory) as urls:
        yield urls[0] if urls else None
