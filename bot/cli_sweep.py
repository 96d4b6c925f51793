"""`complaintbot sweep`: every scheduled duty once, as of a given time — the operator's view of the
scheduler, and how reminders and escalations are tested without waiting for the clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from bot.app import Application
from bot.cli_base import fail, out, with_app
from scheduler.duty import DutyReport
from scheduler.sweep import sweep


def parse_at(value: str | None, timezone: str = "Asia/Shanghai") -> datetime:
    """`--at`: ISO-8601; without an offset it is the school's local time (the policy's timezone)."""
    if value is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"--at {value!r} is not an ISO-8601 time, e.g. 2026-11-23T10:00+08:00") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo(timezone))


def sweep_command(
    at: Annotated[
        str | None, typer.Option("--at", help="ISO-8601 time to run as (default now; no offset = local)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print what would happen; change nothing")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="stable JSON output")] = False,
) -> None:
    """Run every scheduled duty once (reminders, escalation, follow-ups, retention, digest)."""

    async def action(application: Application) -> tuple[datetime, list[DutyReport]]:
        now = parse_at(at, application.core.policy.calendar.timezone)
        return now, await sweep(application.core, now, dry_run=dry_run)

    now, reports = with_app(action)
    if as_json:
        duties = [{"duty": r.name, "count": r.count, "actions": r.actions, "error": r.error} for r in reports]
        print(json.dumps({"at": now.isoformat(), "dry_run": dry_run, "duties": duties}, ensure_ascii=False))
        return
    verb = "would do" if dry_run else "did"
    note = " (dry run: nothing changed)" if dry_run else ""
    out.print(f"sweep as of {now.isoformat()}{note}", markup=False)
    for report in reports:
        failed = f" — FAILED: {report.error}" if report.error else ""
        out.print(f"{report.name}: {verb} {report.count}{failed}", markup=False)
        for line in report.actions:
            out.print(f"  {line}", markup=False)
