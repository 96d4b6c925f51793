"""The monthly report and the quarter's grades over a month of 100,000 complaints, on SQLite.

    .venv/bin/python -m benchmarks.report [--tickets 100000] [--other 100000] [--runs 3] [--charts] [--db F]

An SQLite file, migrated and filled with bulk inserts (sqlite3 executemany; real rows of the schema):
`--tickets` complaints received in October 2026 over five departments, three channels and 12 courses,
owned by 40 staff, each with its clocks (entry, acknowledge, route, claim, investigate, follow-up:
about a quarter of them late, some still open) and events (claim, plan, resolve, survey, escalate), 70 %
closed with a score, 2 % second instances; plus `--other` complaints in the months around it, which the
report must not read. Times: `month_figures` for October (all departments, and one), the quarter's
credit grades (`compute_grades`, Q4), and with `--charts` the PDF and charts. Medians over --runs.
Wall and CPU seconds (on a busy machine the CPU time is what the report itself costs). Target, reported,
never fatal: the month's figures under 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from benchmarks.common import migrate
from benchmarks.sweep import sqlite_time
from bot.app import channel_book
from core.context import CoreContext
from core.reports.credit import compute_grades
from core.reports.figures import month_figures
from core.reports.periods import month_period, quarter_period
from core.rules.policy import parse_policy
from core.rules.templates import Templates
from core.storage.db import create_engine, session_factory
from core.storage.numbers import TicketNumber
from core.storage.privacy import Vault, generate_key

TZ = ZoneInfo("Asia/Shanghai")
MONTH = datetime(2026, 10, 1, tzinfo=TZ)
AS_OF = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)
DEPARTMENTS = (("teaching", "teaching"), ("service", "service"), ("fees", "finance"), ("other", "academic"))
CHANNELS = ("telegram", "wechat", "email")
COURSES = tuple(f"课程{k:02d}" for k in range(12))
STAFF = 40
CHUNK = 20_000
TARGET_S = 10.0
COLUMNS = {
    "staff": "id name department role active created_at",
    "learners": "id locale created_at name_enc",
    "tickets": "id number status category severity department channel locale learner_id"
    " first_contact_department owner_staff_id summary course data_leak created_at updated_at closed_at"
    " parent_id satisfaction",
    "clocks": "id ticket_id stage started_at due_at met_at paused escalation_level",
    "events": "id ticket_id at actor action",
}


def rows(total: int, other: int, secret: str) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    t = sqlite_time
    since = t(MONTH - timedelta(days=200))
    yield (
        "staff",
        [(k, f"staff-{k}", DEPARTMENTS[k % 4][1], "staff", True, since) for k in range(1, STAFF + 1)],
    )
    yield "learners", [(k, "zh", since, secret) for k in range(1, 1001)]
    clock_id = event_id = 0
    hour, day = timedelta(hours=1), timedelta(days=1)
    for lo in range(0, total + other, CHUNK):
        tickets, clocks, events = [], [], []
        for i in range(lo, min(total + other, lo + CHUNK)):
            # Ids grow with the time of entry, as intake gives them: September, October, November.
            before = other // 2
            if i < before:
                created = MONTH - timedelta(days=30) + timedelta(days=30) * (i / max(before, 1))
            elif i < before + total:
                created = MONTH + timedelta(days=31) * ((i - before) / total)
            else:
                created = (
                    MONTH
                    + timedelta(days=31)
                    + timedelta(days=30) * ((i - before - total) / max(other - before, 1))
                )
            category, department = DEPARTMENTS[i % 4]
            closed = i % 10 < 7
            late = i % 4 == 0
            owner = i % STAFF + 1 if i % 20 else None
            number = str(TicketNumber("TS", created.astimezone(TZ).date(), i + 1))
            done = created + (5 * day if late else 2 * day)
            tickets.append(
                (
                    i + 1,
                    number,
                    "closed" if closed else "investigating",
                    category,
                    "major" if i % 33 == 0 else "general",
                    department,
                    CHANNELS[i % 3],
                    "zh",
                    i % 1000 + 1,
                    "service",
                    owner,
                    f"complaint {i}",
                    COURSES[i % 12] if i % 3 else None,
                    False,
                    t(created),
                    t(done),
                    t(done) if closed else None,
                    i if i % 50 == 49 else None,  # a second instance of the ticket before it
                    (i % 5) + 1 if closed else None,
                )
            )
            stages = (
                ("entry", created, created + hour, created),
                ("acknowledge", created, created + 2 * hour, created + timedelta(seconds=5)),
                ("route", created, created + 2 * hour, created),
                ("claim", created, created + hour, created + (3 * hour if late else timedelta(minutes=20))),
                ("investigate", created, created + 3 * day, done if closed else None),
                ("follow_up", done, done + 3 * day, done + (4 * day if late else day) if closed else None),
            )
            for stage, start, due, met in stages:
                clock_id += 1
                clocks.append(
                    (
                        clock_id,
                        i + 1,
                        stage,
                        t(start),
                        t(due),
                        t(met),
                        False,
                        2 if late and met is None else 0,
                    )
                )
            actions = [("claim", created + (3 * hour if late else timedelta(minutes=20)))]
            if i % 3 == 0:
                actions.append(("plan", created + day))
            if closed:
                actions += [("resolve", done), ("survey", done + hour)]
            if i % 97 == 0:
                actions.append(("escalate", created + 2 * hour))
            for action, at in actions:
                event_id += 1
                events.append((event_id, i + 1, t(at), "bench", action))
        yield "tickets", tickets
        yield "clocks", clocks
        yield "events", events


async def build(path: Path, total: int, other: int) -> float:
    began = time.perf_counter()
    await migrate(f"sqlite+aiosqlite:///{path}")
    secret = Vault([generate_key()]).encrypt("bench")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    with conn:
        for table, values in rows(total, other, secret):
            names = COLUMNS[table].split()
            conn.executemany(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", values
            )
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - began


class Timer:
    """Wall time and this process's CPU time (SQLite runs in aiosqlite's thread, in this process): on a
    machine busy with other work the CPU time is what the report itself costs."""

    def __init__(self, times: dict[str, list[tuple[float, float]]], what: str) -> None:
        self.times, self.what = times, what

    def __enter__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def __exit__(self, *exc: object) -> None:
        spent = (time.perf_counter() - self.wall, time.process_time() - self.cpu)
        self.times.setdefault(self.what, []).append(spent)


async def measure(path: Path, runs: int, charts: bool) -> dict[str, list[tuple[float, float]]]:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    core = CoreContext(
        sessions=session_factory(engine),
        policy=parse_policy(),
        vault=Vault([generate_key()]),
        templates=Templates(),
        channels=channel_book(),
    )
    times: dict[str, list[tuple[float, float]]] = {}
    month, quarter = month_period("2026-10", TZ), quarter_period("2026Q4", TZ)
    try:
        for _ in range(runs):
            async with core.sessions() as session:
                with Timer(times, "month figures, all departments"):
                    figures = await month_figures(session, core.policy, month, AS_OF)
                with Timer(times, "month figures, one department"):
                    await month_figures(session, core.policy, month, AS_OF, department="finance")
                with Timer(times, "quarter's credit grades"):
                    await compute_grades(core, session, quarter, AS_OF)
            if charts:
                from core.reports.pdf import render_report

                with tempfile.TemporaryDirectory() as folder, Timer(times, "PDF and charts"):
                    render_report(figures, Path(folder), AS_OF)
        print(f"  received {figures['totals']['received']:,} in {figures['month']}")
    finally:
        await core.close()
        await engine.dispose()
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description="The monthly report over a month of many complaints.")
    parser.add_argument(
        "--tickets", type=int, default=100_000, help="complaints in the month (default 100000)"
    )
    parser.add_argument(
        "--other", type=int, default=100_000, help="complaints in other months (default 100000)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs, medians shown (default 3)")
    parser.add_argument("--charts", action="store_true", help="also time the PDF and charts")
    parser.add_argument(
        "--db", type=Path, help="keep the built database in this file (reused when it exists)"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="complaintbot-report-bench-") as folder:
        path = args.db or Path(folder) / "report.db"
        if path.exists():
            built = 0.0
            print(f"sqlite: {path} as built before")
        else:
            built = await build(path, args.tickets, args.other)
        print(
            f"sqlite: {args.tickets:,} tickets in October 2026 and {args.other:,} around it, "
            f"built in {built:.1f} s"
        )
        times = await measure(path, args.runs, args.charts)
    print(f"  {'':<34} {'wall s':>8} {'CPU s':>8}")
    for what, values in times.items():
        wall, cpu = statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)
        verdict = ("PASS" if wall < TARGET_S else "MISS") if what.startswith("month figures, all") else ""
        print(f"  {what:<34} {wall:8.2f} {cpu:8.2f}  {verdict}")
    print(f"target: the month's figures under {TARGET_S:.0f} s")
    print(
        f"load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, "
        f"on {os.cpu_count()} CPUs (other processes on the machine slow every figure down)"
    )


if __name__ == "__main__":
    asyncio.run(main())
