"""Claiming a lane's due rows under a lease: acknowledgements first, a row only when no earlier row to
its recipient still waits, and rows behind a parked one parked with it (`FOR UPDATE SKIP LOCKED`, so
several instances share a lane)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BindParameter, Select, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.delivery import queue
from core.delivery.outbox import DEAD, PARKED, PENDING, SENDING
from core.delivery.record import ACK, DeliveryObserver, RetryPolicy
from core.storage.delivery_models import OutboxRow


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


async def claim_due(
    sessions: async_sessionmaker[AsyncSession],
    lane: str,
    now: datetime,
    batch: int,
    retry: RetryPolicy,
    observer: DeliveryObserver | None,
) -> tuple[list[OutboxRow], int]:
    """Take `lane`'s due rows (and rows whose sender died holding them) under a lease; also returns
    how many it parked instead, behind a parked row to the same recipient."""
    params = {"lane": lane, "now": now, "batch": batch}
    async with sessions() as session, session.begin():
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
                if observer is not None:
                    observer.delivered(lane, row.kind, "parked", None)
            elif row.status == SENDING and row.attempts >= retry.max_attempts:
                # Its senders kept dying before they could record anything: stop, and show it.
                row.status, row.lease_until = DEAD, None
                row.last_error = f"no result after {row.attempts} attempt(s): the sender never finished"
            else:
                row.status = SENDING
                row.attempts += 1
                row.lease_until = now + retry.lease
                claimed.append(row)
        return claimed, len(held)
