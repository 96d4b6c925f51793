"""The outbox as queues: which rows may go now, what waits and why (the dispatcher's reading side).

A row is queued while it is pending or being sent. A queued row may go only when no earlier row to the
same recipient (`recipient_key`) is queued: that is the per-recipient order. A parked row waits for its
destination to be configured, and the rows behind it for the same recipient wait parked with it (`HELD`).
These are also the views the operator gets: per lane, the rows waiting by status, how long the oldest
sendable one has been due, and why parked ones are parked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from core.delivery.outbox import DEAD, PARKED, PENDING, SENDING, WAITING, recipient_key
from core.storage.delivery_models import OutboxRow
from core.storage.privacy import PrivacyKeyError, Vault

log = logging.getLogger(__name__)

HELD = "waiting behind an earlier message to the same recipient, which is parked"
# Spelled out as literals, as in the partial indexes' condition: with bound parameters neither SQLite
# nor PostgreSQL (prepared statements) can tell that those indexes apply.
_QUEUED: tuple[ColumnElement[str], ...] = (literal_column(f"'{PENDING}'"), literal_column(f"'{SENDING}'"))


@dataclass(frozen=True)
class LaneState:
    """One lane as the operator sees it (`/metrics`, `run`'s report and warnings)."""

    lane: str
    counts: Mapping[str, int]  # rows by status
    oldest_due: timedelta | None  # how long the longest-waiting sendable row has been due
    reasons: Sequence[str] = ()  # why rows wait: parked rows' reasons, or that no sender is configured
    configured: bool = True  # a lane of this instance (else its rows wait, untouched, for one)


def queued(table: type[OutboxRow] | Any = OutboxRow) -> ColumnElement[bool]:
    """Still to send: pending or being sent (`ix_outbox_queue`, `ix_outbox_queue_recipient`)."""
    return table.status.in_(_QUEUED)


def earlier_waiting() -> ColumnElement[bool]:
    """An earlier row to the same recipient is still pending or being sent (it must leave first)."""
    return _earlier(queued)


def _earlier(state: Callable[[Any], ColumnElement[bool]]) -> ColumnElement[bool]:
    """An earlier row to the same channel and recipient as the row at hand is in `state`."""
    earlier = aliased(OutboxRow)
    return (
        select(earlier.id)
        .where(
            earlier.channel == OutboxRow.channel,
            earlier.recipient_key == OutboxRow.recipient_key,
            state(earlier),
            earlier.id < OutboxRow.id,
        )
        .exists()
    )


async def park_behind(session: AsyncSession, row: OutboxRow) -> None:
    """Park the rows queued behind `row` for its recipient (in one statement: a backlog behind an
    unreachable recipient must not cost a pass per row)."""
    if row.recipient_key is None:
        return
    await session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.channel == row.channel,
            OutboxRow.recipient_key == row.recipient_key,
            OutboxRow.status == PENDING,
            OutboxRow.id > row.id,
        )
        .values(status=PARKED, last_error=HELD)
        .execution_options(synchronize_session=False)
    )


def earlier_parked() -> ColumnElement[bool]:
    """An earlier row to the same recipient is parked (this one must wait with it: `HELD`)."""
    # The literal status, as `ix_outbox_parked` says it, so the partial index serves the lookup.
    return _earlier(lambda earlier: earlier.status == literal_column(f"'{PARKED}'"))


async def release_held(session: AsyncSession, lane: str, keys: set[str], now: datetime) -> None:
    """The rows held behind a parked row to one of these recipients, once that row is done with."""
    await session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.channel == lane,
            OutboxRow.status == PARKED,
            OutboxRow.recipient_key.in_(keys),
            OutboxRow.last_error == HELD,
        )
        .values(status=PENDING, next_attempt_at=now, last_error=None)
        .execution_options(synchronize_session=False)
    )


async def next_due(sessions: async_sessionmaker[AsyncSession], lane: str) -> datetime | None:
    """When `lane` next has a row it may send: the earliest pending row not held back by an earlier one
    to its recipient, or the earliest lease to run out. None: nothing at all."""
    async with sessions() as session:
        pending = await session.scalar(_NEXT_PENDING, {"lane": lane})
        leased = await session.scalar(_NEXT_LEASE, {"lane": lane})
    times = [t for t in (pending, leased) if t is not None]
    return min(times) if times else None


async def key_unkeyed(sessions: async_sessionmaker[AsyncSession], vault: Vault) -> None:
    """Give rows written before recipient keys existed theirs, so they too keep the order."""
    async with sessions() as session, session.begin():
        unkeyed = await session.execute(
            select(OutboxRow.id, OutboxRow.channel, OutboxRow.recipient_enc).where(
                OutboxRow.status.in_(WAITING), OutboxRow.recipient_key.is_(None)
            )
        )
        for row_id, channel, recipient_enc in unkeyed.all():
            try:
                key = recipient_key(vault, channel, vault.decrypt(recipient_enc))
            except PrivacyKeyError:  # a key no longer configured: the row keeps no order
                log.warning("outbox row %d: recipient unreadable; sent without ordering", row_id)
                continue
            await session.execute(update(OutboxRow).where(OutboxRow.id == row_id).values(recipient_key=key))


async def release_parked(
    sessions: async_sessionmaker[AsyncSession], lanes: Sequence[str], now: datetime
) -> int:
    """Parked rows of the configured lanes become due again (a recipient may have been configured)."""
    if not lanes:
        return 0
    async with sessions() as session, session.begin():
        result = await session.execute(
            update(OutboxRow)
            .where(OutboxRow.status == PARKED, OutboxRow.channel.in_(lanes))
            .values(status=PENDING, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
    return int(getattr(result, "rowcount", 0) or 0)


async def states(
    sessions: async_sessionmaker[AsyncSession], lanes: Sequence[str], now: datetime
) -> list[LaneState]:
    """Every lane, and every channel with unfinished or failed rows, as the operator should see them. A
    channel with no sender here is not a lane: its rows wait untouched (another instance may have
    one), not due for this instance, and say why."""
    async with sessions() as session:
        counts = await session.execute(
            select(OutboxRow.channel, OutboxRow.status, func.count())
            .where(OutboxRow.status.in_((*WAITING, DEAD)))
            .group_by(OutboxRow.channel, OutboxRow.status)
        )
        oldest = await session.execute(
            select(OutboxRow.channel, func.min(OutboxRow.next_attempt_at))
            .where(
                queued(),
                OutboxRow.status == PENDING,
                OutboxRow.next_attempt_at <= now,
                ~earlier_waiting(),
            )
            .group_by(OutboxRow.channel)
        )
        reasons = await session.execute(
            select(OutboxRow.channel, OutboxRow.last_error)
            .where(OutboxRow.status == PARKED, OutboxRow.last_error != HELD)
            .distinct()
        )
    by_lane: dict[str, dict[str, int]] = {lane: {} for lane in lanes}
    for channel, status, count in counts:
        by_lane.setdefault(channel, {})[status] = count
    due = {channel: when for channel, when in oldest}
    why: dict[str, list[str]] = {}
    for channel, reason in reasons:
        why.setdefault(channel, []).append(reason or "")
    states = []
    for lane, waiting in sorted(by_lane.items()):
        configured = lane in lanes
        why_waiting = sorted(why.get(lane, []))
        if not configured:
            why_waiting.append(f"no sender for channel {lane!r} is configured")
        since = due.get(lane) if configured else None
        waited = max(now - since, timedelta(0)) if since is not None else None
        states.append(LaneState(lane, waiting, waited, why_waiting, configured))
    return states


# Built once: an idle lane asks them after every pass that found nothing.
_NEXT_PENDING = select(func.min(OutboxRow.next_attempt_at)).where(
    OutboxRow.channel == bindparam("lane"), queued(), OutboxRow.status == PENDING, ~earlier_waiting()
)
_NEXT_LEASE = select(func.min(OutboxRow.lease_until)).where(
    OutboxRow.channel == bindparam("lane"), queued(), OutboxRow.status == SENDING
)
