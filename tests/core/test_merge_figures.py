"""A merge as the reports and the severity see it: one complaint, counted once, major if either part was
(two learners of one class here, merged by a manager)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from channels.fake import FakeChannel
from core.context import CoreContext
from core.intake import Intake
from core.merge import merge, unmerge
from core.report_figures import month_figures, month_period
from core.staff import add_staff
from core.tickets import get_ticket
from tests.conftest import at

TZ = ZoneInfo("Asia/Shanghai")


async def _received(core: CoreContext) -> int:
    async with core.sessions() as session:
        figures = await month_figures(
            session, core.policy, month_period("2026-11", TZ), at("2026-11-30 18:00")
        )
    return int(figures["totals"]["received"])


async def test_merged_tickets_count_once_and_the_kept_one_is_major_if_either_was(
    core: CoreContext, intake: Intake
) -> None:
    channel = FakeChannel("telegram")
    first = await intake.receive(
        channel.message("42", "老师上课总是迟到，讲课照本宣科", at("2026-11-23 10:00")),
        at("2026-11-23 10:00"),
    )
    second = await intake.receive(
        channel.message("43", "王老师上课又迟到了，我要去12315投诉", at("2026-11-23 10:20")),
        at("2026-11-23 10:20"),
    )
    async with core.sessions() as session, session.begin():
        manager = await add_staff(
            session, name="陈主任", department="service", role="manager", now=at("2026-11-01 09:00")
        )
        kept, merged = (
            await get_ticket(session, first.ticket_number),
            await get_ticket(session, second.ticket_number),
        )
        assert (kept.severity, merged.severity) == ("general", "major")
    assert await _received(core) == 2

    async with core.sessions() as session, session.begin():
        kept, merged = (
            await get_ticket(session, first.ticket_number),
            await get_ticket(session, second.ticket_number),
        )
        await merge(core, session, kept, merged, manager, at("2026-11-23 10:30"))
    async with core.sessions() as session:
        assert (await get_ticket(session, first.ticket_number)).severity == "major"
    assert await _received(core) == 1  # the same complaint, once

    async with core.sessions() as session, session.begin():
        await unmerge(
            core, session, await get_ticket(session, second.ticket_number), manager, at("2026-11-23 10:35")
        )
    async with core.sessions() as session:
        assert (await get_ticket(session, first.ticket_number)).severity == "general"
    assert await _received(core) == 2
