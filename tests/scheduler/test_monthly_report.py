"""The monthly report to managers: due on the policy's working day, queued once across instances, with
the PDF and an overview picture; the quarter's credit grades kept and summed up with it."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.outbox import payload_text, to_message
from core.intake.intake import Intake
from core.rules.calendar import BusinessCalendar
from core.rules.policy import parse_policy
from core.rules.templates import Templates
from core.storage.delivery_models import OutboxRow
from core.storage.record_models import CreditGrade
from core.tickets.moves import apply_move, staff_actor
from core.tickets.queries import get_ticket
from core.tickets.staff import add_staff
from scheduler import monthly_report
from scheduler.sweep import sweep
from tests.conftest import DEPARTMENTS, at

TEACHING = "老师上课总是迟到，讲课照本宣科，教学质量很差"
FEES = "退费申请三个月了还没到账"


async def _september(core: CoreContext, intake: Intake) -> None:
    channel = FakeChannel("telegram")
    for i, text in enumerate((TEACHING, TEACHING, FEES)):
        when = at("2026-09-14 10:00") + timedelta(hours=i)
        result = await intake.receive(channel.message(f"90{i}", text, when), when)
        if i == 0:
            async with core.sessions() as session, session.begin():
                teacher = await add_staff(
                    session, name="王老师", department="teaching", role="staff", now=when
                )
                ticket = await get_ticket(session, result.ticket_number)
                await apply_move(core, session, ticket, "claim", staff_actor(teacher), when)


async def _reports(core: CoreContext) -> list[OutboxRow]:
    async with core.sessions() as session:
        return list(await session.scalars(select(OutboxRow).where(OutboxRow.key.like("report:%"))))


def test_the_sending_day_is_the_nth_working_day_of_the_calendar() -> None:
    calendar = BusinessCalendar(parse_policy().calendar.settings())
    # October 2026 opens with the National Day holiday; November 1 is a Sunday.
    first_october = monthly_report.nth_working_day(calendar, 2026, 10, 1)
    assert first_october > date(2026, 10, 7) and calendar.is_workday(first_october)
    assert monthly_report.nth_working_day(calendar, 2026, 11, 1) == date(2026, 11, 2)
    assert monthly_report.nth_working_day(calendar, 2026, 11, 3) == date(2026, 11, 4)


async def test_the_report_goes_to_the_managers_once_with_the_pdf_and_the_grades(
    core: CoreContext, intake: Intake
) -> None:
    await _september(core, intake)
    day = monthly_report.nth_working_day(core.calendar, 2026, 10, 1)
    opens = datetime.combine(day, core.policy.report.at, tzinfo=core.calendar.tz)
    assert (await monthly_report.run(core, opens - timedelta(minutes=1), False)).actions == []
    assert (await monthly_report.run(core, opens - timedelta(days=1), False)).actions == []
    dry = await monthly_report.run(core, opens, True)
    assert dry.actions == ["report 2026-09 to managers"] and await _reports(core) == []

    # Two instances at once, then a later sweep of the same month: one report.
    other = CoreContext(
        sessions=core.sessions,
        policy=core.policy,
        vault=core.vault,
        templates=Templates(),
        channels=core.channels,
        department_names=DEPARTMENTS,
    )
    try:
        runs = await asyncio.gather(
            monthly_report.run(core, opens, False),
            monthly_report.run(other, opens + timedelta(seconds=1), False),
        )
    finally:
        await other.close()
    assert sum(1 for r in runs if any(a.startswith("report") for a in r.actions)) >= 1
    await monthly_report.run(core, opens + timedelta(days=3), False)
    [row] = await _reports(core)
    assert row.key == "report:2026-09" and row.channel == "staff" and row.kind == "report"
    assert core.vault.decrypt(row.recipient_enc) == "managers"
    text = payload_text(core.vault, row.payload)
    assert "2026-09" in text and "received 3" in text and "2026Q3" in text
    documents = {d["filename"]: d for d in row.payload["documents"]}
    assert set(documents) == {"report-2026-09.pdf", "report-2026-09-overview.png"}
    message = to_message(row, core.vault)
    pdf, picture = message.documents
    assert pdf.content.startswith(b"%PDF") and pdf.mime == "application/pdf"
    assert picture.content.startswith(b"\x89PNG") and picture.mime == "image/png"

    async with core.sessions() as session:
        grades = list(await session.scalars(select(CreditGrade).where(CreditGrade.quarter == "2026Q3")))
    # Three complaints, none closed: every department is listed, none graded on so little.
    assert {g.subject_key for g in grades if g.subject_kind == "department"} == {"teaching", "finance"}
    assert {g.grade for g in grades} == {"not_graded"}

    # November's report is about October; no quarter closed with it.
    november = datetime.combine(date(2026, 11, 2), core.policy.report.at, tzinfo=core.calendar.tz)
    later = await monthly_report.run(core, november, False)
    assert later.actions == ["report 2026-10 to managers"]
    assert sorted(r.key for r in await _reports(core)) == ["report:2026-09", "report:2026-10"]


async def test_a_sweep_runs_the_report_and_it_can_be_switched_off(core: CoreContext, intake: Intake) -> None:
    await _september(core, intake)
    november = at("2026-11-02 09:30")
    core.policy = parse_policy("[report]\nenabled = false\n")
    await sweep(core, november)
    assert await _reports(core) == []
    core.policy = parse_policy('[report]\nworking_day = 2\nat = "10:00"\n')
    await sweep(core, november)
    assert await _reports(core) == []  # due on the 3rd, the second working day
    reports = await sweep(core, at("2026-11-03 10:00"))
    assert [r.actions for r in reports if r.name == "report"] == [["report 2026-10 to managers"]]
    async with core.sessions() as session:
        assert (
            await session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.key == "report:2026-10")
            )
            == 1
        )
