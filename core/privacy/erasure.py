"""Erasing a learner's personal data on request (POLICY.md §7), keeping the statistics.

Every ticket of the learner is anonymised (`core.privacy.scrub`). The learner keeps a row (their tickets
point at it) without name, phone, e-mail or any channel address: nothing can be matched to them
again, so a new message from the same phone or chat is a new learner.

Erasure is idempotent: tickets are claimed by `anonymized_at IS NULL`, the learner by `erased_at IS
NULL`, in conditional updates, so a second run, or the retention duty at the same moment, finds
nothing left and audits nothing twice.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.privacy.scrub import ERASED, Scrubbed, scrub_outbox_row, scrub_tickets, ticketless_rows
from core.storage.models import Event, Learner, LearnerIdentity, Ticket
from core.tickets.cards import refresh_card
from core.tickets.workflow import CLOSED

# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back whole.
_LOCK_CONFLICTS = frozenset({"40P01", "40001"})


def lock_conflict(exc: BaseException) -> bool:
    """Two erasures met on one learner's rows and PostgreSQL gave up one of them: run it again.

    Erasing a learner touches all their tickets, so two instances whose pages hold different
    tickets of one learner can wait on each other; every step is conditional, so a rerun is safe.
    """
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "pgcode", None) in _LOCK_CONFLICTS


@dataclass
class ErasureReport:
    learner_id: int
    tickets: list[str] = field(default_factory=list)  # whose content this run anonymised
    open_tickets: list[str] = field(default_factory=list)  # still open: staff close them
    learner_erased: bool = False  # the learner's own data was erased by this run
    scrubbed: Scrubbed = field(default_factory=Scrubbed)

    @property
    def changed(self) -> bool:
        return self.learner_erased or bool(self.tickets)


async def erase_learner(
    core: CoreContext,
    session: AsyncSession,
    learner: Learner,
    now: datetime,
    actor: str,
    reason: str,
    *,
    edit_cards: bool = True,
) -> ErasureReport:
    """Erase everything personal about `learner` and their tickets, in the caller's transaction.

    Every ticket of the learner gets an "erased" event by `actor` with `reason`, unless nothing was
    left to erase. Open tickets stay open (staff close them; there is nobody to write to any more).
    With `edit_cards`, each anonymised ticket's staff card is edited to show the placeholders.
    """
    # The learner's row first: a concurrent intake that links a new ticket to this learner waits for
    # our commit, then finds its identity gone and starts over with a new learner.
    await session.refresh(learner, with_for_update=True)
    tickets = list(
        await session.scalars(
            select(Ticket).where(Ticket.learner_id == learner.id).order_by(Ticket.id).with_for_update()
        )
    )
    report = ErasureReport(learner.id, open_tickets=[t.number for t in tickets if t.status != CLOSED])
    claimed = set(await claim_tickets(session, [t.id for t in tickets if t.anonymized_at is None], now))
    report.learner_erased = await erase_learner_data(core, session, learner.id, now, ticketless=True)
    if claimed:
        report.scrubbed = await scrub_tickets(core, session, sorted(claimed))
    report.tickets = [t.number for t in tickets if t.id in claimed]
    if not report.changed:
        return report
    events: dict[int, Event] = {}
    for ticket in tickets:
        if ticket.id in claimed or report.learner_erased:
            event = Event(ticket_id=ticket.id, at=now, actor=actor, action="erased", detail=reason)
            session.add(event)
            events[ticket.id] = event
    await session.flush()  # the events' ids name the card edits
    # The bulk updates above bypassed the loaded objects, which the card's text is made from.
    await session.refresh(learner)
    for ticket in tickets:
        await session.refresh(ticket)
        if edit_cards and ticket.id in claimed:
            await refresh_card(core, session, ticket, "erased", events[ticket.id].id, now)
    return report


async def claim_tickets(session: AsyncSession, ids: Collection[int], now: datetime) -> list[int]:
    """Mark tickets anonymised, only those nobody marked since they were read: with two instances
    (or `learner forget` during the retention duty) each ticket is anonymised, and audited, once."""
    if not ids:
        return []
    result = await session.execute(
        update(Ticket)
        .where(Ticket.id.in_(list(ids)), Ticket.anonymized_at.is_(None))
        .values(anonymized_at=now)
        .returning(Ticket.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(result.scalars().all())


async def erase_learner_data(
    core: CoreContext, session: AsyncSession, learner_id: int, now: datetime, *, ticketless: bool
) -> bool:
    """Clear the learner's name, phone, e-mail and channel addresses; False if already done.

    With `ticketless`, outbox rows to any of their addresses that belong to no ticket (answers to
    /start or /status) are anonymised too. That means decrypting every such row, which suits a
    single erasure; the retention duty anonymises those rows by age instead.
    """
    addresses: set[str] = set()
    if ticketless:
        learner = await session.get_one(Learner, learner_id)
        tokens = [learner.phone_enc, learner.email_enc]
        tokens += list(
            await session.scalars(
                select(LearnerIdentity.address_enc).where(LearnerIdentity.learner_id == learner_id)
            )
        )
        addresses = {core.vault.decrypt(token) for token in tokens if token}
    done = await session.execute(
        update(Learner)
        .where(Learner.id == learner_id, Learner.erased_at.is_(None))
        .values(
            name_enc=None,
            phone_enc=None,
            phone_index=None,
            email_enc=None,
            email_index=None,
            erased_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if int(getattr(done, "rowcount", 0) or 0) != 1:
        return False
    # The identities go entirely: a placeholder address would still be an address the bot might
    # write to, and with none, `/reply` and the call-back refuse with their own clear reasons.
    await session.execute(
        update(Ticket)
        .where(Ticket.learner_id == learner_id)
        .values(identity_id=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(LearnerIdentity).where(LearnerIdentity.learner_id == learner_id))
    if addresses:
        token = core.vault.encrypt(ERASED)
        # Locked, as in `scrub_tickets`; the dispatcher skips locked rows when it claims.
        for row in await session.scalars(ticketless_rows().with_for_update()):
            if core.vault.decrypt(row.recipient_enc) in addresses:
                scrub_outbox_row(row, token, learner_bound=True)
    return True
