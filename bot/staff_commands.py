"""Staff chat-ops: `/claim TS-…`, `/reply TS-… text`, buttons on cards — carried out as core workflow moves.

The layer acts on `core.tickets.staff_requests.StaffRequest`, whichever channel it came from: a channel turns
its own events into requests (Telegram: `channels.telegram.updates`). Only registered staff may act,
and only in the chats configured for them; anything else is refused with a short reason and changes nothing (a
refused command's transaction is rolled back). The ticket is the command's first argument or, without
one, the ticket whose card the command replies to, or the ticket whose card opened the thread it was
written in; in such a thread plain words from staff are a reply to the learner (`bot.staff_moves`).
Every answer goes out through the outbox, in the place the request was made. Reading commands are in
`bot.staff_queries`, `/log` in `bot.staff_log`; `/merge`, `/unmerge` and `/card` in `bot.staff_merge`,
canned replies in `bot.staff_canned`, `/find` in `bot.staff_find`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import staff_canned, staff_queries, staff_reports
from bot.staff_find import find_command
from bot.staff_log import log_complaint
from bot.staff_merge import card_command, merge_command, unmerge_command
from bot.staff_moves import MAX_ANSWER, TICKET_COMMANDS, on_ticket, reply, thread_ticket, ticket_of
from bot.staff_queries import BadCommand, Refused
from bot.staff_reports import Reply
from core.capabilities import ChannelBook
from core.context import CoreContext
from core.delivery.outbox import enqueue, send_once
from core.intake.intake import Intake
from core.storage.delivery_models import OutboxRow
from core.storage.models import Staff
from core.storage.numbers import InvalidTicketNumber
from core.tickets.merge import carried_on
from core.tickets.queries import TicketNotFound
from core.tickets.staff import find_by_address
from core.tickets.staff_requests import Command, Press, Said, StaffRequest, StaffRooms
from core.tickets.workflow import NotAllowed, WorkflowError

log = logging.getLogger(__name__)

LISTS = {"mine": staff_queries.mine, "overdue": staff_queries.overdue, "stats": staff_reports.stats}
# Commands of a busy desk (merge, canned replies, search, cards on demand): their own modules.
ChatOp = Callable[[CoreContext, AsyncSession, Staff, StaffRequest, str, datetime], Awaitable[str]]
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
PRESS_NOTICE = 190  # the short notice that answers a press (Telegram shows up to 200 characters)

# How a channel answers a pressed button with a short notice: (the press's id, the text).
AnswerButton = Callable[[str, str], Awaitable[None]]


class StaffCommands:
    def __init__(
        self,
        core: CoreContext,
        rooms: StaffRooms,
        answer_button: AnswerButton,
        intake: Intake | None = None,
        *,
        channels: ChannelBook | None = None,
    ) -> None:
        self.core = core
        self.rooms = rooms  # where each department's staff may act, on the channels they act from
        self.answer_button = answer_button
        self.intake = intake if intake is not None else Intake(core)
        # The channels staff act from: each names the staff directory's field of its addresses (the
        # application's, unless a caller composes its own).
        self.channels = channels if channels is not None else core.channels

    async def __call__(self, request: StaffRequest, now: datetime) -> None:
        what = request.what
        if isinstance(what, Said):
            await self._handle(request, now, lambda session: self._thread_words(session, request, what, now))
            return
        command = what.command if isinstance(what, Press) else what
        if command.name == "log" and isinstance(what, Command):
            answer: str | None = await self._log(request, command.args, now)
        else:
            answer = await self._handle(
                request, now, lambda session: self._run(session, request, command, now)
            )
        if answer is not None and isinstance(what, Press):
            try:
                await self.answer_button(what.press_id, answer[:PRESS_NOTICE])
            except Exception:  # the notice is a courtesy; the answer in the chat is the record
                log.warning(
                    "could not answer the press %s on %s", what.press_id, request.where.channel, exc_info=True
                )

    async def _handle(
        self,
        request: StaffRequest,
        now: datetime,
        work: Callable[[AsyncSession], Awaitable[str | Reply | None]],
    ) -> str | None:
        """One request in one transaction with its answer, so a redelivered request finds the answer
        queued and changes nothing again. A refusal rolls the transaction back and is answered alone.
        None: nothing was said (not for the bot, or handled before)."""
        answer = self._answer(request, "", now)
        try:
            async with self.core.sessions() as session, session.begin():
                handled = select(OutboxRow.id).where(OutboxRow.key == answer["key"])
                if await session.scalar(handled) is not None:
                    return None
                answer_of = await work(session)
                if answer_of is None:
                    return None
                said = answer_of if isinstance(answer_of, Reply) else Reply(answer_of)
                enqueue(
                    session,
                    self.core.vault,
                    **self._answer(request, said.text, now),
                    documents=said.documents,
                )
                return said.text
        except (Refused, BadCommand, WorkflowError, TicketNotFound, InvalidTicketNumber) as exc:
            refusal = _refusal(exc)
        await send_once(self.core.sessions, self.core.vault, **self._answer(request, refusal, now))
        return refusal

    async def _log(self, request: StaffRequest, args: str, now: datetime) -> str:
        """`/log` runs through intake's own transaction; intake's dedupe makes a redelivery a no-op."""
        try:
            async with self.core.sessions() as session:
                staff = await self._staff(session, request)
            said = await log_complaint(self.core, self.intake, staff, request, args, now)
        except (Refused, BadCommand) as exc:
            said = _refusal(exc)
        await send_once(self.core.sessions, self.core.vault, **self._answer(request, said, now))
        return said

    async def _registered(self, session: AsyncSession, request: StaffRequest) -> Staff | None:
        """The active staff member at the request's address, asking its channel which directory field
        holds such addresses."""
        channel = self.channels.get(request.who.channel)
        if channel is None or channel.staff_address is None:
            return None
        return await find_by_address(session, channel.staff_address, request.who.address)

    async def _staff(self, session: AsyncSession, request: StaffRequest) -> Staff:
        staff = await self._registered(session, request)
        if staff is None:
            raise Refused("Not registered as staff: ask an administrator to run `complaintbot staff add`.")
        if not self.rooms.allowed(staff, request.where):
            raise Refused(f"{staff.name}: this chat is not one of yours; act in your department's chat.")
        return staff

    async def _run(
        self, session: AsyncSession, request: StaffRequest, command: Command, now: datetime
    ) -> str | Reply:
        staff = await self._staff(session, request)
        name, args = command.name, command.args
        if name in LISTS:
            return await LISTS[name](self.core, session, staff, now)
        if name in REPORTS:
            return await REPORTS[name](self.core, session, staff, args, now)
        if name in CHAT_OPS:
            return await CHAT_OPS[name](self.core, session, staff, request, args, now)
        if name not in TICKET_COMMANDS:
            return HELP if name == "help" else f"Unknown command /{name}. {HELP}"
        ticket, text = await ticket_of(self.core, session, request, args)
        if name != "show":  # a merged ticket's number leads to the ticket that carries it on
            ticket = await carried_on(session, ticket)
        return await on_ticket(self.core, session, staff, request, name, ticket, text, now)

    async def _thread_words(
        self, session: AsyncSession, request: StaffRequest, said: Said, now: datetime
    ) -> str | None:
        """Plain words in a ticket's thread are a reply to the learner; anywhere else they are talk."""
        if not said.text.strip():
            return None
        ticket = await thread_ticket(session, request)
        if ticket is None:
            return None
        if await self._registered(session, request) is None:
            return None  # not staff: their talk is not for the bot, and not for the learner
        staff = await self._staff(session, request)
        ticket = await carried_on(session, ticket)
        return await reply(self.core, session, staff, ticket, said.text.strip(), request, now)

    @staticmethod
    def _answer(request: StaffRequest, text: str, now: datetime) -> dict[str, Any]:
        """The outbox fields of the answer to `request`: where it was made, threaded under it, once."""
        if len(text) > MAX_ANSWER:
            text = text[: MAX_ANSWER - 1] + "…"
        where = request.where
        return {
            "key": request.outbox_key("answer"),
            "channel": where.channel,
            "recipient": where.chat,
            "kind": "notice-staff",
            "text": text,
            "now": now,
            "reply_to": request.message_ref,
            "meta": {"thread_id": where.thread} if where.thread is not None else {},
        }


def _refusal(exc: Exception) -> str:
    """Refused: the sender may not (⛔); anything else: it cannot be done as written (⚠️)."""
    return f"⛔ {exc}" if isinstance(exc, Refused | NotAllowed) else f"⚠️ {exc}"
