"""The report's periods and cohort: local calendar months and quarters, the weeks inside them, and the
tickets received in a period (optionally of one department)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement

from core.storage.models import Ticket

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")


class PeriodError(ValueError):
    """A month or quarter that cannot be read; the message says what is expected."""


@dataclass(frozen=True)
class Period:
    """A local calendar period [start, end) and its name ("2026-11", "2026Q4")."""

    name: str
    start: datetime
    end: datetime


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def month_period(text: str, tz: ZoneInfo) -> Period:
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise PeriodError(f"not a month: {text!r} (expected YYYY-MM, e.g. 2026-11)")
    year, month = int(match[1]), int(match[2])
    following = date(year + month // 12, month % 12 + 1, 1)
    return Period(
        f"{year:04d}-{month:02d}", local_midnight(date(year, month, 1), tz), local_midnight(following, tz)
    )


def quarter_period(text: str, tz: ZoneInfo) -> Period:
    match = _QUARTER.match(text.strip().upper())
    if not match:
        raise PeriodError(f"not a quarter: {text!r} (expected YYYYQn, e.g. 2026Q4)")
    year, quarter = int(match[1]), int(match[2])
    first = date(year, 3 * quarter - 2, 1)
    following = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return Period(f"{year:04d}Q{quarter}", local_midnight(first, tz), local_midnight(following, tz))


def previous_month(now: datetime, tz: ZoneInfo) -> Period:
    first = now.astimezone(tz).date().replace(day=1)
    last = first - timedelta(days=1)
    return month_period(f"{last.year:04d}-{last.month:02d}", tz)


def previous_quarter(now: datetime, tz: ZoneInfo) -> Period:
    local = now.astimezone(tz).date()
    quarter = (local.month - 1) // 3 + 1
    year, quarter = (local.year - 1, 4) if quarter == 1 else (local.year, quarter - 1)
    return quarter_period(f"{year}Q{quarter}", tz)


def cohort(period: Period, department: str | None) -> list[ColumnElement[bool]]:
    """The tickets received in `period`; a ticket merged into another is the same complaint, counted
    once through the one that carries on (its clocks were stopped, not met)."""
    where = [
        Ticket.created_at >= period.start,
        Ticket.created_at < period.end,
        Ticket.merged_into_id.is_(None),
    ]
    if department is not None:
        where.append(Ticket.department == department)
    return where


def period_weeks(period: Period) -> list[tuple[date, datetime, datetime]]:
    """Monday-based weeks cut to the period: (label day, start, end)."""
    tz = period.start.tzinfo
    assert isinstance(tz, ZoneInfo)
    day = period.start.date()
    weeks = []
    while local_midnight(day, tz) < period.end:
        monday_next = day + timedelta(days=7 - day.weekday())
        end = min(local_midnight(monday_next, tz), period.end)
        weeks.append((day, local_midnight(day, tz), end))
        day = monday_next
    return weeks
