"""The database schema (SQLAlchemy 2 declarative models), the same on SQLite and PostgreSQL.

Personal data (`*_enc`) is stored encrypted by `core.privacy.Vault`; `*_index` columns hold keyed
hashes so a learner can be found by phone, e-mail or channel address without decrypting every row.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

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


class TicketMerge(Base):
    """One merge of `merged_id` into `kept_id`, with what it changed, so `/unmerge` can put it back."""

    __tablename__ = "ticket_merges"
    id: Mapped[int] = mapped_column(primary_key=True)
    kept_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(120))
    # The rows moved and the values changed (ids, old times and fields): what an unmerge restores.
    undo: Mapped[dict[str, Any]] = mapped_column(JSON)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CannedReply(Base):
    """A stored reply of one department, in Chinese and English, with the ticket's fields filled in."""

    __tablename__ = "canned_replies"
    __table_args__ = (UniqueConstraint("department", "key", name="uq_canned_replies_department_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    department: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(30))
    text_zh: Mapped[str | None] = mapped_column(Text)
    text_en: Mapped[str | None] = mapped_column(Text)
    uses: Mapped[int] = mapped_column(Integer, default=0)  # the card offers the most used
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(120))  # a manager, or "file"
    # The entry of `canned.toml` as last taken in: a chat edit stands until the file's entry changes.
    file_texts: Mapped[dict[str, str] | None] = mapped_column(JSON)


class ClassificationCorrection(Base):
    """A staff correction of a ticket's category or severity, with what the classifier saw in the text:
    the labelled examples `complaintbot classify export` gives the school to review."""

    __tablename__ = "classification_corrections"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(120))
    field: Mapped[str] = mapped_column(String(20))  # category | severity
    old_value: Mapped[str] = mapped_column(String(20))
    new_value: Mapped[str] = mapped_column(String(20))
    # The masked summary the classifier is re-run on (encrypted, as on the ticket), and its findings.
    text: Mapped[str] = mapped_column(Text)
    features: Mapped[dict[str, Any]] = mapped_column(JSON)


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
        # spell the condition out literally (`core.dispatch`), or the planners cannot use them.
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
    # A keyed hash of channel and recipient (`core.outbox.recipient_key`): messages with the same key
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


class CreditGrade(Base):
    """A department's or staff member's credit grade of one quarter, with the inputs that explain it.

    Written once, when the quarter is over (the first computation wins: several instances or a run
    twice find the row there); an ongoing quarter's grades are computed and shown, never kept.
    """

    __tablename__ = "credit_grades"
    __table_args__ = (
        UniqueConstraint("quarter", "subject_kind", "subject_key", name="uq_credit_grades_subject"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    quarter: Mapped[str] = mapped_column(String(7))  # 2026Q3
    subject_kind: Mapped[str] = mapped_column(String(12))  # department | staff
    subject_key: Mapped[str] = mapped_column(String(40))  # the department's key, the staff member's id
    department: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    grade: Mapped[str] = mapped_column(String(12))  # A | B | C | D | not_graded
    score: Mapped[float | None] = mapped_column(Numeric(6, 2))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)  # the shares, counts and the policy's weights
    previous_grade: Mapped[str | None] = mapped_column(String(12))
    repaired: Mapped[bool] = mapped_column(Boolean, default=False)  # 信用修复: up from last quarter's C/D
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
