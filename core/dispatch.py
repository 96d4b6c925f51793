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
what waits, is read through `core.queue`.

A crash after a send and before its record leaves a lease that runs out: the row is claimed again and
sent once more under the same idempotency key, so a message is never lost and is at most repeated once
per crash. A text longer than its channel takes goes in parts, each recorded as it goes (`core.parts`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import BindParameter, Select, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import queue
from core.models import Clock
from core.models_delivery import OutboxRow
from core.outbox import (
    DEAD,
    PARKED,
    PENDING,
    SENDING,
    SENT,
    LaneLimits,
    NotConfiguredError,
    PacedError,
    PermanentSendError,
    Sender,
    TemporarySendError,
    fall_back,
    to_message,
)
from core.parts import TakenOver, needs_parts, send_in_parts, text_limit, whole_kinds
from core.privacy import Vault
from core.queue import LaneState
from core.redaction import Redactor

REMOVED_AFTER_DELIVERY = "(personal data: removed after delivery)"
log = logging.getLogger(__name__)

ACK = "ack"  # the kind that goes first: the promise is an acknowledgement within seconds


class DeliveryObserver(Protocol):
    """What the dispatcher reports as it records results (the web app's metrics implement it)."""

    def delivered(self, lane: str, kind: str, result: str, waited: timedelta | None) -> None:
        """`result`: sent | retried | dead | parked | paced; `waited`: from the row's creation to its
        delivery (for `sent` only)."""


@dataclass
class DispatchReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    parked: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.dead + self.parked

    def add(self, other: DispatchReport) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.dead += other.dead
        self.parked += other.parked


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


@dataclass
class _Outcome:
    row: OutboxRow
    external_ref: str | None = None
    thread_ref: str | None = None
    error: str | None = None
    permanent: bool = False
    retry_after: float | None = None
    paced: bool = False
    parked: bool = False
    skipped: bool = False  # not tried: the pass ran out of time (see `run_lane`)


def _claim_query(acks: bool) -> Select[OutboxRow, bool]:
    """A lane's due rows (and rows whose sender died holding them), each with whether an earlier row
    to its recipient is parked, read in the same statement (one snapshot: released in between, that row
    would otherwise be overtaken). Built once: a lane runs it at every pass."""
    now: BindParameter[datetime] = bindparam("now")
    due = or_(
        (OutboxRow.status == PENDING) & (OutboxRow.next_attempt_at <= now),
        (OutboxRow.status == SENDING) & (OutboxRow.lease_until <= now),
    )
    return (
        select(OutboxRow, queue.earlier_parked().label("held"))
        .where(
            OutboxRow.channel == bindparam("lane"),
            queue.queued(),
            due,
            ~queue.earlier_waiting(),
            OutboxRow.kind == ACK if acks else OutboxRow.kind != ACK,
        )
        .order_by(OutboxRow.id)
        .limit(bindparam("batch"))
        .with_for_update(of=OutboxRow, skip_locked=True)
    )


_CLAIM_ACKS, _CLAIM_OTHERS = _claim_query(acks=True), _claim_query(acks=False)


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

        async def one(row: OutboxRow) -> _Outcome:
            async with limit:
                if self.timer() - began > lease / 2 or (stopping is not None and stopping()):
                    return _Outcome(row, skipped=True)
                try:
                    async with asyncio.timeout(lease * 0.9 - (self.timer() - began)):
                        return await self._send(sender, row)
                except TimeoutError:
                    return _Outcome(row, error="no answer from the platform before the row's lease ran out")

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
                await asyncio.shield(self._record(lane, finished, clock() if clock else now, report))
            raise
        await self._record(lane, outcomes, clock() if clock is not None else now, report)
        return report

    async def claim(self, lane: str, now: datetime) -> tuple[list[OutboxRow], int]:
        """Take `lane`'s due rows (and rows whose sender died holding them) under a lease; also returns
        how many it parked instead, behind a parked row to the same recipient."""
        batch = self.limits(lane).batch
        params = {"lane": lane, "now": now, "batch": batch}
        async with self.sessions() as session, session.begin():
            # Acknowledgements first: in a burst a learner's number must not wait behind other
            # learners' questions (each learner's own messages keep their order all the same). A
            # quarter of the batch stays for the rest, so nothing waits for ever behind a flood.
            found = list(await session.execute(_CLAIM_ACKS, params))
            rest = max(batch - len(found), batch // 4, 1)
            found += await session.execute(_CLAIM_OTHERS, {**params, "batch": rest})
            candidates = [row for row, _ in found]
            held = {row.id for row, is_held in found if is_held}
            claimed = []
            for row in candidates:
                if row.id in held:  # its recipient is unreachable: it waits with the earlier one
                    row.status, row.lease_until, row.last_error = PARKED, None, queue.HELD
                    await queue.park_behind(session, row)
                    if self.observer is not None:
                        self.observer.delivered(lane, row.kind, "parked", None)
                elif row.status == SENDING and row.attempts >= self.retry.max_attempts:
                    # Its senders kept dying before they could record anything: stop, and show it.
                    row.status, row.lease_until = DEAD, None
                    row.last_error = f"no result after {row.attempts} attempt(s): the sender never finished"
                else:
                    row.status = SENDING
                    row.attempts += 1
                    row.lease_until = now + self.retry.lease
                    claimed.append(row)
            return claimed, len(held)

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

    async def _send(self, sender: Sender, row: OutboxRow) -> _Outcome:
        outcome = _Outcome(row)
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
        except TakenOver as exc:  # its lease ran out between two parts: `_record` leaves it to the other
            outcome.error = str(exc)
        except Exception as exc:  # a sender bug must not stop the other rows; it is kept on the row
            log.exception("outbox %s: sender for %s failed", row.key, row.channel)
            outcome.error = f"{type(exc).__name__}: {exc}"
        if outcome.error is not None:
            # Stored on the row, logged, shown by `tickets show` and `run`: a platform's error text may
            # quote a URL with a secret in it, or the learner's address.
            outcome.error = self.redact(outcome.error)
        return outcome

    async def _record(
        self, lane: str, outcomes: Sequence[_Outcome], now: datetime, report: DispatchReport
    ) -> None:
        """Every result of a pass in one transaction (a commit per row would cost more than the sends)."""
        ids = [o.row.id for o in outcomes]
        async with self.sessions() as session, session.begin():
            fresh_rows = {
                row.id: row
                for row in await session.scalars(
                    select(OutboxRow).where(OutboxRow.id.in_(ids)).with_for_update()
                )
            }
            met: list[int] = []
            parked: list[OutboxRow] = []
            for outcome in outcomes:
                fresh = fresh_rows.get(outcome.row.id)
                if fresh is None or fresh.status != SENDING or fresh.attempts != outcome.row.attempts:
                    # Our lease ran out during the send and another dispatcher took the row: its
                    # result stands; overwriting it could undo a "sent" and send a third time.
                    log.warning(
                        "outbox %s: result of attempt %d dropped, row taken over",
                        outcome.row.key,
                        outcome.row.attempts,
                    )
                    continue
                result = self._apply(session, fresh, outcome, now, met, parked)
                # Paced and deferred rows come back like retried ones, without having failed.
                counted = "retried" if result in ("paced", "deferred") else result
                setattr(report, counted, getattr(report, counted) + 1)
                if self.observer is not None:
                    waited = now - fresh.created_at if result == "sent" else None
                    self.observer.delivered(lane, fresh.kind, result, waited)
            for row in parked:  # what waits for the same recipient waits parked too, untried
                await queue.park_behind(session, row)
            # What was held behind a row that is now done with (sent or dead) may go in its turn.
            done = {
                r.recipient_key for r in fresh_rows.values() if r.status in (SENT, DEAD) and r.recipient_key
            }
            if done:
                await queue.release_held(session, lane, done, now)
            if met:  # an acknowledgement meets its clock as it is delivered
                await session.execute(
                    update(Clock)
                    .where(Clock.id.in_(met), Clock.met_at.is_(None))
                    .values(met_at=now, next_check_at=None)
                    .execution_options(synchronize_session=False)
                )

    def _apply(
        self,
        session: AsyncSession,
        row: OutboxRow,
        outcome: _Outcome,
        now: datetime,
        met: list[int],
        parked_behind: list[OutboxRow],
    ) -> str:
        """One result onto its row; returns what became of it (a `DispatchReport` field, or "paced")."""
        row.lease_until = None
        if outcome.skipped:
            row.status, row.attempts = PENDING, row.attempts - 1
            return "deferred"
        if outcome.error is None:
            row.status, row.sent_at, row.last_error = SENT, now, None
            row.external_ref, row.external_thread = outcome.external_ref, outcome.thread_ref
            if row.payload.get("meta", {}).get("sensitive"):
                # Unmasked personal data sent to one person: not kept in clear once delivered.
                row.payload = {**row.payload, "text": REMOVED_AFTER_DELIVERY}
            if row.meets_clock_id is not None:
                met.append(row.meets_clock_id)
            if row.kind == ACK:
                number = row.payload.get("meta", {}).get("ticket_number") or row.key
                log.info("ticket %s acknowledged via %s", number, row.channel)
            return "sent"
        if outcome.parked or outcome.paced:
            # Nobody to send it to yet, or the destination's rate is used up: no attempt is used.
            row.attempts -= 1
            if outcome.parked:
                row.status, row.last_error = PARKED, outcome.error[:2000]
                log.warning("outbox %s: parked: %s", row.key, outcome.error)
                parked_behind.append(row)
                return "parked"
            row.status = PENDING
            row.next_attempt_at = now + timedelta(seconds=outcome.retry_after or 1.0)
            return "paced"
        row.last_error = outcome.error[:2000]
        if outcome.permanent or row.attempts >= self.retry.max_attempts:
            row.status = DEAD
            log.warning("outbox %s: gave up after %d attempt(s): %s", row.key, row.attempts, outcome.error)
            fall_back(session, row, self.vault, now)
            return "dead"
        delay = self.retry.delay(row.attempts, self.rng)
        if outcome.retry_after is not None:
            delay = max(delay, timedelta(seconds=outcome.retry_after))
            # Flood control is the platform pacing us, not a failure of this message: it must
            # not use up the attempts, or a long 429 storm would end in dead messages.
            row.attempts -= 1
        row.status = PENDING
        row.next_attempt_at = now + delay
        log.info(
            "outbox %s: attempt %d failed (%s); retry in %s", row.key, row.attempts, outcome.error, delay
        )
        return "retried"

    # What waits, and housekeeping (core.queue): for the delivery loop, `run`'s report and /metrics.

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
