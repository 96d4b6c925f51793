"""Two schedulers in two processes against one PostgreSQL, sweeping the same simulated days: every
reminder and escalation is sent exactly once, and none is missed."""

from __future__ import annotations

import asyncio
import re
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import payload_text
from core.intake.intake import Intake
from core.storage.delivery_models import OutboxRow
from core.storage.models import Clock, Event, Ticket
from core.tickets.moves import apply_move, staff_actor
from core.tickets.staff import add_staff
from scheduler.escalation import plan
from tests.conftest import Database, at

REPO = Path(__file__).resolve().parents[2]
TEXTS = (
    "老师上课总是迟到，教学质量很差",
    "退费申请三个月了还没到账",
    "前台工作人员态度很差",
    "教室空调坏了没人修",
)
STEP_MINUTES = 10
DETAIL = re.compile(r"(?P<stage>\w+) \(due [^)]*\): (?P<step>reminder|level 1|level 2) to ")


async def test_two_processes_send_every_alert_once_and_miss_none(
    db: Database, core: CoreContext, intake: Intake, privacy_key: str
) -> None:
    if db.backend != "postgres":
        pytest.skip("several instances share a database only on PostgreSQL")
    start = at("2026-11-23 09:00")  # Monday
    channel = FakeChannel("telegram")
    async with core.sessions() as session, session.begin():
        for n, department in enumerate(("teaching", "finance", "service", "academic")):
            await add_staff(
                session,
                name=f"head-{department}",
                department=department,
                role="head",
                now=start,
                telegram_id=str(9100 + n),
            )
        worker = await add_staff(
            session, name="王老师", department="teaching", role="staff", now=start, telegram_id="9001"
        )
    tickets = []
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": channel}, batch=200)
    for i in range(240):  # complaints through Monday and Tuesday, every 12 minutes, acknowledged at once
        when = start + timedelta(minutes=12 * i)
        result = await intake.receive(channel.message(f"l{i}", TEXTS[i % len(TEXTS)], when), when)
        await dispatcher.drain(when)
        tickets.append((result.ticket_number, when))
    async with core.sessions() as session, session.begin():  # some are claimed in time: other clocks run
        for number, when in tickets[::5]:
            ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
            assert ticket is not None
            if ticket.department == "teaching":
                await apply_move(
                    core, session, ticket, "claim", staff_actor(worker), when + timedelta(minutes=20)
                )

    end = start + timedelta(days=4)
    args = [db.url, privacy_key, start.isoformat(), end.isoformat(), str(STEP_MINUTES)]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.scheduler.sweep_worker",
            *args,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [await p.communicate() for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()[-2000:]
    done = [int(out.decode().strip()) for out, _ in outputs]
    assert all(n > 0 for n in done), done  # both did part of the work

    async with core.sessions() as session:
        clocks = list(await session.scalars(select(Clock)))
        events = list(await session.scalars(select(Event).where(Event.action.in_(("reminded", "escalated")))))
        alerts = list(await session.scalars(select(OutboxRow).where(OutboxRow.kind == "alert")))
        numbers = {t.id: t.number for t in await session.scalars(select(Ticket))}
    # What should have happened, worked out from the clocks alone with the same rules, tick by tick.
    expected: Counter[tuple[str, str]] = Counter()
    for clock in clocks:
        if clock.paused:
            continue
        copy = Clock(started_at=clock.started_at, due_at=clock.due_at, escalation_level=0, reminded_at=None)
        tick = start
        while tick <= end:
            if clock.met_at is not None and tick >= clock.met_at:
                break
            step_plan = plan(
                copy, tick, *core.clocks.checkpoints(clock.stage, clock.started_at, clock.due_at)
            )
            for step in step_plan.steps:
                expected[(numbers[clock.ticket_id], f"{clock.stage}: {step}")] += 1
            copy.escalation_level = step_plan.escalation_level
            copy.reminded_at = tick if step_plan.reminded and copy.reminded_at is None else copy.reminded_at
            tick += timedelta(minutes=STEP_MINUTES)
    happened: Counter[tuple[str, str]] = Counter()
    for event in events:  # "claim (due 2026-11-23 10:00): level 1 to head-teaching (teaching head)"
        found = DETAIL.match(event.detail or "")
        assert found, event.detail
        happened[(numbers[event.ticket_id or 0], f"{found['stage']}: {found['step']}")] += 1
    assert sum(expected.values()) > 500  # hundreds of reminders and escalations were due
    assert max(happened.values()) == 1  # none twice
    assert happened == expected  # none missed, none extra
    # And what reached people says the same: every alert line is one event.
    lines = sum(payload_text(core.vault, a.payload).count(" — ") for a in alerts)
    assert lines == len(events)
