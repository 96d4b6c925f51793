"""Staff chat-ops: `/claim TS-…`, `/reply TS-… text`, buttons on cards — parsed into core workflow moves.

Only registered staff may act, and only in the chats configured for them; anything else is refused
with a short reason and changes nothing. The ticket is the command's first argument or, without one,
the ticket whose card the command replies to. Every answer goes out through the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.telegram.parse import ButtonPress, StaffCommand, StaffText, external_id
from core.context import CoreContext
from core.models import LearnerIdentity, OutboxRow, Staff, Ticket
from core.numbers import InvalidTicketNumber, TicketNumber
from core.outbox import enqueue, send_once
from core.staff import find_by_telegram
from core.tickets import TicketNotFound, apply_move, get_ticket, staff_actor, summary_view
from core.workflow import MANAGER, WorkflowError

log = logging.getLogger(__name__)

# Commands that move a ticket: the text after the number is the move's detail.
MOVES = {"claim", "plan", "done", "resolve", "transfer", "escalate", "reopen", "note", "reply"}
NEEDS_TEXT = {"plan", "done", "resolve", "escalate", "note", "reply", "transfer"}


@dataclass(frozen=True)
class StaffChats:
    """Which Telegram chat serves whom: each department's, the default staff chat, the managers'."""

    departments: Mapping[str, int]
    default: int | None
    managers: int | None

    def allowed(self, staff: Staff, chat_id: int) -> bool:
        if staff.role == MANAGER:
            return chat_id in {*self.departments.values(), self.default, self.managers}
        own = self.departments.get(staff.department, self.default)
        return chat_id == own


AnswerCallback = Callable[[str, str], Awaitable[None]]


class StaffCommands:
    def __init__(self, core: CoreContext, chats: StaffChats, answer_callback: AnswerCallback) -> None:
        self.core = core
        self.chats = chats
        self.answer_callback = answer_callback

    async def __call__(self, event: StaffCommand | StaffText | ButtonPress, now: datetime) -> None:
        if isinstance(event, StaffText):
            return  # plain talk in a staff chat is not for the bot (forum topics come later)
        if isinstance(event, ButtonPress):
            action, _, number = event.data.partition(":")
            command, args, reply_to = action, number, None
        else:
            command, args, reply_to = event.command, event.args, event.reply_to_message_id
        answer = await self._run(event, command, args, reply_to, now)
        if isinstance(event, ButtonPress):
            try:
                await self.answer_callback(event.callback_id, answer[:190])
            except Exception:  # the toast is a courtesy; the answer below is the record
                log.warning("could not answer Telegram callback %s", event.callback_id, exc_info=True)
        await self._say(event, answer, now)

    async def _run(
        self, event: StaffCommand | ButtonPress, command: str, args: str, reply_to: int | None, now: datetime
    ) -> str:
        async with self.core.sessions() as session, session.begin():
            staff = await find_by_telegram(session, str(event.user_id))
            if staff is None:
                return "⛔ Not registered as staff: ask an administrator to run `complaintbot staff add`."
            if not self.chats.allowed(staff, event.chat_id):
                return f"⛔ {staff.name}: this chat is not one of yours; act in your department's chat."
            try:
                ticket, text = await self._ticket(session, event.chat_id, args, reply_to)
                if command == "show":
                    return await self._show(session, ticket, now)
                if command not in MOVES:
                    return f"Unknown command /{command}. Try /claim, /reply, /note, /plan, /done, /resolve."
                if command in NEEDS_TEXT and not text:
                    return f"/{command} {ticket.number} needs a text after the number."
                department = text.split()[0] if command == "transfer" else None
                await apply_move(
                    self.core,
                    session,
                    ticket,
                    command,
                    staff_actor(staff),
                    now,
                    detail=text or None,
                    department=department,
                )
                if command == "reply":
                    await self._to_learner(session, ticket, text, event, now)
                return f"✅ {ticket.number}: {command} by {staff.name} ({ticket.status})"
            except (WorkflowError, TicketNotFound, InvalidTicketNumber) as exc:
                return f"⚠️ {exc}"

    async def _ticket(
        self, session: AsyncSession, chat_id: int, args: str, reply_to: int | None
    ) -> tuple[Ticket, str]:
        first, _, rest = args.strip().partition(" ")
        if first:
            try:
                TicketNumber.parse(first, self.core.prefix)
            except InvalidTicketNumber:
                if first.upper().startswith(self.core.prefix.upper() + "-"):
                    raise  # a mistyped number: refuse it, never guess another ticket
            else:
                return await get_ticket(session, first, self.core.prefix), rest.strip()
        if reply_to is not None:
            ticket_id = await session.scalar(
                select(OutboxRow.ticket_id).where(
                    OutboxRow.channel == "staff", OutboxRow.external_ref == external_id(chat_id, reply_to)
                )
            )
            if ticket_id is not None:
                return await session.get_one(Ticket, ticket_id), args.strip()
        raise TicketNotFound(
            "give the ticket number first (e.g. /claim TS-261122-00071), or reply to its card"
        )

    async def _show(self, session: AsyncSession, ticket: Ticket, now: datetime) -> str:
        view = await summary_view(self.core, session, ticket, now)
        due = f"{view['due_stage']} due {view['due_at'][:16]}" if view["due_at"] else "no open deadline"
        overdue = " ⏰ OVERDUE" if view["overdue"] else ""
        return (
            f"{view['number']} {view['status']} · {view['category']}/{view['severity']} · "
            f"{view['department']} · owner {view['owner'] or '—'} · {due}{overdue}\n{view['summary']}"
        )

    async def _to_learner(
        self,
        session: AsyncSession,
        ticket: Ticket,
        text: str,
        event: StaffCommand | ButtonPress,
        now: datetime,
    ) -> None:
        identity = await session.get(LearnerIdentity, ticket.identity_id) if ticket.identity_id else None
        if identity is None:
            raise WorkflowError(f"{ticket.number} has no learner address to reply to")
        # On the learner's own channel, in their language, with the number so they know which complaint.
        said = self.core.templates.render(ticket.locale, "reply.txt", number=ticket.number, text=text)
        enqueue(
            session,
            self.core.vault,
            key=f"telegram:{event.update_id}:reply",
            channel=identity.channel,
            recipient=self.core.vault.decrypt(identity.address_enc),
            kind="reply",
            text=said,
            now=now,
            ticket=ticket,
            meta={"ticket_number": ticket.number},
        )

    async def _say(self, event: StaffCommand | ButtonPress, text: str, now: datetime) -> None:
        reply_to = external_id(event.chat_id, event.message_id)
        meta = {"thread_id": event.thread_id} if event.thread_id is not None else {}
        await send_once(
            self.core.sessions,
            self.core.vault,
            key=f"telegram:{event.update_id}:answer",
            channel="telegram",
            recipient=str(event.chat_id),
            kind="notice-staff",
            text=text,
            now=now,
            reply_to=None if isinstance(event, ButtonPress) else reply_to,
            meta=meta,
        )
