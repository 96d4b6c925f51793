"""Possible duplicates pointed out on a new ticket's card: the same learner, or the same phone or
e-mail address, with an open ticket in the same category within the configured window."""

from __future__ import annotations

from datetime import timedelta

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.intake.intake import Intake
from core.rules.policy import parse_policy
from tests.conftest import at

NOW = at("2026-11-23 10:00")
TEACHING = "老师上课总是迟到，讲课照本宣科，教学质量很差"
TEACHING_AGAIN = "老师上课又迟到了，教学质量太差"
FEES = "退费申请三个月了还没到账"


def _card(staff: FakeChannel, number: str) -> str:
    return next(m.text for m in staff.sent if m.kind == "card" and m.ticket_number == number)


def _merge_buttons(staff: FakeChannel, number: str) -> list[str]:
    card = next(m for m in staff.sent if m.kind == "card" and m.ticket_number == number)
    return [b.action for b in card.buttons if b.action.startswith("merge:")]


async def test_the_same_phone_on_another_channel_is_pointed_out(
    core: CoreContext, intake: Intake, dispatcher: Dispatcher, staff_channel: FakeChannel
) -> None:
    wechat, mail = FakeChannel("wechat"), FakeChannel("email")
    first = await intake.receive(wechat.message("o-1", TEACHING, NOW, phone="13812348000"), NOW)
    # An e-mail nobody vouches for links no identity, but the phone it carries is enough for a hint.
    later = NOW + timedelta(hours=5)
    second = await intake.receive(
        mail.message("x@example.com", TEACHING_AGAIN, later, phone="138 1234 8000", sender_verified=False),
        later,
    )
    fees = await intake.receive(mail.message("y@example.com", FEES, later, phone="13812348000"), later)
    await dispatcher.drain(later)
    assert f"可能与 {first.ticket_number} 是同一件事" in _card(staff_channel, second.ticket_number)
    assert _merge_buttons(staff_channel, second.ticket_number) == [
        f"merge:{first.ticket_number} {second.ticket_number}"
    ]
    assert _merge_buttons(staff_channel, fees.ticket_number) == []  # another category
    assert "可能与" not in _card(staff_channel, first.ticket_number)


async def test_outside_the_window_or_another_learner_is_no_duplicate(
    core: CoreContext, intake: Intake, dispatcher: Dispatcher, staff_channel: FakeChannel
) -> None:
    core.policy = parse_policy("[staff_chat]\nduplicate_window_hours = 24\n")
    telegram = FakeChannel("telegram")
    first = await intake.receive(telegram.message("101", TEACHING, NOW), NOW)
    stranger = await intake.receive(telegram.message("202", TEACHING_AGAIN, NOW), NOW)
    soon = NOW + timedelta(hours=2)
    within = await intake.receive(telegram.message("101", TEACHING_AGAIN, soon, new_ticket=True), soon)
    late = NOW + timedelta(hours=27)  # both are older than the 24 hours configured
    again = await intake.receive(telegram.message("101", "还是迟到，教学质量差", late, new_ticket=True), late)
    await dispatcher.drain(late)
    assert _merge_buttons(staff_channel, stranger.ticket_number) == []
    assert _merge_buttons(staff_channel, within.ticket_number) == [
        f"merge:{first.ticket_number} {within.ticket_number}"
    ]
    assert _merge_buttons(staff_channel, again.ticket_number) == []
