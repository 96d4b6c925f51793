"""Cost of one sweep against what is stored: the same 1,000 due clocks among 100,000 and 1,000,000 tickets.

    .venv/bin/python benchmarks/sweep.py [--sizes 100000,1000000] [--backends sqlite,postgres] [--due 1000]
                                         [--runs 3] [--quick] [--cache]

Database, per backend and size, migrated and then filled with bulk inserts (sqlite3 executemany, asyncpg
COPY; real rows of the schema): N tickets over four departments and 100 days, 30 % of them closed, 5,000
learners, heads for three departments (two on Telegram, one reached in the department's chat; the fourth
department has none). Each ticket has a met `entry` clock (next_check_at NULL) and an `investigate` clock:
met on closed tickets, due in the next 30 days on open ones, and on `--due` tickets spread over the
departments past its deadline with the reminder sent, so the sweep sends each exactly one level-1 alert.
PostgreSQL: throwaway databases on COMPLAINTBOT_TEST_POSTGRES_URL or 127.0.0.1:5432 (VACUUM ANALYZE after
the load, as autovacuum would). `--cache` keeps the built databases (/tmp, complaintbot_sweep_* on PG).

Each run first puts the due clocks back (and empties events and outbox), warms up with a dry run, then
times: the bare indexed query that finds the due clocks (median of 5), a dry run (reads and plans, writes
nothing), one `escalation.run` (escalations/s = its actions / seconds) and the digest duty, which is due
once a day and reads the open tickets (here 70 % of those stored). Medians over --runs. Targets reported,
never fatal: at least 2,000 escalations/s; the sweep among the largest size within 1.5x of the smallest.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
from alembic.script import ScriptDirectory
from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import channel_book
from core.context import CoreContext
from core.rules.policy import parse_policy
from core.rules.templates import Templates
from core.storage.db import MIGRATIONS, create_engine, session_factory, upgrade
from core.storage.models import UTCDateTime
from core.storage.numbers import TicketNumber
from core.storage.privacy import Vault, generate_key
from scheduler import digest, escalation

T = TypeVar("T")
Row = tuple[Any, ...]
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=TZ)  # a Monday morning, after the digest's 08:30
CATEGORIES = (("service", "service"), ("teaching", "teaching"), ("fees", "finance"), ("other", "academic"))
HEADS = (("周主任", "service", None), ("张主任", "teaching", "70001"), ("王主任", "finance", "70002"))
OPEN = ("routed", "investigating", "planning", "executing", "reporting")
LEARNERS, CHUNK, BUILD = 5_000, 50_000, 1  # BUILD: bump when the generated rows change (cache key)
MIN_PER_S, MAX_GROWTH, PASS = 2000.0, 1.5, ("MISS", "PASS")
COLUMNS = {
    "staff": "id name department role telegram_id active created_at",
    "learners": "id locale created_at name_enc",
    "learner_identities": "id learner_id channel address_enc address_index created_at",
    "tickets": "id number status category severity department channel locale learner_id identity_id"
    " first_contact_department summary data_leak created_at updated_at closed_at",
    "clocks": "id ticket_id stage started_at due_at met_at paused escalation_level reminded_at next_check_at",
}
BARE = "SELECT id, ticket_id FROM clocks WHERE next_check_at <= :now ORDER BY next_check_at, id"
RESET = (
    "UPDATE clocks SET escalation_level = 0, next_check_at = due_at WHERE met_at IS NULL AND due_at < :now"
)


def at_now(sql: str) -> TextClause:
    """`sql` with its :now bound as the models bind times (naive UTC text on SQLite)."""
    return text(sql).bindparams(bindparam("now", type_=UTCDateTime()))


@cache
def sqlite_time(at: datetime | None) -> str | None:  # as SQLAlchemy stores a UTCDateTime on SQLite
    return None if at is None else at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def same(at: datetime | None) -> datetime | None:
    return at


def ticket_rows(
    n: int, due: int, lo: int, hi: int, t: Callable[[datetime | None], Any]
) -> tuple[list[Row], list[Row]]:
    """Tickets lo..hi-1 and their clocks: (tickets, clocks)."""
    every, tickets, clocks = n // due, list[Row](), list[Row]()
    hour, day = timedelta(hours=1), timedelta(days=1)
    for i in range(lo, hi):
        is_due, closed = i % every == 0 and i // every < due, i % 10 < 3 and i % every != 0
        category, department = CATEGORIES[(i + i // every) % 4]  # the due ones over every department
        opened = NOW.date() - timedelta(days=1 + i // 10_000)
        created = datetime(opened.year, opened.month, opened.day, 9, tzinfo=TZ) + timedelta(minutes=i % 500)
        number = str(TicketNumber("TS", opened, i % 10_000 + 1))
        status = "closed" if closed else "investigating" if is_due else OPEN[i % 5]
        person, done = i % LEARNERS + 1, created + 3 * day if closed else None
        facts = (category, "major" if i % 50 == 0 else "general", department, "telegram", "zh")
        summary = f"{department} complaint {i}"
        tickets.append((i + 1, number, status, *facts, person, person, "service", summary, False))
        tickets[-1] += (t(created), t(done or created), t(done))
        entry = (t(created), t(created + hour), t(created), False, 0, None, None)  # met at once
        clocks.append((2 * i + 1, i + 1, "entry", *entry))
        if is_due:  # past its deadline (by 1 to 600 minutes), reminded at 75 %: level 1 now
            start, deadline = NOW - 5 * day, NOW - timedelta(minutes=1 + i // every % 600)
            times = (t(start), t(deadline), None, False, 0, t(start + (deadline - start) * 0.75), t(deadline))
        elif closed:
            times = (t(created), t(created + 3 * day), t(created + 2 * day), False, 0, None, None)
        else:  # due within 30 days, the reminder sent: next looked at on its deadline
            deadline = NOW + timedelta(minutes=60 + i * 7919 % 43_200)
            times = (t(NOW - day), t(deadline), None, False, 0, t(NOW - hour), t(deadline))
        clocks.append((2 * i + 2, i + 1, "investigate", *times))
    return tickets, clocks


def batches(n: int, due: int, secret: str, t: Callable[[datetime | None], Any]) -> Iterator[tuple[str, Any]]:
    """(table, rows) in insertion order, tickets and clocks in chunks."""
    since = t(NOW - timedelta(days=200))
    yield "staff", [(k + 1, name, dept, "head", tg, True, since) for k, (name, dept, tg) in enumerate(HEADS)]
    people = range(1, LEARNERS + 1)
    yield "learners", [(k, "zh", since, secret) for k in people]
    yield "learner_identities", [(k, k, "telegram", secret, f"bench:{k}", since) for k in people]
    for lo in range(0, n, CHUNK):
        tickets, clocks = ticket_rows(n, due, lo, min(n, lo + CHUNK), t)
        yield "tickets", tickets
        yield "clocks", clocks


async def migrate(url: str) -> None:
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()


async def build(backend: str, url: str, n: int, due: int) -> None:
    await migrate(url)
    secret = Vault([generate_key()]).encrypt("bench")
    if backend == "sqlite":
        conn = sqlite3.connect(make_url(url).database or "")
        conn.execute("PRAGMA synchronous=OFF")
        with conn:
            for table, rows in batches(n, due, secret, sqlite_time):
                names = COLUMNS[table].split()
                marks = ", ".join("?" * len(names))
                conn.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", rows)
        conn.close()
        return
    pg = await asyncpg.connect(dsn(url))
    try:
        async with pg.transaction():
            for table, rows in batches(n, due, secret, same):
                await pg.copy_records_to_table(table, records=rows, columns=COLUMNS[table].split())
            for table in COLUMNS:
                last = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                await pg.execute(last)
        await pg.execute(f"VACUUM ANALYZE {', '.join(COLUMNS)}")
    finally:
        await pg.close()


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def database(backend: str, n: int, due: int, cache: bool) -> AsyncIterator[tuple[str, float | None]]:
    """A built database: (url, build seconds, None when it came from the cache); ("", None): no server."""
    key = f"{ScriptDirectory(str(MIGRATIONS)).get_current_head()}_{n}_{due}_v{BUILD}"
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="complaintbot-sweep-") as tmp:
            kept = Path(tempfile.gettempdir()) / "complaintbot-sweep" / f"{key}.db"
            path = kept if cache else Path(tmp) / "bench.db"
            url = f"sqlite+aiosqlite:///{path}"
            if path.exists():
                yield url, None
                return
            began = time.perf_counter()
            try:
                await build(backend, url, n, due)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            yield url, time.perf_counter() - began
        return
    admin = os.environ.get("COMPLAINTBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        conn = await asyncpg.connect(dsn(admin), timeout=2)
    except OSError as error:
        print(f"postgres: skipped, no server ({error}): set COMPLAINTBOT_TEST_POSTGRES_URL or start one")
        yield "", None
        return
    name = f"complaintbot_sweep_{key}" if cache else f"complaintbot_sweep_{os.getpid()}_{n}"
    url = make_url(admin).set(drivername="postgresql+asyncpg", database=name).render_as_string(False)
    built: float | None = None
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
            began = time.perf_counter()
            try:
                await build(backend, url, n, due)
            except BaseException:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                raise
            built = time.perf_counter() - began
        yield url, built
    finally:
        if not cache:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@dataclass
class Result:
    backend: str
    n: int
    built: float | None
    seconds: dict[str, list[float]] = field(default_factory=dict)  # what -> one figure per run
    actions: int = 0

    def ms(self, what: str) -> float:
        return statistics.median(self.seconds[what]) * 1000

    @property
    def per_s(self) -> float:
        return self.actions / statistics.median(self.seconds["sweep"])


async def timed(result: Result, what: str, work: Awaitable[T]) -> T:
    began = time.perf_counter()
    value = await work
    result.seconds.setdefault(what, []).append(time.perf_counter() - began)
    return value


async def reset(engine: AsyncEngine, backend: str) -> None:
    """The due clocks back as the build left them; no events, no outbox rows."""
    async with engine.begin() as conn:
        await conn.execute(at_now(RESET), {"now": NOW})
        for table in ("outbox", "events"):
            await conn.execute(text(f"DELETE FROM {table}"))
    if backend == "postgres":
        async with engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.execute(text("VACUUM ANALYZE clocks, events, outbox"))


async def measure(result: Result, url: str, due: int, runs: int) -> None:
    engine = create_engine(url)
    sessions, vault = session_factory(engine), Vault([generate_key()])
    core = CoreContext(
        sessions=sessions, policy=parse_policy(), vault=vault, templates=Templates(), channels=channel_book()
    )
    explain = "EXPLAIN QUERY PLAN " if result.backend == "sqlite" else "EXPLAIN "
    try:
        async with engine.connect() as conn:
            plan = (await conn.execute(at_now(explain + BARE), {"now": NOW})).all()
        print(f"  {explain.strip()} (bare query): " + " | ".join(str(row[-1]) for row in plan))
        for _ in range(runs):
            await reset(engine, result.backend)
            await escalation.run(core, NOW, True)  # warm-up: statements compiled, pages cached
            await timed(result, "dry run", escalation.run(core, NOW, True))
            for _ in range(5):
                async with engine.connect() as conn:
                    found = await timed(result, "bare", conn.execute(at_now(BARE), {"now": NOW}))
                    rows = len(found.all())
            result.seconds["bare"][-5:] = [statistics.median(result.seconds["bare"][-5:])]
            report = await timed(result, "sweep", escalation.run(core, NOW, False))
            await timed(result, "digest", digest.run(core, NOW, False))
            result.actions = report.count
            if rows != due or report.count != due:
                print(f"  WARNING: {due} due, the bare query found {rows}, the sweep did {report.count}")
    finally:
        await core.close()
        await engine.dispose()


def report(results: list[Result]) -> None:
    row = "{:<9} {:>9} {:>8} {:>7} {:>8} {:>9} {:>9} {:>7} {:>11} {:>10}"
    heads = ("backend", "tickets", "build_s", "bare_ms", "dry_ms", "sweep_ms", "esc/s", "actions")
    print("\n" + row.format(*heads, "sweep/bare", "digest_ms"))
    for r in results:
        built = f"{r.built:.1f}" if r.built is not None else "cached"
        ms = [f"{r.ms(what):.1f}" for what in ("bare", "dry run", "sweep")]
        ratio, daily = f"{r.ms('sweep') / r.ms('bare'):.1f}x", f"{r.ms('digest'):.0f}"
        print(row.format(r.backend, f"{r.n:,}", built, *ms, f"{r.per_s:,.0f}", r.actions, ratio, daily))
    print(
        f"\ntargets: >= {MIN_PER_S:,.0f} escalations/s; the sweep among most tickets <= {MAX_GROWTH}x fewest"
    )
    for backend in dict.fromkeys(r.backend for r in results):
        mine = sorted((r for r in results if r.backend == backend), key=lambda r: r.n)
        slowest = min(r.per_s for r in mine)
        print(f"  {backend:<9} escalations/s (slowest) {slowest:>8,.0f}/s    {PASS[slowest >= MIN_PER_S]}")
        if len(mine) > 1:
            growth = mine[-1].ms("sweep") / mine[0].ms("sweep")
            sizes = f"{mine[-1].n:,} / {mine[0].n:,}"
            print(f"  {backend:<9} sweep time {sizes:<21} {growth:>8.2f}x    {PASS[growth <= MAX_GROWTH]}")


async def main() -> None:
    parser = argparse.ArgumentParser(description="One sweep among many stored tickets, a few of them due.")
    parser.add_argument("--sizes", default="100000,1000000", help="tickets stored (default 100000,1000000)")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres (default both)")
    parser.add_argument("--due", type=int, default=1000, help="clocks due at the sweep (default 1000)")
    parser.add_argument("--runs", type=int, default=3, help="sweeps per database, medians shown (default 3)")
    parser.add_argument("--quick", action="store_true", help="sizes 10000,100000")
    parser.add_argument("--cache", action="store_true", help="keep built databases for the next run")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in ("10000,100000" if args.quick else args.sizes).split(",")})
    backends = args.backends.split(",")
    if args.due < 1 or args.runs < 1 or sizes[0] < args.due or set(backends) - {"sqlite", "postgres"}:
        parser.error("--due and --runs at least 1, every size at least --due, backends sqlite and postgres")
    load_before = os.getloadavg()[0]
    results: list[Result] = []
    for backend in backends:
        for n in sizes:
            async with database(backend, n, args.due, args.cache) as (url, built):
                if not url:
                    break
                how = f"built in {built:.1f} s" if built is not None else "cached"
                print(f"{backend} {n:,} tickets: {how}")
                results.append(Result(backend, n, built))
                await measure(results[-1], url, args.due, args.runs)
    report(results)
    load = f"load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    print(f"\n{load}, on {os.cpu_count()} CPUs (other processes on the machine slow every figure down)")


if __name__ == "__main__":
    asyncio.run(main())
