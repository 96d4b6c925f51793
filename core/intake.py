"""Intake: one inbound message in, one transaction out.

In a single transaction: dedupe by `(channel, external_id)`, find or create the learner, attach the
message to the ticket it continues or open a new one (number, classification, routing, clocks,
audit events), and queue what must be sent (acknowledgement, follow-up question, staff card, alerts).
A message that is also a learner's act (confirm, object, rate, appeal: `core.learner_acts`) carries it
out in the same transaction. A redelivery, or a concurrent duplicate that loses the race on the unique
key, returns the original's result and creates nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from core import learners
from core.act_outcomes import no_ticket_reply, with_act
from core.announce import TicketFacts, acknowledgement, staff_messages
from core.callback import callback_task, reachable_identity, request_callback, wants_callback
from core.canned import top_query
from core.classify import Classification, classify, why
from core.context import CoreContext
from core.continuation import (
    answers_our_mail,
    continued_ticket,
    foreign_reference,
    named_foreign_tickets,
    referenced_ticket,
)
from core.details import first_missing, question, take_answer
from core.duplicates import possible_duplicate
from core.flood import saturated
from core.inbound import inbound_values, known_contact, printable, seal_summary, summary
from core.kept_aside import IdReused, NotAComplaint
from core.learner_acts import LearnerAct, act_of, act_ticket, decide_for
from core.messages import STAFF_LOGGED, InboundMessage, erased_key, storage_key
from core.models import Learner, LearnerIdentity, Message, OutboxRow, Ticket
from core.numbering import allocate_number
from core.outbox import LEARNER_KINDS, outbox_values, payload_text
from core.privacy import Vault
from core.rows import NewRows
from core.unparsed import keep_unparsed
from core.workflow import ROUTED

log = logging.getLogger(__name__)

_INLINE_TEXT = 4_000  # characters classified on the event loop; longer, in a thread
# Conflicts on the dedupe and identity keys resolve on the next try; a few tries are plenty.
_MAX_TRIES = 5
_INSERT_TICKET = insert(Ticket).returning(Ticket.id)
# Built once (intake's first statement, every time): the same message received before, or its erased form.
_RECEIVED = select(Message.id, Message.ticket_id, Message.sender_index, Message.external_id).where(
    Message.channel == bindparam("channel"),
    Message.external_id.in_((bindparam("external_id"), bindparam("erased"))),
    Message.direction == "in",
)
_INSERT_MESSAGE = insert(Message).returning(Message.id)


@dataclass(frozen=True)
class IntakeResult:
    ticket_number: str
    ticket_id: int
    message_id: int
    created: bool  # a new ticket was opened
    duplicate: bool  # this message had been received before; nothing changed
    replies: tuple[str, ...]  # texts queued for the learner because of this message, in order
    reply_keys: tuple[str, ...]  # their outbox keys (a channel that replies inline marks them sent)
    # What the learner's message did besides adding to the ticket (core.learner_acts): confirm, agree,
    # object, reopen, rate, appeal, or "refused" (asked for one the ticket's state does not allow).
    act: str | None = None


def _key(message_id: int, what: str) -> str:
    return f"in:{message_id}:{what}"


def _conflict(exc: DBAPIError) -> bool:
    """Whether trying again can succeed: a unique key taken meanwhile, a deadlock or a serialization
    failure between instances (PostgreSQL's 40P01, 40001)."""
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(exc, IntegrityError) or sqlstate in ("40P01", "40001")


def _hold_for_inline_reply(replies: list[dict[str, Any]], message: InboundMessage) -> None:
    """The first reply waits while the platform's own response may carry it (WeChat's passive reply):
    the dispatcher, woken by the commit, would otherwise race the response for it."""
    if replies and message.reply_inline_until is not None:
        first = replies[0]
        first["next_attempt_at"] = max(first["next_attempt_at"], message.reply_inline_until)


class Intake:
    def __init__(self, core: CoreContext, *, observe: Callable[[str, float], None] | None = None) -> None:
        self.core = core
        # Told (channel, seconds) of every message committed: intake latency, for the metrics.
        self.observe = observe

    async def receive(self, message: InboundMessage, now: datetime) -> IntakeResult:
        began = time.perf_counter()
        # Pure work first, outside the transaction: the write lock is held only for the writes. A long
        # text (a pasted log, a 100,000-character mail) is classified in a thread, so that the event
        # loop keeps answering webhooks meanwhile.
        if len(message.text) > _INLINE_TEXT:
            classification = await asyncio.to_thread(classify, message.text, self.core.rules)
        else:
            classification = classify(message.text, self.core.rules)
        sender_index = self.core.vault.blind_index(message.channel, message.sender_id)
        inbound = inbound_values(self.core.vault, message, sender_index, now)
        act = act_of(message, self.core.channels, self.core.prefix)
        work = partial(
            self._receive,
            message=message,
            classification=classification,
            sender_index=sender_index,
            inbound=inbound,
            act=act,
            now=now,
        )
        for attempt in range(1, _MAX_TRIES + 1):
            try:
                if act is None:
                    result = await self.core.writer.run(work)
                else:  # rare, and its moves are async code: on an async session, not the writer
                    result = await with_act(self.core, work, act, message, now)
                break
            except DBAPIError as exc:
                # A concurrent delivery of the same message, or of the same new learner, won the
                # race (or two instances' batches deadlocked); the next try sees its committed rows.
                if not _conflict(exc) or attempt == _MAX_TRIES:
                    raise
                log.info(
                    "intake %s:%s: conflict on try %d, retrying",
                    message.channel,
                    message.external_id,
                    attempt,
                )
        if result is None or result is _NOT_A_COMPLAINT:
            raw = json.dumps({"text": message.text, "raw": message.raw}, ensure_ascii=False, default=str)
            if result is _NOT_A_COMPLAINT:
                reason, key = f"automatic message ({message.auto_reply}), not part of any ticket", None
            else:
                reason = "platform id already used by another sender (the adapter must make ids unique)"
                key = f"{storage_key(message.external_id)[:180]}#sender:{sender_index[:16]}"
            key = key or message.external_id
            auto = result is _NOT_A_COMPLAINT
            kept = await keep_unparsed(self.core, message.channel, key, raw, reason, now, notify=not auto)
            raise (NotAComplaint if result is _NOT_A_COMPLAINT else IdReused)(message, kept)
        if self.observe is not None:
            self.observe(message.channel, time.perf_counter() - began)
        return result

    def _receive(
        self,
        session: Session,
        *,
        message: InboundMessage,
        classification: Classification,
        sender_index: str,
        inbound: dict[str, Any],
        act: LearnerAct | None = None,
        now: datetime,
    ) -> IntakeResult | None:
        """The intake's transaction; None when the id belongs to another sender's message."""
        erased = erased_key(self.core.vault.blind_index, message.channel, message.external_id)
        existing = (
            session.connection()
            .execute(
                _RECEIVED,
                {
                    "channel": message.channel,
                    "external_id": storage_key(message.external_id),
                    "erased": erased,
                },
            )
            .first()
        )
        if existing is not None:  # an erased message is still a redelivery, whoever sends it now
            if existing.external_id != erased and existing.sender_index != sender_index:
                return None
            return self._duplicate(session, existing.id, existing.ticket_id)
        # Only a sender the platform vouches for, or whose mail answers ours, may act, answer a
        # question or link identities; anything else is recorded for staff and changes nothing more.
        proven = message.sender_verified or answers_our_mail(session, self.core.vault, message)
        learner, identity, new = learners.find_or_create(
            session, self.core.vault, message, classification.language, now, proven=proven
        )
        if not proven:
            act = None
        ticket, acting = None, None
        # A learner new just now has no ticket to continue or act on: nothing to look up.
        known = learner if not new else None
        if message.auto_reply is not None:
            # A robot's mail (out-of-office, bounce) joins the ticket it is about, whoever sent it, and
            # is answered nothing; about no ticket, it is no complaint.
            if known is not None:
                ticket = continued_ticket(session, message, known, identity, self.core.prefix)
            ticket = ticket or referenced_ticket(session, message)
            if ticket is None:
                return _NOT_A_COMPLAINT
            return self._continue(session, ticket, learner, identity, message, inbound, now, None, proven)
        if act is not None and known is not None:
            # An act names its ticket more loosely than a message (a lone "5" is the pending survey's
            # score); only when it fits the ticket's state does it take that ticket.
            ticket = act_ticket(session, message, learner, act, self.core.channels, self.core.prefix)
            decision = decide_for(session, ticket, act, self.core.policy) if ticket is not None else None
            ticket, acting = (ticket, decision.outcome) if decision is not None else (None, None)
        if act is not None and act.explicit and ticket is None and message.text.lstrip().startswith("/"):
            text, key, again = no_ticket_reply(self.core, session, message, classification.language, now)
            return IntakeResult("", 0, 0, created=False, duplicate=again, replies=(text,), reply_keys=(key,))
        if ticket is None and not message.new_ticket and known is not None:
            ticket = continued_ticket(session, message, known, identity, self.core.prefix)
        if ticket is not None:
            return self._continue(session, ticket, learner, identity, message, inbound, now, acting, proven)
        if new and not proven and message.unanswered is None:
            cap = self.core.policy.intake.new_sender_acks_per_hour
            message = learners.capped(session, self.core.channels, message, cap, now)
        return self._open(session, learner, identity, message, classification, inbound, now)

    def _duplicate(self, session: Session, message_id: int, ticket_id: int) -> IntakeResult:
        ticket = session.get_one(Ticket, ticket_id)
        keys = [_key(message_id, what) for what in ("ack", "ask", "thanks", "act")]
        rows = list(session.scalars(select(OutboxRow).where(OutboxRow.key.in_(keys)).order_by(OutboxRow.id)))
        return IntakeResult(
            ticket_number=ticket.number,
            ticket_id=ticket.id,
            message_id=message_id,
            created=False,
            duplicate=True,
            replies=tuple(payload_text(self.core.vault, row.payload) for row in rows),
            reply_keys=tuple(row.key for row in rows),
        )

    def _open(
        self,
        session: Session,
        learner: Learner,
        identity: LearnerIdentity,
        message: InboundMessage,
        classification: Classification,
        inbound: dict[str, Any],
        now: datetime,
    ) -> IntakeResult:
        core = self.core
        major = classification.severity == "major"
        # A guessed category goes to learner services, the first contact, to check rather than to a
        # department that may refuse it.
        department = (
            core.policy.department_for(classification.category)
            if classification.confident
            else core.policy.departments.first_contact
        )
        session.flush()  # a new learner's ids, before the counter lock is taken
        shown = summary(message)
        chat = core.policy.staff_chat
        duplicate = possible_duplicate(
            session,
            core.vault,
            core.channels,
            learner,
            message,
            classification.category,
            now,
            chat.duplicate_window_hours,
        )
        # A flooded staff chat gets the new ticket in the next summary instead; a major one, at once.
        held = not major and saturated(session, core.vault, department, chat.flood_queued)
        values: dict[str, Any] = {
            "status": ROUTED,
            "category": classification.category,
            "severity": classification.severity,
            "department": department,
            "channel": message.channel,
            "locale": classification.language,
            "learner_id": learner.id,
            "identity_id": identity.id,
            "first_contact_department": core.policy.departments.first_contact,
            "summary": seal_summary(core.vault, shown),
            "course": None,
            "expected_resolution": None,
            "contact_enc": known_contact(core, message),
            "amount_yuan": classification.amount_yuan,
            "data_leak": classification.data_leak,
            "classified_why": why(classification),
            "category_unsure": not classification.confident,
            "created_at": now,
            "updated_at": now,
            "duplicate_of_id": duplicate[0] if duplicate else None,
            "card_held_at": now if held else None,
        }
        calls_back = core.channels.of(message.channel).calls_back  # a voicemail: a call to return
        # Staff who logged a complaint took its details in person; a caller is asked on the call-back.
        values["awaiting_field"] = (
            None
            if message.channel == STAFF_LOGGED or calls_back or message.unanswered
            else first_missing(self.core.policy.intake.ask_fields, values, learner)
        )
        # Allocated last among the reads: on PostgreSQL the counter row stays locked until commit.
        number = allocate_number(session, core.prefix, core.calendar.local_date(now))
        values["number"] = str(number)
        connection = session.connection()
        ticket_id = (connection.execute(_INSERT_TICKET, values)).scalar_one()
        message_id = (connection.execute(_INSERT_MESSAGE, {**inbound, "ticket_id": ticket_id})).scalar_one()
        rows = NewRows(ticket_id, self.core.vault, core.clocks)
        keeper = core.clocks
        received = min(message.received_at, now)
        claim_due = keeper.due("claim", now, major=major)
        rows.clock("entry", received, keeper.due("entry", received, major=major), met_at=now)
        rows.clock(
            "route", now, keeper.due("route", now, major=major), met_at=now
        )  # routed by the rules at once
        # A complaint staff logged (walk-in, phone) was acknowledged in person by the one who took it;
        # there is no learner channel to write to, so nothing is queued for the learner below.
        logged = message.channel == STAFF_LOGGED
        quiet = logged or message.unanswered is not None
        ack_to: tuple[str, str] | None = None if quiet else (message.channel, message.sender_id)
        callback_due = None
        if calls_back:
            # The call-back runs on the hotline's own hours, counted from the call itself. A voicemail
            # cannot be answered in writing: the acknowledgement goes to another address of the same
            # learner if there is one, and otherwise the call-back is the acknowledgement.
            callback_due = keeper.due("callback", received, major=major)
            rows.clock("callback", received, callback_due)
            reach = reachable_identity(session, core.channels, learner.id)
            ack_to = (reach.channel, core.vault.decrypt(reach.address_enc)) if reach else None
        if ack_to is not None or logged:
            ack_due = keeper.due("acknowledge", now, major=major)
            rows.clock("acknowledge", now, ack_due, met_at=now if logged else None)
        rows.clock("claim", now, claim_due)
        reasons = "; ".join(classification.reasons) or "no keyword matched"
        rows.event(now, f"learner:{message.channel}", "received", f"via {message.channel}")
        if message.unanswered:
            rows.event(now, "complaintbot", "not_acknowledged", message.unanswered)
        rows.event(
            now,
            "complaintbot",
            "classified",
            f"{classification.category}/{classification.severity}: {reasons}",
        )
        rows.event(now, "complaintbot", "routed", department)
        if linked := foreign_reference(session, message, learner.id):  # staff see the thread it answers
            rows.event(now, "complaintbot", "linked", f"replies to {linked}, a ticket of another sender")
        for named in named_foreign_tickets(session, message, learner.id, core.prefix):
            rows.event(now, "complaintbot", "linked", f"names {named}, a ticket of another learner")
        ticket = TicketFacts(ticket_id, {**values, "summary": shown}, core.vault)
        replies = []
        if ack_to is not None:
            channel, address = ack_to
            # Threaded under the learner's message only on the channel it came by.
            same = channel == message.channel
            replies.append(
                acknowledgement(
                    core,
                    rows,
                    ticket,
                    key=_key(message_id, "ack"),
                    to=ack_to,
                    claim_due=claim_due,
                    callback_due=callback_due,
                    reply_to=message.external_id if same else None,
                    subject=f"[{ticket.number}] {printable(message.subject) if same else ''}".strip(),
                    now=now,
                )
            )
            if values["awaiting_field"] is not None:
                replies.append(
                    question(
                        self.core, rows, ticket, values["awaiting_field"], channel, address, message_id, now
                    )
                )
        _hold_for_inline_reply(replies, message)
        staff_messages(
            self.core,
            rows,
            ticket,
            learner,
            identity,
            classification,
            claim_due,
            now,
            callback=callback_task(message.phone, core.local_text(callback_due)) if callback_due else None,
            duplicate_of=duplicate[1] if duplicate else None,
            held=held,
            canned=() if held else tuple(session.scalars(top_query(department))),
        )
        rows.write(session)
        log.info("ticket %s opened: %s/%s -> %s", ticket.number, ticket.category, ticket.severity, department)
        return _result(core.vault, ticket.number, ticket_id, message_id, created=True, replies=replies)

    def _continue(
        self,
        session: Session,
        ticket: Ticket,
        learner: Learner,
        identity: LearnerIdentity,
        message: InboundMessage,
        inbound: dict[str, Any],
        now: datetime,
        acting: str | None = None,
        proven: bool = True,
    ) -> IntakeResult:
        """Add the message to `ticket`. `acting`: the learner act it carries out (`with_act` does that
        next): it is no answer to a details question, and the act's own outcome tells staff. Not
        `proven`, it is recorded only: it answers nothing (a forged one could change the contact)."""
        core = self.core
        connection = session.connection()
        message_id = (connection.execute(_INSERT_MESSAGE, {**inbound, "ticket_id": ticket.id})).scalar_one()
        ticket.updated_at = now
        if not ticket.summary:  # opened empty (a voicemail not yet transcribed): this says what it is
            ticket.summary = seal_summary(core.vault, summary(message))
        rows = NewRows(ticket.id, self.core.vault, core.clocks)
        facts = TicketFacts(ticket.id, {c: getattr(ticket, c) for c in TicketFacts.COLUMNS}, core.vault)
        replies: list[dict[str, Any]] = []
        # Only an answer from the address the question went to counts (a voicemail that names the
        # ticket is news, not the answer to "which course?"), and never a robot's.
        own = (
            proven
            and ticket.identity_id == identity.id
            and message.auto_reply is None
            and not message.unanswered
        )
        answered = ticket.awaiting_field if own else None
        actor = f"learner:{message.channel}"
        if core.channels.of(message.channel).calls_back and wants_callback(session, ticket.id, message):
            request_callback(core, session, rows, ticket, message, message_id, now)
        if answered is not None and acting is None:
            replies.append(
                take_answer(core, rows, facts, ticket, learner, message, answered, message_id, now, actor)
            )
        elif acting not in (None, "refused"):
            rows.write(session)
            return _result(
                core.vault, ticket.number, ticket.id, message_id, created=False, replies=[], act=acting
            )
        else:
            detail = f"automatic: {message.auto_reply}" if message.auto_reply else None
            if not proven:
                detail = "sender not verified: recorded only, no act or answer taken"
            rows.event(now, actor, "message", detail)
        _hold_for_inline_reply(replies, message)
        notice = core.templates.render(
            core.staff_locale, "notice_learner_message.txt", number=ticket.number, text=summary(message, 500)
        )
        rows.send(
            outbox_values(
                core.vault,
                key=_key(message_id, "staff-notice"),
                channel="staff",
                recipient=ticket.department,
                kind="notice-staff",
                text=notice,
                now=now,
                ticket_id=ticket.id,
                meta={"ticket_number": ticket.number, "department": ticket.department},
            )
        )
        rows.write(session)
        return _result(
            core.vault, ticket.number, ticket.id, message_id, created=False, replies=replies, act=acting
        )


def _result(
    vault: Vault,
    number: str,
    ticket_id: int,
    message_id: int,
    *,
    created: bool,
    replies: list[dict[str, Any]],
    act: str | None = None,
) -> IntakeResult:
    learner_rows = [row for row in replies if row["kind"] in LEARNER_KINDS]
    return IntakeResult(
        ticket_number=number,
        ticket_id=ticket_id,
        message_id=message_id,
        created=created,
        duplicate=False,
        replies=tuple(payload_text(vault, row["payload"]) for row in learner_rows),
        reply_keys=tuple(row["key"] for row in learner_rows),
        act=act,
    )


# `_receive`'s answer for machine-written mail that continues no ticket (kept aside by `receive`).
_NOT_A_COMPLAINT = IntakeResult("", 0, 0, created=False, duplicate=True, replies=(), reply_keys=())
