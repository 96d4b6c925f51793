"""Carrying out what a learner's message asks (`core.intake.learner_acts`) and answering them where they
wrote.

Runs inside intake's transaction, after the message itself is stored, so the act, its audit events,
its clocks and the answer commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, dataclass, replace
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.context import CoreContext
from core.delivery.outbox import enqueue, notify_department, outbox_values, payload_text
from core.intake.learner_acts import APPEAL, CONFIRM, OBJECT, RATE, Decision, LearnerAct, decide_for
from core.messages import InboundMessage, storage_key
from core.storage.delivery_models import OutboxRow
from core.storage.models import Ticket
from core.storage.numbers import find_ticket_numbers
from core.storage.wakeup import written
from core.tickets.followup import record_score, send_survey
from core.tickets.inbound import summary
from core.tickets.moves import apply_move
from core.tickets.second_instance import open_second_instance
from core.tickets.workflow import LEARNER, Actor, WorkflowError


class _Received(Protocol):
    """What intake's result says of a message (core.intake.IntakeResult, a frozen dataclass)."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @property
    def ticket_id(self) -> int: ...
    @property
    def message_id(self) -> int: ...
    @property
    def replies(self) -> tuple[str, ...]: ...
    @property
    def reply_keys(self) -> tuple[str, ...]: ...
    @property
    def act(self) -> str | None: ...


R = TypeVar("R", bound=_Received)


async def with_act(
    core: CoreContext,
    work: Callable[[Session], R | None],
    act: LearnerAct,
    message: InboundMessage,
    now: datetime,
) -> R | None:
    """Intake's work for a message that may be a learner's act, then the act, in one transaction.

    `work` stores the message (and sets `act` on its result when the act fits the ticket); the act's
    answer joins the result's replies, so a channel that answers inline (WeChat) sends it too."""
    async with core.sessions() as session, session.begin():
        result = await session.run_sync(work)
        if result is None or result.act is None:
            return result
        done = await carry_out(core, session, result.ticket_id, act, message, result.message_id, now)
        if done is None:
            return replace(result, act=None)
        return replace(
            result,
            act=done.outcome,
            replies=(*result.replies, done.text),
            reply_keys=(*result.reply_keys, done.key),
        )


@dataclass(frozen=True)
class ActReply:
    outcome: str  # what the act came to (Decision.outcome)
    text: str  # what the learner is told, queued under `key`
    key: str


async def carry_out(
    core: CoreContext,
    session: AsyncSession,
    ticket_id: int,
    act: LearnerAct,
    message: InboundMessage,
    message_id: int,
    now: datetime,
) -> ActReply | None:
    """Carry out the learner's act on their ticket, in intake's transaction, and answer them where they
    wrote. None: the act does not apply after all and the message was an ordinary one."""
    ticket = await session.get_one(Ticket, ticket_id)
    policy = core.policy
    decision = await session.run_sync(lambda s: decide_for(s, ticket, act, policy))
    if decision is None:
        return None
    key, to = f"in:{message_id}:act", (message.channel, message.sender_id)
    actor = Actor(kind=LEARNER, name=f"learner:{message.channel}", role=LEARNER, learner_id=ticket.learner_id)
    reason = act.text or None
    outcome = decision.outcome
    text: str | None = None
    try:
        if outcome == RATE:
            assert act.score is not None  # `decide` rates only a score in range
            text = await record_score(core, session, ticket, act.score, reason, actor, now, key=key, to=to)
        elif outcome == APPEAL:
            text = (
                await open_second_instance(core, session, ticket, now, reason, actor=actor, to=to, key=key)
            ).reply
        elif outcome != "refused":
            await apply_move(core, session, ticket, outcome, actor, now, detail=reason)
            if outcome == CONFIRM:  # the survey follows at once, and is the answer
                text = await send_survey(core, session, ticket, now, key=key, to=to)
            elif outcome in (OBJECT, "reopen"):
                _notify_staff(core, session, ticket, message, message_id, now)
    except WorkflowError:  # e.g. the sweep confirmed a moment before: say where the ticket stands
        outcome, decision = "refused", Decision("refused", "state")
    if text is None:
        second = policy.second_instance
        text = core.templates.render(
            ticket.locale,
            "act.txt",
            outcome=outcome,
            reason=decision.reason,
            number=ticket.number,
            status=ticket.status,
            low=policy.follow_up.score_min,
            high=policy.follow_up.score_max,
            second_instance=second.contact_zh if ticket.locale == "zh" else second.contact_en,
            limits=core.limits(major=ticket.severity == "major"),
        )
        enqueue(
            session,
            core.vault,
            key=key,
            channel=to[0],
            recipient=to[1],
            kind="notice",
            text=text,
            now=now,
            ticket=ticket,
            meta={"ticket_number": ticket.number},
        )
    return ActReply(outcome, text, key)


def _notify_staff(
    core: CoreContext,
    session: AsyncSession,
    ticket: Ticket,
    message: InboundMessage,
    message_id: int,
    now: datetime,
) -> None:
    """An objection is work for the department: what the learner said goes to its chat."""
    notice = core.templates.render(
        core.staff_locale, "notice_learner_message.txt", number=ticket.number, text=summary(message, 500)
    )
    notify_department(session, core.vault, ticket, key=f"in:{message_id}:staff-notice", text=notice, now=now)


def no_ticket_reply(
    core: CoreContext, session: Session, message: InboundMessage, locale: str, now: datetime
) -> tuple[str, str, bool]:
    """The answer to a command (`/confirm TS-…`, `/rate 5`) that none of the sender's tickets takes:
    said once per message, and never turned into a complaint of its own. (text, outbox key, repeat)."""
    key = f"act:{message.channel}:{storage_key(message.external_id)}"[:255]
    said = session.scalar(select(OutboxRow.payload).where(OutboxRow.key == key))
    if said is not None:  # a redelivery of the same command
        return payload_text(core.vault, said), key, True
    numbers = find_ticket_numbers(f"{message.text} {message.subject or ''}", core.prefix)
    text = core.templates.render(
        locale, "act.txt", outcome="refused", reason="no_ticket", number=str(numbers[0]) if numbers else None
    )
    values = outbox_values(
        core.vault,
        key=key,
        channel=message.channel,
        recipient=message.sender_id,
        kind="notice",
        text=text,
        now=now,
    )
    session.connection().execute(insert(OutboxRow), values)
    written(session)
    return text, key, False
