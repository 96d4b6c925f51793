"""A learner whose personal data is everywhere it can be: what the erasure and retention tests start from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.outbox import enqueue, recipient_key, send_once
from core.intake.intake import Intake
from core.messages import Attachment, InboundMessage
from core.storage.models import Base, Clock, Event, Learner, Staff, Ticket
from core.tickets.moves import apply_move, staff_actor
from core.tickets.queries import get_ticket
from core.tickets.staff import add_staff
from core.tickets.workflow import CLOSED


@dataclass(frozen=True)
class Person:
    chat: str
    name: str
    phone: str
    email: str
    words: str  # what only their complaint says
    course: str

    def plain(self) -> list[str]:
        """What this person told us, as they wrote it."""
        return [self.chat, self.name, self.phone, self.email, self.words, self.course]

    def needles(self, core: CoreContext) -> list[str]:
        """Every form in which this person could still be found in the database."""
        return [
            *self.plain(),
            core.vault.blind_index("phone", self.phone),
            core.vault.blind_index("email", self.email),
            core.vault.blind_index("telegram", self.chat),
            str(recipient_key(core.vault, "telegram", self.chat)),  # how the outbox orders its messages
        ]


LI = Person("tg-70001", "李明", "13812345678", "li.ming@example.com", "机构一直拖着不退", "雅思周末强化班")
WANG = Person("tg-70002", "王芳", "13987654321", "wang.fang@example.com", "前台态度恶劣还骂人", "托福晚班")


@dataclass(frozen=True)
class Story:
    numbers: list[str]
    learner_id: int


async def manager(core: CoreContext, now: datetime) -> Staff:
    async with core.sessions() as session, session.begin():
        found = await session.scalar(select(Staff).where(Staff.name == "陈主任"))
        if found is not None:
            return found
        return await add_staff(
            session, name="陈主任", department="service", role="manager", now=now, telegram_id="9000"
        )


async def tell(
    core: CoreContext, intake: Intake, person: Person, when: datetime, *, attachment: Path | None = None
) -> Story:
    """Two complaints of `person`: details answered, staff notes and plan, a reply, a /status answer."""
    channel = FakeChannel("telegram")
    ids = iter(range(1, 100))

    def said(text: str, at: datetime, **fields: Any) -> InboundMessage:
        # Telegram's own form of id, "<chat>:<message>": the chat id is personal data too.
        return channel.message(person.chat, text, at, external_id=f"{person.chat}:{next(ids)}", **fields)

    files = (Attachment("document", str(attachment), "receipt.pdf"),) if attachment else ()
    first = await intake.receive(
        said(
            f"我是{person.name}，电话{person.phone}，邮箱{person.email}。交了3000元，{person.words}。",
            when,
            sender_name=person.name,
            phone=person.phone,
            email=person.email,
            attachments=(*files, Attachment("photo", "AgACAgIAAxkBAAIBq2ZfileId")),
            raw={"from": {"id": person.chat, "first_name": person.name}},
        ),
        when,
    )
    later = when + timedelta(minutes=2)
    await intake.receive(said(person.course, later), later)
    await intake.receive(said(f"全额退款给{person.name}", later), later)
    second = await intake.receive(said(f"{person.name}：老师上课总是迟到", later, new_ticket=True), later)
    staff = await manager(core, when)
    async with core.sessions() as session, session.begin():
        ticket = await get_ticket(session, first.ticket_number)
        actor = staff_actor(staff)
        await apply_move(core, session, ticket, "claim", actor, later)
        await apply_move(
            core, session, ticket, "note", actor, later, detail=f"{person.name} 电话 {person.phone}"
        )
        await apply_move(core, session, ticket, "plan", actor, later, detail=f"退款给{person.name}的账户")
        # A severity correction keeps the (masked) text it was made on; staff's reason quotes the learner.
        other = await get_ticket(session, second.ticket_number)
        await apply_move(
            core,
            session,
            other,
            "severity",
            actor,
            later,
            detail=f"{person.name}说全班都迟到",
            severity="major",
        )
        enqueue(
            session,
            core.vault,
            key=f"test:{ticket.id}:reply",
            channel="telegram",
            recipient=person.chat,
            kind="reply",
            text=f"{person.name}您好，{person.words}的问题正在处理",
            now=later,
            ticket=ticket,
            reply_to=f"{person.chat}:1",
        )
    await send_once(
        core.sessions,
        core.vault,
        key=f"telegram:{person.chat}:99:status",
        channel="telegram",
        recipient=person.chat,
        kind="notice",
        text=f"{first.ticket_number} {person.name}",
        now=later,
    )
    async with core.sessions() as session:
        learner_id = (await get_ticket(session, first.ticket_number)).learner_id
    return Story([first.ticket_number, second.ticket_number], learner_id)


async def close(core: CoreContext, number: str, at: datetime, satisfaction: int = 4) -> None:
    async with core.sessions() as session, session.begin():
        ticket = await get_ticket(session, number)
        ticket.status, ticket.closed_at, ticket.satisfaction = CLOSED, at, satisfaction


async def everything(core: CoreContext) -> str:
    """Every value of every table as text, encrypted columns decrypted: where personal data could hide."""
    parts: list[str] = []
    async with core.sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    if column.endswith("_enc"):
                        value = core.vault.decrypt(value)
                    parts.append(json.dumps(value, ensure_ascii=False, default=str))
    return "\n".join(parts)


async def statistics(core: CoreContext) -> dict[str, Any]:
    """What reports are made of: per ticket its facts, clocks and audit trail; counts per category."""
    async with core.sessions() as session:
        tickets = {
            t.number: (
                t.category,
                t.severity,
                t.department,
                t.channel,
                t.status,
                t.created_at,
                t.closed_at,
                t.satisfaction,
                t.amount_yuan,
                t.learner_id,
            )
            for t in await session.scalars(select(Ticket).order_by(Ticket.id))
        }
        clocks = [
            (c.ticket_id, c.stage, c.started_at, c.due_at, c.met_at, c.escalation_level)
            for c in await session.scalars(select(Clock).order_by(Clock.id))
        ]
        events = [
            (e.ticket_id, e.at, e.actor, e.action)
            for e in await session.scalars(
                select(Event).where(Event.action.not_in(("erased", "anonymized"))).order_by(Event.id)
            )
        ]
        per_category = {
            category: count
            for category, count in await session.execute(
                select(Ticket.category, func.count()).group_by(Ticket.category)
            )
        }
        learners = await session.scalar(select(func.count()).select_from(Learner))
    return {
        "tickets": tickets,
        "clocks": clocks,
        "events": events,
        "per_category": per_category,
        "learners": learners,
    }
