"""Records kept beside the tickets: merges (with what an unmerge restores), the departments' canned
replies, staff corrections of the classifier, and the quarterly credit grades."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.storage.models import Base, UTCDateTime


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
