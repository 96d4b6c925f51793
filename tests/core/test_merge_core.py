"""A merge in the core: one complaint, counted once by the reports, major if either part was, and the
promises made on either part (a call back) kept."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from channels.fake import FakeChannel
from core.context import CoreContext
from core.intake.intake import Intake
from core.reports.figures import month_figures
from core.reports.periods import month_period
from core.storage.models import Staff
from core.tickets.callback import pending_callback
from core.tickets.merge import merge, unmerge
from core.tickets.queries import get_ticket
from core.tickets.staff import add_staff
from scheduler import escalation
from tests.conftest import at

TZ = ZoneInfo("Asia/Shanghai")


async def _received(core: CoreContext) -> int:
    async with core.sessions() as session:
        figures = await month_figures(
            session, core.policy, month_period("2026-11", TZ), at("2026-11-30 18:00")
        )
    return int(figures["totals"]["received"])


async def _manager(session: AsyncSession) -> Staff:
    """Managers may merge any two tickets, two learners' included."""
    return await add_staff(
        session, name="陈主任", department="service", role="manager", now=at("2026-11-01 09:00")
    )


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
        manager = await _manager(session)
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


async def test_a_voicemail_merged_into_a_written_complaint_keeps_its_call_back(
    core: CoreContext, intake: Intake
) -> None:
    written = await intake.receive(
        FakeChannel("telegram").message("42", "老师上课总是迟到，讲课照本宣科", at("2026-11-23 10:00")),
        at("2026-11-23 10:00"),
    )
    voicemail = await intake.receive(
        FakeChannel("voicemail").message(
            "13812348000", "我是李明，老师上课老迟到，请回电", at("2026-11-23 10:05"), phone="13812348000"
        ),
        at("2026-11-23 10:05"),
    )
    async with core.sessions() as session, session.begin():
        manager = await _manager(session)
        kept, merged = (
            await get_ticket(session, written.ticket_number),
            await get_ticket(session, voicemail.ticket_number),
        )
        promised = await pending_callback(session, merged.id)
        assert promised is not None and merged.contact_enc is not None and kept.contact_enc is None
        await merge(core, session, kept, merged, manager, at("2026-11-23 10:10"))
    async with core.sessions() as session:
        kept = await get_ticket(session, written.ticket_number)
        carried = await pending_callback(session, kept.id)
        assert carried is not None and carried.id == promised.id  # still to be done, now on the kept ticket
        assert carried.due_at == promised.due_at
        # Two learners as far as the bot knows (a Telegram chat, a caller's number): the caller's
        # number is not taken over as the Telegram learner's contact.
        assert kept.contact_enc is None

    async with core.sessions() as session, session.begin():
        await unmerge(
            core, session, await get_ticket(session, voicemail.ticket_number), manager, at("2026-11-23 10:15")
        )
    async with core.sessions() as session:
        back = await pending_callback(session, (await get_ticket(session, voicemail.ticket_number)).id)
        assert back is not None and back.id == promised.id
        assert await pending_callback(session, (await get_ticket(session, written.ticket_number)).id) is None


async def test_a_breach_alerted_on_the_merged_ticket_is_not_alerted_again_on_the_kept_one(
    core: CoreContext, intake: Intake
) -> None:
    channel = FakeChannel("telegram")
    late = await intake.receive(
        channel.message("42", "老师上课总是迟到", at("2026-11-23 10:30")), at("2026-11-23 10:30")
    )
    early = await intake.receive(
        channel.message("43", "老师上课又迟到了", at("2026-11-23 10:00")), at("2026-11-23 10:00")
    )
    level1 = await escalation.run(core, at("2026-11-23 11:05"), False)  # the early one's claim is overdue
    assert [a for a in level1.actions if early.ticket_number in a and "level 1" in a]
    async with core.sessions() as session, session.begin():
        manager = await _manager(session)
        kept, merged = (
            await get_ticket(session, late.ticket_number),
            await get_ticket(session, early.ticket_number),
        )
        await merge(core, session, kept, merged, manager, at("2026-11-23 11:10"))
    # The kept ticket's claim clock now runs from the earlier entry and is as overdue: the same breach,
    # already alerted; what comes next is level 2, in its own time.
    after = await escalation.run(core, at("2026-11-23 11:12"), False)
    assert not [a for a in after.actions if "level 1" in a], after.actions
