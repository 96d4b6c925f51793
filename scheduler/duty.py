"""What every scheduled duty is: an idempotent function of the database and `now`.

`complaintbot sweep` runs each once as of a given time; `complaintbot run` runs them on APScheduler's
intervals. With `dry_run` a duty reports what it would do and writes nothing: the flag is checked
before any write. A duty is safe with several instances on one PostgreSQL: it claims each piece of
work with a conditional update in the same transaction as the messages that work sends, so exactly
one instance sends them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from core.context import CoreContext


@dataclass
class DutyReport:
    name: str
    dry_run: bool = False
    # One line per thing done (or, in a dry run, that would be done), e.g.
    # "TS-261122-00071 claim: level 1 to teaching head 张主任".
    actions: list[str] = field(default_factory=list)
    error: str | None = None  # the duty failed (logged); the next sweep tries again

    @property
    def count(self) -> int:
        return len(self.actions)


Duty = Callable[[CoreContext, datetime, bool], Awaitable[DutyReport]]  # (core, now, dry_run)
