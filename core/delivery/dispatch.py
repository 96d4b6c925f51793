"""Sending the outbox: one lane per channel and staff sink, each at its own pace.

A lane pass claims the lane's due rows in one transaction (a lease; `FOR UPDATE SKIP LOCKED`, so
several instances share a lane), sends them at once within the lane's limits, and records every result
in one more transaction. Lanes never wait for each other: a staff sink that cannot deliver, an SMTP
server that is down or a platform's 429 slows only its own lane.

Order per recipient: a row is claimed only when no earlier row to the same recipient (`recipient_key`)
is still waiting, so the acknowledgement leaves before the first question and a failing message holds
back only that recipient's later messages. A row whose recipient nothing is configured to reach
(`NotConfiguredError`) is parked, without using an attempt, and so are the later rows to that recipient;
`prepare` (at start) and `release_parked` (now and then) give them another chance. What may go, and
what waits, is read through `core.delivery.queue`.

A crash after a send and before its record leaves a lease that runs out: the row is claimed again and
sent once more under the same idempotency key, so a message is never lost and is at most repeated once
per crash. A text longer than its channel takes goes in parts, each recorded as it goes
(`core.delivery.parts`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.delivery import queue
from core.delivery.claim import claim_due
from core.delivery.outbox import (
    SENT,
    LaneLimits,
    NotConfiguredError,
    PacedError,
    PermanentSendError,
    Sender,
    TemporarySendError,
    to_message,
)
from core.delivery.parts import TakenOver, needs_parts, send_in_parts, text_limit, whole_kinds
from core.delivery.queue import LaneState
from core.delivery.record import DeliveryObserver, DispatchReport, Outcome, Recorder, RetryPolicy
from core.storage.delivery_models import OutboxRow
from core.storage.privacy import Vault
from core.storage.redaction import Redactor

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        vault: Vault,
        senders: Mapping[str, Sender],
        *,
        retry: RetryPolicy | None = None,
        batch: int | None = None,  # for every lane, instead of each sender's own `limits`
        concurrency: int | None = None,
        rng: random.Random | None = None,
        observer: DeliveryObserver | None = None,
        timer: Callable[[], float] = time.monotonic,  # seconds, for a pass's own deadline
        redact: Callable[[str], str] | None = None,  # for error texts (default: identifiers only)
    ) -> None:
        self.sessions = sessions
        self.vault = vault
        self.senders = dict(senders)  # lane name (the rows' `channel`) -> its sender
        self.retry = retry or RetryPolicy()
        self.batch = batch
        self.concurrency = concurrency
        self.rng = rng or random.Random()
        self.observer = observer
        self.timer = timer
        self.redact = redact or Redactor()
        self.recorder = Recorder(sessions, vault, self.retry, self.rng, observer)

    @property
    def lanes(self) -> list[str]:
        return list(self.senders)

    def limits(self, lane: str) -> LaneLimits:
        own = getattr(self.senders.get(lane), "limits", None)
        limits = own if isinstance(own, LaneLimits) else LaneLimits()
        return LaneLimits(
            batch=self.batch or limits.batch, concurrency=self.concurrency or limits.concurrency
        )

    async def run_once(self, now: datetime) -> DispatchReport:
        """One pass of every lane, side by side."""
        report = DispatchReport()
        for lane in await asyncio.gather(*(self.run_lane(name, now) for name in self.lanes)):
            report.add(lane)
        return report

    async def drain(self, now: datetime, rounds: int = 100) -> DispatchReport:
        """Dispatch until nothing is due, as of a fixed `now` (tests; `run` sends continuously instead)."""
        total = DispatchReport()
        for _ in range(rounds):
            report = await self.run_once(now)
            if not report.handled:
                break
            total.add(report)
        return total

    async def run_lane(
        self,
        lane: str,
        now: datetime,
        clock: Callable[[], datetime] | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> DispatchReport:
        """Claim, send and record one batch of `lane`; `clock` (else `now`) times the results. Once
        `stopping()` says so, no further send starts, and what was sent is recorded."""
        report = DispatchReport()
        sender = self.senders.get(lane)
        if sender is None:
            return report
        rows, report.parked = await self.claim(lane, now)
        if not rows:
            return report
        limit = asyncio.Semaphore(self.limits(lane).concurrency)
        # A pass must be over before its lease runs out, or another instance would take its rows and
        # send them again: no send starts after half the lease (sends that time out one after another
        # leave the rest for the next pass, untried), and none may run past nine tenths of it.
        lease = self.retry.lease.total_seconds()
        began = self.timer()

        async def one(row: OutboxRow) -> Outcome:
            async with limit:
                if self.timer() - began > lease / 2 or (stopping is not None and stopping()):
                    return Outcome(row, skipped=True)
                try:
                    async with asyncio.timeout(lease * 0.9 - (self.timer() - began)):
                        return await self._send(sender, row)
                except TimeoutError:
                    return Outcome(row, error="no answer from the platform before the row's lease ran out")

        sends = [asyncio.ensure_future(one(row)) for row in rows]
        try:
            outcomes = await asyncio.gather(*sends)
        except asyncio.CancelledError:
            # Stopped in the middle of the pass: what was sent is recorded, or it would go again once
            # its lease ran out. A send cut short stays unrecorded: it goes again, at most once more.
            for send in sends:
                send.cancel()
            finished = [s.result() for s in sends if s.done() and not s.cancelled() and s.exception() is None]
            if finished:
                await asyncio.shield(self.recorder.record(lane, finished, clock() if clock else now, report))
            raise
        await self.recorder.record(lane, outcomes, clock() if clock is not None else now, report)
        return report

    async def claim(self, lane: str, now: datetime) -> tuple[list[OutboxRow], int]:
        """Take `lane`'s due rows (and rows whose sender died holding them) under a lease; also returns
        how many it parked instead, behind a parked row to the same recipient."""
        return await claim_due(self.sessions, lane, now, self.limits(lane).batch, self.retry, self.observer)

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

    async def _send(self, sender: Sender, row: OutboxRow) -> Outcome:
        outcome = Outcome(row)
        try:
            context = await self._follow(row)
            if not context.get("superseded"):
                message, limit = to_message(row, self.vault, context), text_limit(sender)
                if needs_parts(row, message, limit, whole_kinds(sender)):
                    assert limit is not None
                    result = await send_in_parts(self.sessions, sender, row, message, limit)
                else:
                    result = await sender.send(message)
                outcome.external_ref, outcome.thread_ref = result.external_ref, result.thread_ref
        except NotConfiguredError as exc:
            outcome.error, outcome.parked = str(exc) or type(exc).__name__, True
        except PacedError as exc:
            outcome.error, outcome.retry_after, outcome.paced = str(exc), exc.retry_after, True
        except TemporarySendError as exc:
            outcome.error, outcome.retry_after = str(exc) or type(exc).__name__, exc.retry_after
        except PermanentSendError as exc:
            outcome.error, outcome.permanent = str(exc) or type(exc).__name__, True
        except TakenOver as exc:  # its lease ran out between two parts: recording leaves it to the other
            outcome.error = str(exc)
        except Exception as exc:  # a sender bug must not stop the other rows; it is kept on the row
            log.exception("outbox %s: sender for %s failed", row.key, row.channel)
            outcome.error = f"{type(exc).__name__}: {exc}"
        if outcome.error is not None:
            # Stored on the row, logged, shown by `tickets show` and `run`: a platform's error text may
            # quote a URL with a secret in it, or the learner's address.
            outcome.error = self.redact(outcome.error)
        return outcome

    # What waits, and housekeeping (core.delivery.queue): for the delivery loop, `run`'s report and /metrics.

    async def next_due(self, lane: str) -> datetime | None:
        return await queue.next_due(self.sessions, lane)

    async def prepare(self, now: datetime) -> None:
        """At start: key rows written before recipient keys existed, and give parked rows of the
        configured lanes another chance."""
        await queue.key_unkeyed(self.sessions, self.vault)
        await self.release_parked(now)

    async def release_parked(self, now: datetime) -> int:
        return await queue.release_parked(self.sessions, self.lanes, now)

    async def states(self, now: datetime) -> list[LaneState]:
        return await queue.states(self.sessions, self.lanes, now)
