"""The staff directory: who may act on tickets, in which department, with which role."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.storage.models import Staff
from core.tickets.workflow import STAFF_ROLES

DEPARTMENTS = ("service", "teaching", "finance", "academic", "compliance")


class StaffError(ValueError):
    """A staff change that cannot be made; the message says why."""


_EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[A-Za-z0-9-]{2,}")


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
    """Register a staff member; a removed one named by any of their ids (else by name and department, when
    no id is given) is restored instead, with their history, and takes the new details."""
    staff, _ = await add_or_restore_staff(
        session,
        name=name,
        department=department,
        role=role,
        now=now,
        telegram_id=telegram_id,
        email=email,
        wecom_id=wecom_id,
        departments=departments,
    )
    return staff


async def add_or_restore_staff(
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
) -> tuple[Staff, bool]:
    """`add_staff`, saying whether the member was restored (True) or is new."""
    name = name.strip()
    if not name:
        raise StaffError("a staff member needs a name")
    if role not in STAFF_ROLES:
        raise StaffError(f"unknown role {role!r}: use {', '.join(sorted(STAFF_ROLES))}")
    if department not in departments:
        raise StaffError(f"unknown department {department!r}: use {', '.join(departments)}")
    telegram_id, email, wecom_id = (
        v.strip() or None if v is not None else None for v in (telegram_id, email, wecom_id)
    )
    if telegram_id is not None and not (telegram_id.isdigit() and int(telegram_id) > 0):
        raise StaffError(
            f"a Telegram id is the user's number (not the @username, not a chat): {telegram_id!r}"
        )
    if email is not None and not _EMAIL.fullmatch(email):
        raise StaffError(f"not an e-mail address: {email!r} (e.g. wang@school.example.cn)")
    removed: Staff | None = None
    for label, column, value in (
        ("Telegram id", Staff.telegram_id, telegram_id),
        ("e-mail", func.lower(Staff.email), email.lower() if email else None),
        ("WeCom id", Staff.wecom_id, wecom_id),
    ):
        if value is None:
            continue
        holder = await session.scalar(select(Staff).where(column == value).order_by(Staff.id).limit(1))
        if holder is None:
            continue
        if holder.active or (removed is not None and holder.id != removed.id):
            raise StaffError(f"{label} {value} already belongs to #{holder.id} {holder.name}")
        removed = holder
    if removed is None and not (telegram_id or email or wecom_id):
        removed = await session.scalar(
            select(Staff)
            .where(Staff.name == name, Staff.department == department, Staff.active.is_(False))
            .order_by(Staff.id.desc())
            .limit(1)
        )
    if removed is not None:
        removed.name, removed.department, removed.role, removed.active = name, department, role, True
        removed.telegram_id = telegram_id or removed.telegram_id
        removed.email = email or removed.email
        removed.wecom_id = wecom_id or removed.wecom_id
        await session.flush()
        return removed, True
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
    return staff, False


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


async def find_by_address(
    session: AsyncSession, field: str, address: str, *, active_only: bool = True
) -> Staff | None:
    """The member whose directory `field` (a channel's `Capabilities.staff_address`) holds `address`."""
    column = Staff.__table__.columns.get(field)
    if column is None:
        raise ValueError(f"the staff directory has no field {field!r}")
    query = select(Staff).where(column == address)
    if active_only:
        query = query.where(Staff.active.is_(True))
    return await session.scalar(query.order_by(Staff.id).limit(1))
