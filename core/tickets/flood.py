"""No card floods: while a department's staff chat is saturated, new tickets wait for one summary.

Telegram takes about 20 messages a minute in a group, so 300 new tickets would be 15 minutes of cards
in front of everything else staff need to see. When the staff lane already holds `flood_queued`
messages for the department's chat, intake holds a new ticket's card (`Ticket.card_held_at`; a major
complaint never waits); `summarize` then announces the held tickets in one message per interval, a
button per number, and `post_card` posts a card when someone asks for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.context import CoreContext
from core.delivery.outbox import enqueue, recipient_key
from core.delivery.queue import queued
from core.messages import Button
from core.rules.clocks import current_due
from core.storage.delivery_models import OutboxRow
from core.storage.models import Ticket
from core.storage.privacy import Vault
from core.tickets.cards import buttons_of, card_key, card_text, latest_card
from core.tickets.workflow import CLOSED

SUMMARY_BUTTONS = 40  # numbers with a button; the rest are listed (Telegram takes 100 buttons at most)
SUMMARY_LINES = 60  # numbers listed in one message (a message is 4096 characters)


def saturated(session: Session, vault: Vault, department: str, queued_at_most: int) -> bool:
    """Whether `queued_at_most` staff messages or more wait for the department's chat."""
    key = recipient_key(vault, "staff", department)
    waiting = session.scalars(
        select(OutboxRow.id)
        .where(OutboxRow.channel == "staff", OutboxRow.recipient_key == key, queued())
        .limit(queued_at_most)
    ).all()
    return len(waiting) >= queued_at_most


async def post_card(core: CoreContext, session: AsyncSession, ticket: Ticket, now: datetime) -> bool:
    """Post the ticket's card in its department's chat (its forum topic) if it has none yet."""
    ticket.card_held_at = None
    if await latest_card(session, ticket.id) is not None:
        return False
    enqueue(
        session,
        core.vault,
        key=card_key(ticket.id),
        channel="staff",
        recipient=ticket.department,
        kind="card",
        text=await card_text(core, session, ticket),
        now=now,
        ticket=ticket,
        buttons=await buttons_of(session, ticket),
        meta={
            "ticket_number": ticket.number,
            "department": ticket.department,
            "summary": core.vault.reveal(ticket.summary)[:60],
        },
    )
    return True


async def due_departments(session: AsyncSession, now: datetime, every: timedelta) -> list[str]:
    """Departments with a held card waiting an interval or longer: their summary is due."""
    rows = await session.scalars(
        select(Ticket.department)
        .where(Ticket.card_held_at.is_not(None), Ticket.card_held_at <= now - every)
        .distinct()
    )
    return sorted(rows)


async def summarize(core: CoreContext, session: AsyncSession, department: str, now: datetime) -> int:
    """One summary of the department's held tickets, in the caller's transaction; how many it names.
    The tickets are claimed (`SKIP LOCKED`): with several instances each is announced once."""
    tickets = list(
        await session.scalars(
            select(Ticket)
            .where(Ticket.card_held_at.is_not(None), Ticket.department == department)
            .order_by(Ticket.id)
            .limit(SUMMARY_LINES)
            .with_for_update(skip_locked=True)
        )
    )
    lines = []
    for ticket in tickets:
        ticket.card_held_at = None
        if ticket.status == CLOSED:  # merged or closed before it was announced
            continue
        due = await current_due(session, ticket.id)
        lines.append(
            {
                "number": ticket.number,
                "category": ticket.category,
                "severity": ticket.severity,
                "stage": due.stage if due else "—",
                "due": core.local_text(due.due_at) if due else "—",
            }
        )
    if not lines:
        return 0
    text = core.templates.render(
        core.staff_locale,
        "card_summary.txt",
        count=len(lines),
        department_name=core.department_name(department),
        tickets=lines,
    )
    enqueue(
        session,
        core.vault,
        key=f"summary:{department}:{tickets[0].id}",
        channel="staff",
        recipient=department,
        kind="notice-staff",
        text=text,
        now=now,
        buttons=tuple(Button(line["number"], f"card:{line['number']}") for line in lines[:SUMMARY_BUTTONS]),
        meta={"department": department},
    )
    return len(lines)
