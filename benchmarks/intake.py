"""Throughput of `Intake.receive` against a raw-driver floor, on SQLite and PostgreSQL.

Run from the project root::

    .venv/bin/python benchmarks/intake.py [--n 2000] [--backend sqlite|postgres|all] [--concurrency 1]

It builds one reproducible workload of varied complaints (Chinese and English texts from
tests/core/data/complaints.jsonl; WeChat, Telegram and e-mail; mostly new learners, some answering the
follow-up questions of their open ticket, some opening another ticket, a few writing again from a
second channel with their phone number), then for each backend:

* intake: pushes it through `core.intake.Intake.receive`, timing each call, on a fresh database migrated
  with `core.db.upgrade` and the production engine from `core.db.create_engine` (SQLite: WAL,
  synchronous=NORMAL, BEGIN IMMEDIATE);
* raw baseline: writes the same rows (learner, identity, counter upsert, ticket, inbound and outbound
  messages, the 4 clocks, events, outbox rows; for an answer the message, the ticket update, event and
  outbox rows) with the bare driver (aiosqlite / asyncpg, no SQLAlchemy), one plain statement per row and
  one transaction per complaint, into a second database of the same schema with the same pragmas. The
  baseline does no lookups, classification, encryption or templating: values are prepared beforehand,
  so it is the floor of what the database itself costs.

The two take turns every 100 complaints, so a change in the machine's speed (other processes) hits
both alike. It prints complaints/s, p50/p99 latency per call and CPU time per complaint of each,
intake's throughput as a share of the baseline's, and PASS/MISS against the targets (SQLite: >= 1,000
complaints/s and >= 15 % of the baseline); a miss does not fail the run. The first --warmup
complaints (jieba's dictionary, template compilation, statement caches) are not timed. Afterwards the
row counts of the two databases are compared, to show both wrote the same rows.

PostgreSQL runs when COMPLAINTBOT_TEST_POSTGRES_URL is set or a server answers on 127.0.0.1:5432: two
throwaway databases are created and dropped at the end. `now` is passed explicitly: a fixed instant
advancing a few milliseconds per complaint. With --concurrency K, K asyncio tasks share the work; each
learner's messages stay in one task, in order. --profile prints a cProfile of intake's timed run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import random
import socket
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import aiosqlite
import asyncpg  # type: ignore[import-untyped]
import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.classify import Classification, classify, detect_language
from core.context import CoreContext
from core.db import create_engine, session_factory, upgrade
from core.intake import SKIP_WORDS, Intake, IntakeResult
from core.messages import Attachment, InboundMessage
from core.numbers import TicketNumber
from core.policy import parse_policy
from core.privacy import Vault, generate_key, mask, redact
from core.templates import Templates

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "core" / "data" / "complaints.jsonl"
START = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Monday morning, a working day
STEP = timedelta(milliseconds=4)  # `now` advances this much per complaint
TARGET_PER_S = 1000.0
TARGET_RATIO = 0.15
DEPARTMENTS = {
    "service": "学员服务部",
    "teaching": "教学部",
    "finance": "财务部",
    "academic": "教务管理部",
    "compliance": "合规审核部",
}
TABLES = ("learners", "learner_identities", "tickets", "messages", "clocks", "events", "outbox")

# ---------------------------------------------------------------------------------------------------
# The workload
# ---------------------------------------------------------------------------------------------------

# Used when the test corpus is not there (the benchmark should not depend on the tests' files).
FALLBACK_CORPUS = (
    "你们这个跨境电商运营课的老师讲课完全就是念PPT，照本宣科，希望能换个老师。",
    "我要退费！交了3000元，机构一直拖着不退。",
    "班主任态度很差，问什么都不回，打电话也不接。",
    "教室空调坏了一个星期了，上课热得根本没法听课。",
    "直播课老是卡顿掉线，回放也打不开，交了钱学不到东西。",
    "报名时说好的小班教学，结果一个班六十多人，全班同学都很不满，准备去12315投诉。",
    "我的个人信息被泄露了，最近每天都接到推销电话。",
    "The teacher keeps skipping chapters and the materials are outdated.",
    "I asked for a refund of 4,500 yuan three weeks ago and nobody has replied.",
    "The front desk staff were rude to me when I asked about the timetable change.",
    "The online platform crashes every time I try to submit homework.",
    "Classes were cancelled twice without notice; several students want their money back.",
    "Someone gave my phone number to a sales company without my consent.",
)
ZH_OPENERS = ("", "", "您好，", "你好，", "投诉：", "再反映一次：")
ZH_CLOSERS = ("", "", "请尽快处理。", "希望尽快给个说法！", "（已经是第二次反映了）", "谢谢。")
EN_OPENERS = ("", "", "Hi, ", "Hello, ", "Complaint: ")
EN_CLOSERS = ("", "", " Please sort this out.", " I expect an answer this week.", " Thanks.")
ZH_NAMES = ("李明", "王芳", "张伟", "刘洋", "陈静", "杨磊", "赵敏", "黄婷", "周杰", "吴倩", "孙丽", "郭强")
EN_NAMES = ("Emily Carter", "James Wong", "Sofia Rossi", "Daniel Kim", "Hannah Miller", "Tom Baker")
ANSWERS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "zh": {
        "course": (
            "Python 全栈班",
            "跨境电商运营",
            "雅思口语冲刺班",
            "UI 设计就业班",
            "会计实操班",
            "数据分析实战营",
            "跳过",
        ),
        "expected_resolution": (
            "希望全额退款",
            "希望更换老师",
            "希望补课",
            "希望给个书面答复",
            "希望尽快修好设备",
            "退还资料费",
            "不方便",
        ),
        "contact": ("{phone}", "{phone}", "电话 {phone}", "不方便", "跳过"),
    },
    "en": {
        "course": (
            "IELTS Speaking Intensive",
            "Python Bootcamp",
            "Digital Marketing 101",
            "Data Analytics Pro",
            "skip",
        ),
        "expected_resolution": (
            "A full refund please",
            "A different teacher",
            "Make-up lessons for the missed classes",
            "A written apology",
            "skip",
        ),
        "contact": ("{phone}", "my number is {phone}", "skip"),
    },
}


@dataclass(frozen=True)
class Identity:
    channel: str
    sender_id: str
    name: str | None
    email: str | None  # the e-mail channel's messages carry the sender's address


@dataclass
class LearnerSim:
    key: int
    identities: list[Identity]
    locale: str
    name: str | None
    phone: str | None = None  # as the learner gave it; set means learners.phone_index is set
    awaiting: list[int] = field(default_factory=list)  # tickets with a question pending, oldest first


@dataclass
class TicketSim:
    key: int
    locale: str
    department: str
    has_course: bool = False
    has_expected: bool = False
    has_contact: bool = False
    awaiting: str | None = None


@dataclass(frozen=True)
class Sealed:
    """Ciphertexts and blind indexes the baseline writes (prepared beforehand, untimed)."""

    recipient: str
    address: str | None = None
    address_index: str | None = None
    name: str | None = None
    phone: str | None = None
    phone_index: str | None = None
    email: str | None = None
    email_index: str | None = None
    contact: str | None = None  # tickets.contact_enc: given at opening, or the answer to "contact"


@dataclass(frozen=True)
class Step:
    """One inbound message and, for the baseline, exactly what intake writes for it."""

    index: int
    message: InboundMessage
    now: datetime
    learner: int
    identity: tuple[str, str]  # (channel, sender_id)
    locale: str  # the learner's locale (learners.locale)
    new_learner: bool
    new_identity: bool
    ticket: int  # ticket key: the index of the step that opened it
    department: str
    opens: bool  # opens a ticket; else answers the question its ticket is awaiting
    ask: str | None  # the question queued after this message (continuing and None: "details complete")
    sealed: Sealed
    texts: Mapping[str, str]  # outbox texts (ack, ask, card, alerts / ask or thanks, notice)
    day: date
    classification: Classification | None = None
    dues: Mapping[str, datetime] = field(default_factory=dict)
    answered: str | None = None
    answer: str | None = None  # value stored for the answered field ("" when skipped)
    records_phone: bool = False


def load_corpus() -> dict[str, list[str]]:
    texts = list(FALLBACK_CORPUS)
    if CORPUS.exists():
        lines = CORPUS.read_text(encoding="utf-8").splitlines()
        texts = [str(json.loads(line)["text"]) for line in lines if line.strip()]
    by_locale: dict[str, list[str]] = {"zh": [], "en": []}
    for text in texts:
        by_locale[detect_language(text)].append(text)
    return by_locale


def summary(text: str, limit: int = 200) -> str:
    """What intake stores and shows staff as the complaint's summary."""
    flat = redact(" ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class WorkloadBuilder:
    """Generates the messages and simulates what intake will do with each (checked after the run)."""

    def __init__(self, core: CoreContext, seed: int) -> None:
        self.core = core
        self.rng = random.Random(seed)
        self.corpus = load_corpus()
        self.learners: list[LearnerSim] = []
        self.tickets: dict[int, TicketSim] = {}
        self.waiting: list[int] = []  # learners with a question pending, in the order they got it
        self.ids = 0
        self.phones = 0
        self.ask_fields = tuple(core.policy.intake.ask_fields)

    # -- generators of the parts of a message --

    def _next_id(self) -> int:
        self.ids += 1
        return self.ids

    def _phone(self) -> str:
        self.phones += 1
        digits = f"13{8 + self.phones % 2}{(10_000_000 + self.phones * 7919) % 100_000_000:08d}"  # unique
        style = self.rng.random()
        if style < 0.2:
            return f"{digits[:3]} {digits[3:7]} {digits[7:]}"
        if style < 0.3:
            return f"+86 {digits}"
        return digits

    def _text(self, locale: str) -> str:
        rng = self.rng
        base = rng.choice(self.corpus[locale] or self.corpus["zh"] or self.corpus["en"])
        if locale == "zh":
            return rng.choice(ZH_OPENERS) + base + rng.choice(ZH_CLOSERS)
        return rng.choice(EN_OPENERS) + base + rng.choice(EN_CLOSERS)

    def _identity(self, channel: str, locale: str, name: str | None) -> Identity:
        n = self._next_id()
        if channel == "wechat":
            return Identity(channel, f"oX7q{uuid.UUID(int=self.rng.getrandbits(128)).hex[:24]}", name, None)
        if channel == "telegram":
            return Identity(channel, str(5_000_000_000 + n * 37), name, None)
        address = f"learner{n}@{self.rng.choice(('qq.com', '163.com', 'gmail.com', 'outlook.com'))}"
        return Identity(channel, address, name, address)

    def _message(
        self,
        identity: Identity,
        text: str,
        now: datetime,
        *,
        phone: str | None = None,
        new_ticket: bool = False,
    ) -> InboundMessage:
        rng = self.rng
        n = self._next_id()
        received = now - timedelta(milliseconds=rng.randint(50, 900))
        raw: dict[str, Any]
        subject = None
        if identity.channel == "wechat":
            external_id = str(24_000_000_000_000_000 + n)
            raw = {
                "ToUserName": "gh_3f2a9c",
                "FromUserName": identity.sender_id,
                "CreateTime": int(received.timestamp()),
                "MsgType": "text",
                "Content": text,
                "MsgId": external_id,
            }
        elif identity.channel == "telegram":
            external_id = str(n)
            raw = {
                "update_id": 880_000_000 + n,
                "message": {
                    "message_id": n,
                    "date": int(received.timestamp()),
                    "text": text,
                    "chat": {"id": int(identity.sender_id), "type": "private"},
                },
            }
        else:
            external_id = f"<{uuid.UUID(int=rng.getrandbits(128)).hex}@mail.example>"
            subject = rng.choice(("投诉", "关于课程的投诉", "Complaint about my course", "Re: 退费", None))
            raw = {
                "message_id": external_id,
                "from": identity.sender_id,
                "subject": subject,
                "content_type": "text/plain; charset=utf-8",
            }
        attachments: tuple[Attachment, ...] = ()
        if rng.random() < 0.06:
            size = rng.randint(40_000, 3_000_000)
            attachments = (Attachment("photo", f"file-{n:08d}", f"IMG_{n}.jpg", "image/jpeg", size),)
        return InboundMessage(
            channel=identity.channel,
            external_id=external_id,
            sender_id=identity.sender_id,
            text=text,
            received_at=received,
            sender_name=identity.name,
            phone=phone,
            email=identity.email,
            subject=subject,
            attachments=attachments,
            new_ticket=new_ticket,
            raw=raw,
        )

    def _next_field(self, ticket: TicketSim, learner: LearnerSim) -> str | None:
        missing = {
            "course": not ticket.has_course,
            "expected_resolution": not ticket.has_expected,
            "contact": not ticket.has_contact and learner.phone is None,
        }
        return next((f for f in self.ask_fields if missing[f]), None)

    # -- the steps --

    def build(self, count: int) -> list[Step]:
        steps: list[Step] = []
        for index in range(count):
            now = START + STEP * index
            r = self.rng.random()
            step: Step | None = None
            if r < 0.20 and self.waiting:
                step = self._answer(index, now)
            elif r < 0.27 and self.learners:
                step = self._again(index, now)
            elif r < 0.30 and self.learners:
                step = self._cross(index, now)
            steps.append(step or self._new(index, now))
        return steps

    def _new(self, index: int, now: datetime) -> Step:
        rng = self.rng
        locale = "zh" if rng.random() < 0.6 else "en"
        channel = rng.choices(("wechat", "telegram", "email"), (0.5, 0.3, 0.2))[0]
        name = None
        if rng.random() < 0.6:
            name = rng.choice(ZH_NAMES if locale == "zh" else EN_NAMES)
        identity = self._identity(channel, locale, name)
        phone = self._phone() if rng.random() < 0.15 else None
        text = self._text(locale)
        classification = classify(text, self.core.rules)
        learner = LearnerSim(
            key=len(self.learners),
            identities=[identity],
            locale=classification.language,
            name=name,
            phone=phone,
        )
        self.learners.append(learner)
        vault = self.core.vault
        sealed = Sealed(
            recipient=vault.encrypt(identity.sender_id),
            address=vault.encrypt(identity.sender_id),
            address_index=vault.blind_index(channel, identity.sender_id),
            name=vault.encrypt_opt(name),
            phone=vault.encrypt_opt(phone),
            phone_index=vault.blind_index("phone", phone) if phone else None,
            email=vault.encrypt_opt(identity.email),
            email_index=vault.blind_index("email", identity.email) if identity.email else None,
            contact=vault.encrypt_opt(phone or identity.email),
        )
        message = self._message(identity, text, now, phone=phone)
        return self._open(
            index,
            now,
            learner,
            identity,
            message,
            classification,
            sealed,
            new_learner=True,
            new_identity=True,
        )

    def _again(self, index: int, now: datetime) -> Step:
        """A learner we know complains about something else (with /new while a question is pending)."""
        learner = self.rng.choice(self.learners)
        identity = self.rng.choice(learner.identities)
        text = self._text(learner.locale if self.rng.random() < 0.9 else self.rng.choice(("zh", "en")))
        message = self._message(identity, text, now, new_ticket=bool(learner.awaiting))
        vault = self.core.vault
        sealed = Sealed(
            recipient=vault.encrypt(identity.sender_id), contact=vault.encrypt_opt(identity.email)
        )
        return self._open(
            index,
            now,
            learner,
            identity,
            message,
            classify(text, self.core.rules),
            sealed,
            new_learner=False,
            new_identity=False,
        )

    def _cross(self, index: int, now: datetime) -> Step | None:
        """A learner whose phone we know writes from another channel, giving it: linked, not a new learner."""
        for _ in range(8):
            learner = self.rng.choice(self.learners)
            channels = {i.channel for i in learner.identities}
            free = [c for c in ("wechat", "telegram") if c not in channels]
            if learner.phone is not None and not learner.awaiting and free:
                break
        else:
            return None
        identity = self._identity(free[0], learner.locale, learner.name)
        learner.identities.append(identity)
        text = self._text(learner.locale)
        message = self._message(identity, text, now, phone=learner.phone)
        vault = self.core.vault
        sealed = Sealed(
            recipient=vault.encrypt(identity.sender_id),
            address=vault.encrypt(identity.sender_id),
            address_index=vault.blind_index(identity.channel, identity.sender_id),
            contact=vault.encrypt(learner.phone),
        )
        return self._open(
            index,
            now,
            learner,
            identity,
            message,
            classify(text, self.core.rules),
            sealed,
            new_learner=False,
            new_identity=True,
        )

    def _open(
        self,
        index: int,
        now: datetime,
        learner: LearnerSim,
        identity: Identity,
        message: InboundMessage,
        classification: Classification,
        sealed: Sealed,
        *,
        new_learner: bool,
        new_identity: bool,
    ) -> Step:
        core = self.core
        major = classification.severity == "major"
        department = core.policy.department_for(classification.category)
        ticket = TicketSim(
            key=index,
            locale=classification.language,
            department=department,
            has_contact=sealed.contact is not None,
        )
        self.tickets[index] = ticket
        ticket.awaiting = self._next_field(ticket, learner)
        if ticket.awaiting is not None:
            if not learner.awaiting:
                self.waiting.append(learner.key)
            learner.awaiting.append(index)
        received = min(message.received_at, now)
        dues = {
            "entry": core.clocks.due("entry", received, major=major),
            "route": core.clocks.due("route", now, major=major),
            "acknowledge": core.clocks.due("acknowledge", now, major=major),
            "claim": core.clocks.due("claim", now, major=major),
        }
        number = "TS-000000-00000"  # the real one comes from the counter; same length
        locale, staff = ticket.locale, core.staff_locale
        common = {
            "number": number,
            "category": classification.category,
            "severity": classification.severity,
            "department_name": core.department_name(department),
            "summary": summary(message.text),
        }
        texts = {
            "ack": core.templates.render(
                locale,
                "ack.txt",
                **common,
                limits=core.limits(major=major),
                claim_due=core.local_text(dues["claim"]),
                second_instance=(
                    core.policy.second_instance.contact_zh
                    if locale == "zh"
                    else core.policy.second_instance.contact_en
                ),
            ),
            "card": core.templates.render(
                staff,
                "card.txt",
                **common,
                status="routed",
                owner=None,
                channel=message.channel,
                learner=mask("name", learner.name) if learner.name else mask("id", identity.sender_id),
                course=None,
                stage="claim",
                due=core.local_text(dues["claim"]),
            ),
        }
        if ticket.awaiting is not None:
            texts["ask"] = core.templates.render(locale, f"ask_{ticket.awaiting}.txt", number=number)
        if major:
            texts["alert_major"] = core.templates.render(
                staff, "alert_major.txt", **common, reasons=classification.reasons
            )
        if classification.data_leak:
            texts["alert_data_leak"] = core.templates.render(staff, "alert_data_leak.txt", **common)
        return Step(
            index=index,
            message=message,
            now=now,
            learner=learner.key,
            identity=(identity.channel, identity.sender_id),
            locale=learner.locale,
            new_learner=new_learner,
            new_identity=new_identity,
            ticket=index,
            department=department,
            opens=True,
            ask=ticket.awaiting,
            sealed=sealed,
            texts=texts,
            day=core.calendar.local_date(now),
            classification=classification,
            dues=dues,
        )

    def _answer(self, index: int, now: datetime) -> Step:
        """A learner answers the question of their newest ticket that awaits one."""
        rng = self.rng
        key = rng.choice(self.waiting[-40:])  # people answer soon after being asked
        learner = self.learners[key]
        ticket = self.tickets[learner.awaiting[-1]]
        answered = ticket.awaiting
        assert answered is not None
        phone = self._phone()
        text = rng.choice(ANSWERS[ticket.locale][answered]).format(phone=phone)
        value = "" if text.strip().lower() in SKIP_WORDS else text.strip()[:500]
        records_phone = answered == "contact" and bool(value) and sum(ch.isdigit() for ch in value) >= 7
        if answered == "course":
            ticket.has_course = True
        elif answered == "expected_resolution":
            ticket.has_expected = True
        else:
            ticket.has_contact = True
        if records_phone:
            learner.phone = value
        ticket.awaiting = self._next_field(ticket, learner)
        if ticket.awaiting is None:
            learner.awaiting.remove(ticket.key)
            if not learner.awaiting:
                self.waiting.remove(key)
        identity = rng.choice(learner.identities)
        message = self._message(identity, text, now)
        core, vault = self.core, self.core.vault
        number = "TS-000000-00000"
        if ticket.awaiting is not None:
            texts = {"ask": core.templates.render(ticket.locale, f"ask_{ticket.awaiting}.txt", number=number)}
        else:
            texts = {"thanks": core.templates.render(ticket.locale, "details_complete.txt", number=number)}
        texts["notice"] = core.templates.render(
            core.staff_locale, "notice_learner_message.txt", number=number, text=summary(text, 500)
        )
        sealed = Sealed(
            recipient=vault.encrypt(identity.sender_id),
            contact=vault.encrypt(value) if answered == "contact" else None,
            phone=vault.encrypt(value) if records_phone else None,
            phone_index=vault.blind_index("phone", value) if records_phone else None,
        )
        return Step(
            index=index,
            message=message,
            now=now,
            learner=key,
            identity=(identity.channel, identity.sender_id),
            locale=learner.locale,
            new_learner=False,
            new_identity=False,
            ticket=ticket.key,
            department=ticket.department,
            opens=False,
            ask=ticket.awaiting,
            sealed=sealed,
            texts=texts,
            day=core.calendar.local_date(now),
            answered=answered,
            answer=value,
            records_phone=records_phone,
        )


def expected_replies(step: Step) -> int:
    """How many learner-facing texts intake queues for this step (ack + ask, or ask / thanks)."""
    return 1 + (step.ask is not None) if step.opens else 1


# ---------------------------------------------------------------------------------------------------
# The raw baseline: the same rows, one plain statement each, bare driver
# ---------------------------------------------------------------------------------------------------

INSERT_LEARNER = (
    "INSERT INTO learners (name_enc, phone_enc, phone_index, email_enc, email_index, locale,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
INSERT_IDENTITY = (
    "INSERT INTO learner_identities (learner_id, channel, address_enc, address_index,"
    " created_at) VALUES (?, ?, ?, ?, ?) RETURNING id"
)
UPSERT_COUNTER = (
    "INSERT INTO ticket_counters (prefix, day, value) VALUES (?, ?, 1)"
    " ON CONFLICT (prefix, day) DO UPDATE SET value = ticket_counters.value + 1"
    " RETURNING value"
)
INSERT_TICKET = (
    "INSERT INTO tickets (number, status, category, severity, department, channel, locale, learner_id,"
    " identity_id, first_contact_department, summary, contact_enc, awaiting_field, amount_yuan, data_leak,"
    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
INSERT_INBOUND = (
    "INSERT INTO messages (ticket_id, direction, channel, external_id, text, attachments, raw,"
    " at) VALUES (?, 'in', ?, ?, ?, ?, ?, ?) RETURNING id"
)
INSERT_OUTBOUND = (
    "INSERT INTO messages (ticket_id, direction, channel, text, attachments, outbox_id, at)"
    " VALUES (?, 'out', ?, ?, '[]', ?, ?)"
)
INSERT_CLOCK = (
    "INSERT INTO clocks (ticket_id, stage, started_at, due_at, met_at, paused, escalation_level)"
    " VALUES (?, ?, ?, ?, ?, ?, 0) RETURNING id"
)
INSERT_EVENT = "INSERT INTO events (ticket_id, at, actor, action, detail) VALUES (?, ?, ?, ?, ?)"
INSERT_OUTBOX = (
    "INSERT INTO outbox (key, ticket_id, channel, recipient_enc, kind, payload, status, attempts,"
    " next_attempt_at, meets_clock_id, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)"
    " RETURNING id"
)
UPDATE_TICKET = {  # the answered field's column
    field: f"UPDATE tickets SET updated_at = ?, awaiting_field = ?, {column} = ? WHERE id = ?"
    for field, column in (
        ("course", "course"),
        ("expected_resolution", "expected_resolution"),
        ("contact", "contact_enc"),
    )
}
UPDATE_PHONE = "UPDATE learners SET phone_enc = ?, phone_index = ? WHERE id = ?"


class RawDB(Protocol):
    statements: int  # data statements sent (not BEGIN / COMMIT)

    def ts(self, value: datetime) -> Any: ...
    def day(self, value: date) -> Any: ...
    def num(self, value: Decimal | None) -> Any: ...
    async def begin(self) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...
    async def execute(self, sql: str, *args: Any) -> None: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...
    async def close(self) -> None: ...


SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA foreign_keys=ON",
)


class RawSqlite:
    """aiosqlite with production's pragmas; one thread hop per statement (execute_fetchall)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.statements = 0

    @classmethod
    async def connect(cls, path: Path) -> RawSqlite:
        conn = await aiosqlite.connect(path, isolation_level=None)
        for pragma in SQLITE_PRAGMAS:
            await conn.execute_fetchall(pragma)
        return cls(conn)

    def ts(self, value: datetime) -> Any:  # as SQLAlchemy stores it: naive UTC, microseconds
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    def day(self, value: date) -> Any:
        return value.isoformat()

    def num(self, value: Decimal | None) -> Any:
        return None if value is None else float(value)

    async def begin(self) -> None:
        await self.conn.execute_fetchall("BEGIN IMMEDIATE")

    async def commit(self) -> None:
        await self.conn.execute_fetchall("COMMIT")

    async def rollback(self) -> None:
        if self.conn.in_transaction:
            await self.conn.execute_fetchall("ROLLBACK")

    async def execute(self, sql: str, *args: Any) -> None:
        self.statements += 1
        await self.conn.execute_fetchall(sql, args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self.statements += 1
        rows = list(await self.conn.execute_fetchall(sql, args))
        return rows[0][0] if rows else None

    async def close(self) -> None:
        await self.conn.close()


class RawPostgres:
    """asyncpg, its prepared-statement cache, one round trip per statement."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.statements = 0
        self._sql: dict[str, str] = {}
        self._tx: Any = None

    @classmethod
    async def connect(cls, dsn: str) -> RawPostgres:
        return cls(await asyncpg.connect(dsn))

    def _pg(self, sql: str) -> str:
        converted = self._sql.get(sql)
        if converted is None:
            parts = sql.split("?")
            converted = parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))
            self._sql[sql] = converted
        return converted

    def ts(self, value: datetime) -> Any:
        return value

    def day(self, value: date) -> Any:
        return value

    def num(self, value: Decimal | None) -> Any:
        return value

    async def begin(self) -> None:
        self._tx = self.conn.transaction()
        await self._tx.start()

    async def commit(self) -> None:
        await self._tx.commit()
        self._tx = None

    async def rollback(self) -> None:
        if self._tx is not None:
            await self._tx.rollback()
            self._tx = None

    async def execute(self, sql: str, *args: Any) -> None:
        self.statements += 1
        await self.conn.execute(self._pg(sql), *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self.statements += 1
        return await self.conn.fetchval(self._pg(sql), *args)

    async def close(self) -> None:
        await self.conn.close()


@dataclass
class RawState:
    staff: Mapping[str, str]  # staff recipients (departments, "managers"), encrypted once beforehand
    learners: dict[int, int] = field(default_factory=dict)
    identities: dict[tuple[str, str], int] = field(default_factory=dict)
    tickets: dict[int, tuple[int, str]] = field(default_factory=dict)  # key -> (id, number)


def _payload(
    text: str,
    meta: Mapping[str, Any],
    *,
    subject: str | None = None,
    reply_to: str | None = None,
    buttons: Sequence[tuple[str, str]] = (),
) -> str:
    return json.dumps(
        {
            "text": text,
            "subject": subject,
            "reply_to": reply_to,
            "buttons": [list(b) for b in buttons],
            "meta": dict(meta),
        }
    )


async def write_raw(db: RawDB, step: Step, state: RawState) -> None:
    """One complaint's rows in one transaction, as intake writes them."""
    await db.begin()
    try:
        if step.opens:
            await _write_open(db, step, state)
        else:
            await _write_answer(db, step, state)
        await db.commit()
    except BaseException:
        await db.rollback()
        raise


async def _outbox(
    db: RawDB,
    key: str,
    ticket_id: int,
    channel: str,
    recipient: str,
    kind: str,
    payload: str,
    now: Any,
    clock_id: int | None = None,
) -> int:
    outbox_id: int = await db.fetchval(
        INSERT_OUTBOX, key, ticket_id, channel, recipient, kind, payload, now, clock_id, now
    )
    return outbox_id


async def _write_inbound(db: RawDB, step: Step, ticket_id: int, now: Any) -> int:
    m = step.message
    attachments = json.dumps(
        [
            {"kind": a.kind, "ref": a.ref, "name": a.name, "mime": a.mime, "size": a.size}
            for a in m.attachments
        ]
    )
    at = db.ts(m.received_at if m.received_at <= step.now else step.now)
    inbound_id: int = await db.fetchval(
        INSERT_INBOUND, ticket_id, m.channel, m.external_id, m.text, attachments, json.dumps(dict(m.raw)), at
    )
    return inbound_id


async def _write_open(db: RawDB, step: Step, state: RawState) -> None:
    m, s, c = step.message, step.sealed, step.classification
    assert c is not None
    now = db.ts(step.now)
    if step.new_learner:
        state.learners[step.learner] = await db.fetchval(
            INSERT_LEARNER, s.name, s.phone, s.phone_index, s.email, s.email_index, step.locale, now
        )
    learner_id = state.learners[step.learner]
    if step.new_identity:
        state.identities[step.identity] = await db.fetchval(
            INSERT_IDENTITY, learner_id, m.channel, s.address, s.address_index, now
        )
    identity_id = state.identities[step.identity]
    sequence = await db.fetchval(UPSERT_COUNTER, "TS", db.day(step.day))
    number = str(TicketNumber("TS", step.day, int(sequence)))
    ticket_id: int = await db.fetchval(
        INSERT_TICKET,
        number,
        "routed",
        c.category,
        c.severity,
        step.department,
        m.channel,
        c.language,
        learner_id,
        identity_id,
        "service",
        summary(m.text),
        s.contact,
        step.ask,
        db.num(c.amount_yuan),
        c.data_leak,
        now,
        now,
    )
    state.tickets[step.ticket] = (ticket_id, number)
    inbound_id = await _write_inbound(db, step, ticket_id, now)
    clocks: dict[str, int] = {}
    received = db.ts(min(m.received_at, step.now))
    for stage, started, met in (
        ("entry", received, now),
        ("route", now, now),
        ("acknowledge", now, None),
        ("claim", now, None),
    ):
        due = db.ts(step.dues[stage])
        clocks[stage] = await db.fetchval(INSERT_CLOCK, ticket_id, stage, started, due, met, False)
    actor = f"learner:{m.channel}"
    reasons = "; ".join(c.reasons) or "no keyword matched"
    await db.execute(INSERT_EVENT, ticket_id, now, actor, "received", f"via {m.channel}")
    await db.execute(
        INSERT_EVENT, ticket_id, now, "complaintbot", "classified", f"{c.category}/{c.severity}: {reasons}"
    )
    await db.execute(INSERT_EVENT, ticket_id, now, "complaintbot", "routed", step.department)
    meta = {"ticket_number": number}
    subject = f"[{number}] {m.subject or ''}".strip()
    ack = step.texts["ack"]
    outbox_id = await _outbox(
        db,
        f"in:{inbound_id}:ack",
        ticket_id,
        m.channel,
        s.recipient,
        "ack",
        _payload(ack, meta, subject=subject, reply_to=m.external_id),
        now,
        clocks["acknowledge"],
    )
    await db.execute(INSERT_OUTBOUND, ticket_id, m.channel, ack, outbox_id, now)
    if step.ask is not None:
        ask = step.texts["ask"]
        outbox_id = await _outbox(
            db,
            f"in:{inbound_id}:ask",
            ticket_id,
            m.channel,
            s.recipient,
            "ask",
            _payload(ask, {**meta, "field": step.ask}),
            now,
        )
        await db.execute(INSERT_OUTBOUND, ticket_id, m.channel, ask, outbox_id, now)
    staff_meta = {**meta, "department": step.department}
    buttons = [
        (label, f"{action}:{number}")
        for label, action in (
            ("Claim", "claim"),
            ("Reply", "reply"),
            ("Resolve", "resolve"),
            ("Escalate", "escalate"),
        )
    ]
    await _outbox(
        db,
        f"ticket:{ticket_id}:card",
        ticket_id,
        "staff",
        state.staff[step.department],
        "card",
        _payload(step.texts["card"], staff_meta, buttons=buttons),
        now,
    )
    if c.severity == "major":
        await _outbox(
            db,
            f"ticket:{ticket_id}:alert:major",
            ticket_id,
            "staff",
            state.staff["managers"],
            "alert",
            _payload(step.texts["alert_major"], staff_meta),
            now,
        )
        await db.execute(INSERT_EVENT, ticket_id, now, "complaintbot", "alerted", "managers: major")
    if c.data_leak:
        alert = _payload(step.texts["alert_data_leak"], staff_meta)
        await _outbox(
            db,
            f"ticket:{ticket_id}:alert:data-leak",
            ticket_id,
            "staff",
            state.staff["compliance"],
            "alert",
            alert,
            now,
        )
        await db.execute(INSERT_EVENT, ticket_id, now, "complaintbot", "alerted", "compliance: data leak")


async def _write_answer(db: RawDB, step: Step, state: RawState) -> None:
    m, s = step.message, step.sealed
    assert step.answered is not None
    now = db.ts(step.now)
    ticket_id, number = state.tickets[step.ticket]
    inbound_id = await _write_inbound(db, step, ticket_id, now)
    value = s.contact if step.answered == "contact" else step.answer
    await db.execute(UPDATE_TICKET[step.answered], now, step.ask, value, ticket_id)
    if step.records_phone:
        await db.execute(UPDATE_PHONE, s.phone, s.phone_index, state.learners[step.learner])
    await db.execute(INSERT_EVENT, ticket_id, now, f"learner:{m.channel}", "details", step.answered)
    meta: dict[str, Any] = {"ticket_number": number}
    if step.ask is not None:
        text = step.texts["ask"]
        outbox_id = await _outbox(
            db,
            f"in:{inbound_id}:ask",
            ticket_id,
            m.channel,
            s.recipient,
            "ask",
            _payload(text, {**meta, "field": step.ask}),
            now,
        )
    else:
        text = step.texts["thanks"]
        outbox_id = await _outbox(
            db,
            f"in:{inbound_id}:thanks",
            ticket_id,
            m.channel,
            s.recipient,
            "notice",
            _payload(text, meta),
            now,
        )
    await db.execute(INSERT_OUTBOUND, ticket_id, m.channel, text, outbox_id, now)
    notice = _payload(step.texts["notice"], {**meta, "department": step.department})
    await _outbox(
        db,
        f"in:{inbound_id}:staff-notice",
        ticket_id,
        "staff",
        state.staff[step.department],
        "notice-staff",
        notice,
        now,
    )


# ---------------------------------------------------------------------------------------------------
# Running and timing
# ---------------------------------------------------------------------------------------------------


@dataclass
class Timing:
    backend: str
    what: str
    n: int
    concurrency: int
    seconds: float
    cpu_seconds: float  # the process's CPU time (every thread: the driver's too)
    latencies: list[float]  # seconds, one per call

    def add(self, seconds: float, cpu_seconds: float, latencies: list[float]) -> None:
        self.seconds += seconds
        self.cpu_seconds += cpu_seconds
        self.latencies += latencies

    @property
    def per_s(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds / self.n * 1000 if self.n else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))  # nearest rank
        return ordered[rank] * 1000


async def run_steps(
    steps: Sequence[Step],
    call: Callable[[int, Step], Awaitable[None]],
    concurrency: int,
) -> tuple[float, float, list[float]]:
    """Run the steps with `concurrency` workers (a learner's steps stay in one worker, in order)."""
    latencies = [0.0] * len(steps)
    parts: list[list[tuple[int, Step]]] = [[] for _ in range(concurrency)]
    for position, step in enumerate(steps):
        parts[step.learner % concurrency].append((position, step))

    async def worker(number: int, part: list[tuple[int, Step]]) -> None:
        clock = time.perf_counter
        for position, step in part:
            began = clock()
            await call(number, step)
            latencies[position] = clock() - began

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(number, part) for number, part in enumerate(parts)))
    return time.perf_counter() - began, time.process_time() - cpu, latencies


@dataclass
class BackendRun:
    backend: str
    intake: Timing
    baseline: Timing
    intake_statements: float  # SQL statements per complaint, counted during warm-up
    baseline_statements: float
    mismatches: int  # steps whose intake result differed from the simulation
    row_counts: tuple[dict[str, int], dict[str, int]]
    note: str = ""


def make_core(sessions: async_sessionmaker[Any], vault: Vault, templates: Templates) -> CoreContext:
    return CoreContext(
        sessions=sessions,
        policy=parse_policy(),
        vault=vault,
        templates=templates,
        department_names=DEPARTMENTS,
    )


async def row_counts(db: RawDB) -> dict[str, int]:
    counts = {table: int(await db.fetchval(f"SELECT count(*) FROM {table}")) for table in TABLES}
    counts["counter"] = int(await db.fetchval("SELECT coalesce(sum(value), 0) FROM ticket_counters"))
    return counts


CHUNK = 100  # intake and baseline take turns every CHUNK complaints, so drifts in machine speed hit both


async def bench_backend(
    backend: str,
    intake_url: str,
    baseline_url: str,
    connect_raw: Callable[[str], Awaitable[RawDB]],
    one_writer: bool,
    steps: Sequence[Step],
    warmup: int,
    concurrency: int,
    vault: Vault,
    templates: Templates,
    profile: bool,
) -> BackendRun:
    warm, timed = steps[:warmup], steps[warmup:]
    engine = create_engine(intake_url)  # intake: the production engine
    raw_engine = create_engine(baseline_url)
    try:
        await upgrade(engine)
        await upgrade(raw_engine)
    finally:
        await raw_engine.dispose()
    # SQLite: like production's pool of one connection, concurrent baseline writers queue for a single
    # connection (SQLite has one writer at a time; more connections would wait in its sleeping busy handler).
    conns: list[RawDB] = []
    try:
        for _ in range(1 if one_writer else concurrency):
            conns.append(await connect_raw(baseline_url))
        intake = Intake(make_core(session_factory(engine), vault, templates))
        results: dict[int, IntakeResult] = {}
        state = RawState(staff={key: vault.encrypt(key) for key in (*DEPARTMENTS, "managers")})
        queue = asyncio.Lock()

        async def receive(_worker: int, step: Step) -> None:
            results[step.index] = await intake.receive(step.message, step.now)

        async def write(worker: int, step: Step) -> None:
            if one_writer:
                async with queue:
                    await write_raw(conns[0], step, state)
            else:
                await write_raw(conns[worker], step, state)

        statements = _StatementCounter(engine)
        await run_steps(warm, receive, 1)
        statements.stop()
        await run_steps(warm, write, 1)
        baseline_statements = conns[0].statements / max(len(warm), 1)
        intake_timing = Timing(backend, "intake", len(timed), concurrency, 0.0, 0.0, [])
        baseline_timing = Timing(backend, "raw baseline", len(timed), concurrency, 0.0, 0.0, [])
        profiler = cProfile.Profile() if profile else None
        for first in range(0, len(timed), CHUNK):
            chunk = timed[first : first + CHUNK]
            if profiler is not None:
                profiler.enable()
            intake_timing.add(*await run_steps(chunk, receive, concurrency))
            if profiler is not None:
                profiler.disable()
            baseline_timing.add(*await run_steps(chunk, write, concurrency))
        if profiler is not None:
            _print_profile(backend, profiler, len(timed))
        baseline_counts = await row_counts(conns[0])
    finally:
        await engine.dispose()
        for conn in conns:
            await conn.close()
    check = await connect_raw(intake_url)
    try:
        intake_counts = await row_counts(check)
    finally:
        await check.close()
    mismatches = sum(
        1
        for step in steps
        if (result := results.get(step.index)) is None
        or result.created != step.opens
        or result.duplicate
        or len(result.replies) != expected_replies(step)
    )
    return BackendRun(
        backend,
        intake_timing,
        baseline_timing,
        statements.count / max(len(warm), 1),
        baseline_statements,
        mismatches,
        (intake_counts, baseline_counts),
    )


class _StatementCounter:
    """Counts the SQL statements SQLAlchemy sends to the driver (only during the untimed warm-up)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.count = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("BEGIN"):  # as in the baseline: data statements only
            self.count += 1

    def stop(self) -> None:
        event.remove(self.engine.sync_engine, "before_cursor_execute", self._seen)


def _print_profile(backend: str, profiler: cProfile.Profile, n: int) -> None:
    """Own time by package (where the main thread's time goes), then complaintbot's functions, cumulative."""
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    by_package: dict[str, float] = {}
    raw: Mapping[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        if "site-packages/" in filename:
            key = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif filename.startswith(str(ROOT)):
            key = filename[len(str(ROOT)) + 1 :]
        elif filename == "~":
            key = "builtin " + function.split(" of ", 1)[0]
        else:
            key = "stdlib " + Path(filename).name
        by_package[key] = by_package.get(key, 0.0) + tottime
    total = sum(by_package.values()) or 1.0
    print(
        f"\n--- cProfile of intake on {backend}, timed run (profiler overhead inflates every figure; "
        "time in the driver's own thread is not seen) ---"
    )
    print("own time by package/file, per complaint:")
    for key, seconds in sorted(by_package.items(), key=lambda item: -item[1])[:20]:
        print(f"  {seconds / n * 1000:8.3f} ms  {seconds / total:6.1%}  {key}")
    stats.sort_stats("cumulative").print_stats(rf"{ROOT}/(core|channels|bot)/", 30)
    print(out.getvalue())


# -- backends --


async def bench_sqlite(
    steps: Sequence[Step], args: argparse.Namespace, vault: Vault, templates: Templates
) -> BackendRun:
    with tempfile.TemporaryDirectory(prefix="complaintbot-bench-") as tmp:
        intake_path, baseline_path = Path(tmp) / "intake.db", Path(tmp) / "baseline.db"
        intake_url, baseline_url = (
            f"sqlite+aiosqlite:///{intake_path}",
            f"sqlite+aiosqlite:///{baseline_path}",
        )
        paths = {intake_url: intake_path, baseline_url: baseline_path}

        async def connect(url: str) -> RawDB:
            return await RawSqlite.connect(paths[url])

        return await bench_backend(
            "sqlite",
            intake_url,
            baseline_url,
            connect_raw=connect,
            one_writer=True,
            steps=steps,
            warmup=args.warmup,
            concurrency=args.concurrency,
            vault=vault,
            templates=templates,
            profile=args.profile,
        )


def postgres_admin_url() -> str | None:
    url = os.environ.get("COMPLAINTBOT_TEST_POSTGRES_URL")
    if url:
        return url
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    except OSError:
        return None


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def bench_postgres(
    steps: Sequence[Step], args: argparse.Namespace, vault: Vault, templates: Templates
) -> BackendRun | None:
    admin = postgres_admin_url()
    if admin is None:
        print("postgres: skipped, no server (set COMPLAINTBOT_TEST_POSTGRES_URL or run one on port 5432)")
        return None
    stem = f"complaintbot_bench_{uuid.uuid4().hex[:10]}"
    names = (f"{stem}_intake", f"{stem}_raw")
    urls = [make_url(admin).set(database=name).render_as_string(hide_password=False) for name in names]
    conn = await asyncpg.connect(asyncpg_dsn(admin))
    try:
        version = await conn.fetchval("SHOW server_version")
        for name in names:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()

    async def connect(url: str) -> RawDB:
        return await RawPostgres.connect(asyncpg_dsn(url))

    try:
        run = await bench_backend(
            "postgres",
            urls[0],
            urls[1],
            connect_raw=connect,
            one_writer=False,
            steps=steps,
            warmup=args.warmup,
            concurrency=args.concurrency,
            vault=vault,
            templates=templates,
            profile=args.profile,
        )
        run.note = f"PostgreSQL {version}"
        return run
    finally:
        conn = await asyncpg.connect(asyncpg_dsn(admin))
        try:
            for name in names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


# -- report --


def report(runs: Sequence[BackendRun], args: argparse.Namespace) -> None:
    print()
    if not runs:
        print("no backend ran: nothing to report")
        return
    header = ("backend", "what", "conc", "n", "per_s", "p50_ms", "p99_ms", "cpu_ms")
    row = "{:<9} {:<14} {:>4} {:>6} {:>8} {:>7} {:>7} {:>7}"
    print(row.format(*header))
    for run in runs:
        for t in (run.intake, run.baseline):
            print(
                row.format(
                    t.backend,
                    t.what,
                    t.concurrency,
                    t.n,
                    f"{t.per_s:.0f}",
                    f"{t.percentile(0.50):.2f}",
                    f"{t.percentile(0.99):.2f}",
                    f"{t.cpu_ms:.2f}",
                )
            )
        ratio = run.intake.per_s / run.baseline.per_s if run.baseline.per_s else 0.0
        print(row.format(run.backend, "ratio", "-", "-", f"{ratio:.1%}", "", "", ""))
    print("(cpu_ms: this process's CPU time per complaint, all its threads; not the PostgreSQL server's)")
    if args.profile:
        print("(--profile: intake's figures include the profiler's overhead)")
    print()
    for run in runs:
        name = run.backend
        intake_counts, baseline_counts = run.row_counts
        counts = ", ".join(f"{k} {v}" for k, v in intake_counts.items())
        print(f"{name}: rows written (incl. warm-up): {counts}")
        if intake_counts == baseline_counts:
            print(f"{name}: baseline wrote the same rows as intake")
        else:
            diff = {
                k: (v, baseline_counts.get(k))
                for k, v in intake_counts.items()
                if v != baseline_counts.get(k)
            }
            print(f"{name}: WARNING: baseline wrote different rows (intake, baseline): {diff}")
        if run.mismatches:
            print(f"{name}: WARNING: {run.mismatches} intake result(s) differ from the workload's simulation")
        print(
            f"{name}: SQL statements per complaint (warm-up, without BEGIN/COMMIT): "
            f"intake {run.intake_statements:.1f}, raw baseline {run.baseline_statements:.1f}"
            + (f"; {run.note}" if run.note else "")
        )
    sqlite_run = next((run for run in runs if run.backend == "sqlite"), None)
    if sqlite_run is None:
        return
    per_s = sqlite_run.intake.per_s
    ratio = per_s / sqlite_run.baseline.per_s if sqlite_run.baseline.per_s else 0.0
    print(f"\ntargets (SQLite, concurrency {args.concurrency}, {os.cpu_count()} CPUs):")
    print(
        f"  intake >= {TARGET_PER_S:,.0f} complaints/s   {per_s:>8,.0f}/s  "
        f"{'PASS' if per_s >= TARGET_PER_S else 'MISS'}"
    )
    print(
        f"  intake >= {TARGET_RATIO:.0%} of raw baseline   {ratio:>8.1%}    "
        f"{'PASS' if ratio >= TARGET_RATIO else 'MISS'}"
    )


def describe(steps: Sequence[Step], warmup: int) -> str:
    timed = steps[warmup:]
    opened = [s for s in timed if s.opens]
    channels = " / ".join(
        f"{sum(s.message.channel == c for s in timed)} {c}" for c in ("wechat", "telegram", "email")
    )
    chinese = sum(detect_language(s.message.text) == "zh" for s in timed)
    major = sum(s.classification is not None and s.classification.severity == "major" for s in opened)
    new = sum(s.new_learner for s in opened)
    return (
        f"workload: {warmup} warm-up + {len(timed)} timed messages; timed: {len(opened)} open a ticket "
        f"({new} from new learners, {len(opened) - new} from known ones, {major} major), "
        f"{len(timed) - len(opened)} answer a question; {channels}; {chinese} in Chinese"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=2000, help="complaints timed per run (default 2000)")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--concurrency", type=int, default=1, help="asyncio tasks at work (default 1)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed complaints first (default 50)")
    parser.add_argument("--seed", type=int, default=20261123, help="workload seed")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of intake's timed run")
    args = parser.parse_args(argv)
    if args.n < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--n and --concurrency must be at least 1, --warmup at least 0")
    return args


async def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    vault, templates = Vault([generate_key()]), Templates()
    builder = WorkloadBuilder(make_core(async_sessionmaker(), vault, templates), args.seed)
    steps = builder.build(args.warmup + args.n)
    print(
        f"complaintbot intake benchmark: Python {platform.python_version()},"
        f" SQLAlchemy {sqlalchemy.__version__}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs"
    )
    print(describe(steps, args.warmup))
    load_before = _load()
    runs: list[BackendRun] = []
    if args.backend in ("sqlite", "all"):
        print("sqlite: running ...", flush=True)
        runs.append(await bench_sqlite(steps, args, vault, templates))
    if args.backend in ("postgres", "all"):
        print("postgres: running ...", flush=True)
        run = await bench_postgres(steps, args, vault, templates)
        if run is not None:
            runs.append(run)
    report(runs, args)
    print(
        f"load average (1 min) {load_before:.2f} before, {_load():.2f} after, on {os.cpu_count()} CPUs"
        " (other processes on the machine slow every figure down)"
    )


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
