"""Intake: one inbound message in, one transaction out.

In a single transaction: dedupe by `(channel, external_id)`, find or create the learner, attach the
message to the ticket it continues or open a new one (number, classification, routing, clocks,
audit events), and queue what must be sent (acknowledgement, follow-up question, staff card, alerts).
A message that is also a learner's act (confirm, object, rate, appeal: `core.intake.learner_acts`) carries it
out in the same transaction. A redelivery, or a concurrent duplicate that loses the race on the unique
key, returns the original's result and creates nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from core.classification.classify import Classification, classify
from core.context import CoreContext
from core.delivery.outbox import outbox_values, payload_text
from core.intake.act_outcomes import no_ticket_reply, with_act
from core.intake.announce import TicketFacts
from core.intake.continuation import (
    answers_our_mail,
    continued_ticket,
    referenced_ticket,
)
from core.intake.details import take_answer
from core.intake.kept_aside import IdReused, NotAComplaint
from core.intake.learner_acts import LearnerAct, act_of, act_ticket, decide_for
from core.intake.opening import INSERT_MESSAGE, open_ticket
from core.intake.result import IntakeResult, hold_for_inline_reply, reply_key, result_of
from core.intake.unparsed import keep_unparsed
from core.messages import InboundMessage, erased_key, storage_key
from core.storage.delivery_models import OutboxRow
from core.storage.models import Learner, LearnerIdentity, Message, Ticket
from core.tickets import learners
from core.tickets.callback import request_callback, wants_callback
from core.tickets.inbound import inbound_values, seal_summary, summary
from core.tickets.rows import NewRows

__all__ = ["Intake", "IntakeResult"]

log = logging.getLogger(__name__)

_INLINE_TEXT = 4_000  # characters classified on the event loop; longer, in a thread
# Conflicts on the dedupe and identity keys resolve on the next try; a few tries are plenty.
_MAX_TRIES = 5
# Built once (intake's first statement, every time): the same message received before, or its erased form.
_RECEIVED = select(Message.id, Message.ticket_id, Message.sender_index, Message.external_id).where(
    Message.channel == bindparam("channel"),
    Message.external_id.in_((bindparam("external_id"), bindparam("erased"))),
    Message.direction == "in",
)


def _conflict(exc: DBAPIError) -> bool:
    """Whether trying again can succeed: a unique key taken meanwhile, a deadlock or a serialization
    failure between instances (PostgreSQL's 40P01, 40001)."""
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(exc, IntegrityError) or sqlstate in ("40P01", "40001")


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
        return open_ticket(self.core, session, learner, identity, message, classification, inbound, now)

    def _duplicate(self, session: Session, message_id: int, ticket_id: int) -> IntakeResult:
        ticket = session.get_one(Ticket, ticket_id)
        keys = [reply_key(message_id, what) for what in ("ack", "ask", "thanks", "act")]
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
        message_id = (connection.execute(INSERT_MESSAGE, {**inbound, "ticket_id": ticket.id})).scalar_one()
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
            return result_of(
                core.vault, ticket.number, ticket.id, message_id, created=False, replies=[], act=acting
            )
        else:
            detail = f"automatic: {message.auto_reply}" if message.auto_reply else None
            if not proven:
                detail = "sender not verified: recorded only, no act or answer taken"
            rows.event(now, actor, "message", detail)
        hold_for_inline_reply(replies, message)
        notice = core.templates.render(
            core.staff_locale, "notice_learner_message.txt", number=ticket.number, text=summary(message, 500)
        )
        rows.send(
            outbox_values(
                core.vault,
                key=reply_key(message_id, "staff-notice"),
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
        return result_of(
            core.vault, ticket.number, ticket.id, message_id, created=False, replies=replies, act=acting
        )


# `_receive`'s answer for machine-written mail that continues no ticket (kept aside by `receive`).
_NOT_A_COMPLAINT = IntakeResult("", 0, 0, created=False, duplicate=True, replies=(), reply_keys=())
