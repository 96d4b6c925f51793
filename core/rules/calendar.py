"""Business calendar for SLA clocks (POLICY.md §4).

Pure: no I/O and no clock reads; callers pass the time in. Every datetime taken must be
timezone-aware and every datetime returned is aware and in UTC, so stored deadlines compare
correctly whatever the configured zone.

Working-time arithmetic is done on local wall time: the local datetimes below all carry the
same ``ZoneInfo`` object, and Python adds, subtracts and compares datetimes sharing one tzinfo
by wall clock. Only the final ``astimezone(UTC)`` applies the real UTC offset, so "9:00 local"
stays 9:00 on both sides of a DST change.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar  # type: ignore[import-untyped, unused-ignore]

__all__ = ["BusinessCalendar", "CalendarSettings"]

logger = logging.getLogger(__name__)

# Policy lists are finite and statutory breaks last about a week, so a working day is always
# near; the cap only turns a misconfiguration (e.g. every day declared a holiday) into an error
# instead of an endless loop.
_MAX_SCAN_DAYS = 3660


@dataclass(frozen=True)
class CalendarSettings:
    timezone: str = "Asia/Shanghai"
    workday_start: time = time(9, 0)
    workday_end: time = time(18, 0)
    holidays: frozenset[date] = frozenset()  # extra days off (override the library)
    workdays: frozenset[date] = frozenset()  # extra working days / make-up days 调休 (override the library)


def _require_aware(value: datetime, name: str) -> None:
    # A naive datetime has no defined instant; guessing a zone would silently shift deadlines.
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}")


def _require_hours(hours: float) -> timedelta:
    if not math.isfinite(hours) or hours < 0:
        raise ValueError(f"hours must be a finite, non-negative number, got {hours!r}")
    return timedelta(hours=hours)


def _require_window(opens: time, closes: time) -> None:
    # Windows spanning midnight are not supported: opening hours are per calendar day.
    if opens >= closes:
        raise ValueError(f"opening time {opens} must be before closing time {closes}")


class BusinessCalendar:
    """Chinese business calendar: statutory holidays, 调休 make-up days, policy overrides."""

    def __init__(self, settings: CalendarSettings) -> None:
        _require_window(settings.workday_start, settings.workday_end)
        self._settings = settings
        self._tz = ZoneInfo(settings.timezone)  # raises ZoneInfoNotFoundError for a bad name
        self._workday_cache: dict[date, bool] = {}
        self._warned_years: set[int] = set()

    @property
    def settings(self) -> CalendarSettings:
        return self._settings

    @property
    def tz(self) -> ZoneInfo:
        return self._tz

    def is_workday(self, day: date) -> bool:
        """Policy lists first, then the statutory calendar, then Mon–Fri for uncovered years."""
        cached = self._workday_cache.get(day)
        if cached is None:
            cached = self._compute_workday(day)
            self._workday_cache[day] = cached
        return cached

    def _compute_workday(self, day: date) -> bool:
        if day in self._settings.holidays:
            return False
        if day in self._settings.workdays:
            return True
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            # The library only knows years whose State Council notice it shipped with. A
            # deadline must still be computable, so degrade to weekdays and say so once per year
            # (the policy lists can carry that year's holidays until the library is upgraded).
            if day.year not in self._warned_years:
                self._warned_years.add(day.year)
                logger.warning(
                    "chinese_calendar has no holiday data for year %s; treating Monday-Friday "
                    "plus the policy holidays/workdays lists as working days",
                    day.year,
                )
            return day.weekday() < 5

    def local_date(self, at: datetime) -> date:
        _require_aware(at, "at")
        return at.astimezone(self._tz).date()

    def add_hours(self, start: datetime, hours: float) -> datetime:
        """Round-the-clock clock: elapsed real time, so a DST change does not stretch it."""
        _require_aware(start, "start")
        return start.astimezone(UTC) + _require_hours(hours)

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """Count only time inside working hours of working days.

        A start outside working hours begins counting at the next opening; a result landing
        exactly on close of business stays there rather than rolling to the next morning.
        """
        _require_aware(start, "start")
        remaining = _require_hours(hours)
        opens, closes = self._settings.workday_start, self._settings.workday_end
        cursor = start.astimezone(self._tz)
        day = cursor.date()
        for _ in range(_MAX_SCAN_DAYS):
            day_open = self._at(day, opens)
            day_close = self._at(day, closes)
            # Close itself is inside the window so that a zero-length step from a result that
            # ended at close returns it unchanged (keeps addition associative).
            if self.is_workday(day) and cursor <= day_close:
                cursor = max(cursor, day_open)
                available = day_close - cursor
                if remaining <= available:
                    return (cursor + remaining).astimezone(UTC)
                remaining -= available
            day += timedelta(days=1)
            cursor = self._at(day, opens)
        raise RuntimeError(f"no working day within {_MAX_SCAN_DAYS} days of {start.isoformat()}")

    def working_hours_between(self, start: datetime, end: datetime) -> float:
        """The working time from `start` to `end`, in hours (0 when `end` is not later)."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        opens, closes = self._settings.workday_start, self._settings.workday_end
        cursor, end = start.astimezone(self._tz), end.astimezone(self._tz)
        total = timedelta(0)
        day = cursor.date()
        while day <= end.date():
            if self.is_workday(day):
                low, high = max(cursor, self._at(day, opens)), min(end, self._at(day, closes))
                if high > low:
                    total += high - low
            day += timedelta(days=1)
        return total.total_seconds() / 3600

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """Close of business of the n-th working day after the (local) start day.

        The start day never counts. ``days == 0`` means close of business today if today is
        a working day, else of the next working day.
        """
        _require_aware(start, "start")
        if days < 0:
            raise ValueError(f"days must be non-negative, got {days}")
        day = self.local_date(start)
        if days == 0:
            day = self._working_day_on_or_after(day)
        else:
            for _ in range(days):
                day = self._working_day_on_or_after(day + timedelta(days=1))
        return self._at(day, self._settings.workday_end).astimezone(UTC)

    def next_opening(self, at: datetime, opens: time, closes: time, *, working_days_only: bool) -> datetime:
        """Next moment a service open ``opens``–``closes`` is open, at or after ``at``.

        Open hours are the half-open window [opens, closes): at exactly ``closes`` the service
        is shut. With ``working_days_only`` false every calendar day counts (the hotline).
        """
        _require_aware(at, "at")
        _require_window(opens, closes)
        local = at.astimezone(self._tz)
        day = local.date()
        for _ in range(_MAX_SCAN_DAYS):
            if not working_days_only or self.is_workday(day):
                day_open = self._at(day, opens)
                if local < day_open:
                    return day_open.astimezone(UTC)
                if local < self._at(day, closes):
                    return local.astimezone(UTC)
            day += timedelta(days=1)
        raise RuntimeError(f"no opening within {_MAX_SCAN_DAYS} days of {at.isoformat()}")

    def _working_day_on_or_after(self, day: date) -> date:
        for _ in range(_MAX_SCAN_DAYS):
            if self.is_workday(day):
                return day
            day += timedelta(days=1)
        raise RuntimeError(f"no working day within {_MAX_SCAN_DAYS} days of {day.isoformat()}")

    def _at(self, day: date, wall: time) -> datetime:
        # Local wall-clock instant in the calendar zone; any tzinfo on ``wall`` is ignored.
        return datetime.combine(day, wall.replace(tzinfo=None), tzinfo=self._tz)
