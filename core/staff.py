"""The staff directory: who may act on tickets, in which department, with which role."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Staff
from core.workflow import STAFF_ROLES

DEPARTMENTS = ("service", "teaching", "finance", "academic", "compliance")


class StaffError(ValueError):
    """A staff change that cannot be made; the message says why."""


async def add_staff(
    session: AsyncSession,
    *,
    name: str,
    department: str,
    role: str,
    now: datetime,
    telegram_id: str | None = None,
    email: str | None = None,
    wecom_id: str | None = None,
    departments: tuple[str, ...] = DEPARTMENTS,
) -> Staff:
    name = name.strip()
    if not name:
        raise StaffError("a staff member needs a name")
    if role not in STAFF_ROLES:
        raise StaffError(f"unknown role {role!r}: use {', '.join(sorted(STAFF_ROLES))}")
    if department not in departments:
        raise StaffError(f"unknown department {department!r}: use {', '.join(departments)}")
    if telegram_id is not None:
        telegram_id = telegram_id.strip()
        if not telegram_id.lstrip("-").isdigit():
            raise StaffError(f"a Telegram id is a number (the user id, not the @username): {telegram_id!r}")
        holder = await find_by_telegram(session, telegram_id, active_only=False)
        if holder is not None:
            state = "" if holder.active else " (removed; its history stays)"
            raise StaffError(
                f"Telegram id {telegram_id} already belongs to #{holder.id} {holder.name}{state}"
            )
    staff = Staff(
        name=name,
        department=department,
        role=role,
        telegram_id=telegram_id,
        email=email,
        wecom_id=wecom_id,
        active=True,
        created_at=now,
    )
    session.add(staff)
    await session.flush()
    return staff


async def list_staff(session: AsyncSession, *, include_removed: bool = False) -> list[Staff]:
    query = select(Staff).order_by(Staff.department, Staff.role, Staff.name)
    if not include_removed:
        query = query.where(Staff.active.is_(True))
    return list(await session.scalars(query))


async def remove_staff(session: AsyncSession, staff_id: int) -> Staff:
    """Deactivate: the person can no longer act, and what they did stays attributed to them."""
    staff = await session.get(Staff, staff_id)
    if staff is None or not staff.active:
        raise StaffError(f"no active staff member #{staff_id}")
    staff.active = False
    return staff


async def find_by_telegram(
    session: AsyncSession, telegram_id: str, *, active_only: bool = True
) -> Staff | None:
    query = select(Staff).where(Staff.telegram_id == telegram_id)
    if active_only:
        query = query.where(Staff.active.is_(True))
    return await session.scalar(query)
