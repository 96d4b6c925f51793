"""Staff chat: `/find <words | part of a number | phone tail>`, over the tickets the sender may see
(their department's; managers', every one), masked; a search by phone tail is recorded on each ticket
it finds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.staff_queries import LIST_LIMIT, BadCommand
from core.context import CoreContext
from core.rules.clocks import current_due
from core.storage.models import Staff
from core.storage.privacy import redact
from core.tickets.moves import staff_actor
from core.tickets.search import SearchError, found_by_contact, parse_query, search_tickets
from core.tickets.staff_requests import StaffRequest
from core.tickets.workflow import MANAGER


async def find_command(
    core: CoreContext,
    session: AsyncSession,
    staff: Staff,
    request: StaffRequest,
    args: str,
    now: datetime,
) -> str:
    try:
        query = parse_query(args)
    except SearchError as exc:
        raise BadCommand(f"{exc}: /find 退费, /find 00071, /find *8000") from None
    department = None if staff.role == MANAGER else staff.department
    found = await search_tickets(core, session, query, department=department, limit=LIST_LIMIT)
    tickets, total, note = found.tickets, found.total, f" {found.note}" if found.note else ""
    if query.phone_tail is not None:
        how = f"found by /find phone tail {query.phone_tail} in {request.where.label}"
        found_by_contact(session, tickets, staff_actor(staff).label, now, how)
    where = department or "all departments"
    if not tickets:
        return f"Nothing found for {args.strip()!r} ({where}).{note}"
    lines = [f"Found {total} ({where}){note}:"]
    for ticket in tickets:
        due = await current_due(session, ticket.id)
        when = f"{due.stage} due {core.local_text(due.due_at)}" if due else "no open deadline"
        summary = redact(core.vault.reveal(ticket.summary))[:50]
        what = f"{ticket.status} · {ticket.category} · {ticket.department}"
        lines.append(f"{ticket.number} · {what} · {when} · {summary}")
    if total > len(tickets):
        lines.append(f"…and {total - len(tickets)} more: add a word")
    return "\n".join(lines)
