"""Staff chat-ops: `/claim TS-…`, `/reply TS-… text`, buttons on cards — parsed into core workflow moves.

Only registered staff may act, and only in the chats configured for them; anything else is refused
with a short reason and changes nothing (a refused command's transaction is rolled back). The ticket
is the command's first argument or, without one, the ticket whose card the command replies to, or
the ticket whose card opened the forum topic it was written in. In such a topic plain text from staff
is a reply to the learner. Every answer goes out through the outbox. Reading commands are in
`bot.staff_queries`, `/log` in `bot.staff_log`; `/merge`, `/unmerge` and `/card` in `bot.staff_merge`,
canned replies in `bot.staff_canned`, `/find` in `bot.staff_find`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import staff_canned, staff_queries, staff_reports
from bot.staff_find import find_command
from bot.staff_log import log_complaint
from bot.staff_merge import card_command, merge_command, unmerge_command
from bot.staff_queries import BadCommand, Refused
from bot.staff_reports import Reply
from channels.telegram.events import ButtonPress, StaffCommand, StaffText, external_id
from core.callback import callback_number, pending_callback, reachable_identity
from core.canned import parse_key
from core.context import CoreContext
from core.followup import record_score
from core.intake import Intake
from core.merge import carried_on
from core.messages import STAFF_LOGGED
from core.models import LearnerIdentity, Staff, Ticket
from core.models_delivery import OutboxRow
from core.numbers import InvalidTicketNumber, TicketNumber
from core.outbox import enqueue, send_once
from core.reach import private_address, written_address
from core.staff import DEPARTMENTS, find_by_telegram
from core.ticket_moves import apply_move, record_disclosure, staff_actor
from core.ticket_queries import TicketNotFound, get_ticket, latest_inbound_ref, ticket_for_thread
from core.workflow import MANAGER, NotAllowed, WorkflowError, check

log = logging.getLogger(__name__)

# Commands that move a ticket: the text after the number is the move's detail.
MOVES = {"claim", "plan", "done", "resolve", "transfer", "escalate", "reopen", "note", "reply", "called"}
NEEDS_TEXT = {"plan", "done", "resolve", "escalate", "note", "reply", "transfer", "severity"}
TICKET_COMMANDS = MOVES | {"show", "assign", "rate", "severity"}
LISTS = {"mine": staff_queries.mine, "overdue": staff_queries.overdue, "stats": staff_reports.stats}
# Commands of a busy desk (merge, canned replies, search, cards on demand): their own modules.
ChatOp = Callable[
    [CoreContext, AsyncSession, Staff, "StaffCommand | ButtonPress", str, datetime], Awaitable[str]
]
CHAT_OPS: dict[str, ChatOp] = {
    "merge": merge_command,
    "unmerge": unmerge_command,
    "card": card_command,
    "canned": staff_canned.canned_command,
    "find": find_command,
}
# The managers' commands; they take an argument (the month, the quarter).
REPORTS: dict[str, Callable[[CoreContext, AsyncSession, Staff, str, datetime], Awaitable[str | Reply]]] = {
    "report": staff_reports.report,
    "credit": staff_reports.credit,
}
HELP = (
    "With the ticket number first (or in the ticket's topic, or replying to its card): /claim, "
    "/assign <department|@name|staff id>, /reply, /note, /plan, /done, /resolve, /transfer, /escalate, "
    "/reopen, /called [what was said], /rate <score> [comment] (after a follow-up call), /show [full], "
    "/severity <general|major> [why] (corrects the severity; /transfer corrects the category), "
    "/reply TS-… #key (a canned reply), /card. /merge TS-a TS-b (TS-b joins TS-a), /unmerge TS-b. "
    "Without: /mine, /overdue, /stats, /find <words|number part|*phone tail>, /canned, "
    "/log <channel> <phone|e-mail> <text>; "
    "managers: /report [YYYY-MM], /credit [YYYYQn]."
)
MAX_ANSWER = 4000  # Telegram takes 4096 characters in a message

Event = StaffCommand | StaffText | ButtonPress


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
    def __init__(
        self,
        core: CoreContext,
        chats: StaffChats,
        answer_callback: AnswerCallback,
        intake: Intake | None = None,
    ) -> None:
        self.core = core
        self.chats = chats
        self.answer_callback = answer_callback
        self.intake = intake if intake is not None else Intake(core)

    async def __call__(self, event: Event, now: datetime) -> None:
        if isinstance(event, StaffText):
            await self._handle(event, now, lambda session: self._topic_text(session, event, now))
            return
        if isinstance(event, ButtonPress):
            action, _, number = event.data.partition(":")
            command, args, reply_to = action, number, None
        else:
            command, args, reply_to = event.command, event.args, event.reply_to_message_id
        if command == "log" and isinstance(event, StaffCommand):
            answer: str | None = await self._log(event, args, now)
        else:
            answer = await self._handle(
                event, now, lambda session: self._run(session, event, command, args, reply_to, now)
            )
        if answer is not None and isinstance(event, ButtonPress):
            try:
                await self.answer_callback(event.callback_id, answer[:190])
            except Exception:  # the toast is a courtesy; the answer in the chat is the record
                log.warning("could not answer Telegram callback %s", event.callback_id, exc_info=True)

    async def _handle(
        self, event: Event, now: datetime, work: Callable[[AsyncSession], Awaitable[str | Reply | None]]
    ) -> str | None:
        """One update in one transaction with its answer, so a redelivered update finds the answer
        queued and changes nothing again. A refusal rolls the transaction back and is answered alone.
        None: nothing was said (not for the bot, or handled before)."""
        answer = self._answer(event, "", now)
        try:
            async with self.core.sessions() as session, session.begin():
                handled = select(OutboxRow.id).where(OutboxRow.key == answer["key"])
                if await session.scalar(handled) is not None:
                    return None
                answer_of = await work(session)
                if answer_of is None:
                    return None
                reply = answer_of if isinstance(answer_of, Reply) else Reply(answer_of)
                enqueue(
                    session,
                    self.core.vault,
                    **self._answer(event, reply.text, now),
                    documents=reply.documents,
                )
                return reply.text
        except (Refused, BadCommand, WorkflowError, TicketNotFound, InvalidTicketNumber) as exc:
            said = _refusal(exc)
        await send_once(self.core.sessions, self.core.vault, **self._answer(event, said, now))
        return said

    async def _log(self, event: StaffCommand, args: str, now: datetime) -> str:
        """`/log` runs through intake's own transaction; intake's dedupe makes a redelivery a no-op."""
        try:
            async with self.core.sessions() as session:
                staff = await self._staff(session, event)
            said = await log_complaint(self.core, self.intake, staff, event, args, now)
        except (Refused, BadCommand) as exc:
            said = _refusal(exc)
        await send_once(self.core.sessions, self.core.vault, **self._answer(event, said, now))
        return said

    async def _staff(self, session: AsyncSession, event: Event) -> Staff:
        staff = await find_by_telegram(session, str(event.user_id))
        if staff is None:
            raise Refused("Not registered as staff: ask an administrator to run `complaintbot staff add`.")
        if not self.chats.allowed(staff, event.chat_id):
            raise Refused(f"{staff.name}: this chat is not one of yours; act in your department's chat.")
        return staff

    async def _run(
        self,
        session: AsyncSession,
        event: StaffCommand | ButtonPress,
        command: str,
        args: str,
        reply_to: int | None,
        now: datetime,
    ) -> str | Reply:
        staff = await self._staff(session, event)
        if command in LISTS:
            return await LISTS[command](self.core, session, staff, now)
        if command in REPORTS:
            return await REPORTS[command](self.core, session, staff, args, now)
        if command in CHAT_OPS:
            return await CHAT_OPS[command](self.core, session, staff, event, args, now)
        if command not in TICKET_COMMANDS:
            return HELP if command == "help" else f"Unknown command /{command}. {HELP}"
        ticket, text = await self._ticket(session, event, args, reply_to)
        if command != "show":  # a merged ticket's number leads to the ticket that carries it on
            ticket = await carried_on(session, ticket)
        return await self._on_ticket(session, staff, event, command, ticket, text, now)

    async def _on_ticket(
        self,
        session: AsyncSession,
        staff: Staff,
        event: StaffCommand | ButtonPress,
        command: str,
        ticket: Ticket,
        text: str,
        now: datetime,
    ) -> str:
        if command == "show":
            if text.lower().split()[:1] == ["full"]:
                where = f"Telegram chat {event.chat_id}"
                full = await staff_queries.show_full(self.core, session, staff, ticket, now, where)
                # Unmasked data never goes to the group: to the requester's private chat only, and its
                # text is removed from the outbox once sent.
                enqueue(
                    session,
                    self.core.vault,
                    key=f"telegram:{event.update_id}:show-full",
                    channel="telegram",
                    recipient=str(event.user_id),
                    kind="notice-staff",
                    text=full[:MAX_ANSWER],
                    now=now,
                    ticket=ticket,
                    meta={"sensitive": True},
                )
                return f"🔒 {ticket.number}: sent to {staff.name} privately (start a chat with the bot first)"
            return await staff_queries.show(self.core, session, ticket, now)
        if command == "assign":
            return await self._assign(session, staff, ticket, text, now)
        if command == "rate":  # the score a learner gave on the follow-up call
            score, _, comment = text.partition(" ")
            if not score.isdigit():
                raise BadCommand(
                    f"type /rate {ticket.number} followed by the score and the learner's comment"
                )
            await record_score(self.core, session, ticket, int(score), comment, staff_actor(staff), now)
            return f"✅ {ticket.number}: satisfaction {score} recorded by {staff.name} ({ticket.status})"
        if command in NEEDS_TEXT and not text:
            raise BadCommand(f"type /{command} {ticket.number} followed by the text")
        if command == "reply":
            if (key := parse_key(text)) is not None:
                text = await staff_canned.fill(self.core, session, ticket, key, now)
            return await self._reply(session, staff, ticket, text, event, now)
        if command == "severity":  # "/severity TS-… major why": the level, then the reason
            level, *why = text.split(None, 1)
            await apply_move(
                self.core,
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
            self.core,
            session,
            ticket,
            command,
            staff_actor(staff),
            now,
            detail=text.strip() or None,
            department=department,
        )
        if command == "claim" and await pending_callback(session, ticket.id) is not None:
            await self._callback_number(session, staff, ticket, event, now)
        return f"✅ {ticket.number}: {command} by {staff.name} ({ticket.status})"

    async def _callback_number(
        self, session: AsyncSession, staff: Staff, ticket: Ticket, event: Event, now: datetime
    ) -> None:
        """The new owner of a voicemail gets the number to call, in full and privately (audited)."""
        number = await callback_number(self.core, session, ticket)
        clock = await pending_callback(session, ticket.id)
        privately = private_address(self.core.channels, staff)
        if number is None or clock is None or privately is None:
            return
        record_disclosure(session, ticket, staff_actor(staff).label, now, "call-back number, privately")
        enqueue(
            session,
            self.core.vault,
            key=f"telegram:{event.update_id}:callback-number",
            channel=privately[0],
            recipient=privately[1],
            kind="notice-staff",
            text=f"📞 {ticket.number}: call back {number} by {self.core.local_text(clock.due_at)}, "
            f"then /called {ticket.number} with what was said.",
            now=now,
            ticket=ticket,
            meta={"sensitive": True},
        )

    async def _ticket(
        self, session: AsyncSession, event: StaffCommand | ButtonPress, args: str, reply_to: int | None
    ) -> tuple[Ticket, str]:
        parts = args.strip().split(None, 1)
        if parts:
            first, rest = parts[0], parts[1] if len(parts) > 1 else ""
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
                    OutboxRow.channel == "staff",
                    OutboxRow.external_ref == external_id(event.chat_id, reply_to),
                )
            )
            if ticket_id is not None:
                return await session.get_one(Ticket, ticket_id), args.strip()
        if event.thread_id is not None:
            ticket = await ticket_for_thread(session, f"{event.chat_id}:{event.thread_id}")
            if ticket is not None:
                return ticket, args.strip()
        raise TicketNotFound(
            "give the ticket number first (e.g. /claim TS-261122-00071), reply to its card, "
            "or write in its topic"
        )

    async def _topic_text(self, session: AsyncSession, event: StaffText, now: datetime) -> str | None:
        """Plain text in a ticket's forum topic is a reply to the learner; anywhere else it is talk."""
        if event.thread_id is None or not event.text.strip():
            return None
        ticket = await ticket_for_thread(session, f"{event.chat_id}:{event.thread_id}")
        if ticket is None:
            return None
        if await find_by_telegram(session, str(event.user_id)) is None:
            return None  # not staff: their talk is not for the bot, and not for the learner
        staff = await self._staff(session, event)
        ticket = await carried_on(session, ticket)
        return await self._reply(session, staff, ticket, event.text.strip(), event, now)

    async def _assign(
        self, session: AsyncSession, staff: Staff, ticket: Ticket, text: str, now: datetime
    ) -> str:
        parts = text.split(None, 1)
        if not parts:
            raise BadCommand(f"/assign {ticket.number} needs a department, @name or staff id.")
        departments = self.core.department_names or dict.fromkeys(DEPARTMENTS)
        actor = staff_actor(staff)
        if parts[0].lower() in departments:
            department, rest = parts[0].lower(), parts[1] if len(parts) > 1 else ""
            await apply_move(
                self.core, session, ticket, "transfer", actor, now, detail=rest or None, department=department
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
        await apply_move(self.core, session, ticket, "assign", actor, now, detail=rest or None, owner=owner)
        return f"✅ {ticket.number}: assigned to {owner.name} by {staff.name} ({ticket.status})"

    async def _reply(
        self, session: AsyncSession, staff: Staff, ticket: Ticket, text: str, event: Event, now: datetime
    ) -> str:
        """An audited move "reply" and the message to the learner, on their own channel."""
        identity = await session.get(LearnerIdentity, ticket.identity_id) if ticket.identity_id else None
        channels = self.core.channels
        if identity is not None and channels.of(identity.channel).calls_back:
            # A voicemail cannot be answered in writing: the learner's latest written address, if any.
            learner_id = ticket.learner_id
            identity = await session.run_sync(lambda s: reachable_identity(s, self.core.channels, learner_id))
            if identity is None:
                raise WorkflowError(
                    f"{ticket.number} came by voicemail and the caller has no address the bot can write "
                    "to: call back (the owner has the number) and record it with /called"
                )
        if identity is None:
            raise WorkflowError(f"{ticket.number} has no learner address to reply to")
        # Logged by staff (/log), the learner left a phone number or an e-mail: only the e-mail is written to.
        written = written_address(channels, identity.channel, self.core.vault.decrypt(identity.address_enc))
        if written is None and identity.channel == STAFF_LOGGED:
            raise WorkflowError(
                f"{ticket.number} was logged by staff: the bot cannot write to a phone number; "
                "call the learner back (/show full gives the number to the owner)"
            )
        if written is None:
            raise WorkflowError(f"{ticket.number} has no learner address to reply to")
        channel, address = written
        await apply_move(self.core, session, ticket, "reply", staff_actor(staff), now, detail=text)
        # In their language, with the number so they know which complaint.
        said = self.core.templates.render(ticket.locale, "reply.txt", number=ticket.number, text=text)
        enqueue(
            session,
            self.core.vault,
            key=f"telegram:{event.update_id}:reply",
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

    @staticmethod
    def _answer(event: Event, text: str, now: datetime) -> dict[str, Any]:
        """The outbox fields of the answer to `event`: in its chat, threaded under it, once per update."""
        if len(text) > MAX_ANSWER:
            text = text[: MAX_ANSWER - 1] + "…"
        return {
            "key": f"telegram:{event.update_id}:answer",
            "channel": "telegram",
            "recipient": str(event.chat_id),
            "kind": "notice-staff",
            "text": text,
            "now": now,
            "reply_to": None
            if isinstance(event, ButtonPress)
            else external_id(event.chat_id, event.message_id),
            "meta": {"thread_id": event.thread_id} if event.thread_id is not None else {},
        }


def _refusal(exc: Exception) -> str:
    """Refused: the sender may not (⛔); anything else: it cannot be done as written (⚠️)."""
    return f"⛔ {exc}" if isinstance(exc, Refused | NotAllowed) else f"⚠️ {exc}"
