"""One raw e-mail into the complaint core; shared by the IMAP and the Maildir source.

The step is the same whatever the mailbox: parse (pure), then intake (one transaction), and only
after that the source may mark the message done (IMAP `\\Seen` or a move, Maildir `cur/…:2,S`).
What cannot be parsed is kept raw for staff and counts as done, so it never blocks the mailbox. A
failure of the database leaves the message waiting for the next pass; intake's dedupe on the
Message-ID (else a hash of the raw bytes) makes every repeat a no-op.

A staff member's answer to our staff mail (a card, an alert) is a note on its ticket (`staff_mail`).
Learners' mail is taken in by lanes, one per sender, so that a sender's second message follows the
first into its ticket while several senders' messages go to the database at once (PostgreSQL). Past
`per_sender_per_hour` messages from one address, mail is recorded but not answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, select

from channels.mail.prepared import Mail, MailReport
from channels.mail.staff_mail import record_staff_mail, staff_addresses
from channels.mail.trust import sender_verdict
from core.context import CoreContext
from core.intake.intake import Intake
from core.intake.receive import Aside, Kept, receive_or_keep
from core.messages import InboundMessage
from core.storage.models import LearnerIdentity, Message, Ticket

log = logging.getLogger(__name__)

Outcome = Literal["taken", "duplicate", "kept"]
_GIVE_UP_PASS = 3  # failures in a row: the database is down, the rest of the pass would fail too


class MailReader:
    """Takes parsed mail into the core: parse → (rate limit) → intake, or kept for staff."""

    def __init__(
        self,
        intake: Intake,
        core: CoreContext,
        *,
        per_sender_per_hour: int = 20,
        workers: int = 1,
        max_failures: int = 5,
        own_addresses: Iterable[str] = (),
        authserv_id: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.intake = intake
        # Each message's own time of intake, rather than the pass's (a backlog pass lasts a while): the
        # clocks it starts and the acknowledgement's latency count from its commit, not the pass's start.
        self.clock = clock
        self.core = core
        self.per_sender_per_hour = per_sender_per_hour  # 0: no limit
        self.workers = max(1, workers)
        # A message that always fails in intake must not stay in the mailbox for ever: after
        # `max_failures` passes it is kept raw for staff, with the error, and marked done.
        self.max_failures = max_failures
        self._failures: dict[str, int] = {}
        # Our own From (staff mail sent to a desk address that is this mailbox): never taken in.
        self.own_addresses = frozenset(a.strip().lower() for a in own_addresses if a.strip())
        # Whose Authentication-Results we believe (our receiving server's), if any.
        self.authserv_id = authserv_id

    async def take(
        self, mail: Mail, now: datetime, recent: int | None = None, staff: frozenset[str] | None = None
    ) -> Outcome:
        """Commit one message (or keep it for staff); raises when nothing could be committed.
        `recent`: the sender's messages in the last hour, and `staff`: the staff's addresses, when the
        caller has read them for a whole batch."""
        now = self.clock() if self.clock is not None else now
        if mail.message is None:
            await receive_or_keep(
                self.intake, Aside("email", mail.key, mail.raw, mail.problem or "unusable"), now
            )
            return "kept"
        message = mail.message
        if message.sender_id in self.own_addresses:
            log.info("e-mail %s is our own (from %s): not taken in", mail.ref, message.sender_id)
            return "kept"
        message = self._checked(message)
        if staff is None:
            staff = await staff_addresses(self.core)
        # A staff member's out-of-office reply is no note.
        if message.auto_reply is None and message.sender_id in staff:
            noted = await record_staff_mail(self.core, message, now)
            if noted is not None:
                log.info("e-mail %s from staff %s: a note on %s", mail.ref, message.sender_id, noted[0])
                return "duplicate" if noted[1] else "taken"
        if self.per_sender_per_hour and message.auto_reply is None:
            if recent is None:
                recent = (await self.recent([message.sender_id], now)).get(message.sender_id, 0)
            if recent >= self.per_sender_per_hour:
                # Recorded, not answered: a flood (or a robot we did not recognise) gets no flood back.
                log.warning("e-mail %s: sender over the hourly limit, not answered", message.external_id)
                message = replace(message, unanswered=f"rate limit: {recent + 1} messages in an hour")
        result = await receive_or_keep(self.intake, message, now)
        if isinstance(result, Kept):  # not a complaint, or an id reused: kept for staff
            log.warning("e-mail %s: %s", mail.ref, result)
            return "kept"
        log.info(
            "e-mail %s (%s) -> %s%s",
            mail.ref,
            message.external_id,
            result.ticket_number,
            " (already received)" if result.duplicate else "",
        )
        return "duplicate" if result.duplicate else "taken"

    def _checked(self, message: InboundMessage) -> InboundMessage:
        """The message as our mail server vouches for its sender: verified on an aligned DMARC pass;
        on a DMARC or SPF failure recorded for staff but never answered (no backscatter to a forged From)."""
        results = message.raw.get("authentication_results") or []
        verdict = sender_verdict(results, self.authserv_id, message.sender_id)
        if verdict == "pass":
            return replace(message, sender_verified=True)
        if verdict == "fail" and message.unanswered is None:
            log.warning("e-mail %s: the sender failed DMARC/SPF, not answered", message.external_id)
            return replace(message, unanswered="the sender's address failed DMARC/SPF at our mail server")
        return message

    async def take_all(self, mails: Sequence[Mail], now: datetime) -> MailReport:
        """Take every message, each sender's in order, up to `workers` senders at once."""
        lanes: dict[str, list[Mail]] = {}
        for mail in mails:
            lanes.setdefault(mail.lane, []).append(mail)
        senders = [mail.message.sender_id for mail in mails if mail.message is not None]
        # One count for the whole batch, not a query per message: kept up to date lane by lane.
        recent = await self.recent(senders, now) if self.per_sender_per_hour else {}
        staff = await staff_addresses(self.core)
        report, outcomes = MailReport(), dict[str, Outcome]()
        gate = asyncio.Semaphore(self.workers)
        trouble = [0]  # failures in a row across lanes

        async def lane(sender: str, part: list[Mail]) -> None:
            async with gate:
                for index, mail in enumerate(part):
                    if trouble[0] >= _GIVE_UP_PASS:
                        report.left += len(part) - index
                        return
                    outcome = await self._try(mail, now, recent.get(sender, 0), staff)
                    if outcome is None:  # a later message of this sender must not overtake it
                        trouble[0] += 1
                        report.left += len(part) - index
                        return
                    trouble[0] = 0
                    outcomes[mail.ref] = outcome
                    if outcome == "taken":
                        recent[sender] = recent.get(sender, 0) + 1

        await asyncio.gather(*(lane(sender, part) for sender, part in lanes.items()))
        for mail in mails:
            outcome = outcomes.get(mail.ref)
            if outcome is None:
                continue
            report.done.append(mail.ref)
            if outcome == "taken":
                report.taken += 1
            elif outcome == "duplicate":
                report.duplicates += 1
            else:
                report.kept += 1
        return report

    async def recent(self, senders: Iterable[str], now: datetime) -> dict[str, int]:
        """How many messages each of these addresses sent in the hour before `now` (absent: none)."""
        indexes = {self.core.vault.blind_index("email", sender): sender for sender in senders}
        if not indexes:
            return {}
        # Through the senders' identities and tickets, which are indexed, rather than by
        # messages.sender_index alone, which is not.
        learners = select(LearnerIdentity.learner_id).where(
            LearnerIdentity.channel == "email", LearnerIdentity.address_index.in_(indexes)
        )
        query = (
            select(Message.sender_index, func.count(Message.id))
            .join(Ticket, Ticket.id == Message.ticket_id)
            .where(
                Ticket.learner_id.in_(learners),
                Message.channel == "email",
                Message.direction == "in",
                Message.sender_index.in_(indexes),
                Message.at >= now - timedelta(hours=1),
            )
            .group_by(Message.sender_index)
        )
        async with self.core.sessions() as session:
            rows = (await session.execute(query)).all()
        return {indexes[index]: int(count) for index, count in rows if index in indexes}

    async def _try(self, mail: Mail, now: datetime, recent: int, staff: frozenset[str]) -> Outcome | None:
        try:
            outcome = await self.take(mail, now, recent, staff)
        except Exception as exc:  # the database, mostly: the message stays in the mailbox for a retry
            tries = self._failures[mail.key] = self._failures.get(mail.key, 0) + 1
            log.warning("e-mail %s left for a retry (failure %d): %s", mail.ref, tries, exc, exc_info=True)
            if tries < self.max_failures:
                return None
            try:
                reason = f"failed {tries} times in intake: {exc!r}"
                await receive_or_keep(
                    self.intake, Aside("email", f"failed:{mail.key}", mail.raw, reason), now
                )
            except Exception:
                log.warning("e-mail %s could not be kept for staff either", mail.ref, exc_info=True)
                return None
            outcome = "kept"
        self._failures.pop(mail.key, None)
        return outcome
