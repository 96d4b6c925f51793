"""Classification corrections: why a ticket was classified, whether its category is a guess, and the
staff corrections of category and severity with the text's features.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("classified_why", sa.Text(), nullable=True))
        batch.add_column(sa.Column("category_unsure", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "classification_corrections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("field", sa.String(length=20), nullable=False),
        sa.Column("old_value", sa.String(length=20), nullable=False),
        sa.Column("new_value", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_classification_corrections_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classification_corrections")),
    )
    op.create_index(
        op.f("ix_classification_corrections_ticket_id"), "classification_corrections", ["ticket_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_classification_corrections_ticket_id"), table_name="classification_corrections")
    op.drop_table("classification_corrections")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("category_unsure")
        batch.drop_column("classified_why")
