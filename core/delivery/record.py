"""Recording what a lane pass came to: each row sent, retried after a backoff, parked, paced or given
up (with its fall-back), all in one transaction; the pass's counts and the retry policy behind them."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.delivery import queue
from core.delivery.outbox import DEAD, PARKED, PENDING, SENDING, SENT, fall_back
from core.storage.delivery_models import OutboxRow
from core.storage.models import Clock
from core.storage.privacy import Vault

REMOVED_AFTER_DELIVERY = "(personal data: removed after delivery)"
ACK = "ack"  # the kind that goes first: the promise is an acknowledgement within seconds
log = logging.getLogger(__name__)


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
class Outcome:
    row: OutboxRow
    external_ref: str | None = None
    thread_ref: str | None = None
    error: str | None = None
    permanent: bool = False
    retry_after: float | None = None
    paced: bool = False
    parked: bool = False
    skipped: bool = False  # not tried: the pass ran out of time (see `run_lane`)


@dataclass(frozen=True)
class Recorder:
    """Writes a pass's outcomes onto their rows (the dispatcher's own session factory and policies)."""

    sessions: async_sessionmaker[AsyncSession]
    vault: Vault
    retry: RetryPolicy
    rng: random.Random
    observer: DeliveryObserver | None

    async def record(
        self, lane: str, outcomes: Sequence[Outcome], now: datetime, report: DispatchReport
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
        outcome: Outcome,
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
