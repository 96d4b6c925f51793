"""Staff chat: `/merge TS-a TS-b` (and the card's Merge button), `/unmerge`, and `/card` (the summary's
number buttons): a card posted on demand, or a copy sent privately when it is in the chat already."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.staff_queries import BadCommand
from core.context import CoreContext
from core.delivery.outbox import enqueue
from core.storage.models import Staff, Ticket
from core.tickets.cards import card_text
from core.tickets.flood import post_card
from core.tickets.merge import merge, unmerge
from core.tickets.queries import get_ticket
from core.tickets.staff_requests import StaffRequest


async def _numbers(core: CoreContext, session: AsyncSession, args: str, usage: str) -> list[Ticket]:
    numbers = args.split()
    if not 1 <= len(numbers) <= 2:
        raise BadCommand(usage)
    return [await get_ticket(session, n, core.prefix) for n in numbers]


async def merge_command(
    core: CoreContext,
    session: AsyncSession,
    staff: Staff,
    request: StaffRequest,
    args: str,
    now: datetime,
) -> str:
    usage = "type /merge TS-a TS-b: TS-b joins TS-a, the number the learner keeps"
    tickets = await _numbers(core, session, args, usage)
    if len(tickets) != 2:
        raise BadCommand(usage)
    kept, merged = tickets
    await merge(core, session, kept, merged, staff, now)
    return (
        f"✅ {merged.number} merged into {kept.number} by {staff.name}; the learner is told to keep "
        f"{kept.number}. /unmerge {merged.number} undoes it while nothing new has happened."
    )


async def unmerge_command(
    core: CoreContext,
    session: AsyncSession,
    staff: Staff,
    request: StaffRequest,
    args: str,
    now: datetime,
) -> str:
    tickets = await _numbers(core, session, args, "type /unmerge TS-b (the merged ticket)")
    record = await unmerge(core, session, tickets[-1], staff, now)
    kept, merged = (
        await session.get_one(Ticket, record.kept_id),
        await session.get_one(Ticket, record.merged_id),
    )
    return f"✅ {merged.number} is separate from {kept.number} again ({merged.status}), by {staff.name}"


async def card_command(
    core: CoreContext,
    session: AsyncSession,
    staff: Staff,
    request: StaffRequest,
    args: str,
    now: datetime,
) -> str:
    tickets = await _numbers(core, session, args, "type /card TS-… (or press its number in a summary)")
    ticket = tickets[0]
    if await post_card(core, session, ticket, now):
        return f"🗂 {ticket.number}: card posted in the {ticket.department} chat"
    # A copy to the asker privately, on the channel they asked from.
    enqueue(
        session,
        core.vault,
        key=request.outbox_key("card"),
        channel=request.who.channel,
        recipient=request.who.address,
        kind="notice-staff",
        text=await card_text(core, session, ticket),
        now=now,
        ticket=ticket,
    )
    return f"🗂 {ticket.number}: its card is in the chat already; a copy went to {staff.name} privately"
