"""Staff cards: edited in place as the ticket moves; in a forum chat, one topic per ticket."""

from __future__ import annotations

from datetime import timedelta

from core.storage.numbers import find_ticket_numbers
from tests.channels.telegram import test_flow
from tests.channels.telegram.test_flow import LEARNER, TEACHER, TEACHING_CHAT, Rig

rig = test_flow.rig  # the same running rig: the real client, the stand-in, both databases


async def test_the_card_is_edited_in_place_as_the_ticket_moves(rig: Rig) -> None:
    api = rig.botapi
    api.learner_message(LEARNER, "老师讲课照本宣科，内容和宣传完全不符")
    await rig.round()
    card = api.messages_to(TEACHING_CHAT)[0]
    number = str(find_ticket_numbers(card["text"])[0])
    assert "未认领" in card["text"] and card["reply_markup"]["inline_keyboard"][0][0]["text"] == "Claim"

    api.group_message(TEACHING_CHAT, TEACHER, f"/claim {number}")
    await rig.round()
    edited = api.message(TEACHING_CHAT, card["message_id"])
    assert edited is not None
    assert (
        "王老师" in edited["text"] and "investigating" in edited["text"] and "investigate" in edited["text"]
    )
    buttons = [b["text"] for b in edited["reply_markup"]["inline_keyboard"][0]]
    assert buttons == ["Reply", "Resolve", "Escalate", "Show"]  # claimed: no "Claim" any more
    # One card, edited: no second card was posted for the move.
    assert sum(number in t for t in api.texts_to(TEACHING_CHAT)) == 2  # the card and the command's answer


async def test_in_a_forum_chat_each_ticket_gets_its_own_topic_and_its_messages_follow(rig: Rig) -> None:
    api = rig.botapi
    api.add_chat(TEACHING_CHAT, type="supergroup", title="教学部", is_forum=True)
    api.learner_message(LEARNER, "实验室设备坏了两周没人修，课都上不了")
    await rig.round()
    topics = api.topics(TEACHING_CHAT)
    assert len(topics) == 1
    (thread_id,) = topics
    card = api.messages_to(TEACHING_CHAT, thread_id=thread_id)[0]
    number = str(find_ticket_numbers(card["text"])[0])
    assert number in next(iter(topics.values()))["name"]

    # The learner adds something: the staff notice goes into the ticket's topic, not the general chat.
    api.learner_message(LEARNER, "Python 全栈班")
    await rig.round()
    assert any("Python 全栈班" in t for t in api.texts_to(TEACHING_CHAT, thread_id=thread_id))


async def test_a_delayed_older_edit_never_overwrites_a_newer_one(rig: Rig) -> None:
    api = rig.botapi
    api.learner_message(LEARNER, "老师上课总是迟到")
    await rig.round()
    card = api.messages_to(TEACHING_CHAT)[0]
    number = str(find_ticket_numbers(card["text"])[0])
    api.fail_next("editMessageText", times=1, retry_after=30)  # the claim's edit is held back
    api.group_message(TEACHING_CHAT, TEACHER, f"/claim {number}")
    await rig.round()
    api.group_message(TEACHING_CHAT, TEACHER, f"/resolve {number} 已调整上课时间")
    await rig.round()
    await rig.dispatcher.drain(rig.now + timedelta(minutes=5))  # the held-back edit's turn comes
    shown = api.message(TEACHING_CHAT, card["message_id"])
    assert shown is not None and "awaiting_confirmation" in shown["text"]
