"""The staff directory: registering, refusing bad entries, removing without losing history."""

from __future__ import annotations

import pytest

from core.context import CoreContext
from core.staff import StaffError, add_staff, find_by_telegram, list_staff, remove_staff
from tests.conftest import at

NOW = at("2026-11-23 09:00")


async def test_staff_are_added_found_by_telegram_id_and_removed(core: CoreContext) -> None:
    async with core.sessions() as session, session.begin():
        wang = await add_staff(
            session, name="王老师", department="teaching", role="staff", now=NOW, telegram_id="5550001"
        )
        await add_staff(session, name="陈主任", department="service", role="manager", now=NOW)
    async with core.sessions() as session, session.begin():
        found = await find_by_telegram(session, "5550001")
        assert found is not None and (found.name, found.department, found.role) == (
            "王老师",
            "teaching",
            "staff",
        )
        await remove_staff(session, wang.id)
    async with core.sessions() as session:
        assert await find_by_telegram(session, "5550001") is None
        assert [s.name for s in await list_staff(session)] == ["陈主任"]
        assert len(await list_staff(session, include_removed=True)) == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"role": "boss"}, "unknown role 'boss'"),
        ({"department": "marketing"}, "unknown department 'marketing'"),
        ({"telegram_id": "@wang"}, "a Telegram id is a number"),
        ({"name": "  "}, "needs a name"),
    ],
)
async def test_bad_staff_entries_are_refused_with_the_reason(
    core: CoreContext, fields: dict[str, str], message: str
) -> None:
    entry = {"name": "王老师", "department": "teaching", "role": "staff", **fields}
    async with core.sessions() as session, session.begin():
        with pytest.raises(StaffError, match=message):
            await add_staff(session, now=NOW, **entry)


async def test_one_telegram_account_cannot_be_two_staff_members(core: CoreContext) -> None:
    async with core.sessions() as session, session.begin():
        await add_staff(
            session, name="王老师", department="teaching", role="staff", now=NOW, telegram_id="42"
        )
    async with core.sessions() as session, session.begin():
        with pytest.raises(StaffError, match="already belongs to #1 王老师"):
            await add_staff(
                session, name="冒充者", department="finance", role="head", now=NOW, telegram_id="42"
            )
