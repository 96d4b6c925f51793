"""What a new ticket announces to staff: the card in its department's chat and any alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from core.classification.classify import Classification
from core.context import CoreContext
from core.delivery.outbox import outbox_values
from core.storage.models import Learner, LearnerIdentity
from core.storage.privacy import Vault
from core.tickets import learners
from core.tickets.cards import card_buttons, card_key
from core.tickets.rows import NewRows
from core.tickets.workflow import ROUTED


class TicketFacts:
    """What the texts of a ticket need, whether it was just inserted as values or loaded as a row."""

    COLUMNS = (
        "number", "locale", "channel", "category", "severity", "department", "summary", "classified_why",
        "category_unsure",
    )  # fmt: skip

    def __init__(self, ticket_id: int, values: dict[str, Any], vault: Vault) -> None:
        self.id = ticket_id
        self.number: str = values["number"]
        self.locale: str = values["locale"]
        self.channel: str = values["channel"]
        self.category: str = values["category"]
        self.severity: str = values["severity"]
        self.department: str = values["department"]
        self.summary: str = vault.reveal(values["summary"] or "")  # stored encrypted
        self.classified_why: str | None = values.get("classified_why")
        self.category_unsure: bool = bool(values.get("category_unsure"))


def staff_messages(
    core: CoreContext,
    rows: NewRows,
    ticket: TicketFacts,
    learner: Learner,
    identity: LearnerIdentity,
    classification: Classification,
    due_at: datetime,
    now: datetime,
    *,
    callback: str | None = None,
    duplicate_of: str | None = None,
    held: bool = False,
    canned: Sequence[str] = (),
) -> None:
    """The new ticket's card for its department, and the alerts a major or data-leak complaint raises.
    `callback` is the call-back task of a voicemail ("138****8000 by …"), shown on the card;
    `duplicate_of` an open ticket it may repeat (with a Merge button); `canned` the department's most
    used canned replies (buttons). `held`: no card now, the next summary announces it
    (`core.tickets.flood`)."""
    locale = core.staff_locale
    common = {
        "number": ticket.number,
        "category": ticket.category,
        "severity": ticket.severity,
        "department_name": core.department_name(ticket.department),
        "summary": ticket.summary,
    }
    card = core.templates.render(
        locale,
        "card.txt",
        **common,
        status=ROUTED,
        owner=None,
        channel=ticket.channel,
        learner=learners.masked_label(core, learner, identity),
        course=None,
        stage="claim",
        due=core.local_text(due_at),
        callback=callback,
        why=ticket.classified_why,
        unsure=ticket.category_unsure,
        duplicate_of=duplicate_of,
        merged_into=None,
    )
    buttons = card_buttons(
        ticket.number, ROUTED, callback=callback is not None, duplicate_of=duplicate_of, canned=canned
    )
    meta = {"ticket_number": ticket.number, "department": ticket.department, "summary": ticket.summary[:60]}
    staff = partial(outbox_values, core.vault, channel="staff", now=now, ticket_id=ticket.id, meta=meta)
    if held:
        rows.event(now, "complaintbot", "card_held", f"{ticket.department}: staff chat flooded")
    else:
        rows.send(
            staff(
                key=card_key(ticket.id),
                recipient=ticket.department,
                kind="card",
                text=card,
                buttons=buttons,
            )
        )
    if classification.severity == "major" and core.policy.escalation.major_alerts_managers:
        alert = core.templates.render(locale, "alert_major.txt", **common, reasons=classification.reasons)
        rows.send(
            staff(key=f"ticket:{ticket.id}:alert:major", recipient="managers", kind="alert", text=alert)
        )
        rows.event(now, "complaintbot", "alerted", "managers: major")
    if classification.data_leak:
        to = core.policy.departments.data_leak_alerts
        alert = core.templates.render(locale, "alert_data_leak.txt", **common)
        rows.send(staff(key=f"ticket:{ticket.id}:alert:data-leak", recipient=to, kind="alert", text=alert))
        rows.event(now, "complaintbot", "alerted", f"{to}: data leak")


def acknowledgement(
    core: CoreContext,
    rows: NewRows,
    ticket: TicketFacts,
    *,
    key: str,
    to: tuple[str, str],
    claim_due: datetime,
    callback_due: datetime | None,
    reply_to: str | None,
    subject: str,
    now: datetime,
) -> dict[str, Any]:
    """The learner's acknowledgement: number, process and limits; its delivery meets the clock."""
    major = ticket.severity == "major"
    text = core.templates.render(
        ticket.locale,
        "ack.txt",
        number=ticket.number,
        category=ticket.category,
        severity=ticket.severity,
        department_name=core.department_name(ticket.department),
        limits=core.limits(major=major),
        claim_due=core.local_text(claim_due),
        callback_due=core.local_text(callback_due) if callback_due else None,
        second_instance=(
            core.policy.second_instance.contact_zh
            if ticket.locale == "zh"
            else core.policy.second_instance.contact_en
        ),
    )
    channel, address = to
    return rows.send(
        outbox_values(
            core.vault,
            key=key,
            channel=channel,
            recipient=address,
            kind="ack",
            text=text,
            now=now,
            ticket_id=ticket.id,
            reply_to=reply_to,
            subject=subject,
            meta={"ticket_number": ticket.number},
        ),
        meets="acknowledge",
    )
