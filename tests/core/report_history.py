"""A seeded history of complaints built through the real intake, workflow and sweeps, for the reports.

Every ticket is a learner's message to `Intake.receive`; staff claim, plan and resolve through
`apply_move`; learners confirm, agree, rate and appeal by writing to the bot; the escalation and
follow-up duties run twice a day. Delays are drawn so that every stage is met and breached, some
surveys are answered, some become call tasks, some are never done, and low scores open second
instances. Actions run in time order (a heap), as the school's day would have them.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.record import RetryPolicy
from core.intake.intake import Intake
from core.storage.models import Staff, Ticket
from core.tickets.followup import record_score
from core.tickets.moves import apply_move, staff_actor
from core.tickets.queries import get_ticket
from core.tickets.staff import add_staff
from core.tickets.workflow import WorkflowError
from scheduler import escalation, followup

TEXTS = {
    "teaching": ("老师上课总是迟到，讲课照本宣科", "The teacher reads the slides and never explains"),
    "service": ("班主任态度敷衍，推来推去没人负责", "Front desk staff were rude and nobody replied"),
    "fees": ("退费申请两个月了还没退款", "My refund was refused and they charged extra fees"),
    "other": ("教室装修噪音太大，空调也坏了", "The online platform keeps crashing during class"),
}
MAJOR = "，我要打12315投诉"
COURSES = ("Python全栈班", "雅思冲刺班", "会计实务", "UI设计", "跨境电商运营", "Java进阶")
STAFF_DEPARTMENTS = ("service", "teaching", "finance", "academic", "compliance")


@dataclass
class History:
    numbers: list[str] = field(default_factory=list)
    appeals: int = 0


Action = Callable[[datetime], Awaitable[None]]


async def build_history(
    core: CoreContext, tickets: int, start: datetime, days: int, seed: int = 15
) -> History:
    """`tickets` complaints received over `days` days from `start`, then everything the staff and the
    learners do with them, up to 20 days after the last one (the sweeps run on until then)."""
    rng = random.Random(seed)
    intake = Intake(core)
    channels = {name: FakeChannel(name) for name in ("telegram", "wechat")}
    # Learners' messages leave at once, as the service sends them (the acknowledgement clock is met);
    # staff chats have no sender here, so their rows wait untouched and cost nothing.
    dispatcher = Dispatcher(core.sessions, core.vault, dict(channels), retry=RetryPolicy(), batch=200)
    history = History()
    queue: list[tuple[datetime, int, Action]] = []
    order = itertools.count()

    def later(at: datetime, action: Action) -> None:
        heapq.heappush(queue, (at, next(order), action))

    staff: dict[str, list[Staff]] = {}
    async with core.sessions() as session, session.begin():
        for department in STAFF_DEPARTMENTS:
            staff[department] = [
                await add_staff(
                    session, name=f"{department}-{n}", department=department, role="staff", now=start
                )
                for n in range(3)
            ]
            await add_staff(session, name=f"{department}-head", department=department, role="head", now=start)

    async def move(number: str, action: str, at: datetime, detail: str | None = None) -> Staff | None:
        async with core.sessions() as session, session.begin():
            ticket = await get_ticket(session, number)
            member = rng.choice(staff[ticket.department])
            try:
                await apply_move(core, session, ticket, action, staff_actor(member), at, detail=detail)
            except WorkflowError:
                return None
        return member

    def hours(low: float, high: float) -> timedelta:
        return timedelta(hours=rng.uniform(low, high))

    def learner_says(channel: FakeChannel, sender: str, text: str) -> Action:
        async def act(at: datetime) -> None:
            await intake.receive(channel.message(sender, text, at), at)

        return act

    def complaint(index: int) -> Action:
        async def act(at: datetime) -> None:
            channel = channels[rng.choice(("telegram", "telegram", "wechat"))]
            sender = f"learner-{index}"
            category = rng.choice(tuple(TEXTS))
            text = rng.choice(TEXTS[category]) + (MAJOR if rng.random() < 0.1 else "")
            result = await intake.receive(channel.message(sender, text, at), at)
            number = result.ticket_number
            history.numbers.append(number)
            # One pass sends the acknowledgement at once (its clock is met); the rest of the learner's
            # messages go out with the next complaint's pass, which is all the reports look at.
            await dispatcher.run_once(at)
            if rng.random() < 0.7:
                later(
                    at + timedelta(minutes=rng.uniform(1, 20)),
                    learner_says(channel, sender, rng.choice(COURSES)),
                )
            roll = rng.random()
            if roll < 0.08:
                return  # never claimed: its claim clock stays open and breached
            # Most are claimed within the hour; a third take far longer.
            delay = hours(0.05, 0.9) if rng.random() < 0.65 else hours(1.5, 40)
            later(at + delay, claimed(number, channel, sender))

        return act

    def claimed(number: str, channel: FakeChannel, sender: str) -> Action:
        async def act(at: datetime) -> None:
            if await move(number, "claim", at) is None:
                return
            roll = rng.random()
            if roll < 0.1:
                return  # stuck in investigation
            if roll < 0.35:  # a plan the learner agrees to, carried out, then the result
                plan_at = at + (hours(2, 30) if rng.random() < 0.7 else hours(60, 160))
                later(plan_at, lambda t: _plan(number, channel, sender, t))
                return
            done_at = at + (hours(3, 50) if rng.random() < 0.7 else hours(80, 250))
            later(done_at, resolved(number, channel, sender))

        return act

    async def _plan(number: str, channel: FakeChannel, sender: str, at: datetime) -> None:
        if await move(number, "plan", at, "为您调换班级并补课两次") is None:
            return
        agree_at = at + hours(0.5, 20)
        later(agree_at, learner_says(channel, sender, "同意"))

        async def executed(t: datetime) -> None:
            if await move(number, "done", t, "已补课") is not None:
                later(t + hours(1, 40), resolved(number, channel, sender))

        later(agree_at + hours(5, 150), executed)

    def resolved(number: str, channel: FakeChannel, sender: str) -> Action:
        async def act(at: datetime) -> None:
            if await move(number, "resolve", at, "已处理完毕") is None:
                return
            if rng.random() < 0.8:  # else the confirmation runs out and the system confirms
                later(at + hours(0.5, 30), learner_says(channel, sender, "确认，谢谢"))
                answer_at = at + hours(31, 40)
            else:
                answer_at = at + timedelta(days=5)
            roll = rng.random()
            if roll < 0.6:  # the learner answers the survey
                score = rng.choices((1, 2, 3, 4, 5), weights=(1, 1, 2, 4, 5))[0]
                later(answer_at, rated(number, channel, sender, score))
            elif roll < 0.85:  # no answer: staff call and take the score some days later
                later(answer_at + timedelta(days=rng.uniform(2, 9)), called(number))

        return act

    def rated(number: str, channel: FakeChannel, sender: str, score: int) -> Action:
        async def act(at: datetime) -> None:
            result = await intake.receive(channel.message(sender, str(score), at), at)
            if result.act == "rate" and score <= 2 and rng.random() < 0.6:
                later(at + hours(0.2, 5), appealed(channel, sender))

        return act

    def appealed(channel: FakeChannel, sender: str) -> Action:
        async def act(at: datetime) -> None:
            result = await intake.receive(channel.message(sender, "我要上级投诉", at), at)
            if result.act != "appeal":  # e.g. a second instance's own result: there is no third
                return
            history.appeals += 1
            async with core.sessions() as session:
                child = await session.scalar(
                    select(Ticket.number).where(Ticket.parent_id == result.ticket_id).limit(1)
                )
            if child is not None and rng.random() < 0.8:
                later(at + hours(0.2, 20), claimed(child, channel, sender))

        return act

    def called(number: str) -> Action:
        async def act(at: datetime) -> None:
            async with core.sessions() as session, session.begin():
                ticket = await get_ticket(session, number)
                if ticket.status != "follow_up":
                    return
                member = rng.choice(staff[ticket.department])
                await record_score(
                    core, session, ticket, rng.choice((3, 4, 5)), None, staff_actor(member), at
                )

        return act

    async def sweep(at: datetime) -> None:
        await escalation.run(core, at, dry_run=False)
        await followup.run(core, at, dry_run=False)

    span = timedelta(days=days)
    for index in range(tickets):
        later(start + span * rng.random(), complaint(index))
    for day in range(days + 20):
        for hour in (10, 16):
            later(start + timedelta(days=day, hours=hour), sweep)
    while queue:
        at, _, action = heapq.heappop(queue)
        await action(at)
    return history
