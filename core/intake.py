"""Intake: one inbound message in, one transaction out.

In a single transaction: dedupe by `(channel, external_id)`, find or create the learner, attach the
message to the ticket it continues or open a new one (number, classification, routing, clocks,
audit events), and queue what must be sent (acknowledgement, follow-up question, staff card, alerts).
A redelivery, or a concurrent duplicate that loses the race on the unique key, returns the
original's result and creates nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import learners
from core.classify import Classification, classify
from core.context import CoreContext
from core.db import transaction
from core.messages import Button, InboundMessage
from core.models import Event, Learner, LearnerIdentity, Message, OutboxRow, Ticket
from core.numbering import allocate_number
from core.numbers import find_ticket_numbers
from core.outbox import LEARNER_KINDS, enqueue
from core.privacy import redact
from core.workflow import OPEN_STATES, ROUTED

log = logging.getLogger(__name__)

SKIP_WORDS = frozenset({"skip", "跳过", "略过", "不方便", "无", "-"})
# Conflicts on the dedupe and identity keys resolve on the next try; a few tries are plenty.
_MAX_TRIES = 5


@dataclass(frozen=True)
class IntakeResult:
    ticket_number: str
    ticket_id: int
    message_id: int
    created: bool  # a new ticket was opened
    duplicate: bool  # this message had been received before; nothing changed
    replies: tuple[str, ...]  # texts queued for the learner because of this message, in order
    reply_keys: tuple[str, ...]  # their outbox keys (a channel that replies inline marks them sent)


def _key(message_id: int, what: str) -> str:
    return f"in:{message_id}:{what}"


class Intake:
    def __init__(self, core: CoreContext, *, on_commit: Callable[[], None] | None = None) -> None:
        self.core = core
        self.on_commit = on_commit  # wakes the outbox dispatcher so acknowledgements leave at once

    async def receive(self, message: InboundMessage, now: datetime) -> IntakeResult:
        for attempt in range(1, _MAX_TRIES + 1):
            try:
                async with transaction(self.core.sessions) as session:
                    result = await self._receive(session, message, now)
                break
            except IntegrityError:
                # A concurrent delivery of the same message, or of the same new learner, won the
                # race; the next try sees its committed rows.
                if attempt == _MAX_TRIES:
                    raise
                log.info(
                    "intake %s:%s: conflict on try %d, retrying",
                    message.channel,
                    message.external_id,
                    attempt,
                )
        if self.on_commit is not None and not result.duplicate:
            self.on_commit()
        return result

    async def _receive(self, session: AsyncSession, message: InboundMessage, now: datetime) -> IntakeResult:
        existing = await session.scalar(
            select(Message).where(
                Message.channel == message.channel,
                Message.external_id == message.external_id,
                Message.direction == "in",
            )
        )
        if existing is not None:
            return await self._duplicate(session, existing)
        classification = classify(message.text, self.core.rules)
        learner, identity = await learners.find_or_create(
            session, self.core.vault, message, classification.language, now
        )
        ticket = None if message.new_ticket else await self._continued_ticket(session, message, learner)
        if ticket is not None:
            return await self._continue(session, ticket, learner, identity, message, now)
        return await self._open(session, learner, identity, message, classification, now)

    async def _duplicate(self, session: AsyncSession, existing: Message) -> IntakeResult:
        ticket = await session.get_one(Ticket, existing.ticket_id)
        keys = [_key(existing.id, what) for what in ("ack", "ask", "thanks")]
        rows = list(
            await session.scalars(select(OutboxRow).where(OutboxRow.key.in_(keys)).order_by(OutboxRow.id))
        )
        return IntakeResult(
            ticket_number=ticket.number,
            ticket_id=ticket.id,
            message_id=existing.id,
            created=False,
            duplicate=True,
            replies=tuple(str(row.payload.get("text", "")) for row in rows),
            reply_keys=tuple(row.key for row in rows),
        )

    async def _continued_ticket(
        self, session: AsyncSession, message: InboundMessage, learner: Learner
    ) -> Ticket | None:
        if learner.id is None:  # a learner created just now has no tickets yet
            return None
        mine = (Ticket.learner_id == learner.id) & Ticket.status.in_(OPEN_STATES)
        # A ticket number alone never reveals a complaint: only the learner's own tickets match.
        numbers = [str(n) for n in find_ticket_numbers(message.text or "", self.core.prefix)]
        if message.subject:
            numbers += [str(n) for n in find_ticket_numbers(message.subject, self.core.prefix)]
        if numbers:
            ticket = await session.scalar(select(Ticket).where(mine, Ticket.number.in_(numbers)).limit(1))
            if ticket is not None:
                return ticket
        if message.reply_to:
            ticket_id = await session.scalar(
                select(Message.ticket_id).where(
                    Message.channel == message.channel, Message.external_id == message.reply_to
                )
            )
            if ticket_id is None:
                ticket_id = await session.scalar(
                    select(OutboxRow.ticket_id).where(
                        OutboxRow.channel == message.channel, OutboxRow.external_ref == message.reply_to
                    )
                )
            if ticket_id is not None:
                ticket = await session.scalar(select(Ticket).where(mine, Ticket.id == ticket_id))
                if ticket is not None:
                    return ticket
        return await session.scalar(
            select(Ticket).where(mine, Ticket.awaiting_field.is_not(None)).order_by(Ticket.id.desc()).limit(1)
        )

    def _inbound(self, ticket: Ticket, message: InboundMessage, now: datetime) -> Message:
        return Message(
            ticket=ticket,
            direction="in",
            channel=message.channel,
            external_id=message.external_id,
            text=message.text,
            attachments=[
                {"kind": a.kind, "ref": a.ref, "name": a.name, "mime": a.mime, "size": a.size}
                for a in message.attachments
            ],
            raw=dict(message.raw),
            at=message.received_at if message.received_at <= now else now,
        )

    async def _open(
        self,
        session: AsyncSession,
        learner: Learner,
        identity: LearnerIdentity,
        message: InboundMessage,
        classification: Classification,
        now: datetime,
    ) -> IntakeResult:
        core = self.core
        major = classification.severity == "major"
        department = core.policy.department_for(classification.category)
        # Allocated last among the reads: on PostgreSQL the counter row stays locked until commit.
        number = await allocate_number(session, core.prefix, core.calendar.local_date(now))
        ticket = Ticket(
            number=str(number),
            status=ROUTED,
            category=classification.category,
            severity=classification.severity,
            department=department,
            channel=message.channel,
            locale=classification.language,
            learner=learner,
            identity=identity,
            first_contact_department=core.policy.departments.first_contact,
            summary=_summary(message),
            contact_enc=_known_contact(core, message),
            amount_yuan=classification.amount_yuan,
            data_leak=classification.data_leak,
            created_at=now,
            updated_at=now,
        )
        session.add(ticket)
        inbound = self._inbound(ticket, message, now)
        session.add(inbound)
        keeper = core.clocks
        received = min(message.received_at, now)
        keeper.open(session, ticket, "entry", received, major=major).met_at = now
        keeper.open(session, ticket, "route", now, major=major).met_at = now  # routed by the rules at once
        acknowledge = keeper.open(session, ticket, "acknowledge", now, major=major)
        claim = keeper.open(session, ticket, "claim", now, major=major)
        actor = f"learner:{message.channel}"
        reasons = "; ".join(classification.reasons) or "no keyword matched"
        session.add_all(
            [
                Event(ticket=ticket, at=now, actor=actor, action="received", detail=f"via {message.channel}"),
                Event(
                    ticket=ticket,
                    at=now,
                    actor="complaintbot",
                    action="classified",
                    detail=f"{classification.category}/{classification.severity}: {reasons}",
                ),
                Event(ticket=ticket, at=now, actor="complaintbot", action="routed", detail=department),
            ]
        )
        await session.flush()  # ids for the outbox keys; also where a duplicate delivery fails
        context = {
            "number": ticket.number,
            "category": ticket.category,
            "severity": ticket.severity,
            "department_name": core.department_name(department),
            "limits": core.limits(major=major),
            "claim_due": core.local_text(claim.due_at),
            "second_instance": (
                core.policy.second_instance.contact_zh
                if ticket.locale == "zh"
                else core.policy.second_instance.contact_en
            ),
        }
        ack = core.templates.render(ticket.locale, "ack.txt", **context)
        address = core.vault.decrypt(identity.address_enc)
        replies = [
            enqueue(
                session,
                core.vault,
                key=_key(inbound.id, "ack"),
                channel=message.channel,
                recipient=address,
                kind="ack",
                text=ack,
                now=now,
                ticket=ticket,
                reply_to=message.external_id,
                subject=f"[{ticket.number}] {message.subject or ''}".strip(),
                meta={"ticket_number": ticket.number},
                meets_clock=acknowledge,
            )
        ]
        ask = self._next_question(session, ticket, learner, message.channel, address, inbound.id, now)
        if ask is not None:
            replies.append(ask)
        self._staff_messages(session, ticket, learner, identity, classification, claim.due_at, now)
        log.info("ticket %s opened: %s/%s -> %s", ticket.number, ticket.category, ticket.severity, department)
        return self._result(ticket, inbound, created=True, replies=replies)

    def _staff_messages(
        self,
        session: AsyncSession,
        ticket: Ticket,
        learner: Learner,
        identity: LearnerIdentity,
        classification: Classification,
        due_at: datetime,
        now: datetime,
    ) -> None:
        core = self.core
        locale = core.staff_locale
        common = {
            "number": ticket.number,
            "category": ticket.category,
            "severity": ticket.severity,
            "department_name": core.department_name(ticket.department),
            "summary": ticket.summary,
        }
        card = core.templates.render(
            locale,
            "card.txt",
            **common,
            status=ticket.status,
            owner=None,
            channel=ticket.channel,
            learner=learners.masked_label(core.vault, learner, identity),
            course=ticket.course,
            stage="claim",
            due=core.local_text(due_at),
        )
        buttons = tuple(
            Button(label, f"{action}:{ticket.number}")
            for label, action in (
                ("Claim", "claim"),
                ("Reply", "reply"),
                ("Resolve", "resolve"),
                ("Escalate", "escalate"),
            )
        )
        meta = {"ticket_number": ticket.number, "department": ticket.department}
        enqueue(
            session,
            core.vault,
            key=f"ticket:{ticket.id}:card",
            channel="staff",
            recipient=ticket.department,
            kind="card",
            text=card,
            now=now,
            ticket=ticket,
            buttons=buttons,
            meta=meta,
        )
        if ticket.severity == "major" and core.policy.escalation.major_alerts_managers:
            alert = core.templates.render(locale, "alert_major.txt", **common, reasons=classification.reasons)
            enqueue(
                session,
                core.vault,
                key=f"ticket:{ticket.id}:alert:major",
                channel="staff",
                recipient="managers",
                kind="alert",
                text=alert,
                now=now,
                ticket=ticket,
                meta=meta,
            )
            session.add(
                Event(ticket=ticket, at=now, actor="complaintbot", action="alerted", detail="managers: major")
            )
        if ticket.data_leak:
            to = core.policy.departments.data_leak_alerts
            alert = core.templates.render(locale, "alert_data_leak.txt", **common)
            enqueue(
                session,
                core.vault,
                key=f"ticket:{ticket.id}:alert:data-leak",
                channel="staff",
                recipient=to,
                kind="alert",
                text=alert,
                now=now,
                ticket=ticket,
                meta=meta,
            )
            session.add(
                Event(
                    ticket=ticket, at=now, actor="complaintbot", action="alerted", detail=f"{to}: data leak"
                )
            )

    async def _continue(
        self,
        session: AsyncSession,
        ticket: Ticket,
        learner: Learner,
        identity: LearnerIdentity,
        message: InboundMessage,
        now: datetime,
    ) -> IntakeResult:
        core = self.core
        inbound = self._inbound(ticket, message, now)
        session.add(inbound)
        ticket.updated_at = now
        await session.flush()
        address = core.vault.decrypt(identity.address_enc)
        replies: list[OutboxRow] = []
        answered = ticket.awaiting_field
        if answered is not None:
            self._record_answer(ticket, learner, answered, message.text.strip())
            session.add(
                Event(
                    ticket=ticket,
                    at=now,
                    actor=f"learner:{message.channel}",
                    action="details",
                    detail=answered,
                )
            )
            ask = self._next_question(session, ticket, learner, message.channel, address, inbound.id, now)
            if ask is not None:
                replies.append(ask)
            else:
                thanks = core.templates.render(ticket.locale, "details_complete.txt", number=ticket.number)
                replies.append(
                    enqueue(
                        session,
                        core.vault,
                        key=_key(inbound.id, "thanks"),
                        channel=message.channel,
                        recipient=address,
                        kind="notice",
                        text=thanks,
                        now=now,
                        ticket=ticket,
                        meta={"ticket_number": ticket.number},
                    )
                )
        else:
            session.add(Event(ticket=ticket, at=now, actor=f"learner:{message.channel}", action="message"))
        notice = core.templates.render(
            core.staff_locale, "notice_learner_message.txt", number=ticket.number, text=_summary(message, 500)
        )
        enqueue(
            session,
            core.vault,
            key=_key(inbound.id, "staff-notice"),
            channel="staff",
            recipient=ticket.department,
            kind="notice-staff",
            text=notice,
            now=now,
            ticket=ticket,
            meta={"ticket_number": ticket.number, "department": ticket.department},
        )
        return self._result(ticket, inbound, created=False, replies=replies)

    def _record_answer(self, ticket: Ticket, learner: Learner, field: str, answer: str) -> None:
        # "" marks a field the learner chose not to give, so it is not asked again.
        value = "" if answer.lower() in SKIP_WORDS else answer[:500]
        if field == "contact":
            ticket.contact_enc = self.core.vault.encrypt(value)
            if value and sum(ch.isdigit() for ch in value) >= 7:
                learners.record_phone(self.core.vault, learner, value)
        elif field == "course":
            ticket.course = value
        elif field == "expected_resolution":
            ticket.expected_resolution = value
        ticket.awaiting_field = None

    def _next_question(
        self,
        session: AsyncSession,
        ticket: Ticket,
        learner: Learner,
        channel: str,
        address: str,
        message_id: int,
        now: datetime,
    ) -> OutboxRow | None:
        missing = {
            "course": ticket.course is None,
            "expected_resolution": ticket.expected_resolution is None,
            "contact": ticket.contact_enc is None and learner.phone_index is None,
        }
        field = next((f for f in self.core.policy.intake.ask_fields if missing[f]), None)
        ticket.awaiting_field = field
        if field is None:
            return None
        text = self.core.templates.render(ticket.locale, f"ask_{field}.txt", number=ticket.number)
        return enqueue(
            session,
            self.core.vault,
            key=_key(message_id, "ask"),
            channel=channel,
            recipient=address,
            kind="ask",
            text=text,
            now=now,
            ticket=ticket,
            meta={"ticket_number": ticket.number, "field": field},
        )

    def _result(
        self, ticket: Ticket, inbound: Message, *, created: bool, replies: list[OutboxRow]
    ) -> IntakeResult:
        learner_rows = [row for row in replies if row.kind in LEARNER_KINDS]
        return IntakeResult(
            ticket_number=ticket.number,
            ticket_id=ticket.id,
            message_id=inbound.id,
            created=created,
            duplicate=False,
            replies=tuple(str(row.payload["text"]) for row in learner_rows),
            reply_keys=tuple(row.key for row in learner_rows),
        )


def _summary(message: InboundMessage, limit: int = 200) -> str:
    """The start of the message for staff screens, with phone numbers and addresses masked."""
    text = redact(" ".join((message.text or "").split()))
    if not text and message.attachments:
        text = ", ".join(a.kind for a in message.attachments)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _known_contact(core: CoreContext, message: InboundMessage) -> str | None:
    contact = message.phone or message.email or (message.sender_id if message.channel == "email" else None)
    return core.vault.encrypt(contact) if contact else None
