"""The database schema (SQLAlchemy 2 declarative models), the same on SQLite and PostgreSQL: the base,
people, tickets and what happens to them (messages, clocks, events). The outbox and channel bookkeeping
are in `core.storage.delivery_models`, the records kept beside tickets in `core.storage.record_models`.

Personal data (`*_enc`) is stored encrypted by `core.storage.privacy.Vault`; `*_index` columns hold keyed
hashes so a learner can be found by phone, e-mail or channel address without decrypting every row.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from core.storage.delivery_models import OutboxRow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend.

    SQLite has no zone-aware type; without this a naive value would come back and a deadline
    could silently shift by eight hours.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database: pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Staff(Base):
    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    department: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(20))  # staff | head | manager
    telegram_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    wecom_id: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Learner(Base):
    __tablename__ = "learners"
    id: Mapped[int] = mapped_column(primary_key=True)
    name_enc: Mapped[str | None] = mapped_column(Text)
    phone_enc: Mapped[str | None] = mapped_column(Text)
    phone_index: Mapped[str | None] = mapped_column(String(64), index=True)
    email_enc: Mapped[str | None] = mapped_column(Text)
    email_index: Mapped[str | None] = mapped_column(String(64), index=True)
    locale: Mapped[str] = mapped_column(String(8), default="zh")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    identities: Mapped[list[LearnerIdentity]] = relationship(back_populates="learner")


class LearnerIdentity(Base):
    """One address of a learner on one channel (Telegram chat, WeChat OpenID, e-mail, caller number)."""

    __tablename__ = "learner_identities"
    __table_args__ = (UniqueConstraint("channel", "address_index", name="uq_identity_channel_address"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    address_enc: Mapped[str] = mapped_column(Text)
    address_index: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    learner: Mapped[Learner] = relationship(back_populates="identities")


class TicketCounter(Base):
    """The last sequence number given out per prefix and local day, incremented in intake's transaction."""

    __tablename__ = "ticket_counters"
    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_learner_status", "learner_id", "status"),
        # The retention duty's range: closed tickets not yet anonymised. Partial, so the years of
        # history it has already done stay out of the index and each sweep costs what is due.
        Index(
            "ix_tickets_retention_due",
            "closed_at",
            sqlite_where=text("anonymized_at IS NULL AND closed_at IS NOT NULL"),
            postgresql_where=text("anonymized_at IS NULL AND closed_at IS NOT NULL"),
        ),
        # New tickets whose card waits for the next summary (a flooded staff chat): few, so partial.
        Index(
            "ix_tickets_card_held",
            "card_held_at",
            sqlite_where=text("card_held_at IS NOT NULL"),
            postgresql_where=text("card_held_at IS NOT NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    status: Mapped[str] = mapped_column(String(30), index=True)
    category: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(10))
    department: Mapped[str] = mapped_column(String(40), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    locale: Mapped[str] = mapped_column(String(8))
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"))
    identity_id: Mapped[int | None] = mapped_column(ForeignKey("learner_identities.id"))
    first_contact_department: Mapped[str] = mapped_column(String(40))
    first_contact_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    owner_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    summary: Mapped[str] = mapped_column(Text)
    course: Mapped[str | None] = mapped_column(Text)
    expected_resolution: Mapped[str | None] = mapped_column(Text)
    contact_enc: Mapped[str | None] = mapped_column(Text)
    awaiting_field: Mapped[str | None] = mapped_column(String(30))
    amount_yuan: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    data_leak: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why the classifier chose the category and severity (the deciding words and rules), for the card;
    # unsure: no category led clearly, so learner services is asked to check it.
    classified_why: Mapped[str | None] = mapped_column(Text)
    category_unsure: Mapped[bool] = mapped_column(Boolean, default=False)
    plan: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # the reports' month
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # The first-instance ticket a second-instance (上级渠道) ticket reviews.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    satisfaction: Mapped[int | None] = mapped_column(Integer)  # the follow-up score, 1-5
    anonymized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # personal data erased
    # Closed as merged: the ticket that carries on (its number still leads there).
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    # An open ticket of the same learner (or phone, or address) and category, seen at intake: a hint.
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    # The card was held back (the staff chat's lane was saturated): the next summary announces it.
    card_held_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    learner: Mapped[Learner] = relationship()
    identity: Mapped[LearnerIdentity | None] = relationship()
    owner: Mapped[Staff | None] = relationship(foreign_keys=[owner_staff_id])
    first_contact_staff: Mapped[Staff | None] = relationship(foreign_keys=[first_contact_staff_id])


class Message(Base):
    """A message of a ticket, either way. Inbound rows carry the platform's id: the dedupe key."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_messages_channel_external_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str | None] = mapped_column(String(255))
    sender_index: Mapped[str | None] = mapped_column(String(64))  # keyed hash of who sent an inbound one
    # What learners write is personal data: the text and the platform's raw payload (JSON) are encrypted.
    text_enc: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    raw_enc: Mapped[str | None] = mapped_column(Text)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    outbox: Mapped[OutboxRow | None] = relationship()
    ticket: Mapped[Ticket] = relationship()


class Clock(Base):
    """One stage's deadline. Open while met_at is null; the sweep reads open clocks by due_at."""

    __tablename__ = "clocks"
    __table_args__ = (
        Index(
            "ix_clocks_open_due",
            "due_at",
            sqlite_where=text("met_at IS NULL"),
            postgresql_where=text("met_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    stage: Mapped[str] = mapped_column(String(30))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the sweep next has something to do for this clock (reminder, level 1, level 2; for clocks
    # waiting on the learner, their own timer). NULL once nothing is left: the sweep reads only the
    # index range up to now, so its cost follows what is due, not what is stored.
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    ticket: Mapped[Ticket] = relationship()


class Event(Base):
    """The audit trail: who did what to a ticket, when."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
    ticket: Mapped[Ticket | None] = relationship()


# Every table, so that `Base.metadata` (migrations, the tests' clean-up) and the relationships by name
# above see the whole schema whichever module was imported first.
from core.storage import delivery_models, record_models  # noqa: E402, F401
