"""Chat-ops for a busy desk: merged and possibly duplicate tickets, merges kept for undoing, canned
replies, and cards held back for the summary while a staff chat is flooded.

Revision ID: 0007
Revises: 0006_reports_credit
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006_reports_credit"
branch_labels = None
depends_on = None

_HELD = sa.text("card_held_at IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("duplicate_of_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("card_held_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(batch.f("ix_tickets_merged_into_id"), ["merged_into_id"], unique=False)
        batch.create_index(
            "ix_tickets_card_held", ["card_held_at"], unique=False, sqlite_where=_HELD, postgresql_where=_HELD
        )
        batch.create_foreign_key(
            batch.f("fk_tickets_merged_into_id_tickets"), "tickets", ["merged_into_id"], ["id"]
        )
        batch.create_foreign_key(
            batch.f("fk_tickets_duplicate_of_id_tickets"), "tickets", ["duplicate_of_id"], ["id"]
        )
    op.create_table(
        "ticket_merges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kept_id", sa.Integer(), nullable=False),
        sa.Column("merged_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("undo", sa.JSON(), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["kept_id"], ["tickets.id"], name=op.f("fk_ticket_merges_kept_id_tickets")),
        sa.ForeignKeyConstraint(
            ["merged_id"], ["tickets.id"], name=op.f("fk_ticket_merges_merged_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_merges")),
    )
    op.create_index(op.f("ix_ticket_merges_kept_id"), "ticket_merges", ["kept_id"], unique=False)
    op.create_index(op.f("ix_ticket_merges_merged_id"), "ticket_merges", ["merged_id"], unique=False)
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=30), nullable=False),
        sa.Column("text_zh", sa.Text(), nullable=True),
        sa.Column("text_en", sa.Text(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=120), nullable=False),
        sa.Column("file_texts", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_replies")),
        sa.UniqueConstraint("department", "key", name="uq_canned_replies_department_key"),
    )


def downgrade() -> None:
    op.drop_table("canned_replies")
    op.drop_index(op.f("ix_ticket_merges_merged_id"), table_name="ticket_merges")
    op.drop_index(op.f("ix_ticket_merges_kept_id"), table_name="ticket_merges")
    op.drop_table("ticket_merges")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint(batch.f("fk_tickets_duplicate_of_id_tickets"), type_="foreignkey")
        batch.drop_constraint(batch.f("fk_tickets_merged_into_id_tickets"), type_="foreignkey")
        batch.drop_index("ix_tickets_card_held")
        batch.drop_index(batch.f("ix_tickets_merged_into_id"))
        batch.drop_column("card_held_at")
        batch.drop_column("duplicate_of_id")
        batch.drop_column("merged_into_id")
