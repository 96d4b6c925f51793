"""The summary of new tickets whose cards were held while a staff chat was flooded (`core.tickets.flood`).

Each department's held tickets are announced in one message once the oldest has waited an interval;
the tickets are claimed in the summary's own transaction, so with several instances each is named once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.context import CoreContext
from core.tickets.flood import due_departments, summarize
from scheduler.duty import DutyReport


async def run(core: CoreContext, now: datetime, dry_run: bool) -> DutyReport:
    report = DutyReport("card summary", dry_run=dry_run)
    every = timedelta(minutes=core.policy.staff_chat.summary_every_minutes)
    async with core.sessions() as session:
        departments = await due_departments(session, now, every)
    for department in departments:
        if dry_run:
            report.actions.append(f"summary of held cards to {department}")
            continue
        async with core.sessions() as session, session.begin():
            named = await summarize(core, session, department, now)
        if named:
            report.actions.append(f"summary of {named} new ticket(s) to {department}")
    return report
