"""The staff directory: registering, refusing bad entries, removing without losing history."""

from __future__ import annotations

import pytest

from core.context import CoreContext
from core.tickets.staff import (
    StaffError,
    add_or_restore_staff,
    add_staff,
    find_by_telegram,
    list_staff,
    remove_staff,
)
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
        ({"telegram_id": "@wang"}, "a Telegram id is the user's number"),
        ({"telegram_id": "-1001234"}, "not a chat"),
        ({"email": "wang at school"}, "not an e-mail address: 'wang at school'"),
        ({"email": "wang@school"}, "not an e-mail address"),
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


async def test_adding_a_removed_member_again_restores_them_with_their_history(core: CoreContext) -> None:
    async with core.sessions() as session, session.begin():
        wang = await add_staff(
            session, name="王老师", department="teaching", role="staff", now=NOW, telegram_id="42"
        )
        chen = await add_staff(
            session, name="陈主任", department="service", role="head", now=NOW, email="chen@school.example.cn"
        )
        await remove_staff(session, wang.id)
        await remove_staff(session, chen.id)
    async with core.sessions() as session, session.begin():
        back, restored = await add_or_restore_staff(
            session, name="王老师", department="teaching", role="head", now=NOW, telegram_id="42"
        )
        assert (back.id, restored, back.role, back.active) == (wang.id, True, "head", True)
        # Known by another id (the e-mail, whatever its case) or, with no id at all, by name and department.
        by_mail = await add_staff(
            session, name="陈主任", department="service", role="head", now=NOW, email="Chen@School.example.cn"
        )
        assert by_mail.id == chen.id and by_mail.active
    async with core.sessions() as session, session.begin():
        await remove_staff(session, wang.id)
    async with core.sessions() as session, session.begin():
        again, restored = await add_or_restore_staff(
            session, name="王老师", department="teaching", role="staff", now=NOW
        )
        assert (again.id, restored, again.telegram_id) == (wang.id, True, "42")
        assert len(await list_staff(session, include_removed=True)) == 2


async def test_an_id_of_an_active_member_is_still_refused(core: CoreContext) -> None:
    async with core.sessions() as session, session.begin():
        await add_staff(
            session, name="陈主任", department="service", role="head", now=NOW, email="chen@school.example.cn"
        )
    async with core.sessions() as session, session.begin():
        with pytest.raises(StaffError, match=r"e-mail chen@school\.example\.cn already belongs to #1 陈主任"):
            await add_staff(
                session,
                name="冒充者",
                department="finance",
                role="staff",
                now=NOW,
                email="chen@school.example.cn",
            )
