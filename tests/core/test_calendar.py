"""Tests for core.calendar: the Chinese business calendar behind the SLA clocks (POLICY.md §4)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar  # type: ignore[import-untyped, unused-ignore]
import pytest

from core.rules.calendar import BusinessCalendar, CalendarSettings

SH = ZoneInfo("Asia/Shanghai")
HOTLINE_OPENS, HOTLINE_CLOSES = time(9, 0), time(21, 0)


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SH)


@pytest.fixture
def cal() -> BusinessCalendar:
    return BusinessCalendar(CalendarSettings())


@pytest.fixture
def no_2027_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure 2027 is a year the library cannot answer for.

    chinesecalendar 1.11 has no 2027 data; a later release will. Then simulate the gap so the
    fallback stays tested instead of these tests silently turning into library tests.
    """
    try:
        chinese_calendar.is_workday(date(2027, 3, 1))
    except NotImplementedError:
        return
    real: Callable[[date], bool] = chinese_calendar.is_workday

    def without_2027(day: date) -> bool:
        if day.year == 2027:
            raise NotImplementedError("no available data for year 2027")
        return real(day)

    monkeypatch.setattr(chinese_calendar, "is_workday", without_2027)


def in_utc(value: datetime) -> datetime:
    """The value, checked to be the aware UTC datetime every calendar result must be."""
    if value.tzinfo is not UTC:
        raise AssertionError(f"{value!r} is not in UTC")
    return value


# --- is_workday ---------------------------------------------------------------------------


def test_statutory_holiday_and_make_up_day(cal: BusinessCalendar) -> None:
    assert cal.is_workday(date(2026, 9, 30))
    assert not cal.is_workday(date(2026, 10, 1))  # National Day
    assert not cal.is_workday(date(2026, 10, 7))
    assert cal.is_workday(date(2026, 10, 10))  # Saturday 调休 make-up day
    assert not cal.is_workday(date(2026, 10, 11))  # ordinary Sunday


def test_policy_holiday_overrides_library_working_day() -> None:
    day = date(2026, 10, 14)  # an ordinary Wednesday
    cal = BusinessCalendar(CalendarSettings(holidays=frozenset({day})))
    assert not cal.is_workday(day)
    assert cal.add_working_days(sh(2026, 10, 13, 10), 1) == sh(2026, 10, 15, 18)


def test_policy_workday_overrides_library_day_off() -> None:
    day = date(2026, 10, 3)  # inside the National Day break
    cal = BusinessCalendar(CalendarSettings(workdays=frozenset({day})))
    assert cal.is_workday(day)
    assert cal.add_working_hours(sh(2026, 9, 30, 17, 30), 1) == sh(2026, 10, 3, 9, 30)


def test_policy_holiday_wins_over_policy_workday() -> None:
    day = date(2026, 10, 14)
    cal = BusinessCalendar(CalendarSettings(holidays=frozenset({day}), workdays=frozenset({day})))
    assert not cal.is_workday(day)


def test_is_workday_is_cached(monkeypatch: pytest.MonkeyPatch, cal: BusinessCalendar) -> None:
    calls: list[date] = []
    real: Callable[[date], bool] = chinese_calendar.is_workday

    def counting(day: date) -> bool:
        calls.append(day)
        return real(day)

    monkeypatch.setattr(chinese_calendar, "is_workday", counting)
    for _ in range(5):
        assert cal.is_workday(date(2026, 10, 8))
    assert calls == [date(2026, 10, 8)]


def test_2027_falls_back_to_weekdays_and_policy_lists(no_2027_data: None) -> None:
    cal = BusinessCalendar(
        CalendarSettings(
            holidays=frozenset({date(2027, 3, 2)}),  # a Tuesday
            workdays=frozenset({date(2027, 3, 13)}),  # a Saturday
        )
    )
    assert cal.is_workday(date(2027, 3, 1))  # Monday
    assert not cal.is_workday(date(2027, 3, 6))  # Saturday
    assert not cal.is_workday(date(2027, 3, 7))  # Sunday
    assert not cal.is_workday(date(2027, 3, 2))  # listed holiday
    assert cal.is_workday(date(2027, 3, 13))  # listed make-up Saturday
    # Deadlines stay computable: Fri 2027-03-05 + 1 working day -> Mon 03-08 close of business.
    assert cal.add_working_days(sh(2027, 3, 5, 10), 1) == sh(2027, 3, 8, 18)


def test_2027_fallback_warns_once_per_instance_and_year(
    no_2027_data: None, caplog: pytest.LogCaptureFixture
) -> None:
    cal = BusinessCalendar(CalendarSettings())
    with caplog.at_level(logging.WARNING, logger="core.rules.calendar"):
        cal.is_workday(date(2026, 10, 8))  # covered year: no warning
        for offset in range(60):
            cal.is_workday(date(2027, 3, 1) + timedelta(days=offset))
        cal.add_working_hours(sh(2027, 3, 5, 17), 30)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2027" in warnings[0].getMessage()
    assert warnings[0].name == "core.rules.calendar"

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="core.rules.calendar"):
        BusinessCalendar(CalendarSettings()).is_workday(date(2027, 3, 1))
    assert len(caplog.records) == 1  # a fresh instance reports the gap again


# --- add_working_hours ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        # 1 h from 17:30 on the eve of National Day: 30 min today, 30 min on Oct 8.
        (sh(2026, 9, 30, 17, 30), 1, sh(2026, 10, 8, 9, 30)),
        # The make-up Saturday is a working day.
        (sh(2026, 10, 10, 10), 2, sh(2026, 10, 10, 12)),
        # After hours: counting starts at the next opening.
        (sh(2026, 10, 14, 20, 59), 1, sh(2026, 10, 15, 10)),
        (sh(2026, 10, 15, 3), 1, sh(2026, 10, 15, 10)),
        # Friday 17:00 + 2 h -> Monday 10:00.
        (sh(2026, 10, 16, 17), 2, sh(2026, 10, 19, 10)),
        # Ending exactly at close of business stays at close.
        (sh(2026, 10, 14, 17), 1, sh(2026, 10, 14, 18)),
        (sh(2026, 10, 14, 9), 9, sh(2026, 10, 14, 18)),
        # 24 working hours at 9 h/day from Monday 09:00: 9 + 9 + 6 -> Wednesday 15:00.
        (sh(2026, 10, 12, 9), 24, sh(2026, 10, 14, 15)),
        # Starting at close: nothing left today.
        (sh(2026, 10, 14, 18), 1, sh(2026, 10, 15, 10)),
        # Weekend start, fractional hours.
        (sh(2026, 10, 17, 12), 0.5, sh(2026, 10, 19, 9, 30)),
        # Zero hours inside hours is a no-op; outside it is the next opening.
        (sh(2026, 10, 14, 11), 0, sh(2026, 10, 14, 11)),
        (sh(2026, 10, 3, 11), 0, sh(2026, 10, 8, 9)),
    ],
)
def test_add_working_hours(cal: BusinessCalendar, start: datetime, hours: float, due: datetime) -> None:
    assert in_utc(cal.add_working_hours(start, hours)) == due


def test_add_working_hours_accepts_any_aware_zone(cal: BusinessCalendar) -> None:
    # 09:30 UTC is 17:30 in Shanghai on the eve of National Day.
    start = datetime(2026, 9, 30, 9, 30, tzinfo=UTC)
    assert in_utc(cal.add_working_hours(start, 1)) == sh(2026, 10, 8, 9, 30)


def test_add_working_hours_is_additive(cal: BusinessCalendar) -> None:
    """add(s, a + b) == add(add(s, a), b): catches off-by-one handling at open/close/day breaks."""
    hour_values = [0, 0.25, 0.5, 1, 2.75, 8.5, 9, 10, 17.25, 24, 40]
    starts = [
        sh(2026, 9, 18) + timedelta(hours=h, minutes=m)
        for h in range(0, 24 * 35, 5)  # 2026-09-18 .. 2026-10-22, every 5 h
        for m in (0, 30)
    ]
    # Also every boundary exactly: opening, close, and one minute either side.
    for offset in range(35):
        day = date(2026, 9, 18) + timedelta(days=offset)
        for wall in (time(8, 59), time(9), time(9, 1), time(17, 59), time(18), time(18, 1)):
            starts.append(datetime.combine(day, wall, tzinfo=SH))
    for start in starts:
        for h1 in hour_values:
            for h2 in hour_values:
                whole = cal.add_working_hours(start, h1 + h2)
                stepped = cal.add_working_hours(cal.add_working_hours(start, h1), h2)
                assert whole == stepped, (start, h1, h2)
                assert whole >= start


def test_add_working_hours_rejects_bad_hours(cal: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        cal.add_working_hours(sh(2026, 10, 14, 10), -1)
    with pytest.raises(ValueError, match="finite"):
        cal.add_working_hours(sh(2026, 10, 14, 10), float("nan"))


# --- add_working_days -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        # Oct 8, 9 and the make-up Saturday Oct 10.
        (sh(2026, 9, 30, 17, 30), 3, sh(2026, 10, 10, 18)),
        # The start day is not counted even at 00:00 of a working day.
        (sh(2026, 10, 14, 0), 1, sh(2026, 10, 15, 18)),
        # Nor when it is a day off: start Sunday Oct 11 -> Mon 12, Tue 13.
        (sh(2026, 10, 11, 15), 2, sh(2026, 10, 13, 18)),
        # Five working days from Friday: Mon..Fri of the next week.
        (sh(2026, 10, 16, 10), 5, sh(2026, 10, 23, 18)),
        # n = 0: today's close if working, else the next working day's.
        (sh(2026, 10, 14, 20), 0, sh(2026, 10, 14, 18)),
        (sh(2026, 10, 3, 10), 0, sh(2026, 10, 8, 18)),
    ],
)
def test_add_working_days(cal: BusinessCalendar, start: datetime, days: int, due: datetime) -> None:
    assert in_utc(cal.add_working_days(start, days)) == due


def test_add_working_days_uses_local_date(cal: BusinessCalendar) -> None:
    # 2026-09-30 17:00 UTC is already 01:00 on Oct 1 in Shanghai: counting starts from Oct 1.
    start = datetime(2026, 9, 30, 17, 0, tzinfo=UTC)
    assert cal.add_working_days(start, 1) == sh(2026, 10, 8, 18)


def test_add_working_days_rejects_negative(cal: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        cal.add_working_days(sh(2026, 10, 14, 10), -1)


# --- add_hours ------------------------------------------------------------------------------


def test_add_hours_runs_round_the_clock(cal: BusinessCalendar) -> None:
    assert in_utc(cal.add_hours(sh(2026, 9, 30, 22, 14), 2)) == sh(2026, 10, 1, 0, 14)
    assert in_utc(cal.add_hours(sh(2026, 10, 3, 12), 24)) == sh(2026, 10, 4, 12)


# --- next_opening ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "working_days_only", "opening"),
    [
        (sh(2026, 9, 30, 22, 14), False, sh(2026, 10, 1, 9)),
        (sh(2026, 9, 30, 22, 14), True, sh(2026, 10, 8, 9)),
        (sh(2026, 10, 15, 3), False, sh(2026, 10, 15, 9)),
        (sh(2026, 10, 15, 3), True, sh(2026, 10, 15, 9)),
        # Inside opening hours: the moment itself.
        (sh(2026, 10, 3, 14, 5), False, sh(2026, 10, 3, 14, 5)),
        (sh(2026, 10, 15, 9), True, sh(2026, 10, 15, 9)),
        # Inside hours but on a day off with working_days_only.
        (sh(2026, 10, 3, 14, 5), True, sh(2026, 10, 8, 9)),
        # At exactly closing time the line is shut.
        (sh(2026, 10, 15, 21), False, sh(2026, 10, 16, 9)),
    ],
)
def test_next_opening(
    cal: BusinessCalendar, at: datetime, working_days_only: bool, opening: datetime
) -> None:
    result = cal.next_opening(at, HOTLINE_OPENS, HOTLINE_CLOSES, working_days_only=working_days_only)
    assert in_utc(result) == opening


def test_voicemail_call_back_due(cal: BusinessCalendar) -> None:
    # POLICY §4: call-back due 1 h after the hotline's next opening.
    for at, due in (
        (sh(2026, 10, 14, 22, 14), sh(2026, 10, 15, 10)),
        (sh(2026, 10, 15, 3), sh(2026, 10, 15, 10)),
    ):
        opening = cal.next_opening(at, HOTLINE_OPENS, HOTLINE_CLOSES, working_days_only=False)
        assert cal.add_hours(opening, 1) == due


def test_next_opening_rejects_inverted_window(cal: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="before closing"):
        cal.next_opening(sh(2026, 10, 15, 3), time(21), time(9), working_days_only=False)


# --- time zones and validation --------------------------------------------------------------


def test_naive_datetimes_are_rejected(cal: BusinessCalendar) -> None:
    naive = datetime(2026, 10, 14, 10)  # noqa: DTZ001 - deliberately naive
    calls: list[Callable[[], object]] = [
        lambda: cal.add_working_hours(naive, 1),
        lambda: cal.add_working_days(naive, 1),
        lambda: cal.add_hours(naive, 1),
        lambda: cal.next_opening(naive, HOTLINE_OPENS, HOTLINE_CLOSES, working_days_only=False),
        lambda: cal.local_date(naive),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="timezone-aware"):
            call()


def test_local_date(cal: BusinessCalendar) -> None:
    assert cal.local_date(datetime(2026, 9, 30, 15, 59, tzinfo=UTC)) == date(2026, 9, 30)
    assert cal.local_date(datetime(2026, 9, 30, 16, 0, tzinfo=UTC)) == date(2026, 10, 1)
    assert cal.tz == SH


def test_other_timezone_keeps_local_wall_hours_across_dst() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    cal = BusinessCalendar(CalendarSettings(timezone="Europe/Berlin"))
    assert cal.tz == berlin
    # Friday 17:00 CET + 2 working hours -> Monday 10:00 CEST (DST began Sunday 2026-03-29).
    due = cal.add_working_hours(datetime(2026, 3, 27, 17, tzinfo=berlin), 2)
    assert in_utc(due) == datetime(2026, 3, 30, 8, tzinfo=UTC)
    assert in_utc(cal.add_working_days(datetime(2026, 3, 27, 17, tzinfo=berlin), 1)) == datetime(
        2026, 3, 30, 16, tzinfo=UTC
    )
    # Round-the-clock hours are elapsed time: 24 h across the change ends at 13:00 local.
    assert cal.add_hours(datetime(2026, 3, 28, 12, tzinfo=berlin), 24) == datetime(
        2026, 3, 29, 13, tzinfo=berlin
    )
    # The hotline opens at 09:00 Berlin time, not Shanghai time.
    opening = cal.next_opening(
        datetime(2026, 3, 28, 22, tzinfo=berlin), HOTLINE_OPENS, HOTLINE_CLOSES, working_days_only=False
    )
    assert opening == datetime(2026, 3, 29, 9, tzinfo=berlin)


def test_custom_working_hours() -> None:
    cal = BusinessCalendar(CalendarSettings(workday_start=time(8, 30), workday_end=time(17, 30)))
    assert cal.add_working_hours(sh(2026, 10, 14, 17), 1) == sh(2026, 10, 15, 9)
    assert cal.add_working_days(sh(2026, 10, 14, 17), 1) == sh(2026, 10, 15, 17, 30)


def test_invalid_settings_rejected() -> None:
    with pytest.raises(ValueError, match="before closing"):
        BusinessCalendar(CalendarSettings(workday_start=time(18), workday_end=time(9)))
    with pytest.raises(ZoneInfoNotFoundError):
        BusinessCalendar(CalendarSettings(timezone="Mars/Olympus"))
