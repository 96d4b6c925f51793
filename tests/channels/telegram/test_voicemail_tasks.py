"""Staff work a voicemail's call-back from the Telegram chat: the task on the card with the number
masked, the full number to the owner privately (audited), `/called` or its button to close it, and a
clear refusal of `/reply`: a caller ID proves nothing, so the call-back is the only answer."""

from __future__ import annotations

from sqlalchemy import select

from channels.voicemail.parse import message as voicemail_message
from core.intake.intake import Intake
from core.storage.models import Clock
from core.tickets.queries import get_ticket
from tests.channels.telegram.test_staff_commands import (
    HEAD,
    LEARNER,
    TEACHER,
    TEACHING,
    TEACHING_CHAT,
    Rig,
    rig,
)
from tests.conftest import at

__all__ = ["rig"]  # the fixture, shared with the staff command tests
CALLER = "+8613812348000"


async def _voicemail(rig: Rig, external_id: str, text: str) -> str:
    received = at("2026-11-22 22:14")  # a Sunday night; the rig's clock stands at Monday 10:00
    result = await Intake(rig.core).receive(
        voicemail_message(
            source="asterisk",
            external_id=external_id,
            caller=CALLER,
            received_at=received,
            transcript=text,
            raw={},
        ),
        rig.now,
    )
    await rig.dispatcher.drain(rig.now)
    return result.ticket_number


async def _callback_open(rig: Rig, number: str) -> bool:
    async with rig.core.sessions() as session:
        ticket = await get_ticket(session, number)
        clock = await session.scalar(
            select(Clock).where(
                Clock.ticket_id == ticket.id, Clock.stage == "callback", Clock.met_at.is_(None)
            )
        )
    return clock is not None


async def test_the_owner_gets_the_number_privately_and_records_the_call_back(rig: Rig) -> None:
    number = await _voicemail(rig, "900.1", TEACHING)
    card = rig.botapi.messages_to(TEACHING_CHAT)[0]
    assert number in card["text"] and "138****8000" in card["text"] and CALLER not in card["text"]
    assert "Called back" in str(card["reply_markup"])

    # Nobody to write to: a reply is refused with what to do instead, and nothing is queued.
    refused = await rig.say(TEACHING_CHAT, TEACHER, f"/reply {number} 您好")
    assert refused.startswith("⚠️") and "call back" in refused

    said = await rig.say(TEACHING_CHAT, TEACHER, f"/claim {number}")
    assert said.startswith("✅")
    assert not any(CALLER in text for text in rig.botapi.texts_to(TEACHING_CHAT))
    private = rig.botapi.texts_to(TEACHER)[-1]
    assert CALLER in private and "2026-11-23 10:00" in private and f"/called {number}" in private
    [disclosed] = await rig.events(number, "disclosed")
    assert disclosed.actor.startswith("王老师") and "call-back" in (disclosed.detail or "")

    said = await rig.say(TEACHING_CHAT, TEACHER, f"/called {number} 学员说老师本周迟到三次，已道歉")
    assert said.startswith("✅") and not await _callback_open(rig, number)
    edited = rig.botapi.messages_to(TEACHING_CHAT)[0]
    assert "📞" not in edited["text"] and "Called back" not in str(edited.get("reply_markup"))
    again = await rig.say(TEACHING_CHAT, HEAD, f"/called {number}")
    assert again.startswith("⚠️") and "no call-back" in again


async def test_the_button_closes_the_call_back_and_a_caller_id_reaches_no_ones_telegram(rig: Rig) -> None:
    # A learner on Telegram shared their contact; a call comes "from" that number. A caller ID is no
    # proof: nothing about the call goes to their Telegram, and a reply can only be the call-back.
    rig.botapi.learner_message(LEARNER, TEACHING, first_name="Ming")
    queued = rig.botapi._updates[-1]  # the stand-in builds no contact messages; add one to this
    queued["message"]["contact"] = {"phone_number": CALLER, "first_name": "Ming", "user_id": LEARNER}
    await rig.round()
    before = rig.botapi.texts_to(LEARNER)
    number = await _voicemail(rig, "900.2", "我再投诉一次，老师讲课太快了根本听不懂，请回电")
    assert rig.botapi.texts_to(LEARNER) == before
    card = next(m for m in rig.botapi.messages_to(TEACHING_CHAT) if number in m["text"])
    rig.botapi.callback(TEACHING_CHAT, TEACHER, card["message_id"], f"called:{number}")
    await rig.round()
    assert not await _callback_open(rig, number)
    said = await rig.say(TEACHING_CHAT, TEACHER, f"/reply {number} 已回电，明天给您答复")
    assert said.startswith("⚠️") and "call back" in said
    assert rig.botapi.texts_to(LEARNER) == before


async def test_a_second_call_on_a_claimed_ticket_gives_its_owner_the_number(rig: Rig) -> None:
    number = await _voicemail(rig, "900.3", TEACHING)
    assert (await rig.say(TEACHING_CHAT, TEACHER, f"/claim {number}")).startswith("✅")
    said = await rig.say(TEACHING_CHAT, TEACHER, f"/called {number} 已回电")
    assert said.startswith("✅") and not await _callback_open(rig, number)
    before = len(rig.botapi.texts_to(TEACHER))
    # The same number calls again about the same ticket: the same caller, a new call-back for its owner.
    again = await _voicemail(rig, "900.4", f"我是之前投诉的学员，编号 {number}，请尽快回电")
    assert again == number
    private = rig.botapi.texts_to(TEACHER)[before:]
    assert any(CALLER in text and f"/called {number}" in text for text in private), private
    assert not any(CALLER in text for text in rig.botapi.texts_to(TEACHING_CHAT))
    assert await _callback_open(rig, number)
    disclosed = [e.detail or "" for e in await rig.events(number, "disclosed")]
    assert len(disclosed) == 2 and all(d.startswith("call-back number, privately") for d in disclosed)
