"""Staff chat: canned replies. `/canned [department]` lists them; managers `/canned set <department>
#key <zh|en> <text>` and `/canned remove <department> #key`; `/reply TS-… #key` (or a card's `#key`
button) sends one, in the learner's language, with the ticket's fields filled in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.staff_queries import BadCommand, Refused
from core.context import CoreContext
from core.rules.clocks import current_due
from core.storage.models import Staff, Ticket
from core.tickets import canned
from core.tickets.moves import staff_actor
from core.tickets.staff import DEPARTMENTS
from core.tickets.staff_requests import StaffRequest
from core.tickets.workflow import MANAGER

USAGE = (
    "/canned [department] lists them; managers: /canned set <department> #key <zh|en> <text> "
    "(fields: {{ number }}, {{ due }}, {{ stage }}, {{ department }}, {{ category }}, {{ status }}), "
    "/canned remove <department> #key"
)


def _department(core: CoreContext, name: str) -> str:
    known = core.department_names or dict.fromkeys(DEPARTMENTS)
    if name.lower() not in known:
        raise BadCommand(f"unknown department {name!r}; known: {', '.join(sorted(known))}")
    return name.lower()


def _key(text: str) -> str:
    key = canned.parse_key(text)
    if key is None:
        raise BadCommand(f"{text!r} is no key: #key, of a-z, 0-9, - and _")
    return key


async def canned_command(
    core: CoreContext,
    session: AsyncSession,
    staff: Staff,
    request: StaffRequest,
    args: str,
    now: datetime,
) -> str:
    parts = args.split(None, 4)
    verb = parts[0].lower() if parts else ""
    try:
        if verb in ("set", "remove"):
            if staff.role != MANAGER:
                raise Refused("only managers add, change or remove canned replies")
            if verb == "remove" and len(parts) == 3:
                department, key = _department(core, parts[1]), _key(parts[2])
                if not await canned.remove(core, session, department, key):
                    raise BadCommand(f"no canned reply #{key} in {department}")
                return f"✅ #{key} removed from {department} by {staff.name}"
            if verb == "set" and len(parts) == 5:
                department, key = _department(core, parts[1]), _key(parts[2])
                by = staff_actor(staff).label
                await canned.store(core, session, department, key, parts[3].lower(), parts[4], by, now)
                return f"✅ #{key} ({parts[3].lower()}) of {department} saved by {staff.name}"
            raise BadCommand(USAGE)
        if len(parts) > 1:
            raise BadCommand(USAGE)
        scope = _department(core, parts[0]) if parts else None
        if scope is None and staff.role != MANAGER:
            scope = staff.department
        rows = await canned.replies(core, session, scope, now)
    except canned.CannedError as exc:
        raise BadCommand(str(exc)) from None
    if not rows:
        return f"No canned replies for {scope or 'any department'} yet. {USAGE}"
    lines = [f"Canned replies ({scope or 'all departments'}), most used first:"]
    for row in rows:
        text = (row.text_zh if core.staff_locale == "zh" else row.text_en) or row.text_zh or row.text_en or ""
        langs = "/".join(lang for lang, t in (("zh", row.text_zh), ("en", row.text_en)) if t)
        where = "" if scope else f"{row.department} "
        lines.append(f"{where}#{row.key} [{langs}, used {row.uses}×] {text[:60]}")
    return "\n".join(lines)


async def fill(core: CoreContext, session: AsyncSession, ticket: Ticket, key: str, now: datetime) -> str:
    """The text of `#key` for this ticket's learner, counted as used."""
    due = await current_due(session, ticket.id)
    fields = canned.TicketFields(
        number=ticket.number,
        due=core.local_text(due.due_at) if due else "—",
        stage=due.stage if due else "—",
        department=core.department_name(ticket.department),
        category=ticket.category,
        status=ticket.status,
    )
    try:
        return await canned.fill(core, session, ticket.department, key, ticket.locale, fields, now)
    except canned.CannedError as exc:
        raise BadCommand(str(exc)) from None
