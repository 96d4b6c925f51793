"""`/log <channel> <contact> <text>`: a complaint received in person or by phone, entered by staff.

It goes through intake like any message (channel "staff"; the staff member's message is the idempotency
key, so a redelivered request opens nothing twice), and the staff member who logged it becomes the ticket's
first contact (首接责任人, POLICY.md §2).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from bot.channel_list import CAPABILITIES
from bot.staff_queries import BadCommand
from core.context import CoreContext
from core.intake.intake import Intake
from core.intake.receive import Kept, receive_or_keep
from core.messages import InboundMessage
from core.storage.models import Staff, Ticket
from core.storage.privacy import mask, normalize
from core.tickets.moves import set_first_contact
from core.tickets.queries import opening_message_id
from core.tickets.staff_requests import StaffRequest

# Where the learner reached us: any listed channel, or in person and by a call to a staff member. The
# ticket's channel is "staff"; this is kept with the message.
LOG_CHANNELS = (*(channel.name for channel in CAPABILITIES), "walk-in", "phone")
USAGE = f"usage: /log <{'|'.join(LOG_CHANNELS)}> <phone or e-mail> <what the learner said>"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9()\-]+")


@dataclass(frozen=True)
class LoggedComplaint:
    via: str
    contact: str  # normalised: the digits of a phone number, a lower-case e-mail address
    kind: str  # phone | email
    text: str


def parse_log(args: str) -> LoggedComplaint:
    parts = args.strip().split(None, 2)
    if len(parts) < 3:
        raise BadCommand(USAGE)
    via, contact, text = parts[0].lower(), unicodedata.normalize("NFKC", parts[1]), parts[2].strip()
    if via not in LOG_CHANNELS:
        raise BadCommand(f"unknown channel {parts[0]!r}; {USAGE}")
    if _EMAIL.fullmatch(contact):
        return LoggedComplaint(via, normalize("email", contact), "email", text)
    digits = normalize("phone", contact)
    if _PHONE.fullmatch(contact) and 5 <= len(digits) <= 15:
        return LoggedComplaint(via, digits, "phone", text)
    raise BadCommand(f"{parts[1]!r} is neither a phone number nor an e-mail address; {USAGE}")


async def log_complaint(
    core: CoreContext, intake: Intake, staff: Staff, request: StaffRequest, args: str, now: datetime
) -> str:
    logged = parse_log(args)
    # The staff member's message, unique on its channel, keys the learner's: a redelivery is a duplicate.
    said = request.message_ref or request.key
    message = InboundMessage(
        channel="staff",
        external_id=f"log:{request.where.channel}:{said}",
        sender_id=logged.contact,
        text=logged.text,
        received_at=now,
        phone=logged.contact if logged.kind == "phone" else None,
        email=logged.contact if logged.kind == "email" else None,
        new_ticket=True,  # staff log a complaint: never a continuation of another one
        raw={
            "logged_via": logged.via,
            "staff_id": staff.id,
            "request": f"{request.where.channel}:{request.key}",
        },
    )
    result = await receive_or_keep(intake, message, now)
    if isinstance(result, Kept):
        raise BadCommand(result.reason)
    async with core.sessions() as session, session.begin():
        # A redelivery finds the ticket this very message opened: finish what may have been cut short.
        opened = result.created or (
            result.duplicate and await opening_message_id(session, result.ticket_id) == result.message_id
        )
        if opened:
            detail = f"{staff.name} logged it ({logged.via})"
            await set_first_contact(session, result.ticket_id, staff, now, detail=detail)
        ticket = await session.get_one(Ticket, result.ticket_id)
        routed = f"{ticket.category}/{ticket.severity} → {ticket.department}"
    contact = mask(logged.kind, logged.contact)
    return f"✅ {result.ticket_number} logged ({logged.via}, {contact}): {routed}; first contact {staff.name}"
