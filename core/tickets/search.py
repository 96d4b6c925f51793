"""Finding tickets by words of the complaint, part of a number, or the tail of the learner's phone.

Summaries and contacts are stored encrypted, so words and phone tails are matched here, after
decryption, over the newest `SCAN` tickets the searcher may see; a part of a number is matched by the
database. A search by phone tail reads personal data: each ticket it finds records that in its audit
trail (`found_by_contact`). What is shown stays masked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.messages import STAFF_LOGGED
from core.storage.models import Event, Learner, LearnerIdentity, Ticket
from core.storage.privacy import PrivacyKeyError
from core.tickets.queries import overdue
from core.tickets.workflow import CLOSED, OPEN_STATES

SCAN = 5000  # the newest tickets a word or phone search reads
_TAIL = re.compile(r"^(?:\d{0,3})?\*+(\d{3,4})$|^(?:tel|phone):(\d{3,4})$", re.IGNORECASE)
_NUMBER_PART = re.compile(r"^(?:[A-Za-z]{1,8}-)?[\d-]*\d[\d-]*$")


class SearchError(ValueError):
    """A search that cannot be made as written; the message says why."""


@dataclass(frozen=True)
class Query:
    words: tuple[str, ...] = ()
    number_part: str | None = None
    phone_tail: str | None = None

    @property
    def by_contact(self) -> bool:
        return self.phone_tail is not None


def parse_query(text: str) -> Query:
    """`138****8000`, `*8000` or `tel:8000`: a phone tail; `TS-2611`, `00071`: part of a number; else
    words, all of which must occur in the summary or the course."""
    terms = text.split()
    if not terms:
        raise SearchError("give words of the complaint, part of a ticket number or a phone tail (*8000)")
    if len(terms) == 1:
        tail = _TAIL.match(terms[0])
        if tail is not None:
            return Query(phone_tail=tail.group(1) or tail.group(2))
        if _NUMBER_PART.match(terms[0]) and sum(ch.isdigit() for ch in terms[0]) >= 3:
            return Query(number_part=terms[0].upper())
    return Query(words=tuple(t.casefold() for t in terms))


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _reveal(core: CoreContext, token: str | None) -> str:
    if not token:
        return ""
    try:
        return core.vault.reveal(token)
    except PrivacyKeyError:
        return ""


@dataclass(frozen=True)
class Found:
    """A page of matching tickets, newest first, and how many match in all. `scanned`: the words or
    phone tail were looked for in only the newest `scanned` tickets, and older ones were not read."""

    tickets: list[Ticket]
    total: int
    scanned: int | None = None

    @property
    def note(self) -> str:
        """What a reader must be told with the total: "" when every ticket was searched."""
        return f"(searched the newest {self.scanned} tickets)" if self.scanned is not None else ""


def _status(status: str, now: datetime | None) -> list[Any]:
    if status == "open":
        return [Ticket.status.in_(OPEN_STATES)]
    if status == "closed":
        return [Ticket.status == CLOSED]
    if status == "overdue":
        if now is None:
            raise ValueError("the overdue filter needs the time it is")
        return [Ticket.status.in_(OPEN_STATES), overdue(now)]
    if status == "all":
        return []
    raise ValueError(f"unknown status filter {status!r}")


async def search_tickets(
    core: CoreContext,
    session: AsyncSession,
    query: Query,
    *,
    department: str | None = None,
    status: str = "all",
    now: datetime | None = None,
    limit: int = 25,
    offset: int = 0,
) -> Found:
    """Matching tickets, newest first (`limit` from `offset`), and how many match in all.
    `department`: only that department's (staff see their own; None: every department);
    `status`: open, overdue (as of `now`), closed or all."""
    where: list[Any] = _status(status, now)
    if department is not None:
        where.append(Ticket.department == department)
    if query.number_part is not None:
        where.append(Ticket.number.contains(query.number_part, autoescape=True))
        total = await session.scalar(select(func.count()).select_from(Ticket).where(*where))
        page = select(Ticket).where(*where).order_by(Ticket.id.desc()).limit(limit).offset(offset)
        return Found(list(await session.scalars(page)), int(total or 0))
    rows = (
        await session.execute(
            select(Ticket, Learner)
            .join(Learner, Learner.id == Ticket.learner_id)
            .where(*where)
            .order_by(Ticket.id.desc())
            .limit(SCAN + 1)  # one more: whether older tickets were left unread
        )
    ).all()
    cut = len(rows) > SCAN
    found = []
    for ticket, learner in rows[:SCAN]:
        if query.phone_tail is not None:
            if await _phone_ends(core, session, ticket, learner, query.phone_tail):
                found.append(ticket)
        else:
            text = f"{_reveal(core, ticket.summary)} {ticket.course or ''}".casefold()
            if all(word in text for word in query.words):
                found.append(ticket)
    return Found(found[offset : offset + limit], len(found), SCAN if cut else None)


async def _phone_ends(
    core: CoreContext, session: AsyncSession, ticket: Ticket, learner: Learner, tail: str
) -> bool:
    """The learner's phone, the contact given on the ticket, the caller's number, or a number the
    complaint quotes (masked in its summary, as staff saw it: 138****8000) ends in `tail`."""
    numbers = [_reveal(core, learner.phone_enc), _reveal(core, ticket.contact_enc)]
    # A caller's number, or the contact staff logged, is the identity's address itself.
    by_phone = ticket.channel == STAFF_LOGGED or core.channels.of(ticket.channel).address == "phone"
    if by_phone and ticket.identity_id is not None:
        identity = await session.get(LearnerIdentity, ticket.identity_id)
        numbers.append(_reveal(core, identity.address_enc) if identity else "")
    if any(len(d := _digits(n)) >= 7 and d.endswith(tail) for n in numbers):
        return True
    return re.search(rf"[\d*]{{3,}}\*[\d*]*{tail}(?!\d)", _reveal(core, ticket.summary)) is not None


def found_by_contact(
    session: AsyncSession, tickets: list[Ticket], actor: str, now: datetime, how: str
) -> None:
    """A search by the learner's contact read their personal data: on each ticket it found."""
    for ticket in tickets:
        session.add(Event(ticket=ticket, at=now, actor=actor, action="searched", detail=how))


async def search_listed(
    core: CoreContext,
    session: AsyncSession,
    query: Query,
    status: str,
    now: datetime,
    actor: str,
    *,
    limit: int = 50,
    offset: int = 0,
) -> Found:
    """`tickets list --search`: a page of the matching tickets of every department in the list's
    status filter (open, overdue, closed, all); a phone-tail search is recorded on each ticket shown."""
    found = await search_tickets(core, session, query, status=status, now=now, limit=limit, offset=offset)
    if query.by_contact:
        found_by_contact(session, found.tickets, actor, now, "found by tickets list --search (phone tail)")
    return found
