"""Staff chat answers that read tickets: `/show` (masked; `full` for the owner and managers), `/mine`,
`/overdue`, `/stats`. Short text, one line per ticket; every unmasked read is written to the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.rules.clocks import current_due
from core.storage.delivery_models import OutboxRow
from core.storage.models import Learner, LearnerIdentity, Message, Staff, Ticket
from core.storage.privacy import PrivacyKeyError
from core.tickets.moves import record_disclosure, staff_actor
from core.tickets.queries import overdue_tickets, staff_open_tickets, ticket_counts
from core.tickets.staff import list_staff
from core.tickets.views import summary_view
from core.tickets.workflow import MANAGER, OPEN_STATES, STATES

LIST_LIMIT = 25  # tickets per answer; the rest is counted ("…and N more")
FULL_MESSAGES = 5  # the last messages `/show full` shows


class Refused(Exception):
    """The sender may not do this; the message says why (shown after ⛔). Nothing changes."""


class BadCommand(Exception):
    """The command cannot be carried out as written; the message says why (shown after ⚠️)."""


async def show(core: CoreContext, session: AsyncSession, ticket: Ticket, now: datetime) -> str:
    """The masked summary every registered staff member may see."""
    view = await summary_view(core, session, ticket, now)
    due_at = view["due_at"][:16].replace("T", " ") if view["due_at"] else None
    due = f"{view['due_stage']} due {due_at}" if due_at else "no open deadline"
    overdue = " ⏰ OVERDUE" if view["overdue"] else ""
    merged = ""
    if ticket.merged_into_id is not None:
        into = await session.scalar(select(Ticket.number).where(Ticket.id == ticket.merged_into_id))
        merged = f" · merged into {into}: work it there"
    return (
        f"{view['number']} {view['status']}{merged} · {view['category']}/{view['severity']} · "
        f"{view['department']} · owner {view['owner'] or '—'} · {due}{overdue}\n{view['summary']}"
    )


def _plain(core: CoreContext, token: str | None) -> str:
    if not token:
        return "—"
    try:
        return core.vault.decrypt(token)
    except PrivacyKeyError:
        return "(unreadable)"


async def show_full(
    core: CoreContext, session: AsyncSession, staff: Staff, ticket: Ticket, now: datetime, where: str
) -> str:
    """The learner's personal data and last messages, unmasked: for the ticket's owner and managers
    only, and each such read is recorded on the ticket (POLICY.md §7)."""
    if staff.role != MANAGER and ticket.owner_staff_id != staff.id:
        raise Refused(f"only the owner of {ticket.number} or a manager may see the learner's personal data")
    learner = await session.get_one(Learner, ticket.learner_id)
    identity = await session.get(LearnerIdentity, ticket.identity_id) if ticket.identity_id else None
    recent = list(
        await session.scalars(
            select(Message)
            .outerjoin(OutboxRow, OutboxRow.id == Message.outbox_id)
            # What the learner wrote and what staff answered; not the bot's own standard texts.
            .where(Message.ticket_id == ticket.id, or_(Message.direction == "in", OutboxRow.kind == "reply"))
            .order_by(Message.id.desc())
            .limit(FULL_MESSAGES)
        )
    )
    shown = f"name, phone, e-mail, contact, address, last {len(recent)} message(s)"
    record_disclosure(session, ticket, staff_actor(staff).label, now, f"{shown} by /show full in {where}")
    address = f"{identity.channel} {_plain(core, identity.address_enc)}" if identity else "—"
    lines = [
        f"🔓 {ticket.number} — personal data, shown to {staff.name} (recorded)",
        f"name: {_plain(core, learner.name_enc)}",
        f"phone: {_plain(core, learner.phone_enc)}",
        f"e-mail: {_plain(core, learner.email_enc)}",
        f"contact given: {_plain(core, ticket.contact_enc)}",
        f"address: {address}",
        f"last {len(recent)} message(s):" if recent else "no messages",
    ]
    for message in reversed(recent):
        way = "learner" if message.direction == "in" else "reply"
        lines.append(
            f"[{core.local_text(message.at)} {way}, {message.channel}] {_plain(core, message.text_enc)}"
        )
    return "\n".join(lines)


async def _line(
    core: CoreContext,
    session: AsyncSession,
    ticket: Ticket,
    now: datetime,
    *,
    department: bool = False,
    owner: bool = False,
    note: str = "",
) -> str:
    parts = [ticket.number, ticket.status]
    if department:
        parts.append(ticket.department)
    due = await current_due(session, ticket.id)
    if due is None:
        parts.append("no open deadline")
    else:
        late = " ⏰ OVERDUE" if due.due_at < now else ""
        parts.append(f"{due.stage} due {core.local_text(due.due_at)}{late}")
    if owner:
        who = await session.get(Staff, ticket.owner_staff_id) if ticket.owner_staff_id else None
        parts.append(f"owner {who.name if who else '—'}")
    return " · ".join(parts) + note


def _more(lines: list[str], shown: int, total: int) -> str:
    if total > shown:
        lines.append(f"…and {total - shown} more")
    return "\n".join(lines)


async def mine(core: CoreContext, session: AsyncSession, staff: Staff, now: datetime) -> str:
    """The sender's open tickets (owner or first contact), most urgent first."""
    tickets, total = await staff_open_tickets(session, staff.id, LIST_LIMIT)
    if not tickets:
        return f"{staff.name}: no open tickets of yours."
    lines = [f"{staff.name}: {total} open ticket(s)"]
    for ticket in tickets:
        note = " (first contact)" if ticket.owner_staff_id != staff.id else ""
        lines.append(await _line(core, session, ticket, now, department=True, note=note))
    return _more(lines, len(tickets), total)


def _scope(staff: Staff) -> str | None:
    """Managers see every department; staff and heads their own."""
    return None if staff.role == MANAGER else staff.department


async def overdue(core: CoreContext, session: AsyncSession, staff: Staff, now: datetime) -> str:
    department = _scope(staff)
    where = department or "all departments"
    tickets, total = await overdue_tickets(session, now, department, LIST_LIMIT)
    if not tickets:
        return f"Nothing overdue ({where})."
    lines = [f"Overdue ({where}): {total}"]
    for ticket in tickets:
        lines.append(await _line(core, session, ticket, now, department=department is None, owner=True))
    return _more(lines, len(tickets), total)


def _counts_line(name: str, counts: dict[str, int]) -> str:
    open_states = [s for s in STATES if s in OPEN_STATES and counts.get(s)]
    total_open = sum(counts[s] for s in open_states)
    detail = ", ".join(f"{s} {counts[s]}" for s in open_states)
    opened = f"open {total_open}" + (f" ({detail})" if detail else "")
    return f"{name}: {opened} · overdue {counts.get('overdue', 0)} · closed {counts.get('closed', 0)}"


async def stats(core: CoreContext, session: AsyncSession, staff: Staff, now: datetime) -> str:
    department = _scope(staff)
    counts = await ticket_counts(session, now, department)
    if department is not None:
        return _counts_line(department, counts.get(department, {}))
    total: dict[str, int] = {}
    for per_department in counts.values():
        for key, value in per_department.items():
            total[key] = total.get(key, 0) + value
    lines = [_counts_line("all departments", total)]
    lines += [_counts_line(name, counts[name]) for name in sorted(counts)][:LIST_LIMIT]
    return "\n".join(lines)


_MAX_ID = 2**31 - 1  # staff ids are 32-bit integers: a larger number is nobody's


async def find_person(session: AsyncSession, spec: str, departments: Iterable[str]) -> tuple[Staff, str]:
    """The staff member `spec` starts with (`@` + the name as registered, or the staff id), and the rest."""
    if spec.startswith("@"):
        wanted = spec[1:]
        folded = wanted.casefold()
        found = [
            s
            for s in await list_staff(session)
            if folded.startswith(name := s.name.casefold())
            and (len(folded) == len(name) or folded[len(name)].isspace())
        ]
        if not found:
            name = wanted.split()[0] if wanted.split() else ""
            raise BadCommand(
                f"no staff member named {name!r} (Telegram @usernames are not known to us): "
                "use the name as registered or the staff id from `complaintbot staff list`"
            )
        longest = max(len(s.name.casefold()) for s in found)
        found = [s for s in found if len(s.name.casefold()) == longest]
        if len(found) > 1:
            ids = ", ".join(f"#{s.id} ({s.department})" for s in found)
            raise BadCommand(f"several staff are named {found[0].name}: give the staff id ({ids})")
        return found[0], wanted[longest:].strip()
    parts = spec.split(None, 1)
    first, rest = (parts[0], parts[1] if len(parts) > 1 else "") if parts else ("", "")
    digits = first.removeprefix("#")
    if digits.isdigit():
        owner = await session.get(Staff, int(digits)) if int(digits) <= _MAX_ID else None
        if owner is None or not owner.active:
            raise BadCommand(f"no active staff member #{digits}")
        return owner, rest.strip()
    known = ", ".join(departments)
    raise BadCommand(f"{first!r} is neither a department ({known}) nor a staff member (@name or staff id)")
