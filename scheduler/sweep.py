"""Every scheduled duty, once, as of one time: `complaintbot sweep` and the service's periodic pass."""

from __future__ import annotations

from datetime import datetime

from core.context import CoreContext
from scheduler import digest, escalation, followup, retention
from scheduler.duty import Duty, DutyReport

# In this order: escalation before the digest, so the digest counts this sweep's breaches.
DUTIES: tuple[tuple[str, Duty], ...] = (
    ("escalation", escalation.run),
    ("follow-up", followup.run),
    ("digest", digest.run),
    ("retention", retention.run),
)


async def sweep(core: CoreContext, now: datetime, *, dry_run: bool = False) -> list[DutyReport]:
    return [await duty(core, now, dry_run) for _, duty in DUTIES]
