"""Intake opening a new ticket for a message: number, classification, routing, clocks, audit events,
and what must be sent (acknowledgement, the first details question, the staff card)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from core.classification.classify import Classification, why
from core.context import CoreContext
from core.intake.announce import TicketFacts, acknowledgement, staff_messages
from core.intake.continuation import foreign_reference, named_foreign_tickets
from core.intake.details import first_missing, question
from core.intake.duplicates import possible_duplicate
from core.intake.result import IntakeResult, hold_for_inline_reply, reply_key, result_of
from core.messages import STAFF_LOGGED, InboundMessage
from core.storage.models import Learner, LearnerIdentity, Message, Ticket
from core.storage.numbering import allocate_number
from core.tickets.callback import callback_task, reachable_identity
from core.tickets.canned import top_query
from core.tickets.flood import saturated
from core.tickets.inbound import known_contact, printable, seal_summary, summary
from core.tickets.rows import NewRows
from core.tickets.workflow import ROUTED

log = logging.getLogger(__name__)

_INSERT_TICKET = insert(Ticket).returning(Ticket.id)
# A message's row, as intake inserts it (of a new ticket here, of a continued one in `core.intake.intake`).
INSERT_MESSAGE = insert(Message).returning(Message.id)


def open_ticket(
    core: CoreContext,
    session: Session,
    learner: Learner,
    identity: LearnerIdentity,
    message: InboundMessage,
    classification: Classification,
    inbound: dict[str, Any],
    now: datetime,
) -> IntakeResult:
    """Open a ticket for a message that continues none (in intake's transaction)."""
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
        else first_missing(core.policy.intake.ask_fields, values, learner)
    )
    # Allocated last among the reads: on PostgreSQL the counter row stays locked until commit.
    number = allocate_number(session, core.prefix, core.calendar.local_date(now))
    values["number"] = str(number)
    connection = session.connection()
    ticket_id = (connection.execute(_INSERT_TICKET, values)).scalar_one()
    message_id = (connection.execute(INSERT_MESSAGE, {**inbound, "ticket_id": ticket_id})).scalar_one()
    rows = NewRows(ticket_id, core.vault, core.clocks)
    keeper = core.clocks
    received = min(message.received_at, now)
    claim_due = keeper.due("claim", now, major=major)
    rows.clock("entry", received, keeper.due("entry", received, major=major), met_at=now)
    rows.clock("route", now, keeper.due("route", now, major=major), met_at=now)  # routed by the rules at once
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
                key=reply_key(message_id, "ack"),
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
                question(core, rows, ticket, values["awaiting_field"], channel, address, message_id, now)
            )
    hold_for_inline_reply(replies, message)
    staff_messages(
        core,
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
    return result_of(core.vault, ticket.number, ticket_id, message_id, created=True, replies=replies)
