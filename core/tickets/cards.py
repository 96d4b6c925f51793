"""A ticket's card in its department's staff chat, kept current: every move edits it in place.

The edit is an outbox row that names the card row it edits (`meta.edits`); the dispatcher hands the
sender that card's platform reference, so an edit queued before the card went out simply waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.delivery.outbox import enqueue
from core.messages import Button
from core.rules.clocks import current_due
from core.storage.delivery_models import OutboxRow
from core.storage.models import Learner, LearnerIdentity, Staff, Ticket
from core.tickets import learners
from core.tickets.callback import callback_number, callback_task, pending_callback
from core.tickets.canned import top_query
from core.tickets.workflow import AWAITING_CONFIRMATION, CLOSED, FOLLOW_UP, ROUTED

# Moves that change nothing a card shows.
SILENT = frozenset({"note", "reply", "escalate"})


def card_key(ticket_id: int) -> str:
    """The outbox key of a ticket's first card (one per ticket, however it comes to be posted)."""
    return f"ticket:{ticket_id}:card"


def card_buttons(
    number: str,
    status: str,
    *,
    callback: bool = False,
    duplicate_of: str | None = None,
    canned: Sequence[str] = (),
) -> tuple[Button, ...]:
    """The card's buttons; a pending voicemail call-back adds "Called back", a possible duplicate
    "Merge" (into the older ticket), and the department's most used canned replies follow."""
    if status == CLOSED:
        return ()
    moves: tuple[tuple[str, str], ...]
    if status == ROUTED:
        moves = (("Claim", "claim"), ("Reply", "reply"), ("Resolve", "resolve"), ("Escalate", "escalate"))
    elif status in (AWAITING_CONFIRMATION, FOLLOW_UP):
        moves = (("Reply", "reply"), ("Show", "show"))
    else:
        moves = (("Reply", "reply"), ("Resolve", "resolve"), ("Escalate", "escalate"), ("Show", "show"))
    if callback:
        moves = (*moves[:1], ("Called back", "called"), *moves[1:])
    buttons = [Button(label, f"{action}:{number}") for label, action in moves]
    if duplicate_of is not None:
        buttons.append(Button(f"Merge into {duplicate_of}", f"merge:{duplicate_of} {number}"))
    buttons += [Button(f"#{key}", f"reply:{number} #{key}") for key in canned]
    return tuple(buttons)


async def _number(session: AsyncSession, ticket_id: int | None) -> str | None:
    if ticket_id is None:
        return None
    number: str | None = await session.scalar(select(Ticket.number).where(Ticket.id == ticket_id))
    return number


async def _duplicate_of(session: AsyncSession, ticket: Ticket) -> str | None:
    """The possible duplicate to point out: while both tickets are open."""
    if ticket.duplicate_of_id is None or ticket.status == CLOSED:
        return None
    number: str | None = await session.scalar(
        select(Ticket.number).where(Ticket.id == ticket.duplicate_of_id, Ticket.status != CLOSED)
    )
    return number


async def buttons_of(session: AsyncSession, ticket: Ticket) -> tuple[Button, ...]:
    """The buttons a card of `ticket` shows now."""
    return card_buttons(
        ticket.number,
        ticket.status,
        callback=await pending_callback(session, ticket.id) is not None,
        duplicate_of=await _duplicate_of(session, ticket),
        canned=list(await session.scalars(top_query(ticket.department))),
    )


async def card_text(core: CoreContext, session: AsyncSession, ticket: Ticket) -> str:
    learner = await session.get_one(Learner, ticket.learner_id)
    identity = await session.get(LearnerIdentity, ticket.identity_id) if ticket.identity_id else None
    owner = await session.get(Staff, ticket.owner_staff_id) if ticket.owner_staff_id else None
    due = await current_due(session, ticket.id)
    pending = await pending_callback(session, ticket.id)
    callback = (
        callback_task(await callback_number(core, session, ticket), core.local_text(pending.due_at))
        if pending
        else None
    )
    return core.templates.render(
        core.staff_locale,
        "card.txt",
        number=ticket.number,
        category=ticket.category,
        severity=ticket.severity,
        department_name=core.department_name(ticket.department),
        summary=core.vault.reveal(ticket.summary),
        status=ticket.status,
        owner=owner.name if owner else None,
        channel=ticket.channel,
        learner=learners.masked_label(core, learner, identity),
        course=ticket.course,
        stage=due.stage if due else "—",
        due=core.local_text(due.due_at) if due else "—",
        callback=callback,
        why=ticket.classified_why,
        unsure=ticket.category_unsure,
        duplicate_of=await _duplicate_of(session, ticket),
        merged_into=await _number(session, ticket.merged_into_id),
    )


async def latest_card(session: AsyncSession, ticket_id: int) -> OutboxRow | None:
    return await session.scalar(
        select(OutboxRow)
        .where(OutboxRow.ticket_id == ticket_id, OutboxRow.channel == "staff", OutboxRow.kind == "card")
        .order_by(OutboxRow.id.desc())
        .limit(1)
    )


async def refresh_card(
    core: CoreContext, session: AsyncSession, ticket: Ticket, action: str, event_id: int, now: datetime
) -> None:
    """After a move: edit the card in place; a transfer also posts a new card to the new department."""
    if action in SILENT:
        return
    card = await latest_card(session, ticket.id)
    if card is None:
        return
    text = await card_text(core, session, ticket)
    meta = {"ticket_number": ticket.number, "department": ticket.department}
    buttons = await buttons_of(session, ticket)
    enqueue(
        session,
        core.vault,
        key=f"{card.key}:edit:{event_id}",
        channel="staff",
        recipient=card.payload.get("meta", {}).get("department", ticket.department),
        kind="card-edit",
        text=text,
        now=now,
        ticket=ticket,
        buttons=buttons,
        meta={**meta, "edits": card.key},
    )
    if action == "transfer":
        enqueue(
            session,
            core.vault,
            key=f"ticket:{ticket.id}:card:{event_id}",
            channel="staff",
            recipient=ticket.department,
            kind="card",
            text=text,
            now=now,
            ticket=ticket,
            buttons=buttons,
            meta=meta,
        )
