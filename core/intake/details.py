"""The missing-details dialogue: after the acknowledgement, intake asks for what the complaint
lacks (course, expected resolution, contact), one question at a time, and records the answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from core.context import CoreContext
from core.delivery.outbox import outbox_values
from core.intake.announce import TicketFacts
from core.messages import InboundMessage
from core.storage.models import Learner, Ticket
from core.storage.privacy import Vault
from core.tickets.rows import NewRows

SKIP_WORDS = frozenset({"skip", "跳过", "略过", "不方便", "无", "-"})


def record_answer(vault: Vault, ticket: Ticket, field: str, answer: str) -> None:
    """Store the learner's answer to the question about `field` on the ticket.

    A phone number typed here is the ticket's contact only: it never links learners together
    (anyone can type anyone's number; only numbers a channel vouches for, like caller ids, do).
    """
    # "" marks a field the learner chose not to give, so it is not asked again.
    value = "" if answer.lower() in SKIP_WORDS else answer[:500]
    if field == "contact":
        ticket.contact_enc = vault.encrypt(value)
    elif field == "course":
        ticket.course = value
    elif field == "expected_resolution":
        ticket.expected_resolution = value


def first_missing(ask_fields: Sequence[str], values: Mapping[str, Any], learner: Learner) -> str | None:
    """The next intake field to ask for, in the policy's order; None when all are known."""
    missing = {
        "course": values["course"] is None,
        "expected_resolution": values["expected_resolution"] is None,
        "contact": values["contact_enc"] is None and learner.phone_index is None,
    }
    return next((f for f in ask_fields if missing[f]), None)


def question(
    core: CoreContext,
    rows: NewRows,
    ticket: TicketFacts,
    field: str,
    channel: str,
    address: str,
    message_id: int,
    now: datetime,
) -> dict[str, Any]:
    text = core.templates.render(ticket.locale, f"ask_{field}.txt", number=ticket.number)
    return rows.send(
        outbox_values(
            core.vault,
            key=f"in:{message_id}:ask",
            channel=channel,
            recipient=address,
            kind="ask",
            text=text,
            now=now,
            ticket_id=ticket.id,
            meta={"ticket_number": ticket.number, "field": field},
        )
    )


def take_answer(
    core: CoreContext,
    rows: NewRows,
    facts: TicketFacts,
    ticket: Ticket,
    learner: Learner,
    message: InboundMessage,
    answered: str,
    message_id: int,
    now: datetime,
    actor: str,
) -> dict[str, Any]:
    """Record the learner's answer to the question the ticket waits on; ask the next one, or thank them."""
    answer = message.text.strip()
    if answered == "contact" and message.phone:  # a number the channel vouches for (a shared contact)
        answer = message.phone
    record_answer(core.vault, ticket, answered, answer)
    rows.event(now, actor, "details", answered)
    ticket.awaiting_field = first_missing(
        core.policy.intake.ask_fields,
        {
            "course": ticket.course,
            "expected_resolution": ticket.expected_resolution,
            "contact_enc": ticket.contact_enc,
        },
        learner,
    )
    if ticket.awaiting_field is not None:
        return question(
            core, rows, facts, ticket.awaiting_field, message.channel, message.sender_id, message_id, now
        )
    thanks = core.templates.render(ticket.locale, "details_complete.txt", number=ticket.number)
    return rows.send(
        outbox_values(
            core.vault,
            key=f"in:{message_id}:thanks",
            channel=message.channel,
            recipient=message.sender_id,
            kind="notice",
            text=thanks,
            now=now,
            ticket_id=ticket.id,
            meta={"ticket_number": ticket.number},
        )
    )
