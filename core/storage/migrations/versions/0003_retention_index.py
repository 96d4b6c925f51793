"""The retention duty's partial index: closed tickets not yet anonymised.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_WHERE = sa.text("anonymized_at IS NULL AND closed_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_tickets_retention_due", "tickets", ["closed_at"], sqlite_where=_WHERE, postgresql_where=_WHERE
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_retention_due", table_name="tickets")
