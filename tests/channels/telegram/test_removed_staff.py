"""A removed staff member's chat commands and button presses are refused; restored, they act again."""

from __future__ import annotations

from core.tickets.staff import add_staff, remove_staff
from tests.channels.telegram.test_staff_commands import (  # noqa: F401 - `rig` is the fixture
    LEARNER,
    TEACHER,
    TEACHING,
    TEACHING_CHAT,
    Rig,
    rig,
)


async def test_a_removed_member_is_refused_until_restored(rig: Rig) -> None:  # noqa: F811
    number = await rig.complain(LEARNER, TEACHING)
    async with rig.core.sessions() as session, session.begin():
        await remove_staff(session, rig.staff_ids[TEACHER])

    refused = await rig.say(TEACHING_CHAT, TEACHER, f"/claim {number}")
    assert "Not registered as staff" in refused
    card = rig.botapi.messages_to(TEACHING_CHAT)[0]
    rig.botapi.callback(TEACHING_CHAT, TEACHER, card["message_id"], f"claim:{number}")
    await rig.round()
    assert (await rig.ticket(number)).status == "routed"

    async with rig.core.sessions() as session, session.begin():
        back = await add_staff(
            session, name="王老师", department="teaching", role="staff", now=rig.now, telegram_id=str(TEACHER)
        )
    assert back.id == rig.staff_ids[TEACHER]
    await rig.say(TEACHING_CHAT, TEACHER, f"/claim {number}")
    ticket = await rig.ticket(number)
    assert (ticket.status, ticket.owner_staff_id) == ("investigating", back.id)
