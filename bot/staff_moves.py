"""Staff commands on one ticket: which ticket a request is about, then `/claim`, `/reply`, `/assign`,
`/rate`, `/severity`, `/show` and the other moves, each an audited workflow move whose answer the
caller queues. Words in a ticket's thread are a reply to its learner.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import staff_canned, staff_queries
from bot.staff_queries import BadCommand
from core.context import CoreContext
from core.delivery.outbox import enqueue
from core.messages import STAFF_LOGGED
from core.storage.delivery_models import OutboxRow
from core.storage.models import LearnerIdentity, Staff, Ticket
from core.storage.numbers import InvalidTicketNumber, TicketNumber
from core.tickets.callback import callback_number, pending_callback, reachable_identity
from core.tickets.canned import parse_key
from core.tickets.followup import record_score
from core.tickets.moves import apply_move, record_disclosure, staff_actor
from core.tickets.queries import TicketNotFound, get_ticket, latest_inbound_ref, ticket_for_thread
from core.tickets.reach import written_address
from core.tickets.staff import DEPARTMENTS
from core.tickets.staff_requests import StaffRequest
from core.tickets.workflow import MANAGER, WorkflowError, check

# Commands that move a ticket: the text after the number is the move's detail.
MOVES = {"claim", "plan", "done", "resolve", "transfer", "escalate", "reopen", "note", "reply", "called"}
NEEDS_TEXT = {"plan", "done", "resolve", "escalate", "note", "reply", "transfer", "severity"}
TICKET_COMMANDS = MOVES | {"show", "assign", "rate", "severity"}
MAX_ANSWER = 4000  # a little under Telegram's 4,096 characters, the shortest limit staff work under


async def ticket_of(
    core: CoreContext, session: AsyncSession, request: StaffRequest, args: str
) -> tuple[Ticket, str]:
    """The ticket the request is about, and the words after its number."""
    parts = args.strip().split(None, 1)
    if parts:
        first, rest = parts[0], parts[1] if len(parts) > 1 else ""
        try:
            TicketNumber.parse(first, core.prefix)
        except InvalidTicketNumber:
            if first.upper().startswith(core.prefix.upper() + "-"):
                raise  # a mistyped number: refuse it, never guess another ticket
        else:
            return await get_ticket(session, first, core.prefix), rest.strip()
    if request.reply_to is not None:
        ticket_id = await session.scalar(
            select(OutboxRow.ticket_id).where(
                OutboxRow.channel == "staff", OutboxRow.external_ref == request.reply_to
            )
        )
        if ticket_id is not None:
            return await session.get_one(Ticket, ticket_id), args.strip()
    ticket = await thread_ticket(session, request)
    if ticket is not None:
        return ticket, args.strip()
    raise TicketNotFound(
        "give the ticket number first (e.g. /claim TS-261122-00071), reply to its card, or write in its topic"
    )


async def thread_ticket(session: AsyncSession, request: StaffRequest) -> Ticket | None:
    """The ticket whose card opened the thread the request was said in (a forum topic), if any."""
    thread = request.where.thread_ref
    return None if thread is None else await ticket_for_thread(session, thread)


async def on_ticket(
    core: CoreContext,
    session: AsyncSession,
    staff: Staff,
    request: StaffRequest,
    command: str,
    ticket: Ticket,
    text: str,
    now: datetime,
) -> str:
    if command == "show":
        if text.lower().split()[:1] == ["full"]:
            return await _show_full(core, session, staff, request, ticket, now)
        return await staff_queries.show(core, session, ticket, now)
    if command == "assign":
        return await _assign(core, session, staff, ticket, text, now)
    if command == "rate":  # the score a learner gave on the follow-up call
        score, _, comment = text.partition(" ")
        if not score.isdigit():
            raise BadCommand(f"type /rate {ticket.number} followed by the score and the learner's comment")
        await record_score(core, session, ticket, int(score), comment, staff_actor(staff), now)
        return f"✅ {ticket.number}: satisfaction {score} recorded by {staff.name} ({ticket.status})"
    if command in NEEDS_TEXT and not text:
        raise BadCommand(f"type /{command} {ticket.number} followed by the text")
    if command == "reply":
        if (key := parse_key(text)) is not None:
            text = await staff_canned.fill(core, session, ticket, key, now)
        return await reply(core, session, staff, ticket, text, request, now)
    if command == "severity":  # "/severity TS-… major why": the level, then the reason
        level, *why = text.split(None, 1)
        await apply_move(
            core,
            session,
            ticket,
            "severity",
            staff_actor(staff),
            now,
            detail=why[0].strip() if why else None,
            severity=level.lower(),
        )
        return f"✅ {ticket.number}: severity {ticket.severity} set by {staff.name} ({ticket.status})"
    department = None
    if command == "transfer":  # "/transfer TS-… finance why": the department, then the reason
        department, *reason = text.split(None, 1)
        text = reason[0] if reason else ""
    await apply_move(
        core,
        session,
        ticket,
        command,
        staff_actor(staff),
        now,
        detail=text.strip() or None,
        department=department,
    )
    if command == "claim" and await pending_callback(session, ticket.id) is not None:
        await _callback_number(core, session, staff, ticket, request, now)
    return f"✅ {ticket.number}: {command} by {staff.name} ({ticket.status})"


async def _show_full(
    core: CoreContext,
    session: AsyncSession,
    staff: Staff,
    request: StaffRequest,
    ticket: Ticket,
    now: datetime,
) -> str:
    full = await staff_queries.show_full(core, session, staff, ticket, now, request.where.label)
    # Unmasked data never goes to the group: to the requester privately, on the channel they used,
    # and its text is removed from the outbox once sent.
    who = request.who
    enqueue(
        session,
        core.vault,
        key=request.outbox_key("show-full"),
        channel=who.channel,
        recipient=who.address,
        kind="notice-staff",
        text=full[:MAX_ANSWER],
        now=now,
        ticket=ticket,
        meta={"sensitive": True},
    )
    return f"🔒 {ticket.number}: sent to {staff.name} privately (start a chat with the bot first)"


async def _callback_number(
    core: CoreContext,
    session: AsyncSession,
    staff: Staff,
    ticket: Ticket,
    request: StaffRequest,
    now: datetime,
) -> None:
    """The new owner of a voicemail gets the number to call, in full and privately (audited), on the
    channel they claimed it from."""
    number = await callback_number(core, session, ticket)
    clock = await pending_callback(session, ticket.id)
    if number is None or clock is None:
        return
    record_disclosure(session, ticket, staff_actor(staff).label, now, "call-back number, privately")
    who = request.who
    enqueue(
        session,
        core.vault,
        key=request.outbox_key("callback-number"),
        channel=who.channel,
        recipient=who.address,
        kind="notice-staff",
        text=f"📞 {ticket.number}: call back {number} by {core.local_text(clock.due_at)}, "
        f"then /called {ticket.number} with what was said.",
        now=now,
        ticket=ticket,
        meta={"sensitive": True},
    )


async def _assign(
    core: CoreContext, session: AsyncSession, staff: Staff, ticket: Ticket, text: str, now: datetime
) -> str:
    parts = text.split(None, 1)
    if not parts:
        raise BadCommand(f"/assign {ticket.number} needs a department, @name or staff id.")
    departments = core.department_names or dict.fromkeys(DEPARTMENTS)
    actor = staff_actor(staff)
    if parts[0].lower() in departments:
        department, rest = parts[0].lower(), parts[1] if len(parts) > 1 else ""
        await apply_move(
            core, session, ticket, "transfer", actor, now, detail=rest or None, department=department
        )
        return f"✅ {ticket.number}: transferred to {department} by {staff.name} ({ticket.status})"
    # Who may give a ticket an owner is the first question; whom, the second.
    check("assign", ticket.status, ticket.department, actor, owner_learner_id=ticket.learner_id)
    owner, rest = await staff_queries.find_person(session, text.strip(), departments)
    if owner.role != MANAGER and owner.department != ticket.department:
        raise BadCommand(
            f"{owner.name} works in {owner.department} and {ticket.number} belongs to "
            f"{ticket.department}: transfer it first (/assign {ticket.number} {owner.department})"
        )
    await apply_move(core, session, ticket, "assign", actor, now, detail=rest or None, owner=owner)
    return f"✅ {ticket.number}: assigned to {owner.name} by {staff.name} ({ticket.status})"


async def reply(
    core: CoreContext,
    session: AsyncSession,
    staff: Staff,
    ticket: Ticket,
    text: str,
    request: StaffRequest,
    now: datetime,
) -> str:
    """An audited move "reply" and the message to the learner, on their own channel."""
    identity = await session.get(LearnerIdentity, ticket.identity_id) if ticket.identity_id else None
    channels = core.channels
    if identity is not None and channels.of(identity.channel).calls_back:
        # A voicemail cannot be answered in writing: the learner's latest written address, if any.
        learner_id = ticket.learner_id
        identity = await session.run_sync(lambda s: reachable_identity(s, channels, learner_id))
        if identity is None:
            raise WorkflowError(
                f"{ticket.number} came by voicemail and the caller has no address the bot can write "
                "to: call back (the owner has the number) and record it with /called"
            )
    if identity is None:
        raise WorkflowError(f"{ticket.number} has no learner address to reply to")
    # Logged by staff (/log), the learner left a phone number or an e-mail: only the e-mail is written to.
    written = written_address(channels, identity.channel, core.vault.decrypt(identity.address_enc))
    if written is None and identity.channel == STAFF_LOGGED:
        raise WorkflowError(
            f"{ticket.number} was logged by staff: the bot cannot write to a phone number; "
            "call the learner back (/show full gives the number to the owner)"
        )
    if written is None:
        raise WorkflowError(f"{ticket.number} has no learner address to reply to")
    channel, address = written
    await apply_move(core, session, ticket, "reply", staff_actor(staff), now, detail=text)
    # In their language, with the number so they know which complaint.
    said = core.templates.render(ticket.locale, "reply.txt", number=ticket.number, text=text)
    enqueue(
        session,
        core.vault,
        key=request.outbox_key("reply"),
        channel=channel,
        recipient=address,
        kind="reply",
        text=said,
        now=now,
        ticket=ticket,
        # Where the channel threads (mail), the answer joins the learner's thread (In-Reply-To).
        reply_to=await latest_inbound_ref(session, ticket.id, channel)
        if channels.of(channel).subjects
        else None,
        meta={"ticket_number": ticket.number},
    )
    return f"✅ {ticket.number}: reply by {staff.name} sent to the learner ({ticket.status})"
