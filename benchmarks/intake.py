"""Throughput of `Intake.receive` against a raw-driver baseline, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/intake.py [--n 2000] [--backend sqlite|postgres|all] [--concurrency 1]

Workload (fixed by --seed): complaints from tests/core/data/complaints.jsonl, Chinese and English, over
WeChat, Telegram and e-mail; three in four from new learners, the rest answering the follow-up question
of their open ticket; `now` passed explicitly. Per backend, on fresh migrated databases (SQLite files;
PostgreSQL when COMPLAINTBOT_TEST_POSTGRES_URL is set or 127.0.0.1:5432 answers, throwaway databases),
intake (`Intake.receive`, production engine) and the raw baseline take turns every 100 messages, so
machine noise hits both alike. The baseline writes the same rows with the bare driver (aiosqlite /
asyncpg) into a second database, one plain statement per row and one transaction per complaint, values
prepared beforehand: the floor of what the database itself costs. Targets are reported, never fatal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite
import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks/ is not installed: benchmarks.common, when run as a script

from benchmarks.common import complaint_texts, throwaway_databases  # noqa: E402
from bot.app import channel_book  # noqa: E402
from core.classification.classify import Classification, classify  # noqa: E402
from core.classification.rules import rules_of  # noqa: E402
from core.context import CoreContext  # noqa: E402
from core.intake.intake import Intake, IntakeResult  # noqa: E402
from core.messages import InboundMessage  # noqa: E402
from core.rules.policy import Policy, parse_policy  # noqa: E402
from core.rules.templates import Templates  # noqa: E402
from core.storage.db import create_engine, session_factory  # noqa: E402
from core.storage.numbers import TicketNumber  # noqa: E402
from core.storage.privacy import Vault, generate_key  # noqa: E402

START = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Monday morning, a working day
MIN_PER_S, MIN_RATIO, PASS = 1000.0, 0.15, ("MISS", "PASS")  # the targets: intake on SQLite
NAMES = ("李明", "王芳", "张伟", "陈静", "Emily Carter", "James Wong")
ANSWERS = {  # to the follow-up questions, "Chinese|English" as the ticket's language
    "course": ("Python 全栈班|Python Bootcamp", "雅思口语冲刺班|IELTS Speaking Intensive", "跳过|skip"),
    "expected_resolution": ("希望全额退款|A full refund please", "希望补课|Make-up lessons", "不方便|skip"),
    "contact": ("{phone}|{phone}", "电话 {phone}|my number is {phone}", "跳过|skip"),
}


@dataclass(frozen=True)
class Step:
    """One inbound message, and what the baseline needs to write the rows intake writes for it."""

    i: int
    message: InboundMessage
    learner: int  # the step that opened the learner's ticket
    c: Classification  # of that complaint
    department: str
    ask: str | None  # the question queued after this message (None: details complete)
    answered: str | None  # the field this message answers; None: it opens the ticket
    secret: str  # a ciphertext of the learner's address, standing in for every encrypted value
    index: tuple[str | None, ...]  # blind indexes: channel address, phone, e-mail

    @property
    def now(self) -> datetime:
        return START + self.i * timedelta(milliseconds=4)


def message(
    i: int, channel: str, addr: str, text: str, name: str | None, phone: str | None
) -> InboundMessage:
    """Message `i` as a channel adapter hands it to the core."""
    email = addr if channel == "email" else None
    external_id = f"<m{i}@mail.example>" if email else str(24_000_000_000 + i)
    received = START + timedelta(milliseconds=i * 4 - 50 - i * 7919 % 850)  # delivered 50-900 ms late
    raw = {"from": addr, "id": external_id, "time": int(received.timestamp()), "text": text}
    return InboundMessage(channel, external_id, addr, text, received, name, phone, email, raw=raw)


def build(count: int, seed: int, policy: Policy, vault: Vault) -> list[Step]:
    rng, rules = random.Random(seed), rules_of(policy)
    corpus = complaint_texts()
    waiting: list[tuple[Step, list[str]]] = []  # learners with a question pending: last step, fields left
    steps: list[Step] = []
    for i in range(count):
        if waiting and rng.random() < 0.25:  # a learner answers the question of their ticket, soon after
            k = rng.randrange(max(0, len(waiting) - 30), len(waiting))
            last, left = waiting[k]
            answered, number = left.pop(0), f"139{i:08d}"
            text = rng.choice(ANSWERS[answered]).split("|")[last.c.language == "en"].format(phone=number)
            m = message(i, last.message.channel, last.message.sender_id, text, None, None)
            phone_index = vault.blind_index("phone", number) if number in text else None
            ask = left[0] if left else None
            step = replace(last, i=i, message=m, ask=ask, answered=answered, index=(None, phone_index, None))
            if left:
                waiting[k] = (step, left)
            else:
                del waiting[k]
        else:  # a new learner opens a ticket
            channel = rng.choices(("wechat", "telegram", "email"), (0.5, 0.3, 0.2))[0]
            senders = {"wechat": f"oX7q{rng.getrandbits(96):024x}", "telegram": str(5_000_000_000 + i)}
            sender = senders.get(channel, f"learner{i}@163.com")
            name = rng.choice(NAMES) if rng.random() < 0.6 else None
            phone = f"138{i:08d}" if rng.random() < 0.15 else None
            m = message(i, channel, sender, rng.choice(corpus), name, phone)
            c = classify(m.text, rules)
            left = [f for f in policy.intake.ask_fields if f != "contact" or not (phone or m.email)]
            keys = ((channel, sender), ("phone", phone), ("email", m.email))
            index = tuple(vault.blind_index(kind, v) if v else None for kind, v in keys)
            department = policy.department_for(c.category)
            step = Step(i, m, i, c, department, left[0], None, vault.encrypt(sender), index)
            waiting.append((step, left))
        steps.append(step)
    return steps


# -- the raw baseline: the same rows, one plain statement each, bare driver ---------------------------

COLUMNS = {  # in the order write_raw gives the values
    "learners": "locale created_at name_enc phone_enc phone_index email_enc email_index",
    "learner_identities": "learner_id channel created_at address_enc address_index",
    "tickets": "number learner_id identity_id created_at updated_at status first_contact_department"
    " category severity department channel locale summary contact_enc awaiting_field amount_yuan data_leak",
    "messages": "ticket_id channel at direction external_id sender_index text_enc attachments raw_enc"
    " outbox_id",
    "clocks": "ticket_id stage started_at met_at due_at paused escalation_level",
    "events": "ticket_id at actor action detail",
    "outbox": "ticket_id channel created_at next_attempt_at status attempts key recipient_enc kind"
    " payload meets_clock_id",
}
INSERT = {
    table: f"INSERT INTO {table} ({', '.join(names.split())}) VALUES"
    f" ({', '.join(f'${n + 1}' for n in range(len(names.split())))}) RETURNING id"
    for table, names in COLUMNS.items()
}
COUNTER = (
    "INSERT INTO ticket_counters (prefix, day, value) VALUES ('TS', $1, 1) ON CONFLICT (prefix, day)"
    " DO UPDATE SET value = ticket_counters.value + 1 RETURNING value"
)


class Raw:
    """One bare driver connection: aiosqlite with production's pragmas, or asyncpg."""

    def __init__(self, conn: Any, pg: bool) -> None:
        self.conn, self.pg = conn, pg

    @classmethod
    async def connect(cls, url: str) -> Raw:
        if make_url(url).get_backend_name() == "postgresql":
            return cls(await asyncpg.connect(url.replace("+asyncpg", "")), True)
        conn = await aiosqlite.connect(make_url(url).database or "", isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON"):
            await conn.execute_fetchall(f"PRAGMA {pragma}")
        return cls(conn, False)

    def _value(self, value: Any) -> Any:  # as SQLAlchemy binds it
        if isinstance(value, dict | list):
            return json.dumps(value)
        if self.pg or not isinstance(value, date | Decimal):
            return value
        if isinstance(value, datetime):
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        return value.isoformat() if isinstance(value, date) else float(value)

    async def q(self, sql: str, *args: Any) -> Any:
        """Run one statement ($1, $2 … parameters); the first column of its first row, if any."""
        values = [self._value(a) for a in args]
        if self.pg:
            return await self.conn.fetchval(sql, *values)
        rows = await self.conn.execute_fetchall(sql.replace("$", "?"), values)
        return next(iter(rows), (None,))[0]


async def write_raw(db: Raw, s: Step, result: IntakeResult, tickets: dict[int, tuple[int, str]]) -> None:
    """One message's rows in one transaction; the texts to the learner are those intake produced."""
    m, c, e, now, (address_index, phone_index, email_index) = s.message, s.c, s.secret, s.now, s.index
    received, clocks = min(m.received_at, now), dict[str, int]()
    await db.q("BEGIN" if db.pg else "BEGIN IMMEDIATE")
    if s.answered is None:
        person = (m.sender_name and e, m.phone and e, phone_index, m.email and e, email_index)
        learner = await db.q(INSERT["learners"], c.language, now, *person)
        identity = await db.q(INSERT["learner_identities"], learner, m.channel, now, e, address_index)
        number = str(TicketNumber("TS", now.date(), await db.q(COUNTER, now.date())))
        head = (number, learner, identity, now, now, "routed", "service")
        facts = (c.category, c.severity, s.department, m.channel, c.language, m.text[:200])
        rest = ((m.phone or m.email) and e, s.ask, c.amount_yuan, c.data_leak)
        tickets[s.learner] = (await db.q(INSERT["tickets"], *head, *facts, *rest), number)
    ticket, number = tickets[s.learner]
    inbound: tuple[Any, ...] = (m.channel, received, "in", m.external_id, address_index, e, [], e, None)
    inbound_id = await db.q(INSERT["messages"], ticket, *inbound)
    if s.answered is None:
        for n, stage in enumerate(("entry", "route", "acknowledge", "claim")):  # the first two met at once
            started, met, due = received if n == 0 else now, now if n < 2 else None, now + timedelta(1)
            clocks[stage] = await db.q(INSERT["clocks"], ticket, stage, started, met, due, False, 0)
        alerts = [("major", "managers: major")] if c.severity == "major" else []
        alerts += [("data-leak", "compliance: data leak")] if c.data_leak else []
        events = [
            (f"learner:{m.channel}", "received", f"via {m.channel}"),
            ("complaintbot", "classified", f"{c.category}/{c.severity}: {'; '.join(c.reasons)}"),
            ("complaintbot", "routed", s.department),
            *(("complaintbot", "alerted", detail) for _, detail in alerts),
        ]
        staff = [(f"ticket:{ticket}:card", "card")]
        staff += [(f"ticket:{ticket}:alert:{what}", "alert") for what, _ in alerts]
        replies = ["ack", "ask"] if s.ask else ["ack"]
    else:
        value = e if s.answered == "contact" else m.text
        column = "contact_enc" if s.answered == "contact" else s.answered
        update = f"UPDATE tickets SET updated_at = $1, awaiting_field = $2, {column} = $3 WHERE id = $4"
        await db.q(update, now, s.ask, value, ticket)
        events = [(f"learner:{m.channel}", "details", s.answered)]
        staff = [(f"in:{inbound_id}:staff-notice", "notice-staff")]
        replies = ["ask" if s.ask else "thanks"]
    for actor, action, detail in events:
        await db.q(INSERT["events"], ticket, now, actor, action, detail)
    payload: dict[str, Any] = {"subject": None, "reply_to": None, "buttons": []}
    payload["meta"] = {"ticket_number": number}
    for what, text in zip(replies, result.replies, strict=False):
        kind = "notice" if what == "thanks" else what
        clock = clocks.get("acknowledge") if what == "ack" else None  # its delivery meets that clock
        row = (f"in:{inbound_id}:{what}", e, kind, payload | {"text": text}, clock)
        outbox = await db.q(INSERT["outbox"], ticket, m.channel, now, now, "pending", 0, *row)
        await db.q(INSERT["messages"], ticket, m.channel, now, "out", None, None, e, [], None, outbox)
    for key, kind in staff:
        row = (key, e, kind, payload | {"text": m.text}, None)
        await db.q(INSERT["outbox"], ticket, "staff", now, now, "pending", 0, *row)
    await db.q("COMMIT")


# -- running, timing, reporting -------------------------------------------------------------------------


@dataclass
class Timing:
    backend: str
    what: str
    concurrency: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def ms(self, q: float) -> float:
        return sorted(self.latencies)[min(len(self.latencies) - 1, int(q * len(self.latencies)))] * 1000

    async def run(self, steps: list[Step], call: Callable[[Step], Awaitable[None]]) -> None:
        """By `concurrency` tasks, each learner's steps in one task, in order."""
        lanes = [[s for s in steps if s.learner % self.concurrency == k] for k in range(self.concurrency)]

        async def lane(part: list[Step]) -> None:
            for s in part:
                began = time.perf_counter()
                await call(s)
                self.latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(lane(part) for part in lanes))
        self.seconds += time.perf_counter() - began


async def bench(backend: str, urls: list[str], steps: list[Step], args: argparse.Namespace) -> list[Timing]:
    """Intake into urls[0] and the baseline into urls[1] (migrated), taking turns; the timings of both."""
    engine = create_engine(urls[0])
    policy, vault = parse_policy(), Vault([generate_key()])
    core = CoreContext(
        sessions=session_factory(engine),
        policy=policy,
        vault=vault,
        templates=Templates(),
        channels=channel_book(),
    )
    intake = Intake(core)
    # SQLite has one writer at a time: like production's pool of one, the baseline's writers share one.
    pool: asyncio.Queue[Raw] = asyncio.Queue()
    for _ in range(1 if backend == "sqlite" else args.concurrency):
        pool.put_nowait(await Raw.connect(urls[1]))
    results: dict[int, IntakeResult] = {}
    tickets: dict[int, tuple[int, str]] = {}

    async def receive(s: Step) -> None:
        results[s.i] = await intake.receive(s.message, s.now)

    async def write(s: Step) -> None:
        db = await pool.get()
        try:
            await write_raw(db, s, results[s.i], tickets)
        finally:
            pool.put_nowait(db)

    timings = [Timing(backend, "intake", args.concurrency), Timing(backend, "raw baseline", args.concurrency)]
    try:
        await Timing(backend, "warm-up", 1).run(steps[: args.warmup], receive)
        await Timing(backend, "warm-up", 1).run(steps[: args.warmup], write)
        for first in range(args.warmup, len(steps), 100):  # taking turns: machine noise hits both alike
            await timings[0].run(steps[first : first + 100], receive)
            await timings[1].run(steps[first : first + 100], write)
    finally:
        if hasattr(core, "close"):
            await core.close()
        await engine.dispose()
        while not pool.empty():
            await pool.get_nowait().conn.close()
    counts = []
    for url in urls:  # a check that the baseline wrote the rows intake wrote
        db = await Raw.connect(url)
        counts.append({table: await db.q(f"SELECT count(*) FROM {table}") for table in COLUMNS})
        await db.conn.close()
    if counts[0] != counts[1]:
        print(f"{backend}: WARNING: intake and the baseline wrote different rows: {counts}")
    return timings


def databases(backend: str) -> AbstractAsyncContextManager[list[str]]:
    """Two fresh, migrated databases, intake's and the baseline's; none when PostgreSQL does not answer."""
    return throwaway_databases(backend, "intake", "raw")


def report(timings: list[Timing]) -> None:
    row = "{:<9} {:<13} {:>4} {:>6} {:>8} {:>7} {:>7}"
    print("\n" + row.format("backend", "what", "conc", "n", "per_s", "p50_ms", "p99_ms"))
    for intake, raw in zip(timings[::2], timings[1::2], strict=True):
        for t in (intake, raw):
            figures = (f"{t.per_s:.0f}", f"{t.ms(0.50):.2f}", f"{t.ms(0.99):.2f}")
            print(row.format(t.backend, t.what, t.concurrency, len(t.latencies), *figures))
        print(row.format(intake.backend, "ratio", "-", "-", f"{intake.per_s / raw.per_s:.1%}", "", ""))
    if timings and timings[0].backend == "sqlite":
        per_s, ratio = timings[0].per_s, timings[0].per_s / timings[1].per_s
        print(f"\ntargets (SQLite, concurrency {timings[0].concurrency}):")
        print(f"  intake >= {MIN_PER_S:,.0f} complaints/s  {per_s:>8,.0f}/s  {PASS[per_s >= MIN_PER_S]}")
        print(f"  intake >= {MIN_RATIO:.0%} of baseline      {ratio:>8.1%}    {PASS[ratio >= MIN_RATIO]}")


async def main() -> None:
    parser = argparse.ArgumentParser(description="Intake.receive against a raw-driver baseline.")
    parser.add_argument("--n", type=int, default=2000, help="messages timed per backend (default 2000)")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--concurrency", type=int, default=1, help="asyncio tasks at work (default 1)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed messages first (default 50)")
    parser.add_argument("--seed", type=int, default=20261123, help="workload seed")
    args = parser.parse_args()
    if args.n < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--n and --concurrency must be at least 1, --warmup at least 0")
    steps = build(args.warmup + args.n, args.seed, parse_policy(), Vault([generate_key()]))
    load_before = os.getloadavg()[0]
    timings: list[Timing] = []
    for backend in ("sqlite", "postgres") if args.backend == "all" else (args.backend,):
        async with databases(backend) as urls:
            timings += await bench(backend, urls, steps, args) if urls else []
    report(timings)
    load = f"load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    print(f"\n{load}, on {os.cpu_count()} CPUs (other processes on the machine slow every figure down)")


if __name__ == "__main__":
    asyncio.run(main())
