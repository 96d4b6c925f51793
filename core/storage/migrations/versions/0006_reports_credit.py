"""Reports and credit: quarterly credit grades kept with their inputs; tickets indexed by entry time.

Revision ID: 0006_reports_credit
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_reports_credit"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credit_grades",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("quarter", sa.String(7), nullable=False),
        sa.Column("subject_kind", sa.String(12), nullable=False),
        sa.Column("subject_key", sa.String(40), nullable=False),
        sa.Column("department", sa.String(40), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("grade", sa.String(12), nullable=False),
        sa.Column("score", sa.Numeric(6, 2), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("previous_grade", sa.String(12), nullable=True),
        sa.Column("repaired", sa.Boolean(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credit_grades"),
        sa.UniqueConstraint("quarter", "subject_kind", "subject_key", name="uq_credit_grades_subject"),
    )
    # The reports read one month's (one quarter's) tickets by their time of entry.
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_tickets_created_at", table_name="tickets")
    op.drop_table("credit_grades")
