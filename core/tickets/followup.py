"""The satisfaction follow-up (满意度回访, POLICY.md §6): the survey, the score, and the call task.

When a learner confirms the result (or the time to confirm runs out), the survey goes to their own
channel: buttons 1–5 where the channel has buttons, "reply with a digit" elsewhere. A `survey` clock,
waiting on the learner, is due `[follow_up] call_task_after_working_days` later; unanswered by then,
the follow-up duty (`scheduler.followup`) turns it into a call task for the department's staff. A
score closes the ticket, or at `reopen_at_or_below` reopens it and offers the second instance.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.context import CoreContext
from core.delivery.outbox import enqueue, notify_department
from core.messages import Button
from core.rules.clocks import close_clocks
from core.storage.models import Clock, Event, Learner, LearnerIdentity, Ticket
from core.storage.privacy import redact
from core.tickets import learners
from core.tickets.callback import reachable_identity
from core.tickets.moves import apply_move
from core.tickets.reach import written_address
from core.tickets.workflow import (
    AWAITING_CONFIRMATION,
    CLOSED,
    FOLLOW_UP,
    HEAD,
    LEARNER,
    STAFF,
    SYSTEM_ACTOR,
    Actor,
    NotAllowed,
    WorkflowError,
)

log = logging.getLogger(__name__)

SURVEY = "survey"  # the clock of a survey waiting for the learner's score
REPORTED = frozenset({AWAITING_CONFIRMATION, FOLLOW_UP, CLOSED})


async def learner_address(core: CoreContext, session: AsyncSession, ticket: Ticket) -> tuple[str, str] | None:
    """Where the bot can write to the ticket's learner: the address they complained from, else their
    latest written address; an e-mail a staff member logged counts. None: only a phone call reaches them."""
    identity = await session.get(LearnerIdentity, ticket.identity_id) if ticket.identity_id else None
    if identity is not None:
        written = written_address(core.channels, identity.channel, core.vault.decrypt(identity.address_enc))
        if written is not None:
            return written
    learner_id = ticket.learner_id
    reach = await session.run_sync(lambda s: reachable_identity(s, core.channels, learner_id))
    return (reach.channel, core.vault.decrypt(reach.address_enc)) if reach is not None else None


def result_reported(session: Session, ticket: Ticket) -> bool:
    """Has the department ever reported a result on this ticket (it may have been reopened since)?
    Synchronous, for intake's transaction; async callers use `session.run_sync`."""
    if ticket.status in REPORTED:
        return True
    reported = exists().where(Event.ticket_id == ticket.id, Event.action == "resolve")
    return bool(session.scalar(select(reported)))


async def send_survey(
    core: CoreContext,
    session: AsyncSession,
    ticket: Ticket,
    now: datetime,
    *,
    key: str | None = None,
    to: tuple[str, str] | None = None,
    timed_out: bool = False,
) -> str | None:
    """Queue the survey on the learner's channel (`to`, else `learner_address`) and start its clock.

    Returns the text sent, or None when the learner has no written address: then staff get the call
    task at once. `timed_out`: the learner never confirmed; the system did (the text says so)."""
    if ticket.status != FOLLOW_UP:
        raise WorkflowError(f"{ticket.number} is {ticket.status}: the survey follows the confirmation")
    address = to or await learner_address(core, session, ticket)
    if address is None:
        # Only a phone reaches this learner (a voicemail, a walk-in): the call task comes at once.
        session.add(
            Event(ticket=ticket, at=now, actor=SYSTEM_ACTOR.label, action=SURVEY, detail="no address")
        )
        follow_up = await _follow_up_clock(session, ticket.id)
        occasion = follow_up.id if follow_up is not None else int(now.timestamp())
        await send_call_task(
            core, session, ticket, now, why="no_address", key=f"ticket:{ticket.id}:call:{occasion}"
        )
        return None
    policy = core.policy.follow_up
    due = core.calendar.add_working_days(now, policy.call_task_after_working_days)
    # A clock on the learner: paused, so it never shows as the department's deadline; the follow-up
    # duty looks at it when it is due (next_check_at).
    clock = Clock(
        ticket=ticket,
        stage=SURVEY,
        started_at=now,
        due_at=due,
        paused=True,
        escalation_level=0,
        next_check_at=due,
    )
    session.add(clock)
    await session.flush()
    channel, recipient = address
    can = core.channels.of(channel)
    scores = range(policy.score_min, policy.score_max + 1)
    buttons = tuple(Button(str(n), f"rate:{ticket.number}:{n}") for n in scores) if can.buttons else ()
    text = core.templates.render(
        ticket.locale,
        "survey.txt",
        number=ticket.number,
        low=policy.score_min,
        high=policy.score_max,
        buttons=bool(buttons),
        timed_out=timed_out,
    )
    enqueue(
        session,
        core.vault,
        key=key or f"clock:{clock.id}:survey",
        channel=channel,
        recipient=recipient,
        kind="ask",
        text=text,
        now=now,
        ticket=ticket,
        subject=f"[{ticket.number}]" if can.subjects else None,
        buttons=buttons,
        meta={"ticket_number": ticket.number, "field": "satisfaction"},
    )
    session.add(
        Event(ticket=ticket, at=now, actor=SYSTEM_ACTOR.label, action=SURVEY, detail=f"via {channel}")
    )
    log.info("ticket %s: satisfaction survey sent via %s", ticket.number, channel)
    return text


async def _follow_up_clock(session: AsyncSession, ticket_id: int) -> Clock | None:
    """The open staff clock of this round of follow-up (one per entry into follow_up)."""
    clock: Clock | None = await session.scalar(
        select(Clock)
        .where(Clock.ticket_id == ticket_id, Clock.stage == FOLLOW_UP, Clock.met_at.is_(None))
        .order_by(Clock.id.desc())
        .limit(1)
    )
    return clock


async def send_call_task(
    core: CoreContext, session: AsyncSession, ticket: Ticket, now: datetime, *, why: str, key: str
) -> None:
    """Ask the department's staff to call the learner for the follow-up (`why`: no_answer | no_address)."""
    learner = await session.get_one(Learner, ticket.learner_id)
    identity = await session.get(LearnerIdentity, ticket.identity_id) if ticket.identity_id else None
    follow_up = await _follow_up_clock(session, ticket.id)
    text = core.templates.render(
        core.staff_locale,
        "call_task.txt",
        number=ticket.number,
        learner=learners.masked_label(core, learner, identity),
        why=why,
        days=core.policy.follow_up.call_task_after_working_days,
        due=core.local_text(follow_up.due_at) if follow_up else None,
        low=core.policy.follow_up.score_min,
        high=core.policy.follow_up.score_max,
    )
    notify_department(session, core.vault, ticket, key=key, text=text, now=now)
    session.add(Event(ticket=ticket, at=now, actor=SYSTEM_ACTOR.label, action="call-task", detail=why))
    log.info("ticket %s: follow-up call task for %s (%s)", ticket.number, ticket.department, why)


async def record_score(
    core: CoreContext,
    session: AsyncSession,
    ticket: Ticket,
    score: int,
    comment: str | None,
    actor: Actor,
    now: datetime,
    *,
    key: str | None = None,
    to: tuple[str, str] | None = None,
) -> str:
    """Record the follow-up score (from the learner, or from staff after a call), then close the ticket,
    or reopen it and offer the second instance when the score is low. Returns the text for the learner,
    which is also queued to them (`to`, else their written address)."""
    await session.refresh(ticket, with_for_update=True)
    policy = core.policy.follow_up
    if actor.kind == LEARNER and actor.learner_id != ticket.learner_id:
        raise NotAllowed("only the learner who made the complaint may rate it")
    if actor.role in (STAFF, HEAD) and actor.department != ticket.department:
        raise NotAllowed(f"this ticket belongs to the {ticket.department} department, not {actor.department}")
    if not policy.score_min <= score <= policy.score_max:
        raise WorkflowError(f"a score is a whole number from {policy.score_min} to {policy.score_max}")
    if ticket.status != FOLLOW_UP:
        raise WorkflowError(f"{ticket.number} is {ticket.status}: no satisfaction survey waits for a score")
    comment = redact(" ".join(comment.split()))[:500] if comment else None
    ticket.satisfaction = score
    await close_clocks(session, ticket.id, (SURVEY,), now)
    session.add(
        Event(
            ticket=ticket,
            at=now,
            actor=actor.label,
            action="rated",
            detail=f"{score}/{policy.score_max}" + (f": {comment}" if comment else ""),
        )
    )
    low = score <= policy.reopen_at_or_below
    # The policy, not the one who scored, reopens or closes: a learner may not reopen on their own
    # (only by objecting), and staff may not close a ticket the learner rated low.
    event = await apply_move(
        core, session, ticket, "reopen" if low else "close", SYSTEM_ACTOR, now, detail=f"satisfaction {score}"
    )
    second = core.policy.second_instance
    text = core.templates.render(
        ticket.locale,
        "survey_low.txt" if low else "survey_thanks.txt",
        number=ticket.number,
        score=score,
        high=policy.score_max,
        second_instance=second.contact_zh if ticket.locale == "zh" else second.contact_en,
    )
    address = to or await learner_address(core, session, ticket)
    if address is not None:
        enqueue(
            session,
            core.vault,
            key=key or f"ticket:{ticket.id}:rated:{event.id}",
            channel=address[0],
            recipient=address[1],
            kind="notice",
            text=text,
            now=now,
            ticket=ticket,
            meta={"ticket_number": ticket.number},
        )
    # What the department must hear: a reopened ticket, or what the learner said (staff who took the
    # score on the phone know it already).
    if (low or comment) and actor.kind != "staff":
        notice = core.templates.render(
            core.staff_locale,
            "notice_score.txt",
            number=ticket.number,
            score=score,
            high=policy.score_max,
            comment=comment,
            reopened=low,
        )
        notify_department(
            session,
            core.vault,
            ticket,
            key=f"ticket:{ticket.id}:rated:{event.id}:staff",
            text=notice,
            now=now,
        )
    log.info("ticket %s: satisfaction %d -> %s", ticket.number, score, ticket.status)
    return text
