"""The outbox: every outbound message is a row written with the change that caused it, then sent.

A dispatcher claims due rows (a lease, `FOR UPDATE SKIP LOCKED` on PostgreSQL), sends each through
the channel's `Sender`, and marks it sent. A crash after the send and before the mark leaves a
lease that runs out: the row is claimed again and sent once more with the same idempotency key,
so a message is never lost and is at most repeated once per crash.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.messages import Button, OutboundMessage, SendResult
from core.models import Clock, Message, OutboxRow, Ticket
from core.privacy import Vault

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, DEAD = "pending", "sending", "sent", "dead"
# Kinds that go to the learner and so belong in the ticket's conversation.
LEARNER_KINDS = frozenset({"ack", "ask", "reply", "notice"})


class Sender(Protocol):
    """A channel's way out. Raise `TemporarySendError` to retry later, `PermanentSendError` to give up."""

    async def send(self, message: OutboundMessage) -> SendResult: ...


class TemporarySendError(Exception):
    """Worth trying again later (network down, rate limit, 5xx)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentSendError(Exception):
    """Trying again cannot help (blocked by the user, bad address, window closed)."""


def outbox_values(
    vault: Vault,
    *,
    key: str,
    channel: str,
    recipient: str,
    kind: str,
    text: str,
    now: datetime,
    ticket_id: int | None = None,
    subject: str | None = None,
    reply_to: str | None = None,
    buttons: tuple[Button, ...] = (),
    meta: Mapping[str, Any] | None = None,
    meets_clock_id: int | None = None,
) -> dict[str, Any]:
    """The column values of one outbox row (the recipient encrypted: it is personal data)."""
    return {
        "key": key,
        "ticket_id": ticket_id,
        "channel": channel,
        "recipient_enc": vault.encrypt(recipient),
        "kind": kind,
        "payload": {
            "text": text,
            "subject": subject,
            "reply_to": reply_to,
            "buttons": [[b.label, b.action] for b in buttons],
            "meta": dict(meta or {}),
        },
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "meets_clock_id": meets_clock_id,
    }


def enqueue(
    session: AsyncSession,
    vault: Vault,
    *,
    ticket: Ticket | None = None,
    meets_clock: Clock | None = None,
    **fields: Any,
) -> OutboxRow:
    """Add a message to the outbox in the caller's transaction (it is sent only if that commits).

    `fields` are those of `outbox_values`; a message to the learner also joins the conversation.
    """
    row = OutboxRow(**outbox_values(vault, **fields), ticket=ticket, meets_clock=meets_clock)
    session.add(row)
    if ticket is not None and row.kind in LEARNER_KINDS:
        session.add(
            Message(
                ticket=ticket,
                direction="out",
                channel=row.channel,
                text_enc=vault.encrypt(fields["text"]),
                attachments=[],
                at=row.created_at,
                outbox=row,
            )
        )
    return row


def notify_department(
    session: AsyncSession, vault: Vault, ticket: Ticket, *, key: str, text: str, now: datetime
) -> OutboxRow:
    """A notice about `ticket` to its department's staff chat (whatever sink serves `staff`)."""
    return enqueue(
        session,
        vault,
        key=key,
        channel="staff",
        recipient=ticket.department,
        kind="notice-staff",
        text=text,
        now=now,
        ticket=ticket,
        meta={"ticket_number": ticket.number, "department": ticket.department},
    )


def to_message(row: OutboxRow, vault: Vault, context: Mapping[str, Any] | None = None) -> OutboundMessage:
    payload = row.payload
    meta = {**payload.get("meta", {}), **(context or {})}
    return OutboundMessage(
        key=row.key,
        channel=row.channel,
        recipient=vault.decrypt(row.recipient_enc),
        kind=row.kind,
        text=str(payload.get("text", "")),
        ticket_number=payload.get("meta", {}).get("ticket_number"),
        subject=payload.get("subject"),
        reply_to=payload.get("reply_to"),
        buttons=tuple(Button(label, action) for label, action in payload.get("buttons", [])),
        meta=meta,
    )


@dataclass
class DispatchReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.dead


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(seconds=120)

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """Exponential backoff with full jitter, so many failed rows do not retry in lockstep."""
        ceiling: timedelta = min(self.max_delay, self.base_delay * (2 ** max(attempts - 1, 0)))
        return ceiling * (0.5 + rng.random() / 2)


async def mark_sent(
    session: AsyncSession,
    row: OutboxRow,
    now: datetime,
    external_ref: str | None,
    thread_ref: str | None = None,
) -> None:
    row.status = SENT
    row.external_thread = thread_ref
    if row.payload.get("meta", {}).get("sensitive"):
        # Unmasked personal data sent to one person: not kept in clear once delivered.
        row.payload = {**row.payload, "text": "(personal data: removed after delivery)"}
    row.sent_at = now
    row.lease_until = None
    row.last_error = None
    row.external_ref = external_ref
    if row.meets_clock_id is not None:
        clock = await session.get(Clock, row.meets_clock_id)
        if clock is not None and clock.met_at is None:
            clock.met_at, clock.next_check_at = now, None


class Dispatcher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        vault: Vault,
        senders: Mapping[str, Sender],
        *,
        retry: RetryPolicy | None = None,
        batch: int = 16,  # claimed rows wait for their turn under the lease: keep batches small
        concurrency: int = 8,
        rng: random.Random | None = None,
    ) -> None:
        self.sessions = sessions
        self.vault = vault
        self.senders = dict(senders)
        self.retry = retry or RetryPolicy()
        self.batch = batch
        self.concurrency = concurrency
        self.rng = rng or random.Random()

    async def claim(self, now: datetime) -> list[OutboxRow]:
        """Take due rows (and rows whose sender died holding them) under a lease, in one transaction."""
        async with self.sessions() as session, session.begin():
            # Rows of a channel with no sender wait, untouched, until one is configured.
            query = (
                select(OutboxRow)
                .where(
                    OutboxRow.channel.in_(list(self.senders)),
                    or_(
                        (OutboxRow.status == PENDING) & (OutboxRow.next_attempt_at <= now),
                        (OutboxRow.status == SENDING) & (OutboxRow.lease_until <= now),
                    ),
                )
                .order_by(OutboxRow.id)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            )
            claimed = []
            for row in await session.scalars(query):
                if row.status == SENDING and row.attempts >= self.retry.max_attempts:
                    # Its senders kept dying before they could record anything: stop, and show it.
                    row.status, row.lease_until = DEAD, None
                    row.last_error = f"no result after {row.attempts} attempt(s): the sender never finished"
                    continue
                row.status = SENDING
                row.attempts += 1
                row.lease_until = now + self.retry.lease
                claimed.append(row)
            return claimed

    async def run_once(self, now: datetime) -> DispatchReport:
        report = DispatchReport()
        rows = await self.claim(now)
        if not rows:
            return report
        limit = asyncio.Semaphore(self.concurrency)

        async def one(row: OutboxRow) -> None:
            async with limit:
                await self._send(row, now, report)

        await asyncio.gather(*(one(row) for row in rows))
        return report

    async def drain(self, now: datetime, rounds: int = 100) -> DispatchReport:
        """Dispatch until nothing is due (tests and `sweep` use it with a fixed `now`)."""
        total = DispatchReport()
        for _ in range(rounds):
            report = await self.run_once(now)
            if not report.handled:
                break
            total.sent += report.sent
            total.retried += report.retried
            total.dead += report.dead
        return total

    async def _follow(self, row: OutboxRow) -> dict[str, Any]:
        """Where a staff message about a ticket belongs: the card it edits, the card's topic."""
        if row.channel != "staff" or row.ticket_id is None or row.kind == "card":
            return {}
        edits = row.payload.get("meta", {}).get("edits")
        async with self.sessions() as session:
            query = select(OutboxRow).where(
                OutboxRow.ticket_id == row.ticket_id, OutboxRow.channel == "staff", OutboxRow.kind == "card"
            )
            query = query.where(OutboxRow.key == edits) if edits else query.where(OutboxRow.status == SENT)
            card = await session.scalar(query.order_by(OutboxRow.id.desc()).limit(1))
            newer = None
            if edits:  # a later edit of the same card makes this one pointless, and it must not win
                newer = await session.scalar(
                    select(OutboxRow.id).where(
                        OutboxRow.key.startswith(f"{edits}:edit:", autoescape=True), OutboxRow.id > row.id
                    )
                )
        if newer is not None:
            return {"superseded": True}
        if edits and (card is None or card.status != SENT or card.external_ref is None):
            raise TemporarySendError("the card to edit has not been sent yet")
        if card is None:
            return {}
        return {"card_ref": card.external_ref, "thread_ref": card.external_thread}

    async def _send(self, row: OutboxRow, now: datetime, report: DispatchReport) -> None:
        sender = self.senders.get(row.channel)
        external_ref: str | None = None
        thread_ref: str | None = None
        error: str | None = None
        permanent = False
        retry_after: float | None = None
        if sender is None:
            error = f"no sender for channel {row.channel!r} is configured"
        else:
            try:
                context = await self._follow(row)
                if not context.get("superseded"):
                    result = await sender.send(to_message(row, self.vault, context))
                    external_ref, thread_ref = result.external_ref, result.thread_ref
            except TemporarySendError as exc:
                error, retry_after = str(exc) or type(exc).__name__, exc.retry_after
            except PermanentSendError as exc:
                error, permanent = str(exc) or type(exc).__name__, True
            except Exception as exc:  # a sender bug must not stop the other rows; it is kept on the row
                log.exception("outbox %s: sender for %s failed", row.key, row.channel)
                error = f"{type(exc).__name__}: {exc}"
        async with self.sessions() as session, session.begin():
            fresh = await session.get(OutboxRow, row.id, with_for_update=True)
            if fresh is None or fresh.status != SENDING or fresh.attempts != row.attempts:
                # Our lease ran out during the send and another dispatcher took the row: its
                # result stands; overwriting it could undo a "sent" and send a third time.
                log.warning("outbox %s: result of attempt %d dropped, row taken over", row.key, row.attempts)
                return
            if error is None:
                await mark_sent(session, fresh, now, external_ref, thread_ref)
                report.sent += 1
                return
            fresh.last_error = error[:2000]
            fresh.lease_until = None
            if permanent or fresh.attempts >= self.retry.max_attempts:
                fresh.status = DEAD
                report.dead += 1
                log.warning("outbox %s: gave up after %d attempt(s): %s", row.key, fresh.attempts, error)
                _fall_back(session, fresh, self.vault, now)
            else:
                delay = self.retry.delay(fresh.attempts, self.rng)
                if retry_after is not None:
                    delay = max(delay, timedelta(seconds=retry_after))
                if retry_after is not None:
                    # Flood control is the platform pacing us, not a failure of this message: it must
                    # not use up the attempts, or a long 429 storm would end in dead messages.
                    fresh.attempts -= 1
                fresh.status = PENDING
                fresh.next_attempt_at = now + delay
                report.retried += 1
                log.info(
                    "outbox %s: attempt %d failed (%s); retry in %s", row.key, fresh.attempts, error, delay
                )


async def send_once(sessions: async_sessionmaker[AsyncSession], vault: Vault, **fields: Any) -> bool:
    """Queue one message outside any other change (a greeting, a command's answer), once per key.

    A redelivered command finds its key already queued and queues nothing: False.
    """
    async with sessions() as session, session.begin():
        if await session.scalar(select(OutboxRow.id).where(OutboxRow.key == fields["key"])) is not None:
            return False
        enqueue(session, vault, **fields)
        return True


def _fall_back(session: AsyncSession, row: OutboxRow, vault: Vault, now: datetime) -> None:
    """A message that names a fallback (`meta.fallback = {channel, recipient}`) goes there when it cannot
    be delivered: a reminder for someone who never opened a private chat with the bot reaches their
    department's chat instead of being lost."""
    meta = dict(row.payload.get("meta") or {})
    fallback = meta.pop("fallback", None)
    if not isinstance(fallback, dict) or not fallback.get("channel") or not fallback.get("recipient"):
        return
    enqueue(
        session,
        vault,
        key=f"{row.key}:fallback"[:255],
        channel=str(fallback["channel"]),
        recipient=str(fallback["recipient"]),
        kind=row.kind,
        text=str(row.payload.get("text", "")),
        now=now,
        meta=meta,
    )
