"""Allocating ticket numbers: a per-day counter incremented inside the intake's transaction.

The counter row is upserted with `ON CONFLICT DO UPDATE … RETURNING`: on PostgreSQL the row lock
serialises concurrent intakes of one day across processes, on SQLite the write lock does. Since the
increment commits or rolls back with the ticket, a failed intake leaves no gap in the sequence.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.storage.models import TicketCounter
from core.storage.numbers import TicketNumber


def _upsert(insert: Any) -> Any:
    return (
        insert(TicketCounter)
        .values(prefix=bindparam("prefix"), day=bindparam("day"), value=1)
        .on_conflict_do_update(
            index_elements=[TicketCounter.prefix, TicketCounter.day],
            set_={"value": TicketCounter.value + 1},
        )
        .returning(TicketCounter.value)
    )


# Built once: intake runs this for every complaint, and building it cost more than running it.
_UPSERT = {"postgresql": _upsert(postgresql.insert), "sqlite": _upsert(sqlite.insert)}


def allocate_number(session: Session, prefix: str, day: date) -> TicketNumber:
    statement = _UPSERT[session.get_bind().dialect.name]
    sequence = session.connection().execute(statement, {"prefix": prefix, "day": day}).scalar_one()
    return TicketNumber(prefix=prefix, day=day, sequence=int(sequence))
