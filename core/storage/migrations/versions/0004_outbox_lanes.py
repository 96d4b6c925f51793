"""Outbox lanes: a recipient key for the per-recipient order, and indexes for a lane's due rows.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_QUEUED = sa.text("status IN ('pending', 'sending')")
_PARKED = sa.text("status = 'parked'")


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("recipient_key", sa.String(32), nullable=True))
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.create_index("ix_outbox_lane_due", "outbox", ["status", "channel", "next_attempt_at"])
    op.create_index("ix_outbox_queue", "outbox", ["channel", "id"], sqlite_where=_QUEUED, postgresql_where=_QUEUED)
    op.create_index(
        "ix_outbox_queue_recipient",
        "outbox",
        ["channel", "recipient_key", "id"],
        sqlite_where=_QUEUED,
        postgresql_where=_QUEUED,
    )
    op.create_index(
        "ix_outbox_parked",
        "outbox",
        ["channel", "recipient_key", "id"],
        sqlite_where=_PARKED,
        postgresql_where=_PARKED,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_parked", table_name="outbox")
    op.drop_index("ix_outbox_queue_recipient", table_name="outbox")
    op.drop_index("ix_outbox_queue", table_name="outbox")
    op.drop_index("ix_outbox_lane_due", table_name="outbox")
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("recipient_key")
