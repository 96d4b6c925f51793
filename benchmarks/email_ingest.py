"""E-mail ingest end to end from a real Dovecot, beside the raw IMAP fetch rate of the same mailbox.

    .venv/bin/python benchmarks/email_ingest.py [--n 1000] [--backend sqlite|postgres|all]
                                                [--workers 1,8] [--batch 100] [--seed 20261123]

Workload (fixed by --seed): --n learners' e-mails APPENDed to a fresh Dovecot mailbox (started here, own
config, loopback port; Debian's dovecot-imapd must be installed): complaints from
tests/core/data/complaints.jsonl, Chinese and English, plain text or text + HTML, a display name on most,
and one in five a learner's second message answering the first (In-Reply-To). Per backend and intake
worker count, on a fresh migrated database (SQLite file; PostgreSQL on COMPLAINTBOT_TEST_POSTGRES_URL or
127.0.0.1:5432, a throwaway database), with the mailbox put back to unseen, it times:
  - raw fetch: one connection, UID SEARCH, `UID FETCH n:m (UID INTERNALDATE BODY.PEEK[])` in batches of
    --batch, nothing else: what the server and the client library cost;
  - ingest: one `ImapSource.fetch_once` pass: fetch, parse, intake (ticket committed, acknowledgement
    queued in the outbox), `\\Seen` stored on the server.
The raw fetch runs right before each ingest, so machine noise hits both alike. Tickets and
acknowledgements are counted afterwards. The target (500 messages/s) is reported, never fatal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the Dovecot helper lives with the tests, not installed; so does benchmarks/

from benchmarks.common import complaint_texts, throwaway_database  # noqa: E402
from bot.app import channel_book  # noqa: E402
from channels.mail.imap import ImapSource  # noqa: E402
from channels.mail.imap_connection import ImapConnection  # noqa: E402
from channels.mail.prepared import prepare  # noqa: E402
from channels.mail.reader import MailReader  # noqa: E402
from core.context import CoreContext  # noqa: E402
from core.intake.intake import Intake  # noqa: E402
from core.rules.policy import parse_policy  # noqa: E402
from core.rules.templates import Templates  # noqa: E402
from core.storage.db import create_engine, session_factory  # noqa: E402
from core.storage.privacy import Vault, generate_key  # noqa: E402
from tests.channels.mail.dovecot import MISSING, Dovecot, tally  # noqa: E402

AUTHSERV_ID = "mx.school.example"

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
TARGET = 500.0
NAMES = ("李明", "王芳", "张伟", "陈静", "Emily Carter", "James Wong", None)
ANSWERS = (
    "课程是 Python 全栈班，希望全额退款。",
    "My course is IELTS Speaking Intensive; make-up lessons please.",
)


def workload(count: int, seed: int) -> tuple[list[bytes], int]:
    """The raw messages, and how many tickets they must open."""
    rng = random.Random(seed)
    texts = complaint_texts()
    raws: list[bytes] = []
    first: list[tuple[str, str]] = []  # (sender, Message-ID) of the learners who wrote once so far
    opened = 0
    for i in range(count):
        mail = EmailMessage()
        if first and rng.random() < 0.2:  # a learner answers the question their acknowledgement asked
            sender, parent = first.pop(rng.randrange(len(first)))
            mail["In-Reply-To"] = mail["References"] = parent
            subject, text = "Re: 投诉", rng.choice(ANSWERS)
        else:
            domain = rng.choice(("163.com", "qq.com", "gmail.com"))
            sender, subject, text = f"learner{i}@{domain}", "投诉", rng.choice(texts)
            opened += 1
        message_id = f"<bench-{seed}-{i}@mail.example>"
        if not mail["In-Reply-To"]:
            first.append((sender, message_id))
        name = rng.choice(NAMES)
        mail["From"] = formataddr((name, sender)) if name else sender
        mail["To"] = "complaints@school.example.cn"
        mail["Subject"] = subject
        mail["Date"] = format_datetime(NOW - timedelta(seconds=count - i))
        mail["Message-ID"] = message_id
        # What the school's receiving server prepends (the reader trusts its authserv-id).
        mail["Authentication-Results"] = f"{AUTHSERV_ID}; dmarc=pass header.from={sender.split('@')[1]}"
        mail.set_content(f"{text}\n\n-- \n{name or sender}\n")
        if rng.random() < 0.4:  # webmail sends an HTML part too
            mail.add_alternative(
                f"<html><body><p>{text}</p><p>-- <br>{name or sender}</p></body></html>", "html"
            )
        raws.append(mail.as_bytes(policy=SMTP))
    return raws, opened


async def raw_fetch(server: Dovecot, batch: int) -> tuple[int, float]:
    """Every message's bytes over one connection, nothing else; (messages, seconds)."""
    began = time.perf_counter()
    connection = ImapConnection(server.account(), timeout=30)
    await connection.open()
    await connection.select()
    uids = await connection.search("ALL")
    fetched = 0
    for start in range(0, len(uids), batch):
        fetched += len(await connection.fetch(uids[start : start + batch]))
    await connection.close()
    return fetched, time.perf_counter() - began


async def ingest(server: Dovecot, url: str, workers: int, batch: int) -> tuple[int, float, dict[str, int]]:
    """One pass of the real reader over the whole mailbox; (messages, seconds, what it wrote)."""
    engine = create_engine(url)
    core = CoreContext(
        sessions=session_factory(engine),
        policy=parse_policy(),
        vault=Vault([generate_key()]),
        templates=Templates(),
        channels=channel_book(),
    )
    source = ImapSource(
        server.account(),
        MailReader(Intake(core), core, workers=workers, authserv_id=AUTHSERV_ID),
        batch=batch,
    )
    try:
        began = time.perf_counter()
        report = await source.fetch_once(NOW)
        seconds = time.perf_counter() - began
        if report.left:
            print(f"WARNING: {report.left} messages left after errors")
        return len(report.done), seconds, await tally(core)
    finally:
        await source.close()
        await core.close()
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description="E-mail ingest from Dovecot against the raw fetch rate.")
    parser.add_argument("--n", type=int, default=1000, help="messages in the mailbox (default 1000)")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--workers", default="1,8", help="intake workers (senders at once) to try")
    parser.add_argument("--batch", type=int, default=100, help="UIDs per FETCH (default 100)")
    parser.add_argument("--seed", type=int, default=20261123, help="workload seed")
    args = parser.parse_args()
    if MISSING:
        parser.exit(1, f"{MISSING}\n")
    workers = [int(w) for w in args.workers.split(",")]
    raws, tickets = workload(args.n, args.seed)
    server = Dovecot()
    server.start()
    row = "{:<9} {:>7} {:>6} {:>13} {:>10} {:>7} {:>8} {:>6}"
    results: list[tuple[str, int, float]] = []
    try:
        began = time.perf_counter()
        server.append(raws)
        append_s, began = time.perf_counter() - began, time.perf_counter()
        for n, raw in enumerate(raws):  # parsing alone, for where the time goes
            prepare(str(n), raw, NOW)
        parse_s = time.perf_counter() - began
        size = sum(map(len, raws)) / len(raws)
        print(f"{len(raws)} messages, {size:.0f} bytes on average, APPENDed in {append_s:.1f}s;", end=" ")
        print(f"{tickets} open a ticket, the others answer one")
        print(f"parse_mail alone: {len(raws) / parse_s:,.0f} messages/s\n")
        print(row.format("backend", "workers", "n", "raw fetch/s", "ingest/s", "ratio", "tickets", "acks"))
        for backend in ("sqlite", "postgres") if args.backend == "all" else (args.backend,):
            for count in workers:
                async with throwaway_database(backend, f"w{count}") as url:
                    if url is None:
                        break
                    with server.session() as client:  # the mailbox as it was: every message unseen
                        client.select("INBOX")
                        client.uid("STORE", "1:*", "-FLAGS.SILENT", r"(\Seen)")
                    fetched, fetch_s = await raw_fetch(server, args.batch)
                    done, ingest_s, counts = await ingest(server, url, count, args.batch)
                    per_s, raw_per_s = done / ingest_s, fetched / fetch_s
                    results.append((backend, count, per_s))
                    figures = (f"{raw_per_s:,.0f}", f"{per_s:,.0f}", f"{per_s / raw_per_s:.1%}")
                    print(row.format(backend, count, done, *figures, counts["tickets"], counts["acks"]))
                    if counts["tickets"] != tickets or counts["acks"] != tickets:
                        print(f"WARNING: expected {tickets} tickets and acknowledgements, got {counts}")
    finally:
        server.close()
    best = max(results, key=lambda r: r[2], default=None)
    if best is not None:
        verdict = "PASS" if best[2] >= TARGET else "MISS"
        backend, count, per_s = best
        print(
            f"\ntarget: ingest >= {TARGET:.0f} messages/s: best {per_s:,.0f}/s ({backend}, {count} workers)",
            end=" ",
        )
        print(verdict)
    load = os.getloadavg()[0]
    print(
        f"load average (1 min) {load:.2f} on {os.cpu_count()} CPUs (other processes slow every figure down)"
    )


if __name__ == "__main__":
    asyncio.run(main())
