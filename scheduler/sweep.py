"""Every scheduled duty, once, as of one time: `complaintbot sweep` and the service's periodic pass."""

from __future__ import annotations

import logging
from datetime import datetime

from core.context import CoreContext
from scheduler import card_summary, digest, escalation, followup, monthly_report, retention
from scheduler.duty import Duty, DutyReport

log = logging.getLogger(__name__)

# In this order: escalation before the digest, so the digest counts this sweep's breaches.
DUTIES: tuple[tuple[str, Duty], ...] = (
    ("escalation", escalation.run),
    ("card summary", card_summary.run),
    ("follow-up", followup.run),
    ("digest", digest.run),
    ("report", monthly_report.run),
    ("retention", retention.run),
)


async def sweep(core: CoreContext, now: datetime, *, dry_run: bool = False) -> list[DutyReport]:
    """Each duty in turn; one that fails is logged and reported, and the others still run."""
    reports = []
    for name, duty in DUTIES:
        try:
            reports.append(await duty(core, now, dry_run))
        except Exception as exc:  # the next sweep retries it; a broken duty must not stop the digest
            log.exception("duty %s failed", name)
            reports.append(DutyReport(name, dry_run=dry_run, error=f"{type(exc).__name__}: {exc}"))
    return reports
