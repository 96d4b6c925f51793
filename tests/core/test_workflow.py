"""The workflow: legal moves change state and clocks and leave an audit event; illegal ones are refused."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.intake.intake import Intake
from core.storage.models import Clock, Event, Staff, Ticket
from core.tickets.moves import apply_move, staff_actor
from core.tickets.queries import get_ticket
from core.tickets.views import ticket_view
from core.tickets.workflow import SYSTEM_ACTOR, Actor, NotAllowed, WorkflowError, check
from tests.conftest import at


async def _staff(core: CoreContext, name: str, department: str, role: str) -> Staff:
    async with core.sessions() as session, session.begin():
        staff = Staff(
            name=name, department=department, role=role, active=True, created_at=at("2026-11-01 09:00")
        )
        session.add(staff)
    return staff


async def _ticket(
    intake: Intake, channel: FakeChannel, text: str = "老师讲课照本宣科，内容和宣传不符"
) -> str:
    result = await intake.receive(
        channel.message("chat-1", text, at("2026-11-23 10:00")), at("2026-11-23 10:00")
    )
    return result.ticket_number


async def _move(core: CoreContext, number: str, action: str, actor: Actor, when: str, **kw: object) -> None:
    async with core.sessions() as session, session.begin():
        ticket = await get_ticket(session, number)
        await apply_move(core, session, ticket, action, actor, at(when), **kw)  # type: ignore[arg-type]


async def test_full_life_of_a_complaint_closes_each_clock_on_the_move_that_ends_it(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await _ticket(intake, learner_channel)
    teacher = staff_actor(await _staff(core, "王老师", "teaching", "staff"))
    async with core.sessions() as session:
        learner_id = (await get_ticket(session, number)).learner_id
    learner = Actor(kind="learner", name="learner", role="learner", learner_id=learner_id)

    await _move(core, number, "claim", teacher, "2026-11-23 10:20")
    await _move(core, number, "plan", teacher, "2026-11-25 15:00", detail="换老师并补课两次")
    await _move(core, number, "agree", learner, "2026-11-25 16:00")
    await _move(core, number, "done", teacher, "2026-11-27 11:00", detail="已补课")
    await _move(core, number, "resolve", teacher, "2026-11-27 14:00", detail="已换老师并补课")
    await _move(core, number, "confirm", learner, "2026-11-27 20:00")
    await _move(core, number, "close", SYSTEM_ACTOR, "2026-11-30 10:00")

    async with core.sessions() as session:
        ticket = await get_ticket(session, number)
        view = await ticket_view(core, session, ticket, at("2026-11-30 10:00"))
        clocks = list(
            await session.scalars(select(Clock).where(Clock.ticket_id == ticket.id).order_by(Clock.id))
        )
    assert view["status"] == "closed" and view["owner"] == "王老师"
    assert view["plan"] == "换老师并补课两次" and view["result"] == "已换老师并补课"
    assert all(c.met_at is not None for c in clocks if c.stage != "acknowledge")
    by_stage = {c.stage: c for c in clocks}
    # Each stage starts at the move that opens it and is met at the move that ends it.
    assert by_stage["investigate"].started_at == at("2026-11-23 10:20")
    assert by_stage["investigate"].met_at == at("2026-11-25 15:00")
    assert by_stage["investigate"].due_at == at("2026-11-26 18:00")  # 3 working days, start day not counted
    assert by_stage["execute"].due_at == at("2026-12-02 18:00")  # 5 working days from Wed 11-25
    assert by_stage["confirm"].paused  # waits on the learner: never escalated
    actions = [e["action"] for e in view["events"]]
    assert actions[-7:] == ["claim", "plan", "agree", "done", "resolve", "confirm", "close"]
    assert view["events"][-7]["actor"] == "王老师 (teaching/staff)"


async def test_illegal_moves_raise_clear_errors_and_change_nothing(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await _ticket(intake, learner_channel)
    teacher = staff_actor(await _staff(core, "王老师", "teaching", "staff"))
    cashier = staff_actor(await _staff(core, "张会计", "finance", "staff"))

    with pytest.raises(WorkflowError, match="cannot finish carrying out the plan while the ticket is routed"):
        await _move(core, number, "done", teacher, "2026-11-23 10:30")
    with pytest.raises(NotAllowed, match="belongs to the teaching department, not finance"):
        await _move(core, number, "claim", cashier, "2026-11-23 10:30")
    with pytest.raises(NotAllowed, match="a staff may not give the ticket an owner"):
        await _move(core, number, "assign", teacher, "2026-11-23 10:30")
    stranger = Actor(kind="learner", name="x", role="learner", learner_id=9999)
    await _move(core, number, "claim", teacher, "2026-11-23 10:30")
    await _move(core, number, "plan", teacher, "2026-11-23 11:30", detail="plan")
    with pytest.raises(NotAllowed, match="only the learner who made the complaint"):
        await _move(core, number, "agree", stranger, "2026-11-23 12:00")
    with pytest.raises(WorkflowError, match="unknown action"):
        check("teleport", "routed", "teaching", teacher)

    async with core.sessions() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None and ticket.status == "awaiting_agreement"
        actions = list(await session.scalars(select(Event.action).where(Event.ticket_id == ticket.id)))
    assert actions.count("claim") == 1 and "done" not in actions and "agree" not in actions


async def test_transfer_reroutes_and_restarts_the_claim_clock(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await _ticket(intake, learner_channel)
    teacher = staff_actor(await _staff(core, "王老师", "teaching", "staff"))
    await _move(
        core, number, "transfer", teacher, "2026-11-23 11:00", department="finance", detail="其实是退费问题"
    )
    async with core.sessions() as session:
        ticket = await get_ticket(session, number)
        claims = list(
            await session.scalars(
                select(Clock).where(Clock.ticket_id == ticket.id, Clock.stage == "claim").order_by(Clock.id)
            )
        )
    assert ticket.department == "finance" and ticket.status == "routed"
    assert [c.met_at for c in claims] == [at("2026-11-23 11:00"), None]
    assert claims[1].due_at == at("2026-11-23 12:00")
    # The old department can no longer act on it.
    with pytest.raises(NotAllowed):
        await _move(core, number, "claim", teacher, "2026-11-23 11:05")


async def test_manager_may_act_anywhere_and_reopen(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await _ticket(intake, learner_channel)
    boss = staff_actor(await _staff(core, "陈主任", "service", "manager"))
    await _move(core, number, "claim", boss, "2026-11-23 10:10")
    await _move(core, number, "resolve", boss, "2026-11-23 16:00", detail="已处理")
    await _move(core, number, "reopen", boss, "2026-11-24 09:00", detail="学员不满意")
    async with core.sessions() as session:
        ticket = await get_ticket(session, number)
        open_stages = list(
            await session.scalars(
                select(Clock.stage).where(Clock.ticket_id == ticket.id, Clock.met_at.is_(None))
            )
        )
    assert ticket.status == "investigating"
    assert "investigate" in open_stages and "confirm" not in open_stages


async def test_two_staff_claiming_at_once_one_wins_and_one_is_told_why(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await _ticket(intake, learner_channel)
    wang = staff_actor(await _staff(core, "王老师", "teaching", "staff"))
    li = staff_actor(await _staff(core, "李老师", "teaching", "staff"))
    outcomes = await asyncio.gather(
        _move(core, number, "claim", wang, "2026-11-23 10:20"),
        _move(core, number, "claim", li, "2026-11-23 10:20"),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, WorkflowError)]
    assert len(refused) == 1 and "while the ticket is investigating" in str(refused[0])
    async with core.sessions() as session:
        ticket = await get_ticket(session, number)
        claims = (
            await session.scalars(select(Event).where(Event.ticket_id == ticket.id, Event.action == "claim"))
        ).all()
        investigations = (
            await session.scalars(
                select(Clock).where(Clock.ticket_id == ticket.id, Clock.stage == "investigate")
            )
        ).all()
    assert len(claims) == 1 and len(investigations) == 1


async def test_transfer_to_an_unknown_department_is_refused(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await _ticket(intake, learner_channel)
    teacher = staff_actor(await _staff(core, "王老师", "teaching", "staff"))
    with pytest.raises(WorkflowError, match="unknown department 'marketing'; known: academic, compliance"):
        await _move(core, number, "transfer", teacher, "2026-11-23 11:00", department="marketing")
