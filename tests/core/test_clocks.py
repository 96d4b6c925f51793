"""Stage clocks on the Chinese business calendar, as a complaint's deadlines come out of intake."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from bot.app import channel_book
from channels.fake import FakeChannel
from core.context import CoreContext
from core.intake.intake import Intake
from core.rules.calendar import BusinessCalendar
from core.rules.clocks import ClockKeeper
from core.rules.policy import PolicyError, parse_policy
from core.rules.templates import Templates
from core.storage.models import Clock, Ticket
from tests.conftest import at


async def _clocks(core: CoreContext, number: str) -> dict[str, Clock]:
    async with core.sessions() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        return {c.stage: c for c in await session.scalars(select(Clock).where(Clock.ticket_id == ticket.id))}


async def _complain(
    intake: Intake, channel: FakeChannel, when: str, text: str = "班主任态度敷衍，问题推来推去"
) -> str:
    now = at(when)
    return (await intake.receive(channel.message("chat-1", text, now), now)).ticket_number


async def test_eve_of_national_day_claim_is_due_on_the_first_working_morning_after(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await _complain(intake, learner_channel, "2026-09-30 17:30")
    clocks = await _clocks(core, number)
    assert number.startswith("TS-260930-")
    # 30 working minutes left on 09-30, holiday 10-01..10-07, 30 minutes into 10-08.
    assert clocks["claim"].due_at == at("2026-10-08 09:30")
    # The bot's own promises run round the clock.
    assert clocks["acknowledge"].due_at == at("2026-09-30 19:30")
    assert core.clocks.due("investigate", at("2026-09-30 17:30")) == at("2026-10-10 18:00")


async def test_make_up_saturday_is_a_working_day(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await _complain(intake, learner_channel, "2026-10-10 10:00")  # 调休: Saturday worked
    clocks = await _clocks(core, number)
    assert clocks["claim"].due_at == at("2026-10-10 11:00")
    # Sunday 10-11 is off: three working days after Saturday are Mon-Wed.
    assert core.clocks.due("investigate", at("2026-10-10 10:00")) == at("2026-10-14 18:00")


async def test_complaint_at_2059_counts_from_next_morning(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await _complain(intake, learner_channel, "2026-11-24 20:59")
    clocks = await _clocks(core, number)
    assert clocks["claim"].due_at == at("2026-11-25 10:00")
    assert clocks["acknowledge"].due_at == at("2026-11-24 22:59")
    # The voicemail call-back keeps the hotline's own hours (every day 9:00-21:00 by default).
    assert core.clocks.due("callback", at("2026-11-24 22:14")) == at("2026-11-25 10:00")
    assert core.clocks.due("callback", at("2026-11-25 03:00")) == at("2026-11-25 10:00")


async def test_major_complaints_run_on_tighter_clocks(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    number = await _complain(intake, learner_channel, "2026-11-23 10:00", "再不退我8000元学费我就去12315投诉")
    clocks = await _clocks(core, number)
    assert clocks["claim"].due_at == at("2026-11-23 10:30")
    assert core.clocks.due("investigate", at("2026-11-23 10:00"), major=True) == at("2026-11-24 18:00")


async def test_a_year_the_calendar_library_does_not_cover_falls_back_and_warns_once(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="core.rules.calendar"):
        first = await _complain(intake, learner_channel, "2027-03-05 17:30")  # a Friday
        await _complain(intake, learner_channel, "2027-03-06 10:00", "另一件事：教室太吵")
    assert (await _clocks(core, first))["claim"].due_at == at("2027-03-08 09:30")  # Monday
    warnings = [r for r in caplog.records if "2027" in r.getMessage()]
    assert len(warnings) == 1


async def test_policy_file_holidays_and_round_the_clock_override_the_defaults(
    db: object, core: CoreContext, learner_channel: FakeChannel
) -> None:
    policy = parse_policy(
        """
        [calendar]
        holidays = [2026-11-25]
        [stages.claim]
        hours = 2
        """
    )
    custom = CoreContext(
        sessions=core.sessions,
        policy=policy,
        vault=core.vault,
        templates=Templates(),
        channels=channel_book(),
    )
    try:
        number = await _complain(Intake(custom), learner_channel, "2026-11-24 17:00")
    finally:
        await custom.close()
    # One working hour on 11-24, the 25th is a school holiday, one more on the 26th.
    assert (await _clocks(custom, number))["claim"].due_at == at("2026-11-26 10:00")
    rtc = parse_policy("[stages.claim]\nround_the_clock = true")
    assert rtc.stage("claim").round_the_clock and rtc.stage("claim").hours == 1


def test_bad_policy_values_are_one_clear_line() -> None:
    with pytest.raises(PolicyError, match=r"stages\.claim\.hours"):
        parse_policy('[stages.claim]\nhours = "soon"')
    with pytest.raises(PolicyError, match="exactly one of `hours` or `working_days`"):
        parse_policy("[stages.plan]\nhours = 4\nworking_days = 1")
    with pytest.raises(PolicyError, match="not valid TOML"):
        parse_policy("[stages\n")
    with pytest.raises(PolicyError, match="unknown intake field"):
        parse_policy('[intake]\nask_fields = ["shoe size"]')


def test_an_operator_may_give_a_stage_in_the_other_unit() -> None:
    policy = parse_policy("[stages.communicate]\nworking_days = 1\n[stages.investigate]\nhours = 12")
    assert (policy.stage("communicate").working_days, policy.stage("communicate").hours) == (1, None)
    investigate = policy.stage("investigate")
    assert (investigate.hours, investigate.working_days, investigate.major_working_days) == (12, None, None)


async def test_a_voicemail_opens_a_call_back_clock_on_the_hotlines_hours(
    core: CoreContext, intake: Intake
) -> None:
    voicemail = FakeChannel("voicemail")
    now = at("2026-11-24 22:14")
    result = await intake.receive(voicemail.message("+8613812348000", "", now, phone="+8613812348000"), now)
    assert (await _clocks(core, result.ticket_number))["callback"].due_at == at("2026-11-25 10:00")
    # A call one minute before the hotline closes: one minute today, 59 the next morning.
    assert core.clocks.due("callback", at("2026-11-24 20:59")) == at("2026-11-25 09:59")
    follows = parse_policy("[hotline]\nfollow_working_days = true")
    keeper = ClockKeeper(follows, BusinessCalendar(follows.calendar.settings()))
    assert keeper.due("callback", at("2026-09-30 22:14")) == at("2026-10-08 10:00")


def test_every_number_of_the_policy_is_in_the_default_file() -> None:
    policy = parse_policy()
    expected = {"entry": 1, "acknowledge": 2, "route": 2, "claim": 1, "communicate": 24, "callback": 1}
    assert {k: policy.stage(k).hours for k in expected} == expected
    days = {"investigate": 3, "plan": 1, "revise": 1, "execute": 5, "report": 1, "confirm": 2, "follow_up": 3}
    assert {k: policy.stage(k).working_days for k in days} == days
    assert policy.escalation.reminder_at == 0.75 and policy.escalation.level2_after == 0.5
    assert policy.intake.handoff_minutes == 30 and policy.follow_up.reopen_at_or_below == 2
    assert policy.severity["major_amount_yuan"] == 1000
