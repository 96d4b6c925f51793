"""The delivery side of the schema: the outbox of messages to send, input kept aside unparsed, each
channel's small durable state (e.g. the Telegram poll offset) and the leases of singleton jobs."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.storage.models import Base, UTCDateTime

if TYPE_CHECKING:
    from core.storage.models import Clock, Ticket

_QUEUED = text("status IN ('pending', 'sending')")
_PARKED = text("status = 'parked'")


class OutboxRow(Base):
    """A message waiting to be sent, written in the transaction of the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        # A lane's due rows: `status = 'pending' AND channel = :lane AND next_attempt_at <= :now`.
        Index("ix_outbox_lane_due", "status", "channel", "next_attempt_at"),
        # The queue: rows still to send, per lane in order, and per recipient for the per-recipient
        # order. Partial, so the history of sent rows (most of the table) stays out of them; queries
        # spell the condition out literally (`core.delivery.claim`), or the planners cannot use them.
        Index("ix_outbox_queue", "channel", "id", sqlite_where=_QUEUED, postgresql_where=_QUEUED),
        Index(
            "ix_outbox_queue_recipient",
            "channel",
            "recipient_key",
            "id",
            sqlite_where=_QUEUED,
            postgresql_where=_QUEUED,
        ),
        # Parked rows per recipient: what a claimed row must wait behind.
        Index(
            "ix_outbox_parked",
            "channel",
            "recipient_key",
            "id",
            sqlite_where=_PARKED,
            postgresql_where=_PARKED,
        ),
        Index("ix_outbox_channel_external_ref", "channel", "external_ref"),
        Index("ix_outbox_external_thread", "external_thread"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    recipient_enc: Mapped[str] = mapped_column(Text)
    # A keyed hash of channel and recipient (`core.delivery.outbox.recipient_key`): messages with the same key
    # leave in the order they were written. None on rows written before it existed.
    recipient_key: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(20))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(10))  # pending | sending | sent | dead | parked
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    external_ref: Mapped[str | None] = mapped_column(String(255))
    # Where the platform filed it, when that matters later: a staff card's forum topic ("chat:thread").
    external_thread: Mapped[str | None] = mapped_column(String(255))
    meets_clock_id: Mapped[int | None] = mapped_column(ForeignKey("clocks.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ticket: Mapped[Ticket | None] = relationship()
    meets_clock: Mapped[Clock | None] = relationship()


class Unparsed(Base):
    """Input a channel could not turn into a message: kept raw with the reason, shown to staff."""

    __tablename__ = "unparsed"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_unparsed_channel_external_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    raw_enc: Mapped[str] = mapped_column(Text)  # encrypted: unreadable input may hold anything
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChannelState(Base):
    """Small durable values of a channel, e.g. the Telegram poll offset (moved only after a commit)."""

    __tablename__ = "channel_state"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Lease(Base):
    """Who may run a singleton job (a poller) until when: with several instances, only one polls."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    until: Mapped[datetime] = mapped_column(UTCDateTime)
